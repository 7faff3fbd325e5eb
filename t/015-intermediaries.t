# Nothing between the module and the client holds events back: nginx's own
# proxy in front (buffering on, HTTP/1.0 to the upstream: X-Accel-Buffering
# turns its buffering off), gzip, postpone_output, add_header.  An HTTP/1.0
# client gets a plain (not chunked) stream.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Compress::Raw::Zlib;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;

        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }

        # every filter that could hold bytes back
        location /gz {
            sse_subscribe $arg_ch;
            gzip on;
            gzip_min_length 0;
            gzip_types text/event-stream;
            postpone_output 64k;
            add_header X-Test yes always;
        }

        # nginx as a reverse proxy in front: default settings (buffering
        # on, HTTP/1.0 upstream), as a user would have it
        location /proxied/ {
            proxy_pass http://127.0.0.1:%%PORT2%%/;
        }
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        location /sub { sse_subscribe $arg_ch; }
    }
}
EOF

# publish, then wait for the event on $s; returns the seconds it took
sub latency {
    my ($s, $ch, $data) = @_;
    my $n = $s->event_count;
    my $pt = time;
    $t->publish("/pub?ch=$ch", $data);
    $s->wait_events($n + 1, 2) or return 99;
    return $s->events->[$n]{data} eq $data ? $s->events->[$n]{time} - $pt : 98;
}

# -- through nginx's proxy ---------------------------------------------------

my $s = $t->subscribe('/proxied/sub?ch=px');
is($s->status, 200, 'through a proxy: 200');
is($s->header('Content-Type'), 'text/event-stream; charset=utf-8', '... content type');
ok($s->wait_comment(1), '... the first comment comes through at once');
for my $i (1 .. 3) {
    my $l = latency($s, 'px', "proxied $i");
    ok($l < tmo(1), sprintf("... event $i comes through at once (%.3fs)", $l));
}

# -- an HTTP/1.0 client ------------------------------------------------------

$s = $t->subscribe('/sub?ch=h10', proto => 'HTTP/1.0');
is($s->status, 200, 'HTTP/1.0: 200');
ok(!$s->is_chunked, 'HTTP/1.0: not chunked');
ok(!defined $s->header('Content-Length'), 'HTTP/1.0: no Content-Length');
ok($s->wait_comment(1), 'HTTP/1.0: first comment');
ok(latency($s, 'h10', 'old client') < tmo(1), 'HTTP/1.0: events arrive at once');
like($s->raw, qr/^data: old client\n\n/m, 'HTTP/1.0: plain event bytes');

# -- gzip, postpone_output, add_header -----------------------------------------

$s = $t->subscribe('/gz?ch=gz', headers => { 'Accept-Encoding' => 'gzip' });
is($s->status, 200, 'gzip on: 200');
is($s->header('X-Test'), 'yes', 'add_header applies to the stream');

# the module may leave the stream uncompressed (it does: gzip_ok = 0) or
# compress it with a flush at every event; either way every event must be
# readable as soon as it is published
my $gz = ($s->header('Content-Encoding') // '') eq 'gzip';
my $inflate = Compress::Raw::Zlib::Inflate->new(-WindowBits => WANT_GZIP);
my $plain = $s;
if ($gz) {
    $plain = SSETest::Stream->new(decoded => 1);
    $plain->{state} = 'eof-body';
}
sub gz_poll {
    return unless $gz;
    my $raw = $s->raw;
    my $in = substr($raw, $s->{gz_off} // 0);
    $s->{gz_off} = length $raw;
    return unless length $in;
    my $out;
    $inflate->inflate($in, $out);
    $plain->_feed($out) if defined $out && length $out;
}
ok($s->wait_for(sub { gz_poll(); @{$plain->comments} }, 1),
    'gzip on: the first comment can be read at once'
    . ($gz ? ' (compressed)' : ' (not compressed)'));
for my $i (1 .. 3) {
    my $pt = time;
    $t->publish('/pub?ch=gz', "zipped $i " . ('z' x 100));
    my $ok = $s->wait_for(sub { gz_poll(); $plain->event_count >= $i }, 2);
    ok($ok, "gzip on, postpone_output 64k: event $i can be read");
    ok($ok && time - $pt < tmo(1), "... at once");
}
is(($plain->events->[2] // {})->{data}, 'zipped 3 ' . ('z' x 100), 'the data is intact');

# -- HEAD is not a subscriber ------------------------------------------------

my $r = $t->head('/sub?ch=headonly');
is($r->status, 200, 'HEAD: 200');
is($t->publish('/pub?ch=headonly', 'x')->status, 202, 'HEAD did not subscribe');

$t->done;
