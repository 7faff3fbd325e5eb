# sse_status histograms, per zone: publish -> flush latency of live events
# (sse_publish_flush_seconds) and the durations of ended streams
# (sse_stream_duration_seconds), in the Prometheus text format and in the
# JSON.
#
# Buckets are cumulative and end with +Inf, the count is the number of
# live deliveries (replays of history are not a latency), the sum is
# plausible, an event held back by a reader that stops reading lands in a
# bucket above one second, and a stream's duration lands in its bucket
# when it ends.
#
# The slow reader connects to a second port with a small SO_SNDBUF
# (sndbuf=16k) and sets a small SO_RCVBUF itself (as t/350 does): a large
# first event fills the kernel's buffers, so what follows waits in the
# module's buffer until the reader reads.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone fast 2m;
    sse_zone slow 4m history=100;
    sse_zone life 1m;
    sse_zone kinds 1m;
    limit_conn_zone $binary_remote_addr zone=perip:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;
        listen 127.0.0.1:%%PORT3%% http2;
        sse_heartbeat off;

        location /fsub { sse_subscribe $arg_ch zone=fast; }
        location /fpub { sse_publish $arg_ch zone=fast; }
        location /ssub { sse_subscribe $arg_ch zone=slow; }
        location /spub { sse_publish $arg_ch zone=slow; }
        location /lsub { sse_subscribe $arg_ch zone=life; }
        location /ksub { sse_subscribe $arg_ch zone=kinds; }
        location /kpub { sse_publish $arg_ch zone=kinds; }
        # limit_conn keeps a stream on its request (the filter chain)
        location /rsub { sse_subscribe $arg_ch zone=kinds; limit_conn perip 100; }
        location = /status { sse_status; }
    }
}
EOF

my @LATENCY = qw(0.001 0.002 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 +Inf);
my @DURATION = qw(1 10 60 300 1800 3600 +Inf);

# the Prometheus text: { metric => { zone => { le => n, sum => s, count => n } } },
# and the order of the le labels per metric and zone
sub prometheus {
    my $r = $t->get('/status?format=prometheus');
    my (%h, %order);
    for (split /\n/, $r->body) {
        if (/^(sse_\w+)_bucket\{zone="([^"]*)",le="([^"]+)"\} (\d+)$/) {
            $h{$1}{$2}{$3} = $4;
            push @{$order{$1}{$2}}, $3;
        } elsif (/^(sse_\w+)_(sum|count)\{zone="([^"]*)"\} ([\d.]+)$/) {
            $h{$1}{$3}{$2} = $4;
        }
    }
    return (\%h, \%order, $r->body);
}

