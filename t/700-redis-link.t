# sse_redis: every worker holds two connections (commands, pub/sub) to a
# real redis-server; sse_status shows the link's state; kill -9 of Redis is
# seen as down, counted, and the link comes back up when Redis is back.

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
    sse_zone shared 4m;
    sse_zone alone 1m;
    sse_redis redis://127.0.0.1:$rport zone=shared;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=shared; }
        location /pub { sse_publish \$arg_ch zone=shared; }
        location = /status { sse_status; }
        location = /plain { return 200 "plain\\n"; }
    }
}
EOF

sub redis_status {
    my $z = $t->zone_status('shared');
    return $z->{redis} // {};
}

sub wait_state {
    my ($state, $timeout) = @_;
    return SSETest::wait_until(
        sub { (redis_status()->{state} // '') eq $state }, $timeout, 0.05);
}

sub pinging {
    return grep { ($_->{cmd} // '') eq 'ping' } $redis->clients;
}

# -- up ----------------------------------------------------------------------

ok(wait_state('up', 5), 'the link comes up') or diag explain redis_status();
my $st = redis_status();
is($st->{reconnects}, 0, 'no reconnects yet');
is($st->{workers_down}, 0, 'no worker has it down');
is($st->{publishes_refused}, 0, 'publishes_refused exists, 0');
ok(defined $st->{last_reply_ms} && $st->{last_reply_ms} >= 0
   && $st->{last_reply_ms} < SSETest::tmo(3) * 1000,
   'a reply within the last seconds (the PING cadence): '
   . ($st->{last_reply_ms} // 'none') . ' ms');
ok(!exists $t->zone_status('alone')->{redis},
   'a zone without sse_redis has no redis object');

# two connections per worker, each proving itself with PINGs
ok(SSETest::wait_until(sub { pinging() == 4 }, 5),
   'Redis sees 2 connections per worker, each pinging')
    or diag explain [ $redis->clients ];

my $prom = $t->get('/status?format=prometheus')->body;
like($prom, qr/^sse_redis_up\{zone="shared"\} 1$/m, 'prometheus: up 1');
like($prom, qr/^sse_redis_workers_down\{zone="shared"\} 0$/m,
     'prometheus: no worker has it down');
like($prom, qr/^sse_redis_reconnects_total\{zone="shared"\} 0$/m,
     'prometheus: reconnects');
like($prom, qr/^sse_redis_publishes_refused_total\{zone="shared"\} 0$/m,
     'prometheus: publishes refused');
unlike($prom, qr/^sse_redis_\w+\{zone="alone"\}/m,
       'prometheus: no redis metrics for the zone without it');

# -- kill -9: down, retries counted, then up again ---------------------------

$redis->kill9;
my $t0 = time;
ok(wait_state('down', 3), 'state down once Redis is gone');
my $took = time - $t0;
cmp_ok($took, '<', SSETest::tmo(2.5), sprintf('seen within %.2f s', $took));
ok(SSETest::wait_until(sub { (redis_status()->{workers_down} // 0) == 2 },
                       SSETest::tmo(3), 0.05),
   'by both workers (workers_down 2)') or diag explain redis_status();

ok(SSETest::wait_until(sub { (redis_status()->{reconnects} // 0) >= 4 }, 1),
   'each of the 4 connections retried at once (first retry within 100 ms)')
    or diag explain redis_status();

# the retries back off: 100 ms doubling (jittered down to half at most),
# so at most 6 attempts per connection in the first 3 s; a fixed 100 ms
# retry would make 30
my $left = 3 - (time - $t0);
sleep $left if $left > 0;
my $attempts = redis_status()->{reconnects};
cmp_ok($attempts, '<=', 4 * 7, "backoff: $attempts attempts in 3 s by 4 connections");

my $r = $t->get('/plain');
is($r->status, 200, 'the workers answer other requests meanwhile');

$redis->start;
$t0 = time;
# the backoff is at most 5 s (with jitter)
ok(wait_state('up', 7), 'up again after Redis is back');
note(sprintf('back up after %.2f s', time - $t0));
$prom = $t->get('/status?format=prometheus')->body;
like($prom, qr/^sse_redis_up\{zone="shared"\} 1$/m, 'prometheus: up 1 again');
my ($n) = $prom =~ /^sse_redis_reconnects_total\{zone="shared"\} (\d+)$/m;
cmp_ok($n // 0, '>=', 2, 'prometheus: reconnects counted');

ok(SSETest::wait_until(sub { pinging() == 4 }, 5),
   'again 2 connections per worker');

# -- reload: the old workers close theirs, the new ones connect --------------

my %before = map { $_->{id} => 1 } $redis->clients;
ok($t->reload, 'reloaded; the old workers are gone');
ok(wait_state('up', 5), 'up after the reload');
my @now;
ok(SSETest::wait_until(sub { @now = pinging(); @now == 4 }, 5),
   'the old workers\' connections are gone: 4, not 8')
    or diag explain [ $redis->clients ];
ok(!grep({ $before{$_->{id}} } @now), 'all 4 are the new workers\'');

$t->expect_log(qr/connect\(\) failed|redis closed the connection|not ready within/);
$t->done;
