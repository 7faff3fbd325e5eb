# An event Redis holds but the node's zone has no room for (the zone is
# full of channels that subscribers hold, nothing left to evict) reaches
# the channel's subscriber once there is room, without another publish to
# the channel: the worker fills it from Redis again each second while it
# waits.  (It waited for the channel's next message, which the last token
# of an answer never has.)  An event larger than the node's whole zone
# is skipped (its streams find the gap) instead of blocking the channel.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $redis = SSETest::Redis->new;
my $rport = $redis->port;

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone r 256k history_ttl=1h max_message=1m;
    sse_redis redis://127.0.0.1:$rport zone=r;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=r; }
        location /pub { sse_publish \$arg_ch zone=r; }
        location = /status { sse_status; }
    }
}
EOF

my $s = $t->subscribe('/sub?ch=answer');
ok($s->wait_comment(3), 'a subscriber of "answer"');
like($t->publish('/pub?ch=answer', 'token 1')->status, qr/^20[12]$/, 'a first token: published');
ok($s->wait_events(1, 3), '... delivered');

# channels held by subscribers cannot be evicted: they fill the zone
my ($held, $refused_multi, $refused) = $t->hold_channels_until_full('/sub', 'hog');
my @hogs = @$held;
is($refused, 503, scalar(@hogs) . ' subscribers fill the zone with channels: the next gets 503');

# the last token: Redis takes it, the node's zone cannot
my $r = $t->publish('/pub?ch=answer', 'token 2');
like($r->status, qr/^20[12]$/, 'the last token: published (Redis has it)');
ok($t->wait_log(qr/sse zone "r" is full/, 3), '... the node logs that its zone is full');
ok(!$s->wait_events(2, 1.5), '... the subscriber does not have it while the zone is full');

# a client that resumes meanwhile: its join reads Redis, which has the
# token the zone cannot take
my $s2 = $t->subscribe('/sub?ch=answer',
    headers => { 'Last-Event-ID' => $s->events->[0]{id} });
is($s2->status, 200, 'a client resuming after the first token while the zone is full: 200');
ok(!$s2->wait_events(1, 1), '... it does not have the last token yet');

# room comes back: no publish to "answer" follows
$_->close for @hogs;
ok($s->wait_events(2, 6), 'once the holders are gone, the subscriber gets the last token');
ok($s2->wait_events(1, 6), '... and so does the client that resumed');
is(($s2->data)[0], 'token 2', '... the last token, once');
is(($s->data)[1], 'token 2', '... the right one');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$s->events}), 0, '... without a reset');
is((split /-/, $s->events->[1]{id})[-1], 2, '... at its seq, 2');

$s->close;
$s2->close;

# an event larger than this node's whole zone (another node's zone and
# max_message may allow it) can never be stored here: the channel goes on
# past it, instead of waiting for it for good
my $b = $t->subscribe('/sub?ch=big');
ok($b->wait_comment(3), 'a subscriber of "big"');
like($t->publish('/pub?ch=big', 'before')->status, qr/^20[12]$/, 'a small event');
ok($b->wait_events(1, 3), '... delivered');
my $before_id = $b->events->[0]{id};
like($t->publish('/pub?ch=big', 'x' x 300000)->status, qr/^20[12]$/,
    'an event of 300 KB, larger than the node\'s 256 KB zone: Redis takes it');
ok($t->wait_log(qr/sse zone "r" is smaller than an event from redis/, 3),
    '... the node says it cannot hold it');
like($t->publish('/pub?ch=big', 'after')->status, qr/^20[12]$/, 'then a small one');
# the live stream misses the big one: it ends, as one too slow for
# history does; its client resumes with a reset and goes on
ok($b->wait_closed(3), 'the stream that needed the big event ends');
my $b2 = $t->subscribe('/sub?ch=big', headers => { 'Last-Event-ID' => $before_id });
ok($b2->wait_events(2, 3), 'its client resumes');
is(($b2->events->[0]{type} // ''), 'reset', '... a reset for the big one');
like($b2->events->[0]{data} // '', qr/"gap"/, '... reason gap');
is($b2->events->[1]{data}, 'after', '... then the event after it');
is((split /-/, $b2->events->[1]{id} // '')[-1], 3, '... at its seq, 3');
$b2->close;
$b->close;
$t->done;
