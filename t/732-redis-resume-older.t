# A resume from further back than the node holds (its oldest events of
# the channel were evicted to make room in a full zone) is replayed from
# the Redis stream: the events go in front of what the node holds, within
# history, and the stream gets them in order, then live, with no reset.

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
my $P = 'sse:o:';

my $t = SSETest->new(workers => 1)->run(<<"EOF2");
http {
    sse_zone o 1m history=50;
    sse_redis redis://127.0.0.1:$rport zone=o;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=o; }
        location = /status { sse_status; }
    }
}
EOF2

sub cli { $redis->value(@_) }

sub id_of { SSETest::Redis::id_of(@_) }

sub store {
    my ($ch, $epoch, $seq, $data) = @_;
    cli('XADD', "${P}h:$ch", "$seq-0", 't', '', 'd', $data,
        'm', int(time * 1000));
    cli('HSET', "${P}c:$ch", 'e', $epoch, 's', $seq, 't', int(time));
}

sub numsub {
    my ($ch) = @_;
    my @l = split /\n/, (cli('PUBSUB', 'NUMSUB', "${P}m:$ch") // '');
    return $l[1] // 0;
}

ok(SSETest::wait_until(sub {
       (($t->zone_status('o')->{redis} // {})->{state} // '') eq 'up' },
   SSETest::tmo(10)), 'up');

my $E = 1_700_000_000_000_000;

store('o', $E, $_, "o$_") for 1 .. 10;
my $a = $t->subscribe('/sub?ch=o');
ok(SSETest::wait_until(sub { numsub('o') >= 1 }, SSETest::tmo(5)),
   'channel o subscribed');
is($t->zone_status('o')->{stored_events}, 10, 'the node holds its 10 events');

# another channel's big events fill the zone: o's events, the oldest, go
my $b = $t->subscribe('/sub?ch=big');
my $big = 'x' x 100_000;
my $seq = 0;
my $evicted = SSETest::wait_until(sub {
    $seq++;
    cli('PUBLISH', "${P}m:big",
        sprintf("E %s %d 1 %d\n0 %d\n%s", $E, $seq, int(time * 1000),
                length $big, $big));
    $b->wait_events($seq, SSETest::tmo(2));
    return $t->zone_status('o')->{evicted} >= 10 || $seq > 40;
}, SSETest::tmo(30), 0);
ok($t->zone_status('o')->{evicted} >= 10,
   "o's events were evicted ($seq big events)");

my $c = $t->subscribe('/sub?ch=o',
                      headers => { 'Last-Event-ID' => id_of($E, 3) });
ok($c->wait_events(7, SSETest::tmo(3)), 'a resume from seq 3: 7 events');
is_deeply([$c->data], [map { "o$_" } 4 .. 10],
          '... replayed from the Redis stream, in order');
is_deeply([map { $_->{id} } @{$c->events}], [map { id_of($E, $_) } 4 .. 10],
          '... with their ids');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$c->events}), 0,
   '... and no reset');

store('o', $E, 11, 'o11');
cli('PUBLISH', "${P}m:o", sprintf("E %s 11 1 %d\n0 3\no11", $E, int(time * 1000)));
ok($c->wait_events(8, SSETest::tmo(3)), 'then live');
is(($c->data)[7], 'o11', '... the next one');
ok($a->wait_events(1, SSETest::tmo(3)), 'the first stream gets it too');
is_deeply([$a->data], ['o11'], '... and only it');

$_->close for $a, $b, $c;
ok($t->stop, 'nginx quit gracefully');
$t->check_log;
done_testing;
