# Redis restored from an older snapshot (issue 13, item 4): a channel's
# position in Redis goes back below what the nodes have seen.  The next
# publish must start a new epoch: never an id issued twice (every id seen
# anywhere, in a stream or in a publish reply, always means the same
# data).  Open streams meet the new epoch as a `reset` (gap), then get the
# new events; a client resuming with an id from before the restore gets a
# reset too, never a silent resume at an old position.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $c = SSETest::Nodes->new(nodes => 3);
ok($c->wait_up(10), 'links up');

my $sa = $c->subscribe(0, 'snap');
my $sb = $c->subscribe(1, 'snap');
my $sa2 = $c->subscribe(0, 'snap2');

my %ids;       # data -> the id its publish got
sub pub {
    my ($i, $ch, $d) = @_;
    my $r = $c->publish($i, $ch, $d);
    ok($r->status == 201 || $r->status == 202,
       "$d on " . $c->name($i) . ': ' . $r->status) or diag $r->describe;
    $c->note_reply($r, $d);
    $ids{$d} = SSETest::Nodes::reply_ids($r)->{$ch}[0];
    return $r;
}

pub(0, 'snap', "e$_") for 1 .. 5;
pub(0, 'snap2', "g$_") for 1 .. 5;
$c->snapshot('old');
pub(2, 'snap', "e$_") for 6 .. 10;
pub(2, 'snap2', "g$_") for 6 .. 10;
$c->expect_events([$sa, $sb], [ map { "e$_" } 1 .. 10 ], 'e1..e10 on A and B');
$c->expect_events($sa2, [ map { "g$_" } 1 .. 10 ], 'g1..g10 on A');
# the ids the publishes got (the streams must show the same: note_ids)
my $id10 = $ids{e10} // 'none';
my $id7 = $ids{e7} // 'none';
my ($epoch) = SSETest::Nodes::position($id10);
ok(defined $epoch, "the old epoch: $epoch");

# -- Redis goes back to the snapshot (seq 5) -----------------------------------

$c->restore('old');
ok($c->wait_up(15), 'the links are up again on the restored Redis');

# B holds snap at seq 10 (its stream): its publish finds Redis behind
my $r = pub(1, 'snap', 'f1');
my ($e1, $s1) = SSETest::Nodes::position(SSETest::Nodes::reply_ids($r)->{snap}[0]);
isnt($e1, $epoch, "f1 is in a new epoch ($e1), not $epoch");
is($s1, 1, 'the new epoch starts at seq 1');
pub(2, 'snap', 'f2');
pub(0, 'snap', 'f3');

for my $pair ([$sa, 'A'], [$sb, 'B']) {
    my ($s, $n) = @$pair;
    $c->expect_events($s, [ (map { "e$_" } 1 .. 10), 'f1', 'f2', 'f3' ],
        "$n: e1..e10, then f1..f3 of the new epoch");
    my @ev = @{ $s->events };
    my ($k) = grep { $ev[$_]{data} eq 'f1' } 0 .. $#ev;
    ok(defined $k && $k > 0 && ($ev[$k - 1]{type} // '') eq 'reset',
       "$n: a reset right before f1") or diag explain [ @ev[10 .. $#ev] ];
    like(defined $k && $k > 0 ? $ev[$k - 1]{data} // "" : "", qr/"reason"\s*:\s*"gap"/, "$n: reason gap");
}

# a client resuming with an id from before the restore
for my $case ([$id10, 'the last id before the restore', 2],
              [$id7, 'an id Redis lost (seq 7)', 1]) {
    my ($id, $what, $node) = @$case;
    my $s = $c->subscribe($node, 'snap', last_id => $id);
    ok($s->wait_events(4, 5), "resume with $what on " . $c->name($node));
    my @ev = @{ $s->events };
    is($ev[0]{type}, 'reset', '... a reset first') or diag explain \@ev;
    is_deeply([ SSETest::Nodes::plain_data($s) ], [qw(f1 f2 f3)],
        '... then the new epoch\'s events, none of the old ones');
    $c->note_ids($s);
    $s->close;
}

# -- a node that never held the channel publishes -----------------------------
# snap2 is held by A only (a stream); C never served it.  A checks its
# channels against Redis when its link comes back (docs/redis.md): once
# Redis shows snap2's new epoch, C's publish must be in it.  (Before that
# check the window docs/redis.md describes is open.)
my $key = $c->prefix . 'c:snap2';
my $bumped = wait_until(sub {
    my $e = $c->rcli('HGET', $key, 'e') // '';
    $e =~ /^\d+$/ && $c->rcli('HGET', $key, 's') =~ /^0?\s*$/;
}, 5, 0.05);
note($bumped ? 'A re-epoched snap2 on reconnect'
             : 'no re-epoch of snap2 seen in Redis (key layout of redis-design.md)');
my $r2 = pub(2, 'snap2', 'h1');
my ($e2) = SSETest::Nodes::position(SSETest::Nodes::reply_ids($r2)->{snap2}[0]);
my ($old2) = SSETest::Nodes::position($ids{g10});
isnt($e2 // '', $old2 // 'x', 'a publish on C, which never held snap2: a new epoch');
$c->expect_events($sa2, [ (map { "g$_" } 1 .. 10), 'h1' ], 'A: g1..g10, then h1');

$c->check_no_alias;
$c->expect_log(qr/redis closed the connection|connect\(\) failed|not ready within|did not answer within/);
$c->done;
