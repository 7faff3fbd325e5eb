# A client moves from one node to another with its Last-Event-ID (issue
# 13, item 4): the new node replays exactly what came after that id (from
# Redis when it never served the channel), then goes on live: no gap, no
# repeat, no reset.  Also a multi-channel stream (its id carries every
# channel's position), and a client hopping A -> B -> C -> A while a
# publisher on C never stops.

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

my $c = SSETest::Nodes->new(nodes => 3, zone => 'sse 8m history=1000');
ok($c->wait_up(10), 'links up');

# -- one channel: A, then B which never served it -----------------------------

my $a = $c->subscribe(0, 'mv');
ok($c->wait_subscribers('mv', 1), 'counted');
is($c->publish(0, 'mv', 'p1')->status, 201, 'p1 on A: 201');
$c->publish(0, 'mv', "p$_") for 2 .. 10;
$c->expect_events($a, [ map { "p$_" } 1 .. 10 ], 'A: p1..p10');
my $id5 = ($a->events->[4] // {})->{id};
$a->close;
ok(defined $id5, "the client saw p5 as $id5 and left");

# while away: more events, published on C
$c->publish(2, 'mv', "p$_") for 11 .. 15;

my $b = $c->subscribe(1, 'mv', last_id => $id5);
is($b->status, 200, 'B answers the resume: 200');
$c->expect_events($b, [ map { "p$_" } 6 .. 15 ],
    'B replays p6..p15: the events after the id, from the cluster');
is(scalar(SSETest::Nodes::resets($b)), 0, 'no reset: the id is B\'s too');
$c->publish(0, 'mv', "p$_") for 16 .. 20;
$c->expect_events($b, [ map { "p$_" } 6 .. 20 ], 'then live p16..p20 (published on A)');
is(SSETest::Nodes::last_id($b), do {
    my ($e) = SSETest::Nodes::position($id5); "$e-20" },
   'the last id is the same epoch, seq 20');

# back to A with B's last id
my $last = SSETest::Nodes::last_id($b);
$b->close;
$c->publish(1, 'mv', "p$_") for 21 .. 23;
my $a2 = $c->subscribe(0, 'mv', last_id => $last);
$c->publish(2, 'mv', 'p24');
$c->expect_events($a2, [ map { "p$_" } 21 .. 24 ], 'back on A: p21..p24');

# -- several channels: one id carries every position ---------------------------
# A channel's order is fixed; how two channels interleave is not: the
# checks below look at each channel's own sequence.

sub per_channel {
    my ($s) = @_;
    my %by;
    push @{ $by{ substr($_, 0, 1) } }, $_ for SSETest::Nodes::plain_data($s);
    return { x => $by{x} // [], y => $by{y} // [] };
}
sub series { my ($p, @n) = @_; [ map { "$p$_" } @n ] }

my $m = $c->subscribe(0, 'x,y');
ok($c->wait_subscribers('x', 1) && $c->wait_subscribers('y', 1), 'counted');
for my $n (1 .. 3) {
    $c->publish(0, 'x', "x$n");
    $c->publish(2, 'y', "y$n");
}
ok($m->wait_events(6, 10), 'x,y on A: six events');
$m->poll(0.05);
is_deeply(per_channel($m), { x => series('x', 1 .. 3), y => series('y', 1 .. 3) },
    '... x1..x3 and y1..y3, each once, each in order');
my $mid = SSETest::Nodes::last_id($m);
like($mid // '', qr/^[0-9a-z]+-3\.[0-9a-z]+-3$/, 'the last id holds both positions: '
    . ($mid // 'none'));
$m->close;
for my $n (4 .. 7) {
    $c->publish(2, 'x', "x$n");
    $c->publish(0, 'y', "y$n");
}
my $m2 = $c->subscribe(1, 'x,y', last_id => $mid);
ok($m2->wait_events(8, 10), 'B replays 8 events after the x,y id');
is_deeply(per_channel($m2), { x => series('x', 4 .. 7), y => series('y', 4 .. 7) },
    '... x4..x7 and y4..y7');
is(scalar(SSETest::Nodes::resets($m2)), 0, 'no reset');
$c->publish(2, 'y', 'y8');
$c->publish(0, 'x', 'x8');
ok($m2->wait_events(10, 10), 'then live, from A and C');
$m2->poll(0.05);
is_deeply(per_channel($m2), { x => series('x', 4 .. 8), y => series('y', 4 .. 8) },
    '... x8 and y8, nothing repeated');
my ($xs, $ys) = map { (SSETest::Nodes::position(SSETest::Nodes::last_id($m2), $_))[1] // '' } 0, 1;
is("$xs/$ys", '8/8', 'the last id holds x at 8 and y at 8');
$c->note_ids($m2, 'x,y');

# -- hopping while a publisher never stops -------------------------------------

my $total = 300;
# the first stream is there before the first event
my $first = $c->subscribe(0, 'seam');
ok($c->wait_subscribers('seam', 1), 'counted');
my $pub = $c->node(2)->publisher('/pub?ch=seam', $total, prefix => 'q',
                                  interval => 0.005);
my (@got, $lid);
my $hops = 0;
my $deadline = time + SSETest::tmo(40);
my $i = 0;
while (time < $deadline) {
    my $s = $first // $c->subscribe($i % 3, 'seam',
        defined $lid ? (last_id => $lid) : ());
    undef $first;
    # stay for about 20 events, then leave and go to the next node
    my $want = @got + 20;
    $s->wait_for(sub { @got + @{ $s->events } >= $want }, 5);
    $s->poll(0);
    for my $e (@{ $s->events }) {
        push @got, ($e->{type} // '') eq 'reset' ? "RESET $e->{data}" : $e->{data};
        $lid = $e->{id};
    }
    $c->note_ids($s, 'seam');
    $s->close;
    $hops++;
    $i++;
    last if @got && $got[-1] eq "q$total";
    last if @got >= $total + 50;
}
my $code = $c->node(2)->wait_proc($pub, 30);
is($code, 0, "the publisher on C: $total publishes, none refused");
cmp_ok($hops, '>=', 5, "$hops hops across A, B and C");
is_deeply(\@got, [ map { "q$_" } 1 .. $total ],
    'every event exactly once, in order, across the hops (no reset)')
    or diag SSETest::Nodes::_diff(\@got, [ map { "q$_" } 1 .. $total ]);

$c->check_no_alias;
$c->done;
