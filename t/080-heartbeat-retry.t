# sse_retry puts a retry: field at the start of the stream; sse_heartbeat
# sends a comment line after that much silence (and only then).
#
# harness: serial (tight time bounds: heartbeat intervals); t/run-all.sh runs it
# alone, after the files that run two at a time.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_heartbeat 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /retry  { sse_subscribe $arg_ch; sse_retry 2500ms; }
        location /retry5 { sse_subscribe $arg_ch; sse_retry 5s; sse_heartbeat off; }
        location /hb     { sse_subscribe $arg_ch; }
        location /quiet  { sse_subscribe $arg_ch; sse_heartbeat off; }
        location /pub    { sse_publish $arg_ch; }
    }
}
EOF

# -- sse_retry --------------------------------------------------------------

my $s = $t->subscribe('/retry5?ch=r');
ok($s->wait_comment(1), 'stream open');
like($s->raw, qr/\Aretry: 5000\n/, 'sse_retry 5s: the stream starts with "retry: 5000"');
is($s->retry, 5000, 'EventSource reads a reconnection time of 5000 ms');
is($s->items->[0]{kind}, 'retry', 'the retry field comes first');
is($s->items->[1]{kind}, 'comment', 'then the first comment');
$t->publish('/pub?ch=r', 'x');
ok($s->wait_events(1, 2), 'events follow');
is(scalar(() = $s->raw =~ /^retry:/mg), 1, 'retry: is sent once');

$s = $t->subscribe('/retry?ch=r');
ok($s->wait_comment(1), 'stream open');
like($s->raw, qr/\Aretry: 2500\n/, 'sse_retry 2500ms: "retry: 2500"');

$s = $t->subscribe('/hb?ch=r');
ok($s->wait_comment(1), 'stream without sse_retry');
unlike($s->raw, qr/retry:/, 'no retry: field by default');

# -- sse_heartbeat after silence ----------------------------------------------

$s = $t->subscribe('/hb?ch=hb');
my $first = $s->wait_comment(1);
ok($first, 'first comment');
my $hb = $s->wait_comment(3);
ok($hb, 'sse_heartbeat 1s: a comment comes after a second of silence');
my $gap = $hb ? $hb->{time} - $first->{time} : 0;
ok($gap > 0.8, sprintf('... not before the second has passed (%.2fs)', $gap));
ok($gap < tmo(3), sprintf('... and not much after (%.2fs)', $gap));
my $hb2 = $s->wait_comment(3);
ok($hb2, 'heartbeats continue while the silence lasts');
ok($hb2 && $hb2->{time} - $hb->{time} > 0.8, '... about once a second');
like($s->raw, qr/\n\n:[^\n]*\n/, 'a heartbeat is a comment line at an event boundary');
is($s->event_count, 0, 'heartbeats are not events');

# events count as activity: no heartbeat while events flow faster
$s = $t->subscribe('/hb?ch=busy');
ok($s->wait_comment(1), 'a second stream');
my $until = time + 2.5;
my $n = 0;
my ($last, $max_gap) = (time, 0);
while (time < $until) {
    $t->publish('/pub?ch=busy', 'tick ' . $n++);
    my $now = time;
    $max_gap = $now - $last if $now - $last > $max_gap;
    $last = $now;
    sleep 0.25;      # a gap shorter than the heartbeat interval
}
ok($s->wait_events($n, 2), "all $n events arrived");
# Every comment after the first must have come in a silence of more than
# 0.7 s between received events: on a machine so loaded that this process
# stalled, the server may rightly have seen a second of silence, and that
# shows here as a gap, not as a reason to skip the check.
my @times = map { $_->{time} } @{$s->events};
my $checked_at = time;
my @early;
for my $c (@{$s->comments}[1 .. $#{$s->comments}]) {
    my ($before) = reverse grep { $_ <= $c->{time} } @times;
    my ($after) = grep { $_ >= $c->{time} } @times;
    $before //= $s->comments->[0]{time};
    $after //= $checked_at;
    push @early, sprintf('%.2fs', $after - $before) if $after - $before < 0.7;
}
is(scalar(@early), 0, sprintf('no heartbeat while an event left at least every 0.25s '
    . '(longest gap between publishes %.2fs)', $max_gap))
    or diag("heartbeats in gaps of @early");
ok($s->wait_comment(3), 'the heartbeat resumes once it is silent');

# -- sse_heartbeat off --------------------------------------------------------

$s = $t->subscribe('/quiet?ch=q');
ok($s->wait_comment(1), 'a stream with sse_heartbeat off');
ok(!$s->wait_comment(2.5), 'no comment in 2.5 seconds of silence');
ok(!$s->is_closed, 'the stream stays open');

$t->done;
