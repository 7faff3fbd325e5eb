# Channel info and subscriber counts across nodes (SPEC.md "Several nginx
# nodes"): every node answers channel info alike, also for a channel it
# never served; the publish reply's `subscribers`, 201 versus 202, and
# channel info count the subscribers of every node, correct within 2 s of
# a join or a leave.  A node killed with -9 (its subscribers gone without
# a leave) stops being counted once it is known dead (its liveness key
# lives 3 s: docs/redis.md), so within 5 s.

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

# -- info of a channel only A served ----------------------------------------------

my $last;
for my $n (1 .. 4) {
    my $r = $c->publish(0, 'solo', "s$n");
    is($r->status, 202, "s$n on A, no subscriber anywhere: 202") if $n == 1;
    $last = $r->json->{id};
}
for my $i (0 .. 2) {
    my $r = $c->info($i, 'solo');
    my $n = $c->name($i);
    is($r->status, 200, "info of solo on $n: 200") or diag $r->describe;
    my $j = $r->json;
    is($j->{channel}, 'solo', '... channel');
    is($j->{events}, 4, '... 4 events');
    is($j->{last_id}, $last, "... last_id $last (A's)");
    is($j->{subscribers}, 0, '... 0 subscribers');
    ok(defined $j->{last_publish_age} && $j->{last_publish_age} <= 5,
       '... last_publish_age ' . ($j->{last_publish_age} // 'null'));
    is($c->node($i)->head('/pub?ch=solo')->status, 200, "HEAD on $n: 200");
    is($c->info($i, 'never-published')->status, 404, "an unknown channel on $n: 404");
}

# -- counts ---------------------------------------------------------------------------

sub count_is {
    my ($want, $name) = @_;
    my %got;
    my $ok = wait_until(sub {
        %got = map { ($_ => ($c->info($_, 'cnt')->json->{subscribers} // -1)) }
            grep { $c->node($_)->{running} } 0 .. 2;
        !grep { $_ != $want } values %got;
    }, 2, 0.05);
    ok($ok, "$name: every node's info says $want within 2 s")
        or diag explain \%got;
}

sub publish_says {
    my ($i, $want, $name) = @_;
    my $r = $c->publish($i, 'cnt', "p$want");
    is($r->status, $want ? 201 : 202, "$name: a publish on " . $c->name($i)
        . ' answers ' . ($want ? 201 : 202));
    is($r->json->{subscribers}, $want, "... subscribers: $want");
}

$c->publish(0, 'cnt', 'start');
count_is(0, 'nobody');
my $sc = $c->subscribe(2, 'cnt');
count_is(1, 'a subscriber on C');
publish_says(0, 1, 'one on C');
my @sb = map { $c->subscribe(1, 'cnt') } 1 .. 2;
count_is(3, 'two more on B');
publish_says(0, 3, 'three');
my @sc2 = map { $c->subscribe(2, 'cnt') } 1 .. 2;
count_is(5, 'two more on C');
$sc->close;
count_is(4, 'one left C');
publish_says(1, 4, 'four');

# C is killed: its two streams are gone without a leave
$c->kill_node(2);
$_->close for @sc2;
ok(wait_until(sub {
    !grep { ($c->info($_, 'cnt')->json->{subscribers} // -1) != 2 } 0, 1;
}, 5, 0.1), 'C killed (-9): within 5 s A and B count only B\'s 2');
publish_says(0, 2, 'after C died');
$_->close for @sb;
count_is(0, 'B\'s left too');
publish_says(0, 0, 'nobody left');

$c->start_node(2);
ok($c->wait_up(10), 'C back');
count_is(0, 'C back, nobody subscribed');

$c->done;
