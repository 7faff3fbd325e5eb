# DELETE on a publish location ends a channel: its subscribers' streams end
# after what was already queued, its history is dropped, a subscriber asking
# for it within history_ttl gets 204 No Content (an EventSource stops
# reconnecting), and publishing to it again starts a new epoch.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 4m history=100;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /all  { sse_subscribe $arg_ch zone=z; sse_replay all; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

# subscribers on both workers, and one on another channel
my @subs = map { $t->subscribe('/sub?ch=doomed') } 1 .. 10;
my $other = $t->subscribe('/sub?ch=other');
ok(SSETest::Stream::wait_all([@subs, $other], sub { @{$_[0]->comments} }, 2),
    '10 subscribers of the channel, 1 of another');

my @ids = map { $t->publish('/pub?ch=doomed', "d$_")->json->{id} } 1 .. 3;
$t->publish('/pub?ch=other', 'o1');
my $before = $t->zone_status('z');

# -- DELETE -----------------------------------------------------------------

my $r = $t->delete('/pub?ch=doomed');
is($r->status, 200, 'DELETE of a channel: 200');
ok($r->is_json, '... with a JSON body') or diag($r->body);

ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->is_closed }, 3),
    'every subscriber\'s stream ends');
is(scalar(grep { join(',', $_->data) eq 'd1,d2,d3' } @subs), 10,
    '... after the events that were already queued');
is(scalar(grep { $_->complete } @subs), 10,
    '... cleanly (the response is complete: last chunk)');

ok(!$other->is_closed, 'a subscriber of another channel stays');
$r = $t->publish('/pub?ch=other', 'o2');
is($r->status, 201, '... and still gets events');
ok($other->wait_events(2, 2), '... both of them');

# -- after the DELETE --------------------------------------------------------

my $s = $t->subscribe('/sub?ch=doomed');
is($s->status, 204, 'subscribing to the deleted channel: 204 No Content');
ok($s->wait_closed(2), '... and the response ends');
is($s->raw, '', '... without a body');

$s = $t->subscribe('/sub?ch=doomed', headers => { 'Last-Event-ID' => $ids[0] });
is($s->status, 204, 'also with a Last-Event-ID: 204');

# docs/directives.md: any deleted channel in the list makes it a 204
$s = $t->subscribe('/sub?ch=other,doomed');
is($s->status, 204, 'a stream that includes the deleted channel: 204');

my $after = $t->zone_status('z');
is($after->{stored_events}, $before->{stored_events} - 3 + 1,
    'its history is dropped (3 events gone, o2 came since)');
is($after->{subscribers}, 1, 'only the other channel\'s subscriber is counted');

# -- publishing again: a new epoch -------------------------------------------

$r = $t->publish('/pub?ch=doomed', 'reborn');
ok($r->status == 202, 'publishing to it again: 202 (no subscriber)');
my $id = $r->json->{id} // '';
my ($old_epoch) = $ids[0] =~ /^([0-9a-z]+)-/;
my ($new_epoch, $seq) = $id =~ /^([0-9a-z]+)-(\d+)$/;
ok($new_epoch && $new_epoch ne $old_epoch, 'the channel has a new epoch');
is($seq, 1, 'its seq starts again at 1');

$s = $t->subscribe('/all?ch=doomed');
is($s->status, 200, 'subscribing to the reborn channel: 200');
ok($s->wait_events(1, 2), '... its history is the new event only');
is_deeply([$s->data], ['reborn'], '... reborn');
$s->close;

# an id of the old epoch is unknown now
$s = $t->subscribe('/sub?ch=doomed', headers => { 'Last-Event-ID' => $ids[1] });
ok($s->wait_events(1, 2), 'an old id after the rebirth');
is($s->events->[0]{type}, 'reset', '... gets a reset');
is((json_decode($s->events->[0]{data}) // {})->{reason}, 'unknown',
    '... reason unknown (another epoch)');
$s->close;

# -- DELETE of a channel that only has subscribers ----------------------------

my $q = $t->subscribe('/sub?ch=empty');
ok($q->wait_comment(1), 'a subscriber of a channel without events');
is($t->delete('/pub?ch=empty')->status, 200, 'DELETE: 200');
ok($q->wait_closed(2), 'its stream ends');
is($q->event_count, 0, 'without any event');

is($t->delete('/pub?ch=never')->status, 404, 'DELETE of an unknown channel: 404');

$t->done;
