# A Redis that stops answering (SIGSTOP) is found by the reply deadline of
# the PING cadence: the link is down within about 2 s, while the workers
# go on answering other requests at once (no call ever blocks); after
# SIGCONT the link comes back.  CLIENT KILL of the module's connections:
# they are made again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $redis = SSETest::Redis->new;
my $rport = $redis->port;

my $t = SSETest->new(workers => 2)->run(<<"EOF");
http {
    sse_redis redis://127.0.0.1:$rport;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch; }
        location = /status { sse_status; }
        location = /plain { return 200 "plain\\n"; }
    }
}
EOF

sub redis_status { $t->zone_status('sse')->{redis} // {} }

sub wait_state {
    my ($state, $timeout) = @_;
    return SSETest::wait_until(
        sub { (redis_status()->{state} // '') eq $state }, $timeout, 0.05);
}

ok(wait_state('up', 5), 'up (sse_redis without zone= takes the default zone)')
    or diag explain redis_status();

# -- SIGSTOP: down by the reply deadline; the workers never wait ------------

$redis->pause;
my $t0 = time;
my ($slowest, $answered) = (0, 0);
my $down = SSETest::wait_until(sub {
    # every worker gets some of these (new connections, two workers)
    for (1 .. 4) {
        my $s = time;
        my $r = $t->get('/plain');
        my $d = time - $s;
        $slowest = $d if $d > $slowest;
        $answered++ if $r->status == 200;
    }
    (redis_status()->{state} // '') eq 'down';
}, 4, 0.05);
my $took = time - $t0;
ok($down, sprintf('down %.2f s after Redis stopped answering', $took));
# PING every second, answered within one: at most about 2 s
cmp_ok($took, '<', SSETest::tmo(3), 'within the PING period + deadline');
cmp_ok($took, '>', 0.9, 'not before the 1 s deadline');
ok($answered > 0, "$answered other requests answered meanwhile");
cmp_ok($slowest, '<', SSETest::tmo(0.1),
       sprintf('the slowest took %.0f ms (< 100 ms): no worker blocked',
               $slowest * 1000));

# still stopped: a reconnect gets the TCP connection (the kernel accepts)
# but no answer: it stays down, and each attempt ends at its deadline
sleep 1.5;
is(redis_status()->{state}, 'down', 'still down while Redis is stopped');
my $s = time;
is($t->get('/plain')->status, 200, 'other requests still answer');
cmp_ok(time - $s, '<', SSETest::tmo(0.1), 'at once');

$redis->resume;
ok(wait_state('up', 7), 'up again after SIGCONT');

# -- CLIENT KILL: the connections are made again -----------------------------

my @ids = map { $_->{id} } grep { ($_->{cmd} // '') eq 'ping' } $redis->clients;
is(scalar @ids, 4, 'four connections');
my $before = redis_status()->{reconnects};
$redis->cli('CLIENT', 'KILL', 'ID', $_) for @ids;
ok(SSETest::wait_until(sub {
    my @now = grep { ($_->{cmd} // '') eq 'ping' } $redis->clients;
    my %old = map { $_ => 1 } @ids;
    @now == 4 && !grep { $old{$_->{id}} } @now;
}, 5), 'four new connections after CLIENT KILL');
ok(wait_state('up', 5), 'and up');
cmp_ok(redis_status()->{reconnects}, '>', $before, 'reconnects counted');

$t->expect_log(qr/did not answer within|not ready within|redis closed the connection/);
$t->done;
