# kill -9 of redis-server mid-stream, Redis with persistence (appendonly,
# fsync always), then restarted from its AOF (issue 13, item 4):
# - while it is down, publishes, DELETE and channel info get 503 with
#   Retry-After and a JSON reason at once (< 1.5 s), on every node;
# - open streams stay open (heartbeats go on); a new subscriber still gets
#   200 and what the node holds;
# - when it is back, the same epoch goes on (no reset, ids continue), and
#   a node that was not there when the next events were published (B,
#   SIGSTOPped meanwhile) fills them in at once, without a next event.
# harness: serial (the 503s are timed)

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

my $c = SSETest::Nodes->new(nodes => 3, http => 'sse_heartbeat 1s;',
                            redis => { persist => 'aof' });
ok($c->wait_up(10), 'links up');

my @s = map { $c->subscribe($_, 'k') } 0 .. 2;
ok($c->wait_subscribers('k', 3), 'counted: 3 subscribers');
my $k5;
for my $n (1 .. 5) {
    my $r = $c->publish(0, 'k', "k$n");
    is($r->status, 201, "k$n on A: 201") if $n == 1;
    $c->note_reply($r, "k$n");
    $k5 = SSETest::Nodes::reply_ids($r)->{k}[0];
}
$c->expect_events(\@s, [ map { "k$_" } 1 .. 5 ], 'k1..k5 on A, B and C');
my $id3 = ($s[1]->events->[2] // {})->{id};
my ($epoch, $seq5) = SSETest::Nodes::position($k5);
is($seq5, 5, "k5 is seq 5 ($k5)");

# -- Redis killed ----------------------------------------------------------------

my @heard = map { scalar @{ $_->comments } } @s;
$c->redis_kill9;
ok($c->wait_state('down', 3), 'every node sees Redis down')
    or diag explain [ map { $c->redis_status($_) } 0 .. 2 ];

for my $i (0 .. 2) {
    my $t0 = time;
    my $r = $c->publish($i, 'k', 'lost');
    my $took = time - $t0;
    my $n = $c->name($i);
    is($r->status, 503, "publish on $n while Redis is down: 503")
        or diag $r->describe;
    cmp_ok($took, '<', SSETest::tmo(1.5), sprintf('... in %.0f ms', $took * 1000));
    like($r->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
    ok(length($r->json->{error} // ''), '... and a JSON reason: '
        . ($r->json->{error} // 'none'));
}
for my $m (['DELETE', 'delete'], ['GET', 'info']) {
    my ($what, $call) = @$m;
    my $t0 = time;
    my $r = $c->$call(1, 'k');
    is($r->status, 503, "$what on B while Redis is down: 503");
    cmp_ok(time - $t0, '<', SSETest::tmo(1.5), '... at once');
    like($r->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
}
my $status = $c->redis_status(0);
cmp_ok($status->{publishes_refused} // 0, '>=', 1, 'A counts its refused publish');

# a new subscriber while Redis is down: 200, what the node holds
my $late = $c->subscribe(1, 'k', last_id => $id3);
is($late->status, 200, 'a subscriber on B while Redis is down: 200');
$c->expect_events($late, [qw(k4 k5)], '... replayed what B holds after k3', 3);

# the open streams stay open: heartbeats go on
my %heard = map { ($s[$_] => $heard[$_]) } 0 .. 2;
ok(SSETest::Stream::wait_all(\@s, sub { @{ $_[0]->comments } >= $heard{$_[0]} + 2 }, 4),
   'every open stream gets heartbeats while Redis is down');
ok(!grep({ $_->is_closed } @s), 'no stream was closed');

# -- back, from the AOF; B is not there for the next events ------------------------

$c->pause_node(1);
$c->redis_start;
ok($c->wait_up(10, 0, 2), 'A and C up again');
for my $n (6 .. 8) {
    my $r = $c->publish(0, 'k', "k$n");
    ok($r->status == 201 || $r->status == 202, "k$n on A: " . $r->status)
        or diag $r->describe;
    $c->note_reply($r, "k$n");
}
my ($e6, $s6) = SSETest::Nodes::position(SSETest::Nodes::reply_ids(
    $c->publish(2, 'k', 'k9'))->{k}[0]);
is("$e6-$s6", "$epoch-9", 'the same epoch goes on: k9 is seq 9');
$c->resume_node(1);
my $t0 = time;
$c->expect_events(\@s, [ map { "k$_" } 1 .. 9 ],
    'A, B and C: k1..k9 once, in order (B filled k6..k9 in)', 10);
$c->expect_events($late, [ map { "k$_" } 4 .. 9 ],
    'the stream that joined B while Redis was down: k4..k9');
note(sprintf('B caught up %.2f s after it was resumed', time - $t0));
is(scalar(map { SSETest::Nodes::resets($_) } @s), 0, 'no reset: the epoch survived');
ok($c->wait_up(10), 'B up again too');

$c->check_no_alias;
$c->expect_log(qr/redis closed the connection|connect\(\) failed|not ready within|did not answer within/);
$c->done;
