# "A stream counts as subscribed once its response headers were sent:
# every event published after that, on any node, reaches it" (SPEC.md).
# A stream on B to a channel no worker of B follows yet; the moment its
# headers arrive, one event is published on A (or C): it must arrive.  So
# B must be subscribed in Redis before it answers.  Many fresh channels,
# so that the two workers of B both take some.

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

my ($ok, $failed, @missed) = (0, 0);
my $rounds = 40;
for my $k (1 .. $rounds) {
    my $ch = "fresh-$k";
    my $s = $c->subscribe(1, $ch);
    # headers were read: publish at once, on A or C
    my $from = $k % 2 ? 0 : 2;
    my $r = $c->publish($from, $ch, "only-$k");
    my $got = $s->wait_events(1, 3);
    if ($got && $s->events->[0]{data} eq "only-$k") {
        $ok++;
    } else {
        $failed++;
        push @missed, "$ch (published on " . $c->name($from) . ": "
            . $r->status . ')';
    }
    # 201: the publish counted B's subscriber (SPEC: subscribers of every
    # node, within 2 s; here it is the same instant, so only the event is
    # asserted)
    $s->close;
    last if $failed >= 3;       # enough to say it does not work
}
is($ok, $rounds, "every one of $rounds streams got the event published "
    . 'right after its headers') or diag "missed: @missed";

# the same with a stream that resumes (a Last-Event-ID of that channel)
my $s0 = $c->subscribe(1, 'resumed');
$c->publish(0, 'resumed', 'r1');
ok($s0->wait_events(1, 3), 'r1 on B');
my $id = SSETest::Nodes::last_id($s0);
$s0->close;
my $s1 = $c->subscribe(1, 'resumed', last_id => $id);
$c->publish(2, 'resumed', 'r2');
$c->expect_events($s1, ['r2'], 'a resumed stream: the event published '
    . 'right after its headers, nothing before it', 3);

$c->done;
