# Publish and subscribe: the subscriber's response, the first comment, the
# publish reply (201/202 and its JSON), event types, channel info.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my $ID = qr/^[0-9a-z]+-\d+$/;

# -- the subscriber's response ---------------------------------------------

my $t0 = time;
my $s = $t->subscribe('/sub?ch=news');
is($s->status, 200, 'subscribe: 200');
is($s->header('Content-Type'), 'text/event-stream; charset=utf-8',
    'Content-Type: text/event-stream; charset=utf-8');
is($s->header('Cache-Control'), 'no-cache', 'Cache-Control: no-cache');
is($s->header('X-Accel-Buffering'), 'no', 'X-Accel-Buffering: no');
ok(!defined $s->header('Content-Length'), 'no Content-Length');
ok($s->is_chunked, 'HTTP/1.1: Transfer-Encoding: chunked');
ok($s->headers_time - $t0 < tmo(1), 'headers arrive at once');

my $c = $s->wait_comment(1);
ok($c, 'a first comment arrives before anything is published');
ok($c && $c->{time} - $t0 < tmo(1), '... at once');
is($s->event_count, 0, 'no event before the first publish');
ok(!$s->is_closed, 'the stream stays open');

# -- publish with and without subscribers ----------------------------------

my $r = $t->publish('/pub?ch=nobody-here', 'stored only');
is($r->status, 202, 'publish to a channel without subscribers: 202 Accepted');
like($r->header('Content-Type') // '', qr{^application/json}, 'reply is JSON');
my $j = $r->json;
is($j->{channel}, 'nobody-here', 'reply names the channel');
like($j->{id} // '', $ID, 'reply has the id: <epoch>-<seq>');
like($j->{id} // '', qr/-1$/, 'the first event of a channel has seq 1');
is_deeply($j->{ids}, [$j->{id}], 'ids lists the one id');
is($j->{events}, 1, 'events: 1');
is($j->{subscribers}, 0, 'subscribers: 0');

my $pt = time;
$r = $t->publish('/pub?ch=news', 'hello');
is($r->status, 201, 'publish to a channel with a subscriber: 201 Created');
$j = $r->json;
is($j->{subscribers}, 1, 'reply counts the subscriber');
is($j->{channel}, 'news', 'reply names the channel');

my $e = $s->next_event(1);
ok($e, 'the subscriber gets the event');
is($e && $e->{data}, 'hello', '... with the published data');
is($e && $e->{id}, $j->{id}, '... and the id the reply announced');
ok(!defined($e && $e->{type}), '... and no event type');
ok($e && $e->{time} - $pt < tmo(1), '... at once');

# -- every event leaves as soon as it is published -------------------------

my ($epoch) = $j->{id} =~ /^([0-9a-z]+)-/;
my $prev_seq = ($j->{id} =~ /-(\d+)$/)[0];
my $late = 0;
for my $i (1 .. 5) {
    my $pt = time;
    my $r = $t->publish('/pub?ch=news', "event $i");
    my $e = $s->next_event(1);
    $late++ unless $e && $e->{data} eq "event $i"
        && $e->{time} - $pt < tmo(1);
    my ($ep, $seq) = ($e && $e->{id} // '') =~ /^([0-9a-z]+)-(\d+)$/;
    is($seq, $prev_seq + 1, "event $i: seq counts up by one");
    is($ep, $epoch, "event $i: same epoch");
    $prev_seq = $seq // $prev_seq;
    sleep 0.05;     # a gap between publishes, so each stands alone
}
is($late, 0, 'each of 5 events arrived alone, within 1s of its publish');

# -- SSE-Event names the event type; PUT publishes too -----------------------

$r = $t->publish('/pub?ch=news', '{"x":1}', 'SSE-Event' => 'update');
is($r->status, 201, 'publish with SSE-Event');
$e = $s->next_event(1);
is($e && $e->{type}, 'update', 'SSE-Event: update gives event: update');
is($e && $e->{data}, '{"x":1}', '... with the data');

$r = $t->request('PUT', '/pub?ch=news', body => 'by put');
is($r->status, 201, 'PUT publishes like POST');
$e = $s->next_event(1);
is($e && $e->{data}, 'by put', 'the PUT event arrives');

# -- two subscribers, one connection per subscriber ------------------------

my $s2 = $t->subscribe('/sub?ch=news');
ok($s2->wait_comment(1), 'second subscriber open');
$r = $t->publish('/pub?ch=news', 'to both');
is($r->status, 201, 'publish with two subscribers');
is($r->json->{subscribers}, 2, 'reply counts two subscribers');
is($s->next_event(1)->{data}, 'to both', 'first subscriber gets it');
is($s2->next_event(1)->{data}, 'to both', 'second subscriber gets it');
is($s2->event_count, 1, 'the late subscriber got no history (sse_replay none)');

# -- POST and HEAD on a subscribe location ---------------------------------

my $sp = $t->subscribe('/sub?ch=news', method => 'POST',
    body => 'ignored=1', headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($sp->status, 200, 'POST subscribes too (body discarded)');
is($sp->header('Content-Type'), 'text/event-stream; charset=utf-8',
    'POST subscriber gets an event stream');
ok($sp->wait_comment(1), 'POST subscriber gets the first comment');
$r = $t->publish('/pub?ch=news', 'to post');
is($r->json->{subscribers}, 3, 'POST subscriber counted');
is($sp->next_event(1) && $sp->events->[-1]{data}, 'to post',
    'POST subscriber gets events');

$r = $t->head('/sub?ch=news');
is($r->status, 200, 'HEAD on a subscribe location: 200');
is($r->header('Content-Type'), 'text/event-stream; charset=utf-8',
    'HEAD gets the stream headers');
is($r->body, '', 'HEAD gets no body');
ok($r->complete, 'HEAD response is complete (not a held stream)');

# -- channel info: GET and HEAD on a publish location ----------------------

$r = $t->get('/pub?ch=news');
is($r->status, 200, 'GET on a publish location: channel info');
$j = $r->json;
is($j->{channel}, 'news', 'info: channel');
is($j->{subscribers}, 3, 'info: subscribers');
is($j->{events}, 10, 'info: stored events');
like($j->{last_id} // '', $ID, 'info: last_id');
is($j->{last_id}, $sp->events->[-1]{id}, 'info: last_id is the newest event');
ok(defined $j->{last_publish_age} && $j->{last_publish_age} >= 0
    && $j->{last_publish_age} < 5, 'info: last_publish_age in seconds');

$r = $t->head('/pub?ch=news');
is($r->status, 200, 'HEAD on a publish location: 200');
is($r->body, '', '... without a body');

$r = $t->get('/pub?ch=never-used');
is($r->status, 404, 'info on a channel that does not exist: 404');
is($r->json && $r->json->{error}, 'not_found', 'error code not_found');

# a channel created by a subscriber, nothing published yet
my $s3 = $t->subscribe('/sub?ch=quiet');
ok($s3->wait_comment(1), 'subscriber to a fresh channel');
$r = $t->get('/pub?ch=quiet');
is($r->status, 200, 'a channel exists once it has a subscriber');
$j = $r->json;
is($j->{subscribers}, 1, 'info counts the subscriber');
is($j->{events}, 0, 'no events');
ok(exists $j->{last_id} && !defined $j->{last_id}, 'last_id: null');
ok(exists $j->{last_publish_age} && !defined $j->{last_publish_age},
    'last_publish_age: null');

# -- a subscription on a keep-alive connection that served requests before ----

my $sock = $t->connect;
syswrite $sock, "GET /pub?ch=news HTTP/1.1\r\nHost: x\r\n\r\n";
my $first = SSETest::Stream->new(fh => $sock, sse => 0);
ok($first->wait_complete(2), 'keep-alive: a first request (channel info)');
is($first->status, 200, '... 200');
syswrite $sock, "GET /sub?ch=news HTTP/1.1\r\nHost: x\r\n\r\n";
my $ka = SSETest::Stream->new(fh => $sock);
$ka->_feed($first->{after}) if length($first->{after} // '');
ok($ka->wait_comment(2), 'keep-alive: then a subscription on the same connection');
is($ka->status, 200, '... 200');
$r = $t->publish('/pub?ch=news', 'to keepalive');
my $kae = $ka->next_event(2);
is($kae && $kae->{data}, 'to keepalive', '... gets events');
$ka->close;

# the other subscribers saw none of the other channels' events
is(scalar(grep { $_->{data} eq 'stored only' } @{$s->events}), 0,
    'no event of another channel leaks into a stream');
ok(!$s->error && !$s2->error, 'chunked framing was valid');

$t->done;
