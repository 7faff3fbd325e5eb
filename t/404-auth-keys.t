# Keys: several live at once (rotation by kid); `nginx -s reload` reads the
# key files again (a removed kid is refused at once, a new one works); a
# reload with a broken key file is refused and the running keys stay;
# `nginx -t` fails on a missing or invalid key file, naming it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Copy qw(copy);
use SSETest;
use SSETest::JWT qw(claims refused);

my $t = SSETest->new(workers => 2);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my $c = claims(subscribe => ['*']);
my $tok = $jwt->mint(
    keys => [
        { name => 'a', type => 'EC', crv => 'P-256' },
        { name => 'b', type => 'EC', crv => 'P-256' },
        { name => 'c', type => 'OKP' },
        { name => 'rsa', type => 'RSA' },
        { name => 'p521', type => 'EC', crv => 'P-521' },
        { name => 'p384', type => 'EC', crv => 'P-384' },
        (map { { name => "e$_", type => 'EC', crv => 'P-256' } } 1 .. 5),
        { name => 's1', type => 'oct', bytes => 64 },
        { name => 's2', type => 'oct', bytes => 64 },
    ],
    jwks => [
        { file => 'gen1.jwks', keys => [ { key => 'a', kid => 'k1' }, { key => 'b', kid => 'k2' } ] },
        { file => 'gen2.jwks', keys => [ { key => 'b', kid => 'k2' }, { key => 'c', kid => 'k3' } ] },
        { file => 'five.jwks', keys => [ map { { key => "e$_", kid => "f$_" } } 1 .. 5 ] },
        { file => 'mixed-ec.jwks', keys => [ { key => 'a', kid => 'a' }, { key => 'p384', kid => 'b' } ] },
        { file => 'p521.jwks', keys => [ { key => 'p521', kid => 'x' } ] },
        { file => 'rsa-as-es.jwks', keys => [ { key => 'rsa', kid => 'x', alg => 'ES256' } ] },
        { file => 'rsa-as-none.jwks', keys => [ { key => 'rsa', kid => 'x', alg => 'none' } ] },
    ],
    tokens => {
        k1 => { key => 'a', kid => 'k1', claims => $c },
        k2 => { key => 'b', kid => 'k2', claims => $c },
        k3 => { key => 'c', kid => 'k3', claims => $c },
        a_nokid => { key => 'a', claims => $c },
        b_nokid => { key => 'b', claims => $c },
        s1 => { key => 's1', claims => $c },
        (map { ("nokid$_" => { key => "e$_", claims => $c },
                "kid$_" => { key => "e$_", kid => "f$_", claims => $c }) } 1 .. 5),
        s2 => { key => 's2', claims => $c },
    },
);

sub put {
    my ($from, $to) = @_;
    copy("$K/$from", "$K/$to.tmp") or die "copy $from: $!";
    rename "$K/$to.tmp", "$K/$to" or die "rename: $!";
}
sub write_file {
    my ($name, $bytes) = @_;
    open my $fh, '>', "$K/$name" or die "$name: $!";
    print $fh $bytes;
    close $fh;
}

put('gen1.jwks', 'live.jwks');
put('a.pem', 'live.pem');
put('s1.secret', 'live.secret');

my $CONF = <<"EOF";
http {
    sse_zone sse 8m history=10;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_auth_jwt on;
        location /jwks   { sse_subscribe \$arg_ch; sse_auth_jwt_key_file $K/live.jwks; }
        location /pem    { sse_subscribe \$arg_ch; sse_auth_jwt_key_file $K/live.pem; }
        location /secret { sse_subscribe \$arg_ch; sse_auth_jwt_key_secret $K/live.secret; }
        location /five-pem  { sse_subscribe \$arg_ch;
                              sse_auth_jwt_key_file $K/e1.pem; sse_auth_jwt_key_file $K/e2.pem;
                              sse_auth_jwt_key_file $K/e3.pem; sse_auth_jwt_key_file $K/e4.pem;
                              sse_auth_jwt_key_file $K/e5.pem; }
        location /five-jwks { sse_subscribe \$arg_ch; sse_auth_jwt_key_file $K/five.jwks; }
        location /pub    { sse_auth_jwt off; sse_publish \$arg_ch; }
    }
}
EOF
$t->run($CONF);

