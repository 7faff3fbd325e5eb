# sse_auth_jwt: every algorithm and every kind of key file.  Tokens are
# minted by an independent library (npm jose, t/tools/jwt-mint.mjs); a
# valid one subscribes and receives events, or publishes.  Each key is bound
# to one algorithm (alg=, else its JWKS "alg", else its type), and a token
# naming another algorithm for that key is refused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::JWT qw(claims refused);

my $t = SSETest->new(workers => 2);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my @RSA_ALGS = qw(RS256 RS384 RS512 PS256 PS384 PS512);
my $all = claims(subscribe => ['*'], publish => ['*']);

my %tokens;
# JWKS: the RSA key under six kids, one per algorithm (alg member); EC and
# Ed25519 and one secret bound by type (no alg member), the others by alg
for my $alg (@RSA_ALGS) {
    $tokens{"jwks-$alg"} = { key => 'rsa1', alg => $alg, kid => lc $alg, claims => $all };
    $tokens{"jwks-$alg-nokid"} = { key => 'rsa1', alg => $alg, claims => $all };
    # PEM bound by alg=
    $tokens{"pem-$alg"} = { key => 'rsa2', alg => $alg, claims => $all };
}
%tokens = (%tokens,
    'jwks-ES256'       => { key => 'ec256', alg => 'ES256', kid => 'es256', claims => $all },
    'jwks-ES256-nokid' => { key => 'ec256', alg => 'ES256', claims => $all },
    'jwks-ES384'       => { key => 'ec384', alg => 'ES384', kid => 'es384', claims => $all },
    'jwks-EdDSA'       => { key => 'ed', alg => 'EdDSA', kid => 'ed', claims => $all },
    'jwks-HS256'       => { key => 'oct256', alg => 'HS256', kid => 'hs256', claims => $all },
    'jwks-HS384'       => { key => 'oct384', alg => 'HS384', kid => 'hs384', claims => $all },
    'jwks-HS512'       => { key => 'oct512', alg => 'HS512', kid => 'hs512', claims => $all },
    'jwks-HS512-nokid' => { key => 'oct512', alg => 'HS512', claims => $all },

    'pem-ES256'        => { key => 'ec256', alg => 'ES256', claims => $all },
    'pem-ES384'        => { key => 'ec384', alg => 'ES384', claims => $all },
    'pem-EdDSA'        => { key => 'ed', alg => 'EdDSA', claims => $all },

    'secret-HS256'     => { key => 'secret', alg => 'HS256', claims => $all },
    'secret-HS384'     => { key => 'secret', alg => 'HS384', kid => 'k384', claims => $all },
    'secret-HS384-nokid' => { key => 'secret', alg => 'HS384', claims => $all },
    'secret-HS512'     => { key => 'secret', alg => 'HS512', kid => 'k512', claims => $all },

    # a JWKS of RSA keys without alg members, bound to PS256 by alg=
    'jwksalg-PS256'    => { key => 'rsa2', alg => 'PS256', kid => 'r2', claims => $all },

    # -- refused: a key used with another algorithm than its own
    # kid rs256 is RS256: the same RSA key with PS256 in the header
    'x-kid-rs256-as-PS256' => { key => 'rsa1', alg => 'PS256', kid => 'rs256', claims => $all },
    # kid rs256 with RS512 (same family, another hash)
    'x-kid-rs256-as-RS512' => { key => 'rsa1', alg => 'RS512', kid => 'rs256', claims => $all },
    # kid hs512 (alg member HS512) with HS256
    'x-kid-hs512-as-HS256' => { key => 'oct512', alg => 'HS256', kid => 'hs512', claims => $all },
    # kid es384 with ES256 in the header (signed by the P-256 key)
    'x-kid-es384-as-ES256' => { key => 'ec256', alg => 'ES256', kid => 'es384', claims => $all },
    # the PEM RSA key is RS256 by type: PS256 and RS384 refused
    'x-pem-rsa-PS256'  => { key => 'rsa2', alg => 'PS256', claims => $all },
    'x-pem-rsa-RS384'  => { key => 'rsa2', alg => 'RS384', claims => $all },
    # the secret is HS256 by type: HS512 refused
    'x-secret-HS512'   => { key => 'secret', alg => 'HS512', claims => $all },
    # the secret file holds "...\n": signing without the newline is
    # another key (nothing is trimmed)
    'x-secret-trimmed' => { key => 'secret_trimmed', alg => 'HS256', claims => $all },
    # the PS256-bound JWKS: an RS256 token (what the key's type would say)
    'x-jwksalg-RS256'  => { key => 'rsa2', alg => 'RS256', kid => 'r2', claims => $all },
    # a JWKS secret bound by type (HS256) used with HS384
    'x-kid-hs256-as-HS384' => { key => 'oct256', alg => 'HS384', kid => 'hs256', claims => $all },

    # publishing: the publish claim is needed
    'pub-ok'           => { key => 'ec256', alg => 'ES256', kid => 'es256',
                            claims => claims(publish => ['pubch']) },
    'pub-subonly'      => { key => 'ec256', alg => 'ES256', kid => 'es256',
                            claims => claims(subscribe => ['*']) },
);