sub latency { my ($zone) = @_; my ($h) = prometheus(); return $h->{sse_publish_flush_seconds}{$zone} // {} }
sub duration { my ($zone) = @_; my ($h) = prometheus(); return $h->{sse_stream_duration_seconds}{$zone} // {} }

# every bucket line, in order, cumulative, +Inf equal to the count
sub well_formed {
    my ($h, $order, $metric, $zone, $les) = @_;
    my $got = $h->{$metric}{$zone};
    is_deeply($order->{$metric}{$zone}, $les, "$metric\{zone=$zone}: every bucket, in order");
    my @n = map { $got->{$_} // -1 } @$les;
    ok(!grep({ $n[$_] < $n[$_ - 1] } 1 .. $#n), "... cumulative (@n)");
    is($got->{'+Inf'}, $got->{count}, '... +Inf equals the count');
    like($got->{sum} // '', qr/^\d+\.\d{3}$/, '... the sum is in seconds');
}

# -- before anything happened: every histogram is there, empty ------------

{
    my ($h, $order, $body) = prometheus();
    like($body, qr/^# TYPE sse_publish_flush_seconds histogram$/m, 'TYPE histogram: latency');
    like($body, qr/^# TYPE sse_stream_duration_seconds histogram$/m, 'TYPE histogram: durations');
    like($body, qr/^# HELP sse_publish_flush_seconds \S/m, 'HELP: latency');
    for my $z (qw(fast slow life)) {
        well_formed($h, $order, 'sse_publish_flush_seconds', $z, \@LATENCY);
        well_formed($h, $order, 'sse_stream_duration_seconds', $z, \@DURATION);
        is($h->{sse_publish_flush_seconds}{$z}{count}, 0, "zone $z: no latency yet");
    }
    # nothing else in the text changed its shape
    my @bad = grep { !/^#/ && length
        && !/^sse_[a-z_]+\{zone="[a-z]+"(,le="([0-9.]+|\+Inf)")?\} \d+(\.\d+)?$/ } split /\n/, $body;
    is_deeply(\@bad, [], 'every sample line is well formed');
}

# -- live events: one observation per event per stream ---------------------

my @subs = map { $t->subscribe('/fsub?ch=a') } 1 .. 3;
$_->wait_comment(1) for @subs;
ok(wait_until(sub { ($t->zone_status('fast')->{subscribers} // 0) == 3 }, 3),
    'three subscribers');

my $t0 = time;
$t->publish('/fpub?ch=a', "e$_") for 1 .. 10;
ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= 10 }, tmo(5)),
    'each subscriber got 10 events');
my $elapsed = time - $t0;

ok(wait_until(sub { (latency('fast')->{count} // 0) == 30 }, tmo(3)),
    'latency count: 30, one per event per subscriber')
    or diag(explain latency('fast'));
my $fast = $t->zone_status('fast');
is($fast->{delivered}, 30, 'delivered agrees: 30');
my $l = latency('fast');
cmp_ok($l->{sum}, '<=', 30 * ($elapsed + 0.01),
    sprintf('sum %.3f s is at most 30 x the %.3f s it took', $l->{sum}, $elapsed));
cmp_ok($l->{sum}, '>=', 0, 'and not negative');
if ($elapsed < 1) {
    is($l->{'+Inf'} - $l->{1}, 0, 'all in the buckets up to a second, as each took less');
} else {
    pass("a busy machine: delivering took $elapsed s");
}

# the JSON has the same figures
my $j = $fast->{publish_flush_seconds};
is(ref $j, 'HASH', 'JSON: publish_flush_seconds');
is($j->{count}, 30, 'JSON: count 30');
is_deeply([map { $_->{le} } @{$j->{buckets} // []}], \@LATENCY, 'JSON: every bucket, in order');
is_deeply([map { $_->{count} } @{$j->{buckets}}], [map { $l->{$_} } @LATENCY],
    'JSON: the same cumulative counts');
is(sprintf('%.3f', $j->{sum}), $l->{sum}, 'JSON: the same sum');
is(ref $fast->{stream_duration_seconds}, 'HASH', 'JSON: stream_duration_seconds');

# a resume from history is delivered but is not a latency
my $resume = $t->subscribe('/fsub?ch=a',
    headers => { 'Last-Event-ID' => $subs[0]->events->[4]{id} });
ok($resume->wait_events(5, tmo(3)), 'a resumed stream got the 5 events after its id');
ok(wait_until(sub { ($t->zone_status('fast')->{delivered} // 0) == 35 }, tmo(3)),
    'delivered: 35');
is(latency('fast')->{count}, 30, 'latency count: still 30 (a replay is not timed)');
$t->publish('/fpub?ch=a', 'live');
ok(wait_until(sub { (latency('fast')->{count} // 0) == 34 }, tmo(3)),
    'one live event more: 4 more observations');

# -- a slow reader: what waits for it lands above a second ----------------

my $slow = $t->subscribe('/ssub?ch=s', rcvbuf => 4096, port => 2);
ok($slow->wait_comment(1), 'a subscriber that will stop reading');
ok(wait_until(sub { ($t->zone_status('slow')->{subscribers} // 0) == 1 }, 3),
    'it is counted');

my $BIG = 200_000;   # far beyond what the kernel buffers for it
# then more small ones, each in a millisecond of its own, than a buffer
# keeps marks for (64): the newest share the last mark, all are counted
my $MARKERS = 100;
my $first = time;
is($t->publish('/spub?ch=s', 'x' x $BIG)->status, 201, 'a large event for it');
for (1 .. $MARKERS) {
    $t->publish('/spub?ch=s', "m$_");
    sleep 0.002;
}

# the reader does not read for 1.5 s: that delay is what is measured
sleep 1.5;
is(latency('slow')->{count}, 0, 'nothing reached its socket whole while it did not read');

ok($slow->wait_events(1 + $MARKERS, tmo(5)), 'it reads: every event arrives');
my $waited = time - $first;
ok(wait_until(sub { (latency('slow')->{count} // 0) == 1 + $MARKERS }, tmo(3)),
    'latency count: ' . (1 + $MARKERS))
    or diag(explain latency('slow'));
$l = latency('slow');
is($l->{1}, 0, 'none of them is in a bucket of a second or less');
is($l->{'+Inf'}, 1 + $MARKERS, 'all of them are above a second');
cmp_ok($l->{sum}, '>=', (1 + $MARKERS) * 1.5, "sum $l->{sum} s: each waited 1.5 s or more");
cmp_ok($l->{sum}, '<=', (1 + $MARKERS) * ($waited + 0.05),
    sprintf('... and no more than the %.3f s from the first publish until they were read', $waited));
if ($waited < 2.45) {
    is($l->{'2.5'}, 1 + $MARKERS, 'they are in the 2.5 s bucket');
} else {
    pass("a busy machine: read only after $waited s");
}
is(latency('fast')->{count}, 34, 'the other zone is untouched');

# -- every kind of stream is timed ---------------------------------------------
# detached HTTP/1.1 (chunks to the socket), detached HTTP/1.0 (close
# delimited), on its request (limit_conn), HTTP/2 (on its request, in
# frames)

my @kinds = ($t->subscribe('/ksub?ch=k'), $t->subscribe('/ksub?ch=k', proto => 'HTTP/1.0'),
    $t->subscribe('/rsub?ch=k'));
$_->wait_comment(1) for @kinds;
my $h2 = (`curl --version 2>/dev/null` // '') =~ /HTTP2/;
my $h2s = $h2 ? $t->curl_subscribe($t->url('/ksub?ch=k', 3), '--http2-prior-knowledge') : undef;
my $nsubs = @kinds + ($h2s ? 1 : 0);
ok(wait_until(sub { ($t->zone_status('kinds')->{subscribers} // 0) == $nsubs }, tmo(3)),
    "$nsubs subscribers of zone kinds");
$t->publish('/kpub?ch=k', "k$_") for 1 .. 4;
ok(SSETest::Stream::wait_all(\@kinds, sub { $_[0]->event_count >= 4 }, tmo(5)),
    'HTTP/1.1, HTTP/1.0 and a stream on its request got the events');
SKIP: {
    skip_tests('curl without HTTP/2', 1) unless $h2s;
    ok($h2s->wait_events(4, tmo(5)), 'HTTP/2 got them');
}
ok(wait_until(sub { (latency('kinds')->{count} // 0) == 4 * $nsubs }, tmo(3)),
    'latency count: 4 per stream, each kind of stream')
    or diag(explain latency('kinds'));
$_->close for @kinds;
$h2s->close if $h2s;

# -- stream durations ---------------------------------------------------------

is(duration('life')->{count}, 0, 'no stream of zone life ended yet');
my $short = $t->subscribe('/lsub?ch=d');
my $long = $t->subscribe('/lsub?ch=d');
ok($short->wait_comment(1) && $long->wait_comment(1), 'two streams');
my $opened = time;
$short->close;
ok(wait_until(sub { (duration('life')->{count} // 0) == 1 }, tmo(3)),
    'a stream ended: count 1');
my $d = duration('life');
if (time - $opened < 0.9) {
    is($d->{1}, 1, 'it lasted under a second: bucket le="1"');
} else {
    pass('a busy machine: the short stream took a second to end');
}

# the long one lasts 1.2 s, then ends
sleep(1.2 - (time - $opened)) if time - $opened < 1.2;
$long->close;
my $lasted = time - $opened;
ok(wait_until(sub { (duration('life')->{count} // 0) == 2 }, tmo(3)),
    'the second stream ended: count 2');
$d = duration('life');
is($d->{10} - $d->{1}, 1, 'it lasted over a second: bucket le="10", not le="1"')
    or diag(explain $d);
cmp_ok($d->{sum}, '>=', 1.2, "sum $d->{sum} s: at least the long stream's 1.2 s");
cmp_ok($d->{sum}, '<=', 2 * ($lasted + tmo(0.2)), '... and at most both streams\' time');

# durations of every stream that ended: the fast zone's four and the slow one
$_->close for @subs, $resume, $slow;
ok(wait_until(sub { (duration('fast')->{count} // 0) == 4 }, tmo(3)),
    'zone fast: the four streams that ended are counted');
ok(wait_until(sub { (duration('slow')->{count} // 0) == 1 }, tmo(3)),
    'zone slow: its stream too');

# -- the histograms live in the zone: a reload keeps them ----------------------

my ($h_before) = prometheus();
$t->reload;
my ($h_after) = prometheus();
for my $m (qw(sse_publish_flush_seconds sse_stream_duration_seconds)) {
    is_deeply($h_after->{$m}, $h_before->{$m}, "$m: the same after a reload");
}

$t->done;