sub status_of {
    my ($path, $token) = @_;
    return $t->get($path, headers => { Authorization => "Bearer $token" });
}
sub ok200 {
    my ($path, $token, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->head($path, headers => { Authorization => "Bearer $token" });
    is($r->status, 200, "$what: 200") or diag($r->describe);
}

# -- two keys live at once -----------------------------------------------------

ok200('/jwks?ch=a', $tok->{k1}, 'generation 1: kid k1');
ok200('/jwks?ch=a', $tok->{k2}, 'generation 1: kid k2');
ok200('/jwks?ch=a', $tok->{a_nokid}, 'generation 1: no kid, ES256 key a (of two ES256 keys)');
ok200('/jwks?ch=a', $tok->{b_nokid}, 'generation 1: no kid, ES256 key b');
refused(status_of('/jwks?ch=a', $tok->{k3}), 401, 'invalid_token', 'unknown_kid',
    'generation 1: kid k3 is not known yet');
ok200('/pem?ch=a', $tok->{a_nokid}, 'PEM a');
ok200('/secret?ch=a', $tok->{s1}, 'secret s1');

# -- a token without kid is tried against four keys of its alg at most ------

for my $i (1 .. 4) {
    ok200('/five-pem?ch=a', $tok->{"nokid$i"}, "five ES256 keys, no kid: key $i of them");
}
refused(status_of('/five-pem?ch=a', $tok->{nokid5}), 401, 'invalid_token', 'bad_signature',
    'five ES256 keys, no kid: the fifth key is not tried');
refused(status_of('/five-jwks?ch=a', $tok->{nokid5}), 401, 'invalid_token', 'bad_signature',
    'the same in a JWKS');
ok200('/five-jwks?ch=a', $tok->{kid5}, 'the fifth key is found by its kid');
ok200('/five-jwks?ch=a', $tok->{kid1}, 'and the first by its own');
refused(status_of('/five-jwks?ch=a', $tok->{kid1} =~ s/\.[^.]+$/'.' . (split m{\.}, $tok->{kid5})[2]/er),
    401, 'invalid_token', 'bad_signature', "kid f1 with key 5's signature: only key 1 is tried");

# a stream opened with the old kid
my $old = $t->subscribe('/jwks?ch=rot', headers => { Authorization => "Bearer $tok->{k1}" });
is($old->status, 200, 'a stream opened with kid k1');

# -- reload with new files ----------------------------------------------------

put('gen2.jwks', 'live.jwks');
put('b.pem', 'live.pem');
put('s2.secret', 'live.secret');
ok($t->reload, 'reload with the key files changed');
ok($old->wait_closed(5), 'the old worker ended the k1 stream');

refused(status_of('/jwks?ch=a', $tok->{k1}), 401, 'invalid_token', 'unknown_kid',
    'after the reload: kid k1 (removed) is refused');
ok200('/jwks?ch=a', $tok->{k2}, 'after the reload: kid k2 (kept) works');
ok200('/jwks?ch=a', $tok->{k3}, 'after the reload: kid k3 (new) works');
refused(status_of('/pem?ch=a', $tok->{a_nokid}), 401, 'invalid_token', 'bad_signature',
    'after the reload: the old PEM key is refused');
ok200('/pem?ch=a', $tok->{b_nokid}, 'after the reload: the new PEM key works');
refused(status_of('/secret?ch=a', $tok->{s1}), 401, 'invalid_token', 'bad_signature',
    'after the reload: the old secret is refused');
ok200('/secret?ch=a', $tok->{s2}, 'after the reload: the new secret works');

# the client reconnects with its old token: refused; with a new one, it resumes
refused(status_of('/jwks?ch=rot', $tok->{k1}), 401, 'invalid_token', 'unknown_kid',
    'the k1 client reconnecting is refused');

# -- a reload with a broken key file keeps the running keys -----------------

$t->expect_log(qr/\[emerg\].*live\.jwks/);
my @w = sort $t->workers;
write_file('live.jwks', '{"keys": [ {"kty": "EC", "crv": "P-256", "x": "broken"');
kill 'HUP', $t->master_pid;
my $emerg = $t->wait_log(qr/\[emerg\][^\n]*live\.jwks[^\n]*/, 5);
ok($emerg, 'a reload with a broken JWKS: [emerg] naming the file') or diag($t->error_log);
is(join(' ', sort $t->workers), join(' ', @w), 'the same workers keep running');
ok200('/jwks?ch=a', $tok->{k3}, 'and the keys they had still work');
refused(status_of('/jwks?ch=a', $tok->{k1}), 401, 'invalid_token', 'unknown_kid',
    'and k1 is still refused');
put('gen2.jwks', 'live.jwks');

# -- nginx -t: missing or invalid key files, named ---------------------------

write_file('garbage.pem', "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n");
write_file('notjson.jwks', '{"keys": [');
write_file('empty.jwks', '{"keys": []}');
write_file('nokeys.jwks', '{"kty": "EC"}');
write_file('badkty.jwks', '{"keys": [{"kty": "XYZ", "kid": "x"}]}');
write_file('badec.jwks', '{"keys": [{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]}');
write_file('empty.secret', '');
write_file('short.secret', 'x' x 16);
mkdir "$K/adir";

my $checker = SSETest->new(workers => 1);
sub conf_with {
    my ($directives) = @_;
    return <<"EOF";
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /s { sse_subscribe \$arg_ch; sse_auth_jwt on; $directives }
    }
}
EOF
}

my ($rc, $out) = $checker->test_config(conf_with(
    "sse_auth_jwt_key_file $K/gen2.jwks; sse_auth_jwt_key_file $K/rsa.pem alg=PS512; "
    . "sse_auth_jwt_key_file $K/a.pem; sse_auth_jwt_key_file $K/c.pem; "
    . "sse_auth_jwt_key_secret $K/s1.secret kid=s alg=HS512; "
    . "sse_auth_jwt_issuer https://i.example; sse_auth_jwt_audience aud; "
    . "sse_auth_jwt_leeway 5s;"));
