# sse_auth_jwt against hostile tokens: alg none, algorithm confusion (an
# RSA public key's PEM used as an HMAC secret), unknown kid, embedded keys,
# a bad signature, one flipped bit anywhere, truncated, not base64url, 64 KB
# tokens (header, cookie, query argument), duplicate JSON keys, deep
# nesting, exp as a string.  Each: 401 with error="invalid_token", the JSON
# reason, no worker hurt, and the log has no line above info for it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::JWT qw(claims refused flip_bit b64url unb64url);

my $t = SSETest->new(workers => 2);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my $now = time;
my $ok_claims = claims(subscribe => ['*']);
my $exp = $ok_claims->{exp};
my $big = 'x' x (64 * 1024);

my $tok = $jwt->mint(
    keys => [
        { name => 'rsa', type => 'RSA' },
        { name => 'evil', type => 'RSA' },
        { name => 'ec', type => 'EC', crv => 'P-256' },
        { name => 'hs', type => 'oct', bytes => 32 },
    ],
    jwks => [
        { file => 'keys.jwks', keys => [
            { key => 'rsa', kid => 'r1', alg => 'RS256' },
            { key => 'ec', kid => 'e1' },
        ] },
    ],
    tokens => {
        ok_rs     => { key => 'rsa', alg => 'RS256', kid => 'r1', claims => $ok_claims },
        ok_rs_nokid => { key => 'rsa', alg => 'RS256', claims => $ok_claims },
        ok_es     => { key => 'ec', alg => 'ES256', kid => 'e1', claims => $ok_claims },
        ok_hs     => { key => 'hs', alg => 'HS256', claims => $ok_claims },

        # alg none, in its spellings, with and without a signature part
        none       => { unsigned => 1, header => { alg => 'none' }, claims => $ok_claims },
        none_kid   => { unsigned => 1, header => { alg => 'none', kid => 'r1' },
                        claims => $ok_claims },
        none_upper => { unsigned => 1, header => { alg => 'NONE' }, claims => $ok_claims },
        none_cap   => { unsigned => 1, header => { alg => 'None' }, claims => $ok_claims },
        none_sig   => { key => 'rsa', alg => 'RS256', header_alg => 'none',
                        claims => $ok_claims },
        no_alg     => { key => 'rsa', alg => 'RS256', header_raw => '{"kid":"r1"}',
                        claims => $ok_claims },
        alg_number => { key => 'rsa', alg => 'RS256', header_raw => '{"alg":256,"kid":"r1"}',
                        claims => $ok_claims },
        alg_bogus  => { key => 'hs', alg => 'HS256', header_alg => 'HS1024',
                        claims => $ok_claims },

        # algorithm confusion: the attacker signs HS256 with the bytes of
        # the server's RSA public key (PEM, and the JWK text)
        confused_pem     => { secret_file => 'rsa.pem', alg => 'HS256', claims => $ok_claims },
        confused_pem_kid => { secret_file => 'rsa.pem', alg => 'HS256', kid => 'r1',
                              claims => $ok_claims },
        confused_jwk     => { secret_file => 'rsa.jwk', alg => 'HS256', kid => 'r1',
                              claims => $ok_claims },

        # kid: unknown, empty, not a string
        kid_unknown => { key => 'rsa', alg => 'RS256', kid => 'r2', claims => $ok_claims },
        kid_empty   => { key => 'rsa', alg => 'RS256', kid => '', claims => $ok_claims },
        kid_number  => { key => 'rsa', alg => 'RS256', header_raw => '{"alg":"RS256","kid":1}',
                         claims => $ok_claims },

        # keys the token brings along are never used
        jwk_embedded => { key => 'evil', alg => 'RS256', claims => $ok_claims,
                          header => { jwk => { kty => 'RSA', n => 'AQAB', e => 'AQAB' } } },
        jku          => { key => 'evil', alg => 'RS256', kid => 'r1', claims => $ok_claims,
                          header => { jku => 'http://127.0.0.1:1/jwks.json' } },
        x5u          => { key => 'evil', alg => 'RS256', claims => $ok_claims,
                          header => { x5u => 'http://127.0.0.1:1/cert.pem' } },

        # signed by another key under the right kid
        bad_sig_rs => { key => 'evil', alg => 'RS256', kid => 'r1', claims => $ok_claims },

        # JSON the strict parser refuses
        dup_exp    => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":$exp,"sse":{"subscribe":["*"]},"exp":1}) },
        dup_exp2   => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":1,"sse":{"subscribe":["*"]},"exp":$exp}) },
        dup_sse    => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":$exp,"sse":{"subscribe":["a"],"subscribe":["*"]}}) },
        dup_alg    => { key => 'hs', alg => 'HS256', header_raw => '{"alg":"HS256","alg":"none"}',
                        claims => $ok_claims },
        deep_array => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":$exp,"sse":{"subscribe":["*"]},"x":)
                                       . ('[' x 5000) . (']' x 5000) . '}' },
        deep_object => { key => 'hs', alg => 'HS256',
                         payload_raw => qq({"exp":$exp,"sse":{"subscribe":["*"]},"x":)
                                        . ('{"a":' x 3000) . '1' . ('}' x 3000) . '}' },
        deep_header => { key => 'hs', alg => 'HS256',
                         header_raw => '{"alg":"HS256","x":' . ('[' x 5000) . (']' x 5000) . '}',
                         claims => $ok_claims },
        nested_ok  => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":$exp,"sse":{"subscribe":["*"]},"x":)
                                       . ('[' x 8) . (']' x 8) . '}' },
        exp_string => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":"$exp","sse":{"subscribe":["*"]}}) },
        exp_bool   => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":true,"sse":{"subscribe":["*"]}}) },
        exp_null   => { key => 'hs', alg => 'HS256',
                        payload_raw => qq({"exp":null,"sse":{"subscribe":["*"]}}) },
        exp_missing => { key => 'hs', alg => 'HS256',
                         payload_raw => qq({"sse":{"subscribe":["*"]}}) },
        exp_neg_huge => { key => 'hs', alg => 'HS256',
                          payload_raw => qq({"exp":-1e400,"sse":{"subscribe":["*"]}}) },
        payload_array => { key => 'hs', alg => 'HS256', payload_raw => qq([{"exp":$exp}]) },
        payload_string => { key => 'hs', alg => 'HS256', payload_raw => qq("exp") },
        payload_trailing => { key => 'hs', alg => 'HS256',
                              payload_raw => qq({"exp":$exp,"sse":{"subscribe":["*"]}} x) },
        payload_two => { key => 'hs', alg => 'HS256',
                         payload_raw => qq({"exp":$exp,"sse":{"subscribe":["*"]}}{}) },
        payload_bad_utf8 => { key => 'hs', alg => 'HS256',
                              payload_hex => unpack('H*',
                                  qq({"exp":$exp,"sse":{"subscribe":["*"]},"n":"\xff\xfe"})) },
        header_bad_utf8 => { key => 'hs', alg => 'HS256', claims => $ok_claims,
                             header_hex => unpack('H*', qq({"alg":"HS256","x":"\xc3"})) },
        payload_empty => { key => 'hs', alg => 'HS256', payload_raw => '' },
        header_not_object => { key => 'hs', alg => 'HS256', header_raw => '"HS256"',
                               claims => $ok_claims },

        # 64 KB: a validly signed token with a huge claim
        huge => { key => 'hs', alg => 'HS256', claims => { %$ok_claims, pad => $big } },
    },
);

