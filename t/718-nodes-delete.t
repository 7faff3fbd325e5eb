# DELETE on one node acts for all (issue 13, item 4; SPEC.md): streams on
# A, B and C end after the events published before it; a subscribe on any
# node then gets 204 (EventSource stops); DELETE again is 404 everywhere;
# a publish on another node revives the channel in a new epoch, and an
# old id gets a reset there.

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

my @s = map { my $i = $_; map { $c->subscribe($i, 'doomed') } 1, 2 } 0 .. 2;
my $other = $c->subscribe(1, 'other');
ok($c->wait_subscribers('doomed', 6), 'counted: 6 subscribers');
my @ids;
for my $n (1 .. 3) {
    my $r = $c->publish(2, 'doomed', "d$n");
    is($r->status, 201, "d$n on C: 201");
    push @ids, @{ SSETest::Nodes::reply_ids($r)->{doomed} // [] };
}
$c->publish(0, 'other', 'o1');

my $r = $c->delete(0, 'doomed');
is($r->status, 200, 'DELETE on A: 200') or diag $r->describe;
is($r->json->{deleted}, JSON::PP::true(), '... deleted: true');

ok(SSETest::Stream::wait_all(\@s, sub { $_[0]->is_closed }, 3),
   'every stream on A, B and C ends');
for my $k (0 .. $#s) {
    is_deeply([ $s[$k]->data ], [qw(d1 d2 d3)],
        'stream ' . ($k + 1) . ' on ' . $c->name(int($k / 2))
        . ': d1..d3 first, then the end');
}
is(scalar(grep { $_->complete } @s), 6, 'every one ended cleanly (last chunk)');
ok(!$other->is_closed, 'a stream of another channel on B stays');

for my $i (0 .. 2) {
    my $n = $c->name($i);
    my $d = $c->subscribe($i, 'doomed');
    is($d->status, 204, "subscribe on $n after the DELETE: 204");
    my $d2 = $c->subscribe($i, 'doomed', last_id => $ids[1]);
    is($d2->status, 204, "... also with a Last-Event-ID");
    is($c->delete($i, 'doomed')->status, 404, "DELETE again on $n: 404");
}

# revived by a publish on B: a new epoch
my $re = $c->publish(1, 'doomed', 'reborn');
like($re->status, qr/^20[12]$/, 'a publish on B after the DELETE: ' . $re->status);
my ($old) = SSETest::Nodes::position($ids[0]);
my ($new, $seq) = SSETest::Nodes::position(SSETest::Nodes::reply_ids($re)->{doomed}[0]);
ok(defined $new && $new ne ($old // ''), "a new epoch ($old -> " . ($new // 'none') . ')');
is($seq, 1, 'seq 1');
my $n = $c->subscribe(2, 'doomed', last_id => $ids[2]);
is($n->status, 200, 'subscribe on C with an old id: 200');
ok($n->wait_events(2, 3), '... two events');
is(($n->events->[0] // {})->{type}, 'reset', '... a reset first');
is_deeply([ SSETest::Nodes::plain_data($n) ], ['reborn'], '... then the new epoch\'s event');
$c->publish(0, 'other', 'o2');
$c->expect_events($other, [qw(o1 o2)], 'the other channel on B got o1 and o2');

$c->done;
