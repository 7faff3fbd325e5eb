# rediss:// to a server that answers the TLS ClientHello with a ServerHello
# that no client accepts (a cipher suite that does not exist): OpenSSL
# fails the handshake with a reason nginx's own handshake logs at "crit"
# ("unknown cipher returned").  The SPEC: a failed handshake is logged at
# "error", never higher.  Each time: a clear line at "error", the link down
# and retried, nothing above "error" in the log.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use feature 'state';
use SSETest;
use SSETest::FakeRedis;

# a TLS 1.2 ServerHello: version, random, no session id, the cipher
# suite 0xffff (none has that number), no compression
sub server_hello {
    my $body = pack('n', 0x0303) . ("\x11" x 32) . "\x00" . pack('n', 0xffff)
             . "\x00";
    my $hs = "\x02" . substr(pack('N', length $body), 1) . $body;
    return "\x16\x03\x03" . pack('n', length $hs) . $hs;
}

# the ClientHello, then the answer; then it reads until nginx closes
my $fake = SSETest::FakeRedis->new(sub {
    state $answered = 0;
    return $answered++ ? '' : server_hello();
});
my $port = $fake->port;

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_redis rediss://127.0.0.1:$port;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my $re = qr/SSL_do_handshake\(\) failed[^\n]*unknown cipher returned/;
ok(SSETest::wait_until(sub {
    my @n = $t->error_log =~ /$re/g;
    @n >= 4;
}, 5), 'handshakes failed, and were retried') or diag $t->error_log;
like($t->error_log, qr/\[error\][^\n]*$re/, 'at error level');
unlike($t->error_log, qr/\[(crit|alert|emerg)\][^\n]*SSL/,
       'never above error');
ok(SSETest::wait_until(sub {
    (($t->zone_status('sse')->{redis} // {})->{state} // '') eq 'down';
}, 5), 'down');

ok($t->stop, 'nginx quit gracefully');
$t->check_log;

$fake->stop;

done_testing();
