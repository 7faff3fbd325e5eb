# A publisher streams 1000 events through one chunked POST, one per
# millisecond: subscribers (on both workers) receive the first event long
# before the POST ends, and all 1000 in order.
#
# harness: serial (tight time bounds: the first event within 0.2 s); t/run-all.sh runs it
# alone, after the files that run two at a time.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $EVENTS = 1000;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 16m history=2000;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /pub { sse_publish $arg_ch zone=z; client_max_body_size 0; }
    }
}
EOF

# subscribers on several connections, so that both workers have some
my @subs = map { $t->subscribe('/sub?ch=tokens') } 1 .. 6;

my $req = $t->open_request('POST', '/pub?ch=tokens', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream' });

my $start = time;
my $first;

for my $i (1 .. $EVENTS) {
    $req->send_chunk("event: chunk\ndata: tok $i\n\n");

    if (!defined $first) {
        SSETest::Stream::poll_many(\@subs, 0);
        $first = time if grep { $_->event_count } @subs;
    }

    # one event per millisecond, measured from the start (no drift)
    my $next = $start + $i * 0.001;
    my $now = time;
    sleep($next - $now) if $next > $now;
}

$req->finish;
my $end = time;

my $r = $req->response(tmo(10));
is($r->status, 201, 'the streaming POST ends with 201');
is($r->json->{events}, $EVENTS, "... after publishing $EVENTS events");

ok(defined $first, 'a subscriber received an event while the POST was open');
my $post = $end - $start;
my $lag = defined $first ? $first - $start : $post;
note(sprintf('POST lasted %.3f s; first event received after %.3f s', $post, $lag));
cmp_ok($post, '>=', 0.9, 'the POST lasted about a second');
cmp_ok($lag, '<', tmo(0.2), 'the first event arrived within 0.2 s of the first piece');
cmp_ok($lag, '<', $post, '... while the POST was still open');

ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= $EVENTS }, 10),
    "every subscriber received all $EVENTS events");

my $expected = join ',', map { "tok $_" } 1 .. $EVENTS;
my $i = 0;
for my $s (@subs) {
    $i++;
    is(join(',', $s->data), $expected, "subscriber $i: all of them, in order");
    is(scalar(grep { ($_->{type} // '') ne 'chunk' } @{$s->events}), 0,
        "subscriber $i: each with its type");
}

$t->done;
