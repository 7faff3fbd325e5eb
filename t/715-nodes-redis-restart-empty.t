# kill -9 of redis-server mid-stream, no persistence, restarted empty
# (issue 13, item 4): Redis forgot every channel.  The next publish starts
# a new epoch: open streams on every node get `reset` (gap) and then the
# new events; a client resuming with an id from before gets a reset, never
# a silent resume; no id is ever issued twice (seq 1, 2, 3 of the new
# epoch are not those of the old one).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $c = SSETest::Nodes->new(nodes => 3, redis => { persist => 'none' });
ok($c->wait_up(10), 'links up');

my @s = map { $c->subscribe($_, 'z') } 0 .. 2;
ok($c->wait_subscribers('z', 3), 'counted: 3 subscribers');
my @old;       # the ids the publishes got
for my $n (1 .. 5) {
    my $r = $c->publish($n % 3, 'z', "e$n");
    is($r->status, 201, "e$n on " . $c->name($n % 3) . ': 201')
        or diag $r->describe;
    $c->note_reply($r, "e$n");
    push @old, @{ SSETest::Nodes::reply_ids($r)->{z} // [] };
}
is(scalar @old, 5, 'five ids');
$c->expect_events(\@s, [ map { "e$_" } 1 .. 5 ], 'e1..e5 everywhere');
my ($epoch) = SSETest::Nodes::position($old[-1]);

$c->redis_kill9;
ok($c->wait_state('down', 3), 'Redis down, seen by every node');
my $t0 = time;
is($c->publish(2, 'z', 'never')->status, 503, 'a publish meanwhile: 503');
cmp_ok(time - $t0, '<', SSETest::tmo(1.5), '... at once');

$c->redis_restart_empty;
ok($c->wait_up(10), 'up again, on an empty Redis');

my @new;
for my $n (1 .. 3) {
    my $r = $c->publish(2, 'z', "f$n");
    ok($r->status == 201 || $r->status == 202, "f$n on C: " . $r->status)
        or diag $r->describe;
    $c->note_reply($r, "f$n");
    push @new, @{ SSETest::Nodes::reply_ids($r)->{z} // [] };
}
my ($e1, $s1) = SSETest::Nodes::position($new[0]);
isnt($e1 // '', $epoch // '', "a new epoch ($e1 after $epoch)");
is($s1, 1, 'starting at seq 1');
ok(!grep({ my $n = $_; grep { $_ eq $n } @old } @new),
   'none of the new ids is an old one') or diag "old @old, new @new";

for my $k (0 .. 2) {
    my $n = $c->name($k);
    $c->expect_events($s[$k], [ (map { "e$_" } 1 .. 5), qw(f1 f2 f3) ],
        "$n: e1..e5, then f1..f3");
    my @ev = @{ $s[$k]->events };
    my @types = map { ($_->{type} // 'message') eq 'reset' ? 'reset' : $_->{data} } @ev;
    is_deeply(\@types, [ (map { "e$_" } 1 .. 5), 'reset', qw(f1 f2 f3) ],
        "$n: one reset between the epochs") or diag explain \@types;
    my ($r) = SSETest::Nodes::resets($s[$k]);
    like($r ? $r->{data} : '', qr/"reason"\s*:\s*"gap"/, "$n: reason gap");
}

# stale ids, on nodes that did and did not serve them
for my $case ([0, $old[-1], 'the last old id'], [1, $old[1], 'an old id, seq 2'],
              [2, $old[2], 'an old id, seq 3 (the new epoch has a seq 3 too)']) {
    my ($i, $id, $what) = @$case;
    my $s = $c->subscribe($i, 'z', last_id => $id);
    ok($s->wait_events(4, 5), "resume on " . $c->name($i) . " with $what");
    my @ev = @{ $s->events };
    is(($ev[0] // {})->{type}, 'reset', '... a reset first');
    is_deeply([ SSETest::Nodes::plain_data($s) ], [qw(f1 f2 f3)],
        '... then f1..f3: nothing aliased onto the old id');
    $c->note_ids($s);
    $s->close;
}

$c->check_no_alias;
$c->expect_log(qr/redis closed the connection|connect\(\) failed|not ready within|did not answer within/);
$c->done;
