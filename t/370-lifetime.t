# sse_lifetime: a stream ends cleanly (the end of the response: the last
# chunk over HTTP/1.1, END_STREAM over HTTP/2) once its lifetime has
# passed; heartbeats flow until then; a client that reconnects with its
# last id gets what was published in between, and a client that keeps
# reconnecting (an EventSource) loses and repeats nothing.
#
# Lifetimes ride the worker's one-second sweep (docs/architecture.md): a
# stream of sse_lifetime 2s ends after more than 1 and less than about 3
# seconds.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 8m history=10000;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        sse_heartbeat 1s;
        location /sub     { sse_subscribe $arg_ch zone=z; sse_lifetime 2s; }
        location /sub3    { sse_subscribe $arg_ch zone=z; sse_lifetime 3s; }
        location /forever { sse_subscribe $arg_ch zone=z; }
        location /pub     { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

# -- one stream: heartbeats, then a clean end --------------------------------

my $never = $t->subscribe('/forever?ch=a');
my $s3 = $t->subscribe('/sub3?ch=a');
my $s = $t->subscribe('/sub?ch=a');
my $t0 = $s->headers_time;
is($s->status, 200, 'a stream with sse_lifetime 2s');
ok($s->wait_comment(1), 'its first comment');
is($t->publish('/pub?ch=a', 'one')->status, 201, 'an event');
ok($s->wait_events(1, 1), '... arrives');

ok($s->wait_closed(5), 'the stream ends');
my $life = ($s->{complete_time} // $s->{eof_time} // time) - $t0;
ok($s->complete, '... cleanly: the response is complete (last chunk)');
ok(!$s->error && !$s->{truncated}, '... and well formed');
cmp_ok($life, '>', 1, sprintf('... after more than 1 s (%.2fs)', $life));
cmp_ok($life, '<', tmo(3.5), '... and not much after 2 s');
my $last = $s->events->[-1]{id};

# heartbeats until the end: with a 1 s heartbeat riding a 1 s sweep, a
# heartbeat is certain before the end of a 3 s lifetime (a 2 s one may end
# at the very tick that would have sent it)
ok($s3->wait_closed(5), 'a stream with sse_lifetime 3s ends');
ok($s3->complete, '... cleanly');
my $life3 = ($s3->{complete_time} // 99) - $s3->headers_time;
cmp_ok($life3, '>', 2, sprintf('... after more than 2 s (%.2fs)', $life3));
cmp_ok($life3, '<', tmo(4.5), '... and not much after 3 s');
my @hb = grep { $_->{text} eq '' } @{$s3->comments};
ok(@hb >= 1, 'heartbeats came before its end (' . scalar(@hb) . ')');
is(scalar(grep { $_->{time} > ($s3->{complete_time} // 0) } @hb), 0, '... none after it');
is($s3->event_count, 1, '... it got the event too');
$s3->close;
$s->close;

# the stream without a lifetime is not touched
ok(!$never->is_closed, 'a stream of a location without sse_lifetime stays open');

# what is published between the end and the reconnect
my @between = map { $t->publish('/pub?ch=a', "between$_")->json->{id} } 1 .. 3;
$s = $t->subscribe('/sub?ch=a', headers => { 'Last-Event-ID' => $last });
ok($s->wait_events(3, 2), 'a reconnect with the last id');
ok(!$s->wait_events(4, 0.3), '...');
is_deeply([$s->data], [map { "between$_" } 1 .. 3], '... gets what was published in between');
is_deeply([map { $_->{id} } @{$s->events}], \@between, '... with its ids');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$s->events}), 0, '... no reset');
$s->close;

# -- many streams: each ends within its lifetime --------------------------------

# 8 streams opened a quarter second apart: whatever the phase of the sweep,
# none is cut early or kept long
my @many;
for my $i (1 .. 8) {
    push @many, $t->subscribe('/sub?ch=many');
    SSETest::Stream::poll_many(\@many, 0.25);
}
ok(SSETest::Stream::wait_all(\@many, sub { $_[0]->complete }, 5), '8 streams all ended cleanly');
my @lives = map { ($_->{complete_time} // 99) - $_->headers_time } @many;
my ($min, $max) = (sort { $a <=> $b } @lives)[0, -1];
cmp_ok($min, '>', 1, sprintf('... none before 1 s (shortest %.2fs)', $min));
cmp_ok($max, '<', tmo(3.5), sprintf('... none much after 2 s (longest %.2fs)', $max));
$_->close for @many;

# -- HTTP/2: the stream ends, curl sees a complete response ----------------------

SKIP: {
    my $ver = `curl --version 2>/dev/null` // '';
    skip_tests('curl with HTTP/2 is needed', 4) unless $ver =~ /HTTP2/;
    my $c0 = time;
    my ($rc, $out, $err) = $t->curl('--http2-prior-knowledge', '-i', '-N',
        '-H', 'Accept: text/event-stream', $t->url('/sub?ch=h2', 2));
    my $dt = time - $c0;
    is($rc, 0, 'HTTP/2: curl exits 0 (the stream ended with END_STREAM, no reset)')
        or diag($err);
    like($out, qr{^HTTP/2 200}, 'HTTP/2: it was a 200 stream');
    like($out, qr/^:ok$/m, 'HTTP/2: with its first comment');
    ok($dt > 1 && $dt < tmo(4), sprintf('HTTP/2: it ended after its lifetime (%.2fs)', $dt));
}

# -- a client that keeps reconnecting loses nothing ------------------------------

my $N = 150;
my $f = SSETest::Follower->new($t, '/sub?ch=flow');
ok($f->wait_for(sub { $f->stream && @{$f->stream->comments} }, 2), 'a follower (EventSource-like)');
my $pid = $t->publisher('/pub?ch=flow', $N, prefix => 'f', interval => 0.02);
ok($f->wait_events($N, 20), "it got all $N events (published over ~3 s)")
    or diag('got ' . scalar(@{$f->events}));
is($t->wait_proc($pid, 10), 0, 'the publisher published them all');
$f->wait_events($N + 1, 0.3);
is_deeply([$f->data], [map { "f$_" } 1 .. $N], 'every event exactly once, in order');
cmp_ok($f->connections, '>=', 2, 'over ' . $f->connections . ' connections (the lifetime ended them)');
is(scalar(grep { $_ != 200 } @{$f->statuses}), 0, 'every connection ended as a 200 stream');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$f->events}), 0, 'no reset was needed');
$f->close;

ok(!$never->is_closed, 'the stream without a lifetime is still open');
ok(wait_until(sub { ($t->zone_status('z')->{subscribers} // -1) == 1 }, 3),
    'status: only it is counted');
$never->close;

$t->done;
