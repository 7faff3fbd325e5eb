# Redis on a unix socket stops: redis-server removes its socket, so every
# reconnect's connect() fails with ENOENT, which nginx's own connect logs
# at "crit".  Redis down is an error, never more: each failure a line at
# "error", the state down, and up again once Redis is back.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $redis = SSETest::Redis->new(unixsocket => 1);
my $sock = $redis->socket;

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_redis unix:$sock;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my $state = sub {
    (($t->zone_status('sse')->{redis} // {})->{state} // '');
};

ok(SSETest::wait_until(sub { $state->() eq 'up' }, 5), 'up');

$redis->stop;
ok(!-e $sock, 'redis-server removed its socket');

my $re = qr/connect\(\) to unix:\Q$sock\E failed \(2: No such file/;
ok(SSETest::wait_until(sub {
    my @n = $t->error_log =~ /$re/g;
    @n >= 4;
}, 5), 'reconnects fail: no such file') or diag $t->error_log;
like($t->error_log, qr/\[error\][^\n]*$re/, 'at error level');
unlike($t->error_log, qr/\[(crit|alert|emerg)\][^\n]*connect\(\)/,
       'never above error');
is($state->(), 'down', 'down');

$redis->start;
ok(SSETest::wait_until(sub { $state->() eq 'up' }, 10), 'up again');

$t->done;
