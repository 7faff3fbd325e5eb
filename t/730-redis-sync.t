# The Redis store's read side on one node (two workers) and a real
# redis-server: pub/sub messages in the design's format (docs/redis.md),
# injected with redis-cli as another node's publish would send them,
# reach the node's subscribers in order and once; holes are filled from
# the Redis stream; epochs renew (streams get a reset) or are ignored;
# "D" ends streams;
# hostile messages are dropped; a join replays from Redis what the node
# does not hold; a join without Redis still streams and catches up by
# itself once Redis is back; subscriber counts reach Redis.

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
my $P = 'sse:z:';

my $t = SSETest->new(workers => 2)->run(<<"EOF");
http {
    sse_zone z 8m history=50;
    sse_redis redis://app:app-pw\@127.0.0.1:$rport zone=z;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        location /sub { sse_subscribe \$arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

sub cli { $redis->value(@_) }

sub id_of { SSETest::Redis::id_of(@_) }

# one message of a publish: [type, data] pairs from seq $first on
sub message {
    my ($epoch, $first, @events) = @_;
    my $m = sprintf "E %s %d %d %d\n", $epoch, $first, scalar @events,
        int(time * 1000);
    for my $e (@events) {
        $m .= sprintf "%d %d\n%s%s", length $e->[0], length $e->[1],
            $e->[0], $e->[1];
    }
    return $m;
}

sub publish_raw { my ($ch, $payload) = @_; return cli('PUBLISH', "${P}m:$ch", $payload) }

# what a publish script leaves in Redis: the channel hash and its stream
sub store {
    my ($ch, $epoch, $seq, $data) = @_;
    cli('XADD', "${P}h:$ch", "$seq-0", 't', '', 'd', $data,
        'm', int(time * 1000));
    cli('HSET', "${P}c:$ch", 'e', $epoch, 's', $seq, 't', int(time));
}

sub numsub {
    my ($ch) = @_;
    my $out = cli('PUBSUB', 'NUMSUB', "${P}m:$ch") // '';
    my @l = split /\n/, $out;
    return $l[1] // 0;
}

sub wait_up {
    return SSETest::wait_until(sub {
        (($t->zone_status('z')->{redis} // {})->{state} // '') eq 'up';
    }, SSETest::tmo(10), 0.05);
}

my $E = 1_700_000_000_000_000;

ok(wait_up(), 'redis is up');

# -- messages reach every stream of both workers, in order, once -----------

# streams until both workers have some (reuseport spreads connections by
# their ports): each worker subscribes on its own and receives every
# message; the first to take it inserts, the other finds it there
my @s = map { $t->subscribe('/sub?ch=a') } 1 .. 6;
ok(SSETest::wait_until(sub { numsub('a') >= 1 }, SSETest::tmo(5)),
   'the channel is subscribed in Redis once its streams have headers');
while (numsub('a') < 2 && @s < 40) {
    push @s, $t->subscribe('/sub?ch=a');
}
is(numsub('a'), 2, 'both workers subscribed (' . scalar(@s) . ' streams)');

publish_raw('a', message($E, 1, ['', 'a1']));
publish_raw('a', message($E, 2, ['', 'a2'], ['tick', 'a3']));

for my $i (0 .. $#s) {
    ok($s[$i]->wait_events(3, SSETest::tmo(3)), "stream $i: 3 events");
    is_deeply([$s[$i]->data], [qw(a1 a2 a3)], "stream $i: in order");
    is_deeply([map { $_->{id} } @{$s[$i]->events}],
              [map { id_of($E, $_) } 1 .. 3], "stream $i: cluster ids");
}
is($s[0]->events->[2]{type}, 'tick', 'the event type came through');

# the same message again (every worker of the node receives each one)
publish_raw('a', message($E, 3, ['', 'a3-again']));
publish_raw('a', message($E, 4, ['', 'a4']));
for my $i (0 .. $#s) {
    ok($s[$i]->wait_events(4, SSETest::tmo(3)), "stream $i: the next one");
    is_deeply([($s[$i]->data)[3 .. $#{ $s[$i]->events }]], ['a4'],
              "stream $i: a repeated seq is skipped");
}

# -- a hole is filled from the Redis stream --------------------------------

store('a', $E, $_, "a$_") for 1 .. 7;
publish_raw('a', message($E, 7, ['', 'a7']));
for my $i (0 .. $#s) {
    ok($s[$i]->wait_events(7, SSETest::tmo(3)), "stream $i: hole filled");
    is_deeply([($s[$i]->data)[4 .. 6]], [qw(a5 a6 a7)],
              "stream $i: the missing events first, in order");
}

# -- an older epoch is ignored; a newer one renews -------------------------

publish_raw('a', message($E - 1, 8, ['', 'stale']));
publish_raw('a', message($E, 8, ['', 'a8']));
ok($s[0]->wait_events(8, SSETest::tmo(3)), 'the next event of the epoch');
is(($s[0]->data)[7], 'a8', 'the older epoch was ignored');

my $E2 = $E + 5;
cli('DEL', "${P}h:a");
store('a', $E2, 1, 'b1');
publish_raw('a', message($E2, 1, ['', 'b1']));
# SPEC: an open stream that meets a new epoch gets a reset "gap", then
# the new epoch's events; it stays open (t/738 has the edge cases)
for my $i (0 .. $#s) {
    ok($s[$i]->wait_events(10, SSETest::tmo(3)),
       "stream $i: a newer epoch: a reset, then its event");
    my @ev = @{$s[$i]->events};
    is_deeply([map { $_->{data} } @ev[0 .. 7]], [map { "a$_" } 1 .. 8],
              "stream $i: what it had of the old epoch first");
    is($ev[8]{type}, 'reset', "stream $i: then a reset");
    like($ev[8]{data}, qr/"reason":\s*"gap"/, "stream $i: reason gap");
    is($ev[9]{data}, 'b1', "stream $i: then the new epoch");
    is($ev[9]{id}, id_of($E2, 1), "stream $i: with its id");
    ok(!$s[$i]->is_closed, "stream $i: still open");
}

my $r = $t->subscribe('/sub?ch=a',
                      headers => { 'Last-Event-ID' => id_of($E, 8) });
ok($r->wait_events(2, SSETest::tmo(3)), 'a resume from the old epoch');
is($r->events->[0]{type}, 'reset', '... gets a reset');
like($r->events->[0]{data}, qr/"reason":\s*"gap"/, '... reason gap');
is($r->events->[1]{data}, 'b1', '... then the new epoch');
is($r->events->[1]{id}, id_of($E2, 1), '... with its id');

# -- "D": the channel is deleted, streams end ------------------------------

cli('SET', "${P}x:a", $E2);
publish_raw('a', "D $E2\n");
ok($r->wait_closed(SSETest::tmo(3)), 'D ends the stream');
is($t->get('/sub?ch=a')->status, 204, 'a deleted channel answers 204');

# -- hostile messages: dropped, logged, no crash ---------------------------

my $h = $t->subscribe('/sub?ch=h');
ok(SSETest::wait_until(sub { numsub('h') >= 1 }, SSETest::tmo(5)),
   'channel h subscribed');
for my $bad ("E 99999999999999999999999 1 1 0\n0 1\nx",
             "E $E 1 9 0\n0 1\nx",
             "E $E 1 1 0\n9 0\nab",
             "E $E 1 1 0\n0 99999999999999999999\nab",
             "E $E 1 1 0\n2 1\n\nxy",
             "E $E 1 1 0\n0 1\nxy",
             "E $E 0 1 0\n0 1\nx",
             "E $E 1 0 0\n",
             "D x\n", "D $E", "garbage", "", "E", "E  1 1 1\n")
{
    publish_raw('h', $bad);
}
publish_raw('h', message($E, 1, ['', 'h1']));
ok($h->wait_events(1, SSETest::tmo(3)), 'a good message after the bad ones');
is_deeply([$h->data], ['h1'], 'and nothing of the bad ones');
ok($t->wait_log(qr/redis sent a message that does not parse/, 3),
   'the bad ones are logged');
$h->close;

# -- one message of many events (a multi-event POST): taken in rounds ------

my $m = $t->subscribe('/sub?ch=many');
ok(SSETest::wait_until(sub { numsub('many') >= 1 }, SSETest::tmo(5)),
   'channel many subscribed');
publish_raw('many', message($E, 1, map { ['', "m$_"] } 1 .. 600));
ok($m->wait_events(600, SSETest::tmo(5)), 'all 600 events of one message');
is_deeply([$m->data], [map { "m$_" } 1 .. 600], '... in order, once');
is($m->events->[599]{id}, id_of($E, 600), '... the last with its id');
$m->close;

# -- a resume older than the node holds: replayed from Redis ---------------

store('r', $E, $_, "r$_") for 1 .. 5;
my $rr = $t->subscribe('/sub?ch=r',
                       headers => { 'Last-Event-ID' => id_of($E, 2) });
ok($rr->wait_events(3, SSETest::tmo(3)), 'replay from the Redis stream');
is_deeply([$rr->data], [qw(r3 r4 r5)], '... the events after the id');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$rr->events}), 0,
   '... without a reset');
store('r', $E, 6, 'r6');
publish_raw('r', message($E, 6, ['', 'r6']));
ok($rr->wait_events(4, SSETest::tmo(3)), 'then live');
is(($rr->data)[3], 'r6', '... the next one');

# -- subscriber counts ------------------------------------------------------

my $node;
ok(SSETest::wait_until(sub {
       my @k = grep { length } split /\n/, (cli('KEYS', "${P}n:*") // '');
       $node = $k[0] if @k == 1;
       return @k == 1;
   }, SSETest::tmo(5)), 'the node announces itself');
$node =~ s/^\Q${P}n:\E// if defined $node;
my $pttl = cli('PTTL', "${P}n:$node");
ok($pttl > 0 && $pttl <= 3000, "its key expires unless refreshed ($pttl ms)");
ok(SSETest::wait_until(sub {
       (cli('HGET', "${P}s:r", $node) // '') eq '1' }, SSETest::tmo(5)),
   'the count of channel r is 1');
my $rr2 = $t->subscribe('/sub?ch=r');
ok(SSETest::wait_until(sub {
       (cli('HGET', "${P}s:r", $node) // '') eq '2' }, SSETest::tmo(5)),
   'a join: 2');
$rr->close;
$rr2->close;
ok(SSETest::wait_until(sub {
       cli('HEXISTS', "${P}s:r", $node) eq '0' }, SSETest::tmo(5)),
   'no subscriber left: the field goes');
ok(SSETest::wait_until(sub { numsub('r') == 0 }, SSETest::tmo(5)),
   'and the channel is unsubscribed');

# -- Redis away: joins still stream; the node catches up when it is back ---

store('k', $E, $_, "k$_") for 1 .. 2;
my $k1 = $t->subscribe('/sub?ch=k');
ok(SSETest::wait_until(sub { numsub('k') >= 1 }, SSETest::tmo(5)),
   'channel k subscribed');

# the node's user is refused: the node sees Redis down, as after a crash
cli('ACL', 'SETUSER', 'app', 'off');
cli('CLIENT', 'KILL', 'USER', 'app');
ok(SSETest::wait_until(sub {
       (($t->zone_status('z')->{redis} // {})->{state} // '') ne 'up' },
   SSETest::tmo(5)), 'redis is down for the node');

my $k2 = $t->subscribe('/sub?ch=k');
is($k2->status, 200, 'a join without Redis: 200 and a stream');

store('k', $E, $_, "k$_") for 3 .. 5;     # published elsewhere meanwhile
cli('ACL', 'SETUSER', 'app', 'on');
ok(wait_up(), 'redis is back');
for my $k ($k1, $k2) {
    ok($k->wait_events(3, SSETest::tmo(5)),
       'the streams catch up by themselves, without a new publish');
    is_deeply([$k->data], [qw(k3 k4 k5)], '... with what they missed');
}

# Redis went back (an older snapshot): same epoch, a lower seq.  The
# node's check after the reconnect gives the channel a new epoch: an id
# is never issued twice.
cli('ACL', 'SETUSER', 'app', 'off');
cli('CLIENT', 'KILL', 'USER', 'app');
ok(SSETest::wait_until(sub {
       (($t->zone_status('z')->{redis} // {})->{state} // '') ne 'up' },
   SSETest::tmo(5)), 'redis is down for the node again');
cli('DEL', "${P}h:k");
store('k', $E, $_, "k$_") for 1 .. 2;     # the snapshot had seq 2
cli('ACL', 'SETUSER', 'app', 'on');
ok(wait_up(), 'redis is back, at seq 2 of the epoch');
ok(SSETest::wait_until(sub {
       (cli('HGET', "${P}c:k", 'e') // '') ne $E }, SSETest::tmo(5)),
   'the channel gets a new epoch');
my $bumped = cli('HGET', "${P}c:k", 'e');
ok($bumped > $E, "a later one ($bumped)");
is(cli('HGET', "${P}c:k", 's'), '0', 'from seq 0');
is(cli('EXISTS', "${P}h:k"), '0', 'the old stream is gone');
for my $k ($k1, $k2) {
    ok($k->wait_events(4, SSETest::tmo(3)),
       'the old epoch\'s streams get a reset');
    is($k->events->[3]{type}, 'reset', '... after what they had');
    like($k->events->[3]{data}, qr/"reason":\s*"gap"/, '... reason gap');
    is($k->events->[3]{id}, id_of($bumped, 0), '... at the new epoch');
    ok(!$k->is_closed, '... and stay open');
    $k->close;
}
$k1 = $t->subscribe('/sub?ch=k');
$k2 = $t->subscribe('/sub?ch=k');

# kill -9: a join still gets its stream
$redis->kill9;
ok(SSETest::wait_until(sub {
       (($t->zone_status('z')->{redis} // {})->{state} // '') eq 'down' },
   SSETest::tmo(5)), 'redis killed');
my $k3 = $t->subscribe('/sub?ch=k');
is($k3->status, 200, 'a join while Redis is dead: 200');
$redis->start;
ok(wait_up(), 'redis restarted');
$_->close for $k1, $k2, $k3;

$t->expect_log(qr/redis sent a message that does not parse/,
               qr/redis connection|redis: |connect\(\) .* failed|WRONGPASS|auth/i);
ok($t->stop, 'nginx quit gracefully');
$t->check_log;

ok(SSETest::wait_until(sub {
       !grep { length } split /\n/, (cli('KEYS', "${P}n:*") // '') },
   SSETest::tmo(6)), 'a stopped node\'s key expires');

done_testing;