my $tok = $jwt->mint(
    keys => [
        { name => 'rsa1', type => 'RSA' },
        { name => 'rsa2', type => 'RSA' },
        { name => 'ec256', type => 'EC', crv => 'P-256' },
        { name => 'ec384', type => 'EC', crv => 'P-384' },
        { name => 'ed', type => 'OKP' },
        { name => 'oct256', type => 'oct', bytes => 32 },
        { name => 'oct384', type => 'oct', bytes => 48 },
        { name => 'oct512', type => 'oct', bytes => 64 },
        # bytes a careless reader would trim: spaces, a CR LF, a NUL
        # (64 bytes and more: HS512 wants a secret as long as its hash)
        { name => 'secret', type => 'oct', secret => " top\x00secret " . ('v' x 64) . " \r\n" },
        { name => 'secret_trimmed', type => 'oct', secret => "top\x00secret " . ('v' x 64) },
    ],
    jwks => [
        { file => 'all.jwks', keys => [
            (map { { key => 'rsa1', kid => lc $_, alg => $_ } } @RSA_ALGS),
            { key => 'ec256', kid => 'es256' },                    # by type
            { key => 'ec384', kid => 'es384', alg => 'ES384' },
            { key => 'ed', kid => 'ed' },                          # by type
            { key => 'oct256', kid => 'hs256' },                   # by type
            { key => 'oct384', kid => 'hs384', alg => 'HS384' },
            { key => 'oct512', kid => 'hs512', alg => 'HS512' },
        ] },
        { file => 'rsa.jwks', keys => [
            { key => 'rsa2', kid => 'r2' },
            { key => 'rsa1', kid => 'r1' },
        ] },
    ],
    tokens => \%tokens,
);

my $pem_locations = join "\n", map {
    "        location /pem-$_ { sse_subscribe \$arg_ch; "
    . "sse_auth_jwt_key_file $K/rsa2.pem alg=$_; }"
} @RSA_ALGS;

$t->run(<<"EOF");
http {
    sse_zone sse 8m history=10;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_auth_jwt on;
        sse_auth_jwt_key_file $K/all.jwks;

        location /jwks { sse_subscribe \$arg_ch; }
        location /jwks-pub { sse_publish \$arg_ch; }
$pem_locations
        location /pem-rsa { sse_subscribe \$arg_ch;
                            sse_auth_jwt_key_file $K/rsa2.pem; }
        location /pem-ES256 { sse_subscribe \$arg_ch;
                              sse_auth_jwt_key_file $K/ec256.pem; }
        location /pem-ES384 { sse_subscribe \$arg_ch;
                              sse_auth_jwt_key_file $K/ec384.pem; }
        location /pem-EdDSA { sse_subscribe \$arg_ch;
                              sse_auth_jwt_key_file $K/ed.pem; }
        location /secret-HS256 { sse_subscribe \$arg_ch;
                                 sse_auth_jwt_key_secret $K/secret.secret; }
        location /secret-HSx { sse_subscribe \$arg_ch;
                               sse_auth_jwt_key_secret $K/secret.secret kid=k384 alg=HS384;
                               sse_auth_jwt_key_secret $K/secret.secret kid=k512 alg=HS512; }
        location /jwksalg { sse_subscribe \$arg_ch;
                            sse_auth_jwt_key_file $K/rsa.jwks alg=PS256; }

        location /open-pub { sse_auth_jwt off; sse_publish \$arg_ch; }
    }
}
EOF

sub bearer { return { Authorization => "Bearer $_[0]" } }

# -- every valid token subscribes and receives what is published ------------

my @ok = (
    (map { ["/jwks", "jwks-$_"], ["/jwks", "jwks-$_-nokid"], ["/pem-$_", "pem-$_"] } @RSA_ALGS),
    ['/jwks', 'jwks-ES256'], ['/jwks', 'jwks-ES256-nokid'], ['/jwks', 'jwks-ES384'],
    ['/jwks', 'jwks-EdDSA'], ['/jwks', 'jwks-HS256'], ['/jwks', 'jwks-HS384'],
    ['/jwks', 'jwks-HS512'], ['/jwks', 'jwks-HS512-nokid'],
    ['/pem-rsa', 'pem-RS256'],
    ['/pem-ES256', 'pem-ES256'], ['/pem-ES384', 'pem-ES384'], ['/pem-EdDSA', 'pem-EdDSA'],
    ['/secret-HS256', 'secret-HS256'],
    ['/secret-HSx', 'secret-HS384'], ['/secret-HSx', 'secret-HS384-nokid'],
    ['/secret-HSx', 'secret-HS512'],
    ['/jwksalg', 'jwksalg-PS256'],
);