is($rc, 0, 'nginx -t accepts every key directive form') or diag($out);

my @bad = (
    [ "sse_auth_jwt_key_file $K/missing.jwks;", 'missing.jwks', 'a missing key file' ],
    [ "sse_auth_jwt_key_secret $K/missing.secret;", 'missing.secret', 'a missing secret file' ],
    [ "sse_auth_jwt_key_file $K/adir;", 'adir', 'a directory as key file' ],
    [ "sse_auth_jwt_key_file $K/garbage.pem;", 'garbage.pem', 'a PEM that is no key' ],
    [ "sse_auth_jwt_key_file $K/a.key.pem;", 'a.key.pem', 'a private key (PEM)' ],
    [ "sse_auth_jwt_key_file $K/notjson.jwks;", 'notjson.jwks', 'a JWKS that is not JSON' ],
    [ "sse_auth_jwt_key_file $K/empty.jwks;", 'empty.jwks', 'a JWKS without keys' ],
    [ "sse_auth_jwt_key_file $K/nokeys.jwks;", 'nokeys.jwks', 'a JWK that is not a set' ],
    [ "sse_auth_jwt_key_file $K/badkty.jwks;", 'badkty.jwks', 'a JWKS with an unknown kty' ],
    [ "sse_auth_jwt_key_file $K/badec.jwks;", 'badec.jwks', 'an EC point not on the curve' ],
    [ "sse_auth_jwt_key_file $K/p521.jwks;", 'p521.jwks', 'an unsupported curve (P-521)' ],
    [ "sse_auth_jwt_key_file $K/rsa-as-es.jwks;", 'rsa-as-es.jwks',
      'a JWKS RSA key whose alg is ES256' ],
    [ "sse_auth_jwt_key_file $K/rsa-as-none.jwks;", 'rsa-as-none.jwks',
      'a JWKS key whose alg is none' ],
    [ "sse_auth_jwt_key_secret $K/empty.secret;", 'empty.secret', 'an empty secret file' ],
    [ "sse_auth_jwt_key_secret $K/short.secret;", 'short.secret', 'a 16-byte secret' ],
    [ "sse_auth_jwt_key_file $K/a.pem alg=RS256;", 'RS256', 'an EC key with alg=RS256' ],
    [ "sse_auth_jwt_key_file $K/rsa.pem alg=HS256;", 'HS256', 'an RSA key with alg=HS256' ],
    [ "sse_auth_jwt_key_file $K/rsa.pem alg=none;", 'none', 'alg=none' ],
    [ "sse_auth_jwt_key_file $K/c.pem alg=ES256;", 'ES256', 'an Ed25519 key with alg=ES256' ],
    [ "sse_auth_jwt_key_file $K/gen2.jwks alg=RS256;", 'RS256',
      'a JWKS of EC/OKP keys bound to alg=RS256' ],
    [ "sse_auth_jwt_key_file $K/mixed-ec.jwks alg=ES384;", 'mixed-ec.jwks',
      'a JWKS with a P-256 key bound to alg=ES384' ],
    [ "sse_auth_jwt_key_secret $K/s1.secret alg=RS256;", 'RS256', 'a secret with alg=RS256' ],
    [ "sse_auth_jwt_key_secret $K/s1.secret colour=red;", 'colour=red',
      'an unknown sse_auth_jwt_key_secret parameter' ],
    [ "sse_auth_jwt_key_file $K/a.pem alg=ES999;", 'ES999', 'an unknown alg=' ],
    [ "sse_auth_jwt_leeway soon; sse_auth_jwt_key_file $K/a.pem;", 'sse_auth_jwt_leeway',
      'a bad leeway' ],
    [ '', 'sse_auth_jwt', 'sse_auth_jwt on without a key' ],
);
for my $b (@bad) {
    my ($directives, $word, $name) = @$b;
    my ($rc, $out) = $checker->test_config(conf_with($directives));
    isnt($rc, 0, "nginx -t refuses $name");
    my ($line) = grep { /\[emerg\]/ } split /\n/, $out;
    ok($line, "$name: an [emerg] line") or diag($out);
    like($line // '', qr/\Q$word\E/, "$name: the message names '$word'");
    unlike($out, qr/\[alert\]|\[crit\]|Sanitizer|runtime error/,
        "$name: nothing worse than [emerg]");
}

# sse_auth_jwt with a bad argument
for my $b ([ 'sse_auth_jwt maybe;', 'maybe' ], [ 'sse_auth_jwt on colour=red;', 'colour=red' ]) {
    my ($directive, $word) = @$b;
    my ($rc, $out) = $checker->test_config(<<"EOF");
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /s { sse_subscribe \$arg_ch; $directive sse_auth_jwt_key_file $K/a.pem; }
    }
}
EOF
    isnt($rc, 0, "nginx -t refuses '$directive'");
    like($out, qr/\[emerg\][^\n]*\Q$word\E/, "... naming '$word'");
}

$t->done;
