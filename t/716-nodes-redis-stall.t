# Redis stalled (SIGSTOP for 5 s), then CLIENT KILL of every connection
# the module has, while a publisher goes on through all three nodes
# (issue 13, item 4).  The publisher retries a 503 with the same
# Idempotency-Key, as SPEC.md tells publishers that must not duplicate:
# a publish whose reply was lost (the script ran when Redis woke up) is
# not published twice.  Every stream on A, B and C must get every event
# exactly once, in order; meanwhile no worker blocks: /plain and /status
# answer within 200 ms on every node.
# harness: serial (200 ms bounds)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $c = SSETest::Nodes->new(nodes => 3, zone => 'sse 8m history=1000');
ok($c->wait_up(10), 'links up');

my @s = map { my $i = $_; map { $c->subscribe($i, 'st') } 1, 2 } 0 .. 2;

# the publisher: a child process; st1..stN on A, B, C in turn, each until
# 201/202 with its own key; one line per event in $log: "n refused"
my $total = 200;
my $log = $c->node(0)->dir . '/publisher.log';
my $pid = fork // die "fork: $!";
if ($pid == 0) {
    open my $fh, '>', $log or POSIX::_exit(2);
    $fh->autoflush(1);
    my $bad = 0;
    # never die here: END blocks would stop the test's nginx and Redis
    eval { for my $n (1 .. $total) {
        my ($r, $refused) = $c->publish_until_done($n % 3, 'st', "st$n",
            "key-st-$n", 30);
        my $ok = $r && ($r->status == 201 || $r->status == 202);
        $bad++ unless $ok;
        print $fh "$n $refused " . ($r ? $r->status : 0) . "\n";
        sleep 0.03;             # a pace, not a synchronisation
    } 1 } or $bad = 1;
    POSIX::_exit($bad ? 1 : 0);
}
sub published {
    # before the publisher opened its log: none (0 in scalar context)
    open my $fh, '<', $log or return wantarray ? () : 0;
    return map { [split] } <$fh>;
}

ok(wait_until(sub { published() >= 15 }, 10), 'publishing (15 events)');

# -- SIGSTOP for 5 s ----------------------------------------------------------------

$c->redis_pause;
my $t0 = time;
my ($slowest, $asked, $bad) = (0, 0, 0);
# the duration of the stall is the stimulus, not a wait for a condition
while (time - $t0 < 5) {
    for my $i (0 .. 2) {
        for my $path ('/plain', '/status') {
            my ($d, $st) = $c->timed_get($i, $path);
            $asked++;
            $bad++ if $st != 200;
            $slowest = $d if $d > $slowest;
        }
    }
    sleep 0.05;
}
$c->redis_resume;
is($bad, 0, "$asked GETs of /plain and /status on A, B, C during the stall: all 200");
cmp_ok($slowest, '<', SSETest::tmo(0.2),
       sprintf('the slowest took %.0f ms: no worker blocked', $slowest * 1000));
ok($c->wait_up(10), 'up again after SIGCONT');
my $n_before = published();
ok(wait_until(sub { published() >= $n_before + 10 }, 10), 'publishing goes on');
# the event published when the stall began is logged once it got its
# 201/202 after the stall: count the 503s once publishing went on
my $refused = 0;
$refused += $_->[1] for published();
cmp_ok($refused, '>', 0, "the stall was felt: $refused publishes refused (503) and retried");

# -- CLIENT KILL of every connection ------------------------------------------------

my $at_kill = published();
my $killed = $c->client_kill;
cmp_ok($at_kill, '<', $total, "CLIENT KILL mid-stream (after $at_kill of $total)");
cmp_ok($killed, '>=', 12, "CLIENT KILL of $killed connections (2 per worker, 6 workers)");

my $code;
ok(wait_until(sub {
    my $r = waitpid($pid, POSIX::WNOHANG());
    $code = $? >> 8 if $r == $pid;
    $r == $pid;
}, 120, 0.1), 'the publisher finished');
is($code, 0, "all $total publishes answered 201/202 in the end");

$c->expect_events(\@s, [ map { "st$_" } 1 .. $total ],
    'every stream on A, B and C: every event exactly once, in order', 15);
ok(!grep({ SSETest::Nodes::resets($_) } @s), 'no reset');
ok(!grep({ $_->is_closed } @s), 'every stream still open');

$c->check_no_alias;
$c->expect_log(qr/redis closed the connection|did not answer within|not ready within|connect\(\) failed/);
$c->done;