$t->run(<<"EOF");
http {
    large_client_header_buffers 4 256k;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_auth_jwt on;
        sse_auth_jwt_key_file $K/keys.jwks;

        location /sub { sse_subscribe \$arg_ch; }
        location /hs  { sse_subscribe \$arg_ch;
                        sse_auth_jwt_key_secret $K/hs.secret; }
        location /pem { sse_subscribe \$arg_ch;
                        sse_auth_jwt_key_file $K/rsa.pem; }
        location /pem-and-secret { sse_subscribe \$arg_ch;
                                   sse_auth_jwt_key_file $K/rsa.pem;
                                   sse_auth_jwt_key_secret $K/hs.secret; }
        location /arg { sse_subscribe \$arg_ch;
                        sse_auth_jwt on token=\$arg_access_token;
                        sse_auth_jwt_key_secret $K/hs.secret; }
    }
}
EOF

sub bearer { return { Authorization => "Bearer $_[0]" } }

sub bad {
    my ($path, $token, $reason, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    refused($t->get($path, headers => bearer($token)), 401, 'invalid_token', $reason, $name);
}

# -- the valid ones pass (so every refusal below is for its own reason) ----

for (['/sub', 'ok_rs'], ['/sub', 'ok_rs_nokid'], ['/sub', 'ok_es'], ['/hs', 'ok_hs'],
     ['/pem', 'ok_rs_nokid'], ['/pem-and-secret', 'ok_rs_nokid'],
     ['/pem-and-secret', 'ok_hs'], ['/hs', 'nested_ok'])
{
    my ($loc, $name) = @$_;
    my $s = $t->subscribe("$loc?ch=a", headers => bearer($tok->{$name}));
    is($s->status, 200, "$name at $loc: 200");
    $s->close;
}

# -- no token ------------------------------------------------------------------

refused($t->get('/sub?ch=a'), 401, undef, undef, 'no token: 401, Bearer without error');
refused($t->get('/sub?ch=a', headers => { Authorization => "Basic dXNlcjpwYXNz" }),
    401, undef, undef, 'Authorization: Basic is no token');

# -- alg none ------------------------------------------------------------------

bad('/sub?ch=a', $tok->{none}, 'bad_alg', 'alg none: 401');
bad('/hs?ch=a', $tok->{none}, 'bad_alg', 'alg none at an HMAC location: 401');
bad('/sub?ch=a', $tok->{none_kid}, 'bad_alg', 'alg none with a known kid: 401');
bad('/sub?ch=a', $tok->{none_upper}, 'bad_alg', 'alg NONE: 401');
bad('/sub?ch=a', $tok->{none_cap}, 'bad_alg', 'alg None: 401');
bad('/sub?ch=a', $tok->{none_sig}, 'bad_alg', 'alg none with a valid RS256 signature: 401');
bad('/sub?ch=a', $tok->{no_alg}, 'malformed', 'no alg at all: 401');
bad('/sub?ch=a', $tok->{alg_number}, 'malformed', 'alg a number: 401');
bad('/hs?ch=a', $tok->{alg_bogus}, 'bad_alg', 'an unknown alg: 401');

# -- algorithm confusion -------------------------------------------------------

bad('/pem?ch=a', $tok->{confused_pem}, 'no_key',
    'HS256 signed with the RSA public PEM, location has only that RSA key: 401');
bad('/sub?ch=a', $tok->{confused_pem}, 'no_key',
    'the same at the JWKS location (no kid): 401');
bad('/sub?ch=a', $tok->{confused_pem_kid}, 'bad_alg',
    'the same naming the RSA key\'s kid: 401');
bad('/sub?ch=a', $tok->{confused_jwk}, 'bad_alg',
    'HS256 signed with the RSA public JWK text, RSA kid: 401');
bad('/pem-and-secret?ch=a', $tok->{confused_pem}, 'bad_signature',
    'where an HMAC secret exists too, the PEM-as-secret token is a bad signature');

# -- kid -------------------------------------------------------------------------

bad('/sub?ch=a', $tok->{kid_unknown}, 'unknown_kid', 'an unknown kid: 401');
bad('/sub?ch=a', $tok->{kid_empty}, 'unknown_kid', 'an empty kid: 401');
bad('/sub?ch=a', $tok->{kid_number}, 'malformed', 'a kid that is not a string: 401');
bad('/pem?ch=a', $tok->{ok_rs}, 'unknown_kid', 'a kid where the only key has none: 401');

# -- keys brought by the token ------------------------------------------------

bad('/sub?ch=a', $tok->{jwk_embedded}, 'bad_signature', 'an embedded jwk is not used: 401');
bad('/sub?ch=a', $tok->{jku}, 'bad_signature', 'jku is not fetched nor used: 401');
bad('/sub?ch=a', $tok->{x5u}, 'bad_signature', 'x5u is not fetched nor used: 401');

# -- signatures -------------------------------------------------------------

bad('/sub?ch=a', $tok->{bad_sig_rs}, 'bad_signature', 'signed by another RSA key: 401');

# a signature swapped between two valid tokens
{
    my @a = split /\./, $tok->{ok_rs};
    my @b = split /\./, $tok->{ok_rs_nokid};
    bad('/sub?ch=a', "$a[0].$a[1].$b[2]", 'bad_signature',
        "another token's valid signature: 401");
    bad('/sub?ch=a', "$b[0].$a[1].$a[2]", undef,
        'a header swapped under a valid signature: 401');
}

# one flipped bit, in every byte of every part of an ES256 and an HS256
# token (the bit moves along the byte index)
for my $case (['/sub', 'ok_es'], ['/hs', 'ok_hs']) {
    my ($loc, $name) = @$case;
    my $token = $tok->{$name};
    my @parts = split /\./, $token;
    my @names = qw(header payload signature);
    for my $part (0 .. 2) {
        my $len = length unb64url($parts[$part]);
        my @fail;
        for my $byte (0 .. $len - 1) {
            my $bad = flip_bit($token, $part, $byte, $byte % 8);
            my $r = $t->get("$loc?ch=a", headers => bearer($bad));
            my $wa = $r->header('www-authenticate') // '';
            push @fail, "byte $byte: " . $r->status . " $wa"
                unless $r->status == 401 && $wa =~ /error="invalid_token"/;
            $t->crash_check;
        }
        ok(!@fail, "$name: each of $len bytes of the $names[$part] with a bit flipped: "
            . "401 invalid_token") or diag(join "\n", @fail[0 .. ($#fail < 9 ? $#fail : 9)]);
    }
}
# and the reason of one flip in the signature and one in the payload
bad('/sub?ch=a', flip_bit($tok->{ok_es}, 2, 10, 3), 'bad_signature',
    'a bit flipped in the signature: bad_signature');
bad('/hs?ch=a', flip_bit($tok->{ok_hs}, 2, 0, 0), 'bad_signature',
    'a bit flipped in an HMAC: bad_signature');

# -- truncated ---------------------------------------------------------------

{
    my $tk = $tok->{ok_es};
    my ($h, $p, $s) = split /\./, $tk;
    my %cut = (
        'the last character'      => substr($tk, 0, -1),
        'half the signature'      => "$h.$p." . substr($s, 0, length($s) / 2),
        'the signature'           => "$h.$p.",
        'the signature and its dot' => "$h.$p",
        'everything after the header' => "$h.",
        'all but the header'      => $h,
        'half the header'         => substr($h, 0, 10),
        'the header'              => ".$p.$s",
        'the payload'             => "$h..$s",
        'all but the dots'        => '..',
        'to one character'        => 'e',
    );
    for my $what (sort keys %cut) {
        bad('/sub?ch=a', $cut{$what}, undef, "truncated, without $what: 401");
    }
    bad('/sub?ch=a', "$tk.$s", 'malformed', 'four parts: 401');
    bad('/sub?ch=a', "$tk.", 'malformed', 'a trailing dot: 401');
}

# -- not base64url ------------------------------------------------------------

{
    my $tk = $tok->{ok_es};
    my ($h, $p, $s) = split /\./, $tk;
    (my $std_p = $p) =~ tr{-_}{+/};
    my %bad = (
        'with = padding'           => "$h.$p.$s==",
        'a * in the payload'       => "$h." . substr($p, 0, 5) . '*' . substr($p, 6) . ".$s",
        'a space in the header'    => substr($h, 0, 4) . ' ' . substr($h, 4) . ".$p.$s",
        'a % escape'               => "$h.%7B$p.$s",
        'a non-ASCII byte'         => "$h.$p.\xc3\xa9$s",
        'a NUL byte'               => "$h.$p\x00.$s",
        'one character too many (6 bits)' => "$h.${p}A.$s",
    );
    for my $what (sort keys %bad) {
        my $r = $t->get('/sub?ch=a', headers => bearer($bad{$what}));
        # a byte nginx itself refuses in a header (NUL) gets its 400
        if ($what eq 'a NUL byte') {
            ok($r->status == 400 || $r->status == 401, "not base64url, $what: 400 or 401")
                or diag($r->describe);
            next;
        }
        refused($r, 401, 'invalid_token', undef, "not base64url, $what: 401");
    }
    # standard base64 (+ and /) instead of base64url, when the text has them
    if ($std_p ne $p) {
        bad('/sub?ch=a', "$h.$std_p.$s", undef, 'standard base64 (+ /), not base64url: 401');
    }
}

# -- JSON ------------------------------------------------------------------

bad('/hs?ch=a', $tok->{dup_exp}, 'malformed', 'duplicate "exp" (later one expired): 401');
bad('/hs?ch=a', $tok->{dup_exp2}, 'malformed', 'duplicate "exp" (later one valid): 401');
bad('/hs?ch=a', $tok->{dup_sse}, 'malformed', 'duplicate "subscribe" in "sse": 401');
bad('/hs?ch=a', $tok->{dup_alg}, 'malformed', 'duplicate "alg" in the header: 401');
bad('/hs?ch=a', $tok->{deep_array}, 'malformed', 'arrays nested 5000 deep: 401');
bad('/hs?ch=a', $tok->{deep_object}, 'malformed', 'objects nested 3000 deep: 401');
bad('/hs?ch=a', $tok->{deep_header}, 'malformed', 'a header nested 5000 deep: 401');
bad('/hs?ch=a', $tok->{exp_string}, 'malformed', 'exp as a string: 401');
bad('/hs?ch=a', $tok->{exp_bool}, 'malformed', 'exp true: 401');
bad('/hs?ch=a', $tok->{exp_null}, 'malformed', 'exp null: 401');
bad('/hs?ch=a', $tok->{exp_missing}, 'malformed', 'no exp: 401');
bad('/hs?ch=a', $tok->{exp_neg_huge}, undef, 'exp -1e400 (beyond a double): 401');
bad('/hs?ch=a', $tok->{payload_array}, 'malformed', 'a payload that is an array: 401');
bad('/hs?ch=a', $tok->{payload_string}, 'malformed', 'a payload that is a string: 401');
bad('/hs?ch=a', $tok->{payload_trailing}, 'malformed', 'bytes after the payload object: 401');
bad('/hs?ch=a', $tok->{payload_two}, 'malformed', 'two payload objects: 401');
bad('/hs?ch=a', $tok->{payload_bad_utf8}, 'malformed', 'invalid UTF-8 in the payload: 401');
bad('/hs?ch=a', $tok->{header_bad_utf8}, 'malformed', 'invalid UTF-8 in the header: 401');
bad('/hs?ch=a', $tok->{payload_empty}, 'malformed', 'an empty payload: 401');
bad('/hs?ch=a', $tok->{header_not_object}, 'malformed', 'a header that is a string: 401');

# -- 64 KB tokens: header, cookie, query argument ----------------------------

ok(length($tok->{huge}) > 64 * 1024, 'the 64 KB token is ' . length($tok->{huge}) . ' bytes');
bad('/hs?ch=a', $tok->{huge}, 'malformed', 'a 64 KB token in Authorization: 401');
refused($t->get('/hs?ch=a', headers => { Cookie => "sse_token=$tok->{huge}" }),
    401, 'invalid_token', 'malformed', 'a 64 KB token in the sse_token cookie: 401');
refused($t->get("/arg?ch=a&access_token=$tok->{huge}"),
    401, 'invalid_token', 'malformed', 'a 64 KB token in ?access_token=: 401');
refused($t->get("/arg?ch=a&access_token=" . ('A' x (100 * 1024))),
    401, 'invalid_token', 'malformed', '100 KB of base64url letters, no dot: 401');

# the workers are all still there, and still answer a valid token
my $s = $t->subscribe('/sub?ch=a', headers => bearer($tok->{ok_es}));
is($s->status, 200, 'after all that, a valid token still subscribes');
$s->close;

# every refusal was logged at info, never higher
my @high = grep { /\[(warn|error|crit|alert|emerg)\]/ } split /\n/, $t->error_log;
ok(!@high, 'no log line above info') or diag(join "\n", @high[0 .. ($#high < 9 ? $#high : 9)]);

$t->done;
