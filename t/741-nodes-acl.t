# Two nodes on a Redis whose ACL user may run only the commands the module
# sends and touch only its prefix's keys and pub/sub channels: the
# least-privilege user docs/redis-operations.md gives.  Publishing,
# fan-out across nodes, resume on the other node, Idempotency-Key, channel
# info and DELETE all work, and no node's log says NOPERM.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

# the same list as docs/redis-operations.md, "A user of its own"
my $acl = 'user sse on >s3cret resetchannels ~t71x:* &t71x:* -@all'
    . ' +select +ping +eval +evalsha +subscribe +unsubscribe'
    . ' +hset +hdel +set +del +exists +get +hgetall +hincrby +hmget'
    . ' +pexpire +publish +time +type +xadd +xlen +xrange';

my $c = SSETest::Nodes->new(nodes => 2, redis => { config => "$acl\n" },
    url => sub { 'redis://sse:s3cret@127.0.0.1:' . $_[0]->port });
ok($c->wait_up(10), 'both nodes up as the restricted user');

my $b = $c->subscribe(1, 'acl');
ok($c->wait_subscribers('acl', 1), 'the subscriber on B is counted');

my $r = $c->publish(0, 'acl', 'one', 'Idempotency-Key' => 'k1');
is($r->status, 201, 'publish on A: 201') or diag $r->describe;
my $again = $c->publish(1, 'acl', 'one', 'Idempotency-Key' => 'k1');
is($again->status, 201, 'the same key on B: 201');
is_deeply(SSETest::Nodes::reply_ids($again), SSETest::Nodes::reply_ids($r),
          '... with the same id');
is($c->publish(0, 'acl', 'two')->status, 201, 'a second publish on A');
$c->expect_events($b, [qw(one two)], 'B gets both, once');

my $first = SSETest::Nodes::reply_ids($r)->{acl}[0];
my $resumed = $c->subscribe(0, 'acl', last_id => $first);
$c->expect_events($resumed, ['two'], 'a resume on A after the first id: the second');

my $info = $c->info(1, 'acl');
is($info->status, 200, 'channel info on B');
is($info->json->{events}, 2, '... two events in history');

is($c->delete(1, 'acl')->status, 200, 'DELETE on B');
ok(SSETest::Stream::wait_all([$b, $resumed], sub { $_[0]->is_closed }, 3),
   'both streams end');

for my $i (0, 1) {
    my $log = $c->node($i)->error_log;
    unlike($log, qr/NOPERM|no permissions/i,
           'node ' . $c->name($i) . ': no command refused by the ACL');
}

$c->done;
