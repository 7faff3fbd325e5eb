# Subscriber count keys (P s:{id}) do not outlive the nodes that wrote
# them (docs/redis.md, "Subscriber counts"): a node killed with -9 leaves
# its counts behind, and before, they were pruned only when the channel
# was published to, deleted or asked about.  Now every count key lives
# 15 s unless renewed, and the nodes that have streams of the channel
# renew it every 5 s, pruning the fields of nodes whose liveness key
# (3 s) is gone.  With nothing published, deleted or asked:
#   - a channel a live node still follows loses the dead node's field
#     within 3 + 5 s (and a tick), the live node's count stays;
#   - a channel only the dead node followed loses its key within 15 s.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $c = SSETest::Nodes->new(nodes => 2);
ok($c->wait_up(10), 'links up');
my $P = $c->prefix;

sub fields {
    my ($ch) = @_;
    my @kv = split /\n/, ($c->rcli('--raw', 'HGETALL', "${P}s:$ch") // '');
    return { @kv };
}
sub pttl { my $v = $c->rcli('PTTL', "${P}s:$_[0]") // ''; chomp $v; $v }

# the key's lifetime goes up: someone renewed it (between two looks it
# only goes down)
sub renewed {
    my ($ch, $timeout) = @_;
    my $prev = pttl($ch);
    return wait_until(sub {
        my $now = pttl($ch);
        my $up = $now > $prev;
        $prev = $now;
        $up;
    }, $timeout, 0.1);
}

my $sa = $c->subscribe(0, 'shared');
my @sb = ((map { $c->subscribe(1, 'shared') } 1 .. 2),
          $c->subscribe(1, 'bonly'));
is($_->status, 200, 'a stream') for $sa, @sb;

ok(wait_until(sub { keys %{ fields('bonly') } == 1 }, 5, 0.05),
   'B counts its stream of bonly');
my ($b_id) = keys %{ fields('bonly') };
ok(wait_until(sub { keys %{ fields('shared') } == 2 }, 5, 0.05),
   'A and B count their streams of shared');
my ($a_id) = grep { $_ ne $b_id } keys %{ fields('shared') };
ok(defined $a_id, 'A has a field of its own') or diag explain fields('shared');
is_deeply(fields('shared'), { $a_id => 1, $b_id => 2 }, 'A: 1, B: 2');

my $ttl = pttl('shared');
ok($ttl > 0 && $ttl <= 15000, "the count key expires unless renewed ($ttl ms)");
ok(renewed('shared', 8), 'and is renewed while A and B have streams of it');

# B dies with its streams: no leave, no count written
$c->kill_node(1);
$_->close for @sb;
my $killed = time;

# nothing is published, deleted or asked about from here on
ok(wait_until(sub { !exists fields('shared')->{$b_id} }, 10, 0.1),
   'shared: the dead node\'s field is pruned by the live node');
note(sprintf 'after %.1f s', time - $killed);
is_deeply(fields('shared'), { $a_id => 1 }, 'A\'s count stays');

ok(wait_until(sub {
       ($c->rcli('EXISTS', "${P}s:bonly") // '') =~ /^0/ }, 17, 0.1),
   'bonly, which only the dead node followed: the key is gone');
note(sprintf 'after %.1f s', time - $killed);

# past a whole lifetime of a key since A's count was first written
ok(renewed('shared', 8), 'A still renews its count key');
is_deeply(fields('shared'), { $a_id => 1 }, 'with its count');

$sa->close;
ok(wait_until(sub { ($c->rcli('EXISTS', "${P}s:shared") // '') =~ /^0/ },
              5, 0.05), 'A\'s stream left: the key is gone (HDEL)');

$c->done;
