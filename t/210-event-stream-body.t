# Publishing a text/event-stream body: every event of the body is published
# in order (event: and data: fields; comments, retry: and id: ignored, ids
# are the module's), and each as soon as it is complete, also while a long
# chunked body is still arriving: an application can stream tokens through
# one open POST.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 4m history=100 max_message=2k;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location /pub2 { sse_publish "es1 es2" zone=z; }
    }
}
EOF

my $ID = qr/^[0-9a-z]+-\d+$/;

my $s = $t->subscribe('/sub?ch=es');
ok($s->wait_comment(1), 'a subscriber');

# -- several events in one body ---------------------------------------------

my $body = "event: greeting\ndata: hello\n\n"
         . ": a comment line\n"
         . "id: 999\nretry: 10\ndata: line one\ndata: line two\n\n"
         . "event: ignored-without-data\n\n"
         . "data:no space\nunknown: field\n\n"
         . "data: last, without a final blank line\n";
my $r = $t->publish_stream('/pub?ch=es', $body);
is($r->status, 201, 'an event-stream body: 201');
my $j = $r->json;
is($j->{events}, 4, 'four events (one without data is dropped)');
is(scalar @{$j->{ids} // []}, 4, 'four ids');
is($j->{id}, ($j->{ids} // [])->[-1], 'id is the last of ids');
ok(!grep({ !/$ID/ } @{$j->{ids} // []}), 'ids are the module\'s (<epoch>-<seq>)');

ok($s->wait_events(4, 2), 'the subscriber gets four events');
my @e = @{$s->events};
is_deeply([map { $_->{data} } @e],
    ['hello', "line one\nline two", 'no space', 'last, without a final blank line'],
    'their data, in order');
is_deeply([map { $_->{type} } @e], ['greeting', undef, undef, undef],
    'event: gives the type');
is_deeply([map { $_->{id} } @e], $j->{ids}, 'with the ids of the reply (id: 999 ignored)');
ok(!defined $s->retry, 'retry: of the body is not passed on');
is(scalar(@{$s->comments}), 1, 'comments of the body are not passed on');

# -- line ends, BOM ------------------------------------------------------------

$r = $t->publish_stream('/pub?ch=es',
    "\xEF\xBB\xBFdata: bom\r\n\r\ndata: cr\rdata: cr2\r\revent: t\r\ndata: crlf\r\n\r\n");
is($r->status, 201, 'CR, CRLF line ends and a BOM');
is($r->json->{events}, 3, 'three events');
ok($s->wait_events(7, 2), 'they arrive');
is_deeply([map { $_->{data} } @{$s->events}[4 .. 6]], ['bom', "cr\ncr2", 'crlf'],
    'line ends are understood, the BOM is skipped');
is($s->events->[6]{type}, 't', 'type with CRLF');

# -- to several channels ------------------------------------------------------

my $s1 = $t->subscribe('/sub?ch=es1');
my $s2 = $t->subscribe('/sub?ch=es2');
$s1->wait_comment(1); $s2->wait_comment(1);
$r = $t->publish_stream('/pub2', "data: a\n\ndata: b\n\n");
is($r->status, 201, 'an event-stream body to two channels');
is(scalar @{$r->json->{channels} // []}, 2, 'reply lists both');
ok($s1->wait_events(2, 2) && $s2->wait_events(2, 2), 'both channels get both events');
is_deeply([$s2->data], [qw(a b)], '... in order');

# -- errors -----------------------------------------------------------------

my $n = $s->event_count;
$r = $t->publish_stream('/pub?ch=es', "data: bad \xff\n\n");
is($r->status, 400, 'an event with invalid UTF-8: 400');
is($r->json->{error}, 'bad_utf8', '... bad_utf8');
$r = $t->publish_stream('/pub?ch=es', "data: " . ('x' x 3000) . "\n\n");
is($r->status, 413, 'an event over max_message: 413');
is($r->json->{error}, 'too_large', '... too_large');
my $five = join '', map { 'data: ' . ('y' x 1000) . "\n\n" } 1 .. 5;
$r = $t->publish_stream('/pub?ch=es', $five);
is($r->status, 201, 'five events that are each under max_message: 201')
    or diag($r->describe);
ok($s->wait_events($n + 5, 2), '... published');
ok(!$s->wait_events($n + 6, 0.3), 'nothing of the refused bodies was published');

# -- streaming: events leave while the body is still arriving ------------------

$s->take_events;     # next_event() from here on
$n = $s->event_count;
my $req = $t->open_request('POST', '/pub?ch=es', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream' });
my $late = 0;
for my $i (1 .. 5) {
    # an event split over two chunks; it is complete with the second
    $req->send_chunk("event: token\ndata: tok");
    sleep 0.05;
    my $pt = time;
    $req->send_chunk("en $i\n\n");
    my $e = $s->next_event(2);
    is($e && $e->{data}, "token $i", "streamed event $i arrives before the body ends");
    $late++ unless $e && $e->{time} - $pt < tmo(1);
}
is($late, 0, 'each streamed event arrived within 1s of its last byte');

# an event is not published before it is complete
$req->send_chunk("data: not yet");
ok(!$s->wait_events($s->event_count + 1, 0.5), 'an incomplete event is not published');
$req->send_chunk("\n\n: trailing comment\n");
ok($s->wait_events($s->event_count + 1, 2), 'it is once the blank line comes');
$req->finish;
$r = $req->response(5);
is($r->status, 201, 'the streaming POST ends with 201');
is($r->json->{events}, 6, '... counting its 6 events');
is(scalar @{$r->json->{ids} // []}, 6, '... with their 6 ids');
is_deeply($r->json->{ids}, [map { $_->{id} } @{$s->events}[$n .. $n + 5]],
    '... the ids the subscriber saw');

# a streaming POST that breaks off: what was complete stays published
$n = $s->event_count;
$req = $t->open_request('POST', '/pub?ch=es', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream' });
$req->send_chunk("data: complete\n\ndata: incompl");
ok($s->wait_events($n + 1, 2), 'the complete event of a broken-off POST is published');
$req->close;
ok(!$s->wait_events($n + 2, 0.5), 'the incomplete one is not');
ok(!$s->is_closed, 'the subscriber is not affected');

# a raw body is one event, even when it is streamed
$n = $s->event_count;
$r = $t->request('POST', '/pub?ch=es', body => ["data: x\n\n", "more"], delay => 0.05,
    headers => { 'Content-Type' => 'text/plain' });
is($r->status, 201, 'a chunked text/plain body');
ok($s->wait_events($n + 1, 2), 'is one event');
is($s->events->[-1]{data}, "data: x\n\nmore", '... holding the whole body as data');

$t->done;
