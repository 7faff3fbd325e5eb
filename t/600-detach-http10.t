# Streams behind a default nginx reverse proxy are as lean as direct ones
# (issue 12 item 8).  nginx's proxy talks HTTP/1.0 to its upstream
# (proxy_http_version defaults to 1.0 up to nginx 1.28, with Connection: close;
# 1.1 from 1.30), so the
# module answers with a close-delimited stream: no chunks, the end of the
# stream is the connection's close.  Such a stream, and a POST subscribe
# whose body came with its headers, lets its request go like an HTTP/1.1
# chunked stream: an idle one costs the worker about a kilobyte and a
# half, not the 6-11 KB of a request kept alive.
#
# Measured: the worker's VmRSS before and after 400 idle HTTP/1.0 streams
# (requests as nginx's proxy sends them), then 400 HTTP/1.1 POST subscribes
# with a body; each must cost at most 4 KB (the bench target for idle memory).
# Then the wire: events through a default proxy arrive at once and whole,
# and the end of a stream (sse_lifetime here) closes the connection, with
# no chunk framing on the way.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $N = 400;
skip_file("needs " . (2 * $N + 100) . " open files") if fd_limit() < 2 * $N + 100;

my $t = SSETest->new(workers => 1)->run(<<'EOF2');
http {
    sse_zone sse 16m;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location /short { sse_subscribe $arg_ch; sse_lifetime 2s; }
        location = /status { sse_status; }

        # nginx as a reverse proxy in front, default settings
        location /proxied/ {
            proxy_pass http://127.0.0.1:%%PORT%%/;
        }
    }
}
EOF2

my ($worker) = $t->wait_workers(1);
ok($worker, 'one worker');

sub subscribers { $t->zone_status->{subscribers} // -1 }

# one event reaches a stream of each kind, so the path each takes is warm
# (and part of the baseline): what is measured is what a stream adds
my %as_proxy = (proto => 'HTTP/1.0', keep_raw => 0,
    headers => { Connection => 'close' });
sub warm {
    my @w = ($t->subscribe('/sub?ch=warm', %as_proxy),
             $t->subscribe('/sub?ch=warm', keep_raw => 0, method => 'POST', body => 'x' x 100));
    $t->publish('/pub?ch=warm', 'w');
    ok(SSETest::Stream::wait_all(\@w, sub { $_[0]->event_count >= 1 }, 5), 'warm-up streams get their event');
    $_->close for @w;
    ok(wait_until(sub { subscribers() == 0 }, tmo(5)), '... and are gone');
}

# $N more streams of a kind, held open (so memory freed by one batch
# cannot hide what the next one costs)
my $open = 0;
my @held;
sub per_stream {
    my ($what, $tag, %opt) = @_;
    my $base = (rss_kb($worker) // 0);
    my @s = map { $t->subscribe("/sub?ch=$tag$_", %opt) } 1 .. $N;
    is(scalar(grep { ($_->status // 0) == 200 } @s), $N, "$N $what: 200");
    $open += $N;
    ok(wait_until(sub { subscribers() == $open }, tmo(10)), '... all subscribed');
    my $grew = ((rss_kb($worker) // 0) - $base) * 1024;
    SKIP: {
        skip 'worker memory is not measurable under a sanitizer', 1 if sanitized();
        cmp_ok($grew / $N, '<=', 4096, sprintf("... each costs the worker at most 4 KB (%.0f bytes)", $grew / $N));
    }
    $t->publish("/pub?ch=$tag$_", "to $_") for (1, $N);
    ok($s[0]->wait_events(1, tmo(2)) && $s[-1]->wait_events(1, tmo(2)), '... and still streams');
    is($s[-1]->events->[0]{data}, "to $N", '... the right event');
    push @held, @s;
}

warm();
per_stream('HTTP/1.0 streams, as a proxy asks', 'h', %as_proxy);
per_stream('HTTP/1.1 POST subscribes with a body', 'p', keep_raw => 0, method => 'POST', body => 'y' x 200);
$_->close for @held;
ok(wait_until(sub { subscribers() == 0 }, tmo(10)), 'all gone when their clients go');

# -- the wire: close-delimited, whole, ended by closing ------------------------

my $s = $t->subscribe('/sub?ch=wire', proto => 'HTTP/1.0');
ok(!$s->is_chunked, 'HTTP/1.0: not chunked');
for my $i (1 .. 3) {
    $t->publish('/pub?ch=wire', "line $i\nsecond");
}
ok($s->wait_events(3, tmo(2)), 'three events');
is(join('|', $s->data), join('|', map { "line $_\nsecond" } 1 .. 3), '... whole, in order');
unlike($s->raw, qr/\r\n[0-9a-f]+\r\n/, '... no chunk framing in the bytes');
$s->close;

my $p = $t->subscribe('/proxied/short?ch=px');
is($p->status, 200, 'through a default proxy: 200');
my $pt = time;
$t->publish('/pub?ch=px', 'via proxy');
ok($p->wait_events(1, tmo(2)), '... the event comes through');
ok($p->events->[0]{time} - $pt < tmo(1), '... at once');
ok($p->wait_closed(tmo(6)), '... and the stream ends at its lifetime');
ok($p->complete, '... as a complete response (the proxy saw the close as the end)');
is($p->event_count, 1, '... with nothing else in it');

my $d = $t->subscribe('/short?ch=direct', proto => 'HTTP/1.0');
ok($d->wait_closed(tmo(6)), 'a direct HTTP/1.0 stream ends at its lifetime by closing');
unlike($d->raw, qr/0\r\n\r\n/, '... without a last chunk');

ok(wait_until(sub { subscribers() == 0 }, tmo(5)), 'no stream left');
$t->done;
