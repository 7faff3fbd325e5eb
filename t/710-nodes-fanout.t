# Several nodes, one Redis (issue 13, item 4): an event published on node
# A reaches the subscribers of A, B and C (two workers each, several
# streams per node) every one once, in the channel's order, with the same
# id everywhere.  Publishing alternately on all three nodes gives one
# order too.  The nodes' zones have different names: the explicit, shared
# prefix makes them one hub.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $c = SSETest::Nodes->new(nodes => 3,
    zone_names => [qw(alpha beta gamma)]);
ok($c->wait_up(10), 'every node\'s link to Redis is up')
    or diag explain [ map { $c->redis_status($_) } 0 .. 2 ];

# -- one publisher, A ----------------------------------------------------------

# four streams per node: the two workers of each get some
my @streams = map { my $i = $_; map { $c->subscribe($i, 'news') } 1 .. 4 } 0 .. 2;
is(scalar(grep { $_->status == 200 } @streams), 12, '12 streams, 200');
ok($c->wait_subscribers('news', 12), 'counted: 12 subscribers');

my @want = map { "a$_" } 1 .. 50;
my @ids;
for my $d (@want) {
    my $r = $c->publish(0, 'news', $d);
    is($r->status, 201, "publish $d on A: 201 (subscribers on every node)")
        or diag $r->describe if $d eq 'a1' || $r->status != 201;
    push @ids, @{ SSETest::Nodes::reply_ids($r)->{news} // [] };
    $c->note_reply($r, $d);
}
is(scalar @ids, 50, 'an id per publish');
$c->expect_events(\@streams, \@want, 'A, B and C: every event once, in order');

# the same ids on every node: the cluster's ids, not the node's
for my $k (0 .. $#streams) {
    my @got = map { $_->{id} } @{ $streams[$k]->events };
    is_deeply(\@got, \@ids, 'ids as the publish replies gave them (stream '
        . ($k + 1) . ', node ' . $c->name(int($k / 4)) . ')') or last;
}

# -- publishers on every node, one after another -------------------------------

$_->forget for @streams;
my @mixed = map { "m$_" } 1 .. 60;
for my $k (0 .. $#mixed) {
    my $r = $c->publish($k % 3, 'news', $mixed[$k]);
    is($r->status, 201, "publish $mixed[$k] on " . $c->name($k % 3))
        unless $r->status == 201;
    $c->note_reply($r, $mixed[$k]);
}
$c->expect_events(\@streams, \@mixed,
    'publishers on A, B and C in turn: one order on every node');

# ids increase in the channel's one order
my @seqs = map { (SSETest::Nodes::position($_->{id}))[1] } @{ $streams[5]->events };
is_deeply(\@seqs, [ 51 .. 110 ], 'seqs 51..110, one after another, whoever published');

# -- a multi-event POST from B is one run of events ----------------------------

$_->forget for @streams;
my $r = $c->node(1)->publish_stream('/pub?ch=news',
    join '', map { "data: s$_\n\n" } 1 .. 20);
is($r->status, 201, 'a 20-event body on B: 201');
is($r->json->{events}, 20, '20 events');
$c->expect_events(\@streams, [ map { "s$_" } 1 .. 20 ],
    'a 20-event body: all 20, in order, everywhere');

$c->check_no_alias;
$c->done;
