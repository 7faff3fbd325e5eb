# Idempotency-Key on one node and across nodes (SPEC.md "Idempotent
# publishing", issue 13 item 1): a second publish with the same key to the
# same channels publishes nothing and answers as the first did (same
# status class, same ids), whichever node it reaches; the key covers the
# request's channel list; a multi-channel and a multi-event publish too.

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

my @s = map { $c->subscribe($_, 'idem') } 0 .. 2;
ok($c->wait_subscribers('idem', 3), 'counted: 3 subscribers');

sub ids { SSETest::Nodes::reply_ids($_[0]) }

# -- one node, then the others -----------------------------------------------------

my $first = $c->publish(0, 'idem', 'once', 'Idempotency-Key' => 'k-1');
is($first->status, 201, 'the first publish with key k-1 on A: 201');
my $want = ids($first)->{idem};
is(scalar @{ $want // [] }, 1, 'one id');
for my $i (0, 1, 2, 0) {
    my $r = $c->publish($i, 'idem', 'once', 'Idempotency-Key' => 'k-1');
    is($r->status, 201, 'the same key again on ' . $c->name($i)
        . ': answered as the first (201)') or diag $r->describe;
    is_deeply(ids($r)->{idem}, $want, '... with the same id');
}
# a different body under the same key is the same publish: nothing new
my $r = $c->publish(1, 'idem', 'other data', 'Idempotency-Key' => 'k-1');
is_deeply(ids($r)->{idem}, $want, 'the same key with another body: the first publish\'s id');

my $r2 = $c->publish(2, 'idem', 'twice', 'Idempotency-Key' => 'k-2');
is($r2->status, 201, 'another key on C: a new publish');
isnt(ids($r2)->{idem}[0], $want->[0], '... with a new id');
my $r3 = $c->publish(1, 'idem', 'thrice');
is($r3->status, 201, 'no key on B: a new publish');
$c->expect_events(\@s, [qw(once twice thrice)],
    'A, B and C got each publish once: the repeats published nothing');

# the key covers the channel list: k-1 to another channel is another key
my $other = $c->publish(1, 'idem-other', 'elsewhere', 'Idempotency-Key' => 'k-1');
is($other->status, 202, 'k-1 to another channel: published (202, no subscriber)');
ok(@{ ids($other)->{'idem-other'} // [] } == 1, '... with its own id');

# status class: the first was 202 (no subscriber); the repeat stays 2xx
# and same ids even though a subscriber came meanwhile, which gets nothing
my $q1 = $c->publish(0, 'quiet', 'q', 'Idempotency-Key' => 'k-q');
is($q1->status, 202, 'k-q on A, no subscriber: 202');
my $qs = $c->subscribe(2, 'quiet');
my $q2 = $c->publish(1, 'quiet', 'q', 'Idempotency-Key' => 'k-q');
like($q2->status, qr/^20[12]$/, 'k-q again on B: 2xx (' . $q2->status . ')');
is_deeply(ids($q2)->{quiet}, ids($q1)->{quiet}, '... same id');
my $q3 = $c->publish(1, 'quiet', 'live');
$c->expect_events($qs, ['live'], 'the subscriber on C got only the later event, not a repeat');

# -- several channels, several events --------------------------------------------------

my $m = $c->subscribe(2, 'i1,i2');
ok($c->wait_subscribers('i1', 1) && $c->wait_subscribers('i2', 1),
   'the i1,i2 stream on C is counted on both channels');
my $body = join '', map { "data: ev$_\n\n" } 1 .. 3;
my @h = ('Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'k-multi');
my $mr = $c->node(0)->request('POST', '/pub?ch=i1,i2', body => $body, headers => {@h});
is($mr->status, 201, 'three events to i1,i2 with k-multi on A: 201');
my $mids = ids($mr);
is(scalar @{ $mids->{i1} // [] } + scalar @{ $mids->{i2} // [] }, 6, 'six ids');
for my $i (1, 2) {
    my $again = $c->node($i)->request('POST', '/pub?ch=i1,i2', body => $body,
                                      headers => {@h});
    is($again->status, 201, 'k-multi again on ' . $c->name($i) . ': 201');
    is_deeply(ids($again), $mids, '... the same ids on both channels');
}
# the same key with the channels in one request, a subset: another key
my $sub = $c->node(1)->request('POST', '/pub?ch=i1', body => "data: solo\n\n",
                               headers => {@h});
is($sub->status, 201, 'k-multi to i1 alone: a new publish (the key covers the list)');
# one channel's order is fixed, not the interleaving of two: compare as
# a multiset, and solo (published last) last
ok($m->wait_events(7, 10), 'the i1,i2 stream on C: 7 events');
$m->poll(0.1);
my @md = SSETest::Nodes::plain_data($m);
is_deeply([ sort @md ], [ sort((map { ("ev$_") x 2 } 1 .. 3), 'solo') ],
    '... each of the three once per channel, and solo: nothing repeated');
is($md[-1], 'solo', '... solo last');

$c->check_no_alias;
$c->done;
