# After a reconnect, a worker subscribes every channel it has streams of
# again in batches, a bounded number awaiting Redis' confirmation at once
# (each confirmed batch sends the next), and fills them only once all are
# confirmed.  5120 channels: more than the batches allowed in flight hold
# (16 x 256), so the continuation is exercised.

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

my $redis = SSETest::Redis->new(config => "user app on >app-pw ~* &* +\@all\n");
my $rport = $redis->port;
my $P = 'sse:y:';

my $t = SSETest->new(workers => 1)->run(<<"EOF2");
http {
    sse_zone y 32m history=5;
    sse_redis redis://app:app-pw\@127.0.0.1:$rport zone=y;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=y; }
        location = /status { sse_status; }
    }
}
EOF2

sub cli { $redis->value(@_) }

sub state { (($t->zone_status('y')->{redis} // {})->{state} // '') }

sub nchannels {
    my @l = grep { length } split /\n/, (cli('PUBSUB', 'CHANNELS', "${P}m:*") // '');
    return scalar @l;
}

ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10)), 'up');

my ($streams, $per) = (160, 32);
my @s;
for my $i (0 .. $streams - 1) {
    my $chs = join ',', map { "c$i-$_" } 1 .. $per;
    push @s, $t->subscribe("/sub?ch=$chs");
}
is(nchannels(), $streams * $per, 'every channel subscribed');

cli('ACL', 'SETUSER', 'app', 'off');
cli('CLIENT', 'KILL', 'USER', 'app');
ok(SSETest::wait_until(sub { state() ne 'up' }, SSETest::tmo(5)), 'down');
is(nchannels(), 0, 'no subscription left in Redis');

# published meanwhile on the channel subscribed last and on the first
my $E = 1_700_000_000_000_000;
for my $ch ("c0-1", "c" . ($streams - 1) . "-$per") {
    cli('XADD', "${P}h:$ch", '1-0', 't', '', 'd', "x-$ch", 'm', int(time * 1000));
    cli('HSET', "${P}c:$ch", 'e', $E, 's', 1);
}
cli('ACL', 'SETUSER', 'app', 'on');

ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10)), 'up again');
ok(SSETest::wait_until(sub { nchannels() == $streams * $per },
                       SSETest::tmo(10)),
   'every channel subscribed again') or diag nchannels();
for my $i (0, $streams - 1) {
    ok($s[$i]->wait_events(1, SSETest::tmo(5)), "stream $i catches up");
    like(($s[$i]->data)[0], qr/^x-c$i-/, '... with what was published');
}
unlike($t->error_log, qr/cannot subscribe .* channels again/,
       'no batch was refused');

$_->close for @s;
$t->expect_log(qr/redis/i);
ok($t->stop, 'nginx quit gracefully');
$t->check_log;
done_testing;