my @streams;
my $n = 0;
for my $case (@ok) {
    my ($loc, $name) = @$case;
    my $ch = "c" . ++$n;
    my $s = $t->subscribe("$loc?ch=$ch", headers => bearer($tok->{$name}));
    is($s->status, 200, "$name at $loc: 200")
        or diag($s->{head} . $s->raw);
    push @streams, [$s, $ch, "$name at $loc"];
}
for my $st (@streams) {
    my ($s, $ch) = @$st;
    my $r = $t->publish("/open-pub?ch=$ch", "to $ch");
    is($r->status, 201, "publish to $ch: a subscriber is there");
}
for my $st (@streams) {
    my ($s, $ch, $what) = @$st;
    ok($s->wait_events(1, 3), "$what: the event arrives");
    is(($s->data)[0], "to $ch", "$what: its data");
    $s->close;
}

# -- a key used with another algorithm than its own -------------------------

refused($t->get('/jwks?ch=a', headers => bearer($tok->{'x-kid-rs256-as-PS256'})),
    401, 'invalid_token', 'bad_alg', 'JWKS RS256 key (kid) with a PS256 token: 401');
refused($t->get('/jwks?ch=a', headers => bearer($tok->{'x-kid-rs256-as-RS512'})),
    401, 'invalid_token', 'bad_alg', 'JWKS RS256 key (kid) with an RS512 token: 401');
refused($t->get('/jwks?ch=a', headers => bearer($tok->{'x-kid-hs512-as-HS256'})),
    401, 'invalid_token', 'bad_alg', 'JWKS HS512 secret (kid) with an HS256 token: 401');
refused($t->get('/jwks?ch=a', headers => bearer($tok->{'x-kid-es384-as-ES256'})),
    401, 'invalid_token', 'bad_alg', 'JWKS ES384 key (kid) with an ES256 token: 401');
refused($t->get('/jwks?ch=a', headers => bearer($tok->{'x-kid-hs256-as-HS384'})),
    401, 'invalid_token', 'bad_alg', 'JWKS oct key, HS256 by type, with an HS384 token: 401');
refused($t->get('/pem-rsa?ch=a', headers => bearer($tok->{'x-pem-rsa-PS256'})),
    401, 'invalid_token', 'no_key', 'PEM RSA key (RS256 by type) with a PS256 token: 401');
refused($t->get('/pem-rsa?ch=a', headers => bearer($tok->{'x-pem-rsa-RS384'})),
    401, 'invalid_token', 'no_key', 'PEM RSA key (RS256 by type) with an RS384 token: 401');
refused($t->get('/pem-PS256?ch=a', headers => bearer($tok->{'pem-RS256'})),
    401, 'invalid_token', 'no_key', 'PEM RSA key bound by alg=PS256 with an RS256 token: 401');
refused($t->get('/secret-HS256?ch=a', headers => bearer($tok->{'x-secret-HS512'})),
    401, 'invalid_token', 'no_key', 'secret (HS256 by type) with an HS512 token: 401');
refused($t->get('/secret-HS256?ch=a', headers => bearer($tok->{'x-secret-trimmed'})),
    401, 'invalid_token', 'bad_signature',
    'a secret file is used exactly: the trimmed bytes are another key');
refused($t->get('/jwksalg?ch=a', headers => bearer($tok->{'x-jwksalg-RS256'})),
    401, 'invalid_token', 'bad_alg', 'JWKS bound by alg=PS256: its RSA key refuses RS256');
refused($t->get('/secret-HSx?ch=a', headers => bearer($tok->{'secret-HS256'})),
    401, 'invalid_token', 'no_key', 'HS384/HS512 secrets: an HS256 token has no key');
# another key's token at a location without it
refused($t->get('/pem-ES256?ch=a', headers => bearer($tok->{'pem-ES384'})),
    401, 'invalid_token', 'no_key', 'an ES384 token where only an ES256 key is');
refused($t->get('/pem-EdDSA?ch=a', headers => bearer($tok->{'jwks-EdDSA'})),
    401, 'invalid_token', 'unknown_kid', 'a kid the location does not have: 401');

# -- publishing with a token --------------------------------------------------

my $s = $t->subscribe('/jwks?ch=pubch', headers => bearer($tok->{'jwks-ES256'}));
is($s->status, 200, 'a subscriber of pubch');
my $r = $t->publish('/jwks-pub?ch=pubch', 'signed publish', %{bearer($tok->{'pub-ok'})});
is($r->status, 201, 'a token with publish: [pubch] publishes: 201');
ok($s->wait_events(1, 3), '... and the event arrives');
is(($s->data)[0], 'signed publish', '... with its data');

$r = $t->publish('/jwks-pub?ch=pubch', 'not allowed', %{bearer($tok->{'pub-subonly'})});
refused($r, 403, 'insufficient_scope', undef,
    'a token with only a subscribe claim cannot publish: 403');
$r = $t->publish('/jwks-pub?ch=other', 'not allowed', %{bearer($tok->{'pub-ok'})});
refused($r, 403, 'insufficient_scope', undef, 'publish: [pubch] cannot publish to another channel');
$r = $t->publish('/jwks-pub?ch=pubch', 'no token');
refused($r, 401, undef, undef, 'publish without a token: 401');
ok(!$s->wait_events(2, 0.5), 'nothing refused reached the subscriber');
is(scalar(my @d = $s->data), 1, "... one event only") or diag(explain [$s->data]);
$s->close;

$t->done;
