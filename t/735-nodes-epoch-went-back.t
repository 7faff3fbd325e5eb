# Redis restored from a snapshot older than a channel's current EPOCH (it
# was deleted and published to again since, or Redis restarted empty and
# the channel got a new epoch): Redis holds the channel at an epoch below
# the one a node holds.  The node ignores messages of an older epoch, so
# what other nodes publish would never reach its streams; its check after
# the reconnect must give the channel a new epoch in Redis, above the
# node's, as it does for the same epoch with a lower seq (t/713, t/730).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $c = SSETest::Nodes->new(nodes => 2, workers => 1);
ok($c->wait_up(10), 'links up');
my $P = $c->prefix;

sub rget { my $o = $c->rcli(@_); chomp $o if defined $o; return $o // '' }

sub pub {
    my ($i, $ch, $d) = @_;
    my $r = $c->publish($i, $ch, $d);
    ok($r->status == 201 || $r->status == 202,
       "$d on " . $c->name($i) . ': ' . $r->status) or diag $r->describe;
    return $r;
}

# epoch E1, saved
my $s = $c->subscribe(0, 'back');
ok($c->wait_subscribers('back', 1), 'A\'s stream is counted');
pub(1, 'back', 'b1');
$c->expect_events($s, ['b1'], 'A gets b1 at the first epoch');
my $e1 = rget('HGET', "${P}c:back", 'e');
$c->snapshot('old');

# deleted and published to again: epoch E2 > E1, which A holds
is($c->delete(1, 'back')->status, 200, 'DELETE on B');
ok($s->wait_closed(SSETest::tmo(5)), 'A\'s stream ends');
my $s2 = $c->subscribe(0, 'back');
is($s2->status, 204, 'a join of the deleted channel: 204');
$s2 = undef;

pub(1, 'back', 'b2');
my $e2 = rget('HGET', "${P}c:back", 'e');
ok($e2 > $e1, "a new epoch ($e2 > $e1)");
$s2 = $c->subscribe(0, 'back');
is($s2->status, 200, 'A streams the channel again');
ok($c->wait_subscribers('back', 1), '... counted');
pub(1, 'back', 'b3');
$c->expect_events($s2, ['b3'], 'A holds the second epoch');

# Redis goes back to E1
$c->restore('old');
ok($c->wait_up(10), 'links up again');
# (Redis is at E1 now; A's check may already have moved it on)

ok(SSETest::wait_until(sub { rget('HGET', "${P}c:back", 'e') > $e2 },
                       SSETest::tmo(5), 0.05),
   'A\'s check after the reconnect gives the channel an epoch above its own')
    or diag('epoch in Redis: ' . rget('HGET', "${P}c:back", 'e'));

# what B publishes reaches A's streams again
# (the stream of the old epoch meets the new one as on a renewal; what it
# gets then is t/713's and t/730's to check)
$s2->close;
my $s3 = $c->subscribe(0, 'back');
is($s3->status, 200, 'a new stream on A');
ok($c->wait_subscribers('back', 1), '... counted');
pub(1, 'back', 'b4');
$c->expect_events($s3, ['b4'], 'A gets what B publishes after the restore');

$c->expect_log(qr/redis closed the connection|connect\(\) failed|not ready within|did not answer within/);
$c->done;
