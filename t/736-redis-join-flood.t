# One client opens 100 streams of 64 new channels each at once (6400
# SUBSCRIBEs in a turn of the event loop), then closes them all at once
# (6400 UNSUBSCRIBEs).  The pub/sub connection's queue holds 1024
# commands: each burst overflowed it, and the connection was dropped and
# made again (publishes 503 meanwhile, every channel subscribed and
# filled again) -- as often as the client liked.  SUBSCRIBEs now await
# Redis at most 256 at a time per worker, and UNSUBSCRIBEs go many to a
# command: the connection stays up, the streams work, and Redis has no
# subscription left afterwards.

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
my $P = 'sse:q:';

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone q 32m;
    sse_redis redis://127.0.0.1:$rport zone=q;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=q; }
        location = /status { sse_status; }
    }
}
EOF

sub cli { $redis->value(@_) }
sub status { ($t->zone_status('q')->{redis} // {}) }
sub overflows { scalar(() = $t->error_log =~ /too many commands pending/g) }

sub nchannels {
    return scalar grep { length } split /\n/, (cli('PUBSUB', 'CHANNELS') // '');
}

ok(SSETest::wait_until(sub { (status()->{state} // '') eq 'up' },
                       SSETest::tmo(10), 0.05), 'up');

my $N = 100;
my @s = map {
    my $c = $_;
    $t->subscribe('/sub?ch=' . join(',', map { "f$c-$_" } 1 .. 64),
                  wait => 0);
} 1 .. $N;
$_->wait_headers(SSETest::tmo(20)) for @s;
is(scalar(grep { ($_->status // 0) == 200 } @s), $N, "all $N streams: 200");
is(nchannels(), 64 * $N, 'every channel is subscribed in Redis');
is(overflows(), 0, 'the joins did not overflow the pub/sub connection');
is(status()->{state}, 'up', 'the link stayed up');

# a stream of the burst gets what is published on its channel
cli('PUBLISH', "${P}m:f7-33", "E 1700000000000000 1 1 0\n0 5\nhello");
ok($s[6]->wait_events(1, SSETest::tmo(3)), 'an event reaches a stream');
is(($s[6]->data)[0], 'hello', '... the one published');

$_->close for @s;
ok(SSETest::wait_until(sub { nchannels() == 0 }, SSETest::tmo(10), 0.05),
   'the streams gone, Redis has no subscription left')
    or diag(nchannels() . ' left');
is(overflows(), 0, 'the leaves did not overflow the pub/sub connection');
is(status()->{state}, 'up', 'the link stayed up');
is(status()->{reconnects} // 0, 0, 'no reconnect');

# the same channel again at once: left and joined in one go
my $a = $t->subscribe('/sub?ch=again');
ok(SSETest::wait_until(sub { nchannels() == 1 }, SSETest::tmo(5), 0.05),
   'one channel subscribed');
$a->close;
my $b = $t->subscribe('/sub?ch=again');
is($b->status, 200, 'joined again');
cli('PUBLISH', "${P}m:again", "E 1700000000000000 1 1 0\n0 2\nhi");
ok($b->wait_events(1, SSETest::tmo(3)), 'it gets what is published');
$b->close;
ok(SSETest::wait_until(sub { nchannels() == 0 }, SSETest::tmo(5), 0.05),
   'and unsubscribes at the end');

$t->done;
