# A join waits for Redis (its SUBSCRIBE's confirmation, then its read);
# clients that go away meanwhile leave nothing behind.  Redis stalled
# (SIGSTOP), HTTP/2 clients that give up after 0.3 s: nginx keeps their
# requests until their joins are answered (the subscribe handler holds
# them: the store's cancel() is for a caller that lets go earlier), then
# the streams find their connections closed and leave; no subscription,
# no count stays, and the channel works for the next subscriber.

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
SSETest::skip_file('curl is not installed') unless -x '/usr/bin/curl';

my $redis = SSETest::Redis->new;
my $rport = $redis->port;
my $P = 'sse:q:';

my $t = SSETest->new(workers => 1)->run(<<"EOF2");
http {
    sse_zone q 8m;
    sse_redis redis://127.0.0.1:$rport zone=q;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        location /sub { sse_subscribe \$arg_ch zone=q; }
        location = /status { sse_status; }
    }
}
EOF2

sub cli { $redis->value(@_) }
sub state { (($t->zone_status('q')->{redis} // {})->{state} // '') }

sub numsub {
    my ($ch) = @_;
    my @l = split /\n/, (cli('PUBSUB', 'NUMSUB', "${P}m:$ch") // '');
    return $l[1] // 0;
}

ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10)), 'up');

$redis->pause;
my @pids = map {
    $t->spawn('curl', '-sS', '-N', '--http2-prior-knowledge', '-m', '0.3',
              $t->url("/sub?ch=gone$_,gone-all", 2))
} 1 .. 5;
for my $pid (@pids) {
    ok(defined $t->wait_proc($pid, SSETest::tmo(5)), 'a client gave up');
}
$redis->resume;

ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10)),
   'redis is up again');
ok(SSETest::wait_until(sub {
       $t->zone_status('q')->{subscribers} == 0
       && !grep { numsub("gone$_") } 1 .. 5 }, SSETest::tmo(5)),
   'no subscriber counted, no channel of theirs subscribed');

my $s = $t->subscribe('/sub?ch=gone-all');
is($s->status, 200, 'the channel takes a new subscriber');
ok(SSETest::wait_until(sub { numsub('gone-all') == 1 }, SSETest::tmo(5)),
   '... subscribed once in Redis');
is(numsub('gone1'), 0, 'the channels of the gone clients alone are not');
cli('PUBLISH', "${P}m:gone-all",
    sprintf("E 1700000000000000 1 1 %d\n0 2\nok", int(time * 1000)));
ok($s->wait_events(1, SSETest::tmo(3)), 'and gets its events');
is(($s->data)[0], 'ok', '... this one');
$s->close;

$t->expect_log(qr/redis/i);
ok($t->stop, 'nginx quit gracefully');
$t->check_log;
done_testing;
