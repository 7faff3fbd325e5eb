# Shutdown with streams open: on SIGQUIT (graceful) the workers end their
# streams promptly -- HTTP/1.1 and HTTP/2 -- and nginx exits in a moment,
# not when the clients go away; SIGTERM (fast) as well.  No alert either way.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;

my $conf = <<'EOF';
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        sse_heartbeat 1s;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
    }
}
EOF

my $has_h2 = `curl --version 2>/dev/null` =~ /HTTP2/;

for my $sig (qw(QUIT TERM)) {
    my $t = SSETest->new(workers => 2)->run($conf);

    # untracked: the harness must not close them before stopping nginx
    my @subs = map { $t->subscribe("/sub?ch=c$_", untracked => 1) } 1 .. 20;
    my $h2 = $has_h2 ? $t->curl_subscribe($t->url('/sub?ch=c1', 2),
        '--http2-prior-knowledge') : undef;
    ok(SSETest::Stream::wait_all(\@subs, sub { @{$_[0]->comments} }, 2),
        "$sig: 20 HTTP/1.1 streams open");
    ok(!$h2 || $h2->wait_comment(2), "$sig: an HTTP/2 stream open");
    $t->publish("/pub?ch=c$_", 'before') for 1 .. 20;
    ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count }, 2),
        "$sig: events flow");

    my $t0 = time;
    kill $sig, $t->master_pid;
    ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->is_closed }, 3),
        "$sig: every HTTP/1.1 stream ends");
    ok(!$h2 || $h2->wait_closed(3), "$sig: the HTTP/2 stream ends");
    ok(wait_until(sub { $t->_reap }, 5), "$sig: nginx exits");
    my $took = time - $t0;
    ok($took < tmo(3), sprintf("$sig: ... within %.2fs", $took));
    if ($sig eq 'QUIT') {
        is(scalar(grep { $_->complete } @subs), 20,
            'QUIT: the streams end cleanly (last chunk), so clients reconnect at once');
    }
    is(scalar(grep { $_->event_count == 1 } @subs), 20,
        "$sig: no event was lost before the end");
    $_->close for @subs;
    $h2->close if $h2;
    $t->check_log("$sig: no alert during shutdown");
}

done_testing;
