# sse_redis configuration: every documented form is accepted by nginx -t;
# bad URLs and parameters are refused with an [emerg] line that says what
# is wrong, and never quotes a password.  No redis-server is needed: the
# address is only resolved, not connected to, by nginx -t.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

sub conf {
    my ($http, $loc) = @_;
    $loc //= '        location /sub { sse_subscribe $arg_ch; }';
    return <<"EOF";
http {
$http
    server {
        listen 127.0.0.1:%%PORT%%;
$loc
    }
}
EOF
}

my $t = SSETest->new(workers => 1);
my $dir = $t->dir;

# a client certificate for the TLS directives
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=c"
       . " -keyout $dir/c.key -out $dir/c.crt >/dev/null 2>&1") == 0
    or die 'openssl failed';

my @good = (
    [ 'sse_redis redis://127.0.0.1;', 'the default zone, default port' ],
    [ "sse_zone a 1m; sse_zone b 1m;\n"
      . "sse_redis redis://127.0.0.1:6380/2 zone=a prefix=app1:;\n"
      . "sse_redis rediss://u%40x:p%3Aw\@localhost:6390 zone=b;\n"
      . "sse_redis_ssl_trusted_certificate $dir/c.crt;\n"
      . "sse_redis_ssl_verify off;\n"
      . "sse_redis_ssl_certificate $dir/c.crt;\n"
      . "sse_redis_ssl_certificate_key $dir/c.key;",
      'two zones, TLS with every TLS directive' ],
    [ 'sse_redis redis://:pw@[::1]:6379/0;', 'IPv6, the default user' ],
    [ 'sse_redis unix:/run/redis.sock user=app password=pw db=3;',
      'a unix socket with user=, password=, db=' ],
    [ 'sse_zone z 1m; sse_redis redis://127.0.0.1 zone=z;',
      'zone= naming a zone declared before' ],
);

for my $g (@good) {
    my ($rc, $out) = $t->test_config(conf($g->[0]));
    is($rc, 0, "accepted: $g->[1]") or diag($out);
}

# zone= may name a zone declared after the sse_redis line
my ($rc, $out) = $t->test_config(conf(
    "sse_redis redis://127.0.0.1 zone=later;\n    sse_zone later 1m;",
    '        location /sub { sse_subscribe $arg_ch zone=later; }'));
is($rc, 0, 'accepted: zone= naming a zone declared after') or diag($out);

# each: [ http part, what the message must say, name, location part ]
my @bad = (
    [ 'sse_redis http://127.0.0.1;', qr/invalid URL: the URL must begin with redis:\/\//,
      'another scheme' ],
    [ 'sse_redis redis://127.0.0.1:0;', qr/invalid URL: a bad port/, 'port 0' ],
    [ 'sse_redis redis://127.0.0.1:99999;', qr/invalid URL: a bad port/,
      'port too big' ],
    [ 'sse_redis redis://127.0.0.1/x;', qr/invalid URL: a bad database/,
      'a database that is no number' ],
    [ 'sse_redis redis://127.0.0.1?db=2;', qr/query strings/, 'a query' ],
    [ 'sse_redis redis://app@127.0.0.1;', qr/a user without a password/,
      'a user without a password' ],
    [ 'sse_redis redis://app:secret%zz-77@127.0.0.1;',
      qr/a bad percent escape in the password/, 'a bad escape in the password' ],
    [ 'sse_redis unix:relative.sock;', qr/must be absolute/, 'a relative socket' ],
    [ 'sse_redis redis://127.0.0.1 zone=nosuch;',
      qr/unknown sse zone "nosuch"/, 'an unknown zone' ],
    [ 'sse_redis redis://127.0.0.1; sse_redis redis://127.0.0.2;',
      qr/already has sse_redis \(one per zone\)/, 'two for one zone' ],
    [ 'sse_redis redis://127.0.0.1 user=app password=secret-77;',
      qr/user=, password= and db= go with a unix: socket/,
      'user= with a redis:// URL' ],
    [ 'sse_redis unix:/r.sock user=app;', qr/user= without password=/,
      'user= without password=' ],
    [ 'sse_redis unix:/r.sock db=x;', qr/invalid parameter "db=x"/, 'db=x' ],
    [ 'sse_redis unix:/r.sock password=;', qr/an empty password=/,
      'an empty password=' ],
    [ 'sse_redis redis://127.0.0.1 prefix=;', qr/invalid parameter "prefix="/,
      'an empty prefix' ],
    [ 'sse_redis redis://127.0.0.1 colour=blue;',
      qr/invalid parameter "colour=blue"/, 'an unknown parameter' ],
    [ 'sse_redis redis://127.0.0.1;', qr/no sse zone to share/,
      'no zone at all', '        location /x { return 204; }' ],
    [ "sse_redis rediss://127.0.0.1; sse_redis_ssl_certificate $dir/c.crt;",
      qr/no "sse_redis_ssl_certificate_key"/, 'a certificate without its key' ],
    [ "sse_redis rediss://127.0.0.1; sse_redis_ssl_trusted_certificate $dir/none.crt;",
      qr/none\.crt/, 'a trusted certificate file that does not exist' ],
    [ 'sse_redis_ssl_verify maybe;', qr/invalid value "maybe"/, 'verify maybe' ],
);

for my $b (@bad) {
    my ($http, $re, $name, $loc) = @$b;
    my ($rc, $out) = $t->test_config(conf($http, $loc));
    isnt($rc, 0, "refused: $name");
    like($out, qr/\[emerg\].*$re/, "  with a clear message") or diag($out);
    unlike($out, qr/secret|-77/, '  that quotes no password');
}

done_testing();
