# Slow readers: a subscriber that stops reading falls more than
# sse_max_pending behind and is disconnected (counted as dropped_slow),
# while a subscriber of the same channel on the same worker keeps getting
# every event at once.  The dropped one reconnects with its last id and
# resumes from history: the missed events, or a "gap" reset when they were
# evicted meanwhile.  And the worker's memory stays bounded with many
# stalled readers.
#
# The stalled readers connect to a second port whose listen socket has a
# small SO_SNDBUF (sndbuf=16k), and set a small SO_RCVBUF themselves: the
# kernel then buffers a few tens of kilobytes for them, so they are behind
# after a few events instead of after megabytes (loopback send buffers
# autotune up to net.ipv4.tcp_wmem).  The port is served by the same single
# worker as everything else.
#
# harness: serial (tight time bounds: the fast reader within 0.5 s); t/run-all.sh runs it
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
    sse_zone z 16m history=1000;
    sse_zone g 4m history=4;
    sse_zone m 4m history=10;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;

        sse_max_pending 32k;
        sse_heartbeat off;

        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location /gsub { sse_subscribe $arg_ch zone=g; }
        location /gpub { sse_publish $arg_ch zone=g; }
        location /msub { sse_subscribe $arg_ch zone=m; }
        location /mpub { sse_publish $arg_ch zone=m; }
        location = /status { sse_status; }
    }
}
EOF

my ($worker) = $t->active_workers;
ok($worker, 'one worker');

my $SIZE = 8000;
sub payload { my ($tag, $n) = @_; return sprintf("%s%05d-", $tag, $n) . ('x' x $SIZE) }

# publishes events n .. m of a channel; after each, the fast subscriber
# must have it within a second.  Returns (publish statuses ok, events late,
# max latency, ids)
sub publish_watched {
    my ($path, $tag, $from, $to, $fast, $extra) = @_;
    my ($bad, $late, $max, @ids) = (0, 0, 0);
    for my $n ($from .. $to) {
        my $t0 = time;
        my $r = $t->publish($path, payload($tag, $n));
        $bad++ unless $r->status == 201 || $r->status == 202;
        push @ids, $r->json->{id};
        if ($fast->wait_events($n, 1)) {
            my $lat = $fast->events->[$n - 1]{time} - $t0;
            $max = $lat if $lat > $max;
        } else {
            $late++;
        }
        $extra->($n) if $extra;
    }
    return ($bad, $late, $max, @ids);
}

# reads a stalled stream to its end; the events it got completely
sub drain {
    my ($s) = @_;
    my $closed = $s->wait_closed(10);
    return ($closed, @{$s->events});
}

# -- a slow reader is cut, a fast one on the same worker is not -------------

my $fast = $t->subscribe('/sub?ch=a');
my $slow = $t->subscribe('/sub?ch=a', rcvbuf => 4096, port => 2);
ok($fast->wait_comment(1) && $slow->wait_comment(1), 'a fast and a slow subscriber of channel a');
ok(wait_until(sub { ($t->zone_status('z')->{subscribers} // 0) == 2 }, 2),
    'both are counted');

my $N = 60;
my ($bad, $late, $max, @ids) = publish_watched('/pub?ch=a', 'a', 1, $N, $fast);
is($bad, 0, "$N events of 8 KB published (${\ ($N * $SIZE / 1000)} KB, far beyond sse_max_pending 32k)");
is($late, 0, 'the fast subscriber got every event within a second of its publish');
cmp_ok($max, '<', tmo(0.5), sprintf('... the slowest in %.3fs', $max));

ok(wait_until(sub { ($t->zone_status('z')->{dropped_slow} // 0) == 1 }, 3),
    'dropped_slow: 1')
    or diag(explain $t->zone_status('z'));
ok(wait_until(sub { ($t->zone_status('z')->{subscribers} // 0) == 1 }, 3),
    'status counts only the fast subscriber now');
is(($t->channel_info('/pub?ch=a') // {})->{subscribers}, 1, 'and so does the channel');

is_deeply([$fast->data], [map { payload('a', $_) } 1 .. $N],
    'the fast subscriber got all events, in order');
ok(!$fast->is_closed && !$fast->error, 'its stream is still open and well formed');

my ($closed, @got) = drain($slow);
ok($closed && $slow->eof, 'the slow subscriber, once it reads, finds its connection closed');
my $k = @got;
ok($k < $N, "it got only the first $k events before it was cut");
is_deeply([map { $_->{data} } @got], [map { payload('a', $_) } 1 .. $k],
    '... those in order');
my $last = $k ? $got[-1]{id} : undef;

# it reconnects with the id of the last event it got completely
my $again = $t->subscribe('/sub?ch=a', port => 2,
    $last ? (headers => { 'Last-Event-ID' => $last }) : ());
ok($again->wait_events($N - $k, 3), 'reconnected with its last id, it gets the missed events');
ok(!$again->wait_events($N - $k + 1, 0.3), '... and not more');
is_deeply([$again->data], [map { payload('a', $_) } $k + 1 .. $N],
    '... exactly those after its last id, in order');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$again->events}), 0, '... no reset');
is_deeply([map { $_->{id} } @{$again->events}], [@ids[$k .. $N - 1]],
    '... with the ids the publishes got');

# and then everybody gets live events again
my $r = $t->publish('/pub?ch=a', 'live');
is($r->status, 201, 'a live event');
is($r->json->{subscribers}, 2, '... reaches 2 subscribers');
ok($fast->wait_events($N + 1, 1) && $again->wait_events($N - $k + 1, 1),
    '... both get it');
is($again->events->[-1]{data}, 'live', '... the resumed one too');
$again->close;
$slow->close;

# -- an HTTP/1.0 slow reader (the stream stays on its request) ---------------

my $slow10 = $t->subscribe('/sub?ch=a', rcvbuf => 4096, port => 2, proto => 'HTTP/1.0');
ok($slow10->wait_comment(1), 'a slow HTTP/1.0 subscriber');
my $base = $fast->event_count;
my $extra_bad = 0;
for my $n (1 .. 40) {
    my $r = $t->publish('/pub?ch=a', payload('h', $n));
    $extra_bad++ unless $r->status == 201 || $r->status == 202;
    $extra_bad++ unless $fast->wait_events($base + $n, 1);
}
is($extra_bad, 0, '40 more events: the fast subscriber gets each at once');
ok(wait_until(sub { ($t->zone_status('z')->{dropped_slow} // 0) == 2 }, 3),
    'dropped_slow: 2');
ok($slow10->wait_closed(10), 'the HTTP/1.0 slow reader finds its connection closed');
ok($slow10->event_count < 40, '... after ' . $slow10->event_count . ' events');
ok(!$fast->is_closed, 'the fast subscriber is still there');
$slow10->close;

# -- the missed events were evicted: the resume gets a gap reset --------------

my $gfast = $t->subscribe('/gsub?ch=b');
my $gslow = $t->subscribe('/gsub?ch=b', rcvbuf => 4096, port => 2);
ok($gfast->wait_comment(1) && $gslow->wait_comment(1), 'history=4: a fast and a slow subscriber');
my $G = 30;
my @gids;
($bad, $late, $max, @gids) = publish_watched('/gpub?ch=b', 'b', 1, $G, $gfast);
is($bad + $late, 0, "$G events: the fast one got each at once");
ok(wait_until(sub { ($t->zone_status('g')->{dropped_slow} // 0) == 1 }, 3),
    'the slow one was dropped');
($closed, @got) = drain($gslow);
ok($closed, 'it finds its connection closed');
$k = @got;
ok($k > 0 && $k < $G - 4, "it got $k events, so more than history=4 were missed");
my $gs = $t->subscribe('/gsub?ch=b', headers => { 'Last-Event-ID' => $got[-1]{id} });
ok($gs->wait_events(5, 3), 'it resumes with its last id');
ok(!$gs->wait_events(6, 0.3), '...');
my $e = $gs->events->[0];
is($e && $e->{type}, 'reset', 'the first event is a reset');
is_deeply(json_decode($e && $e->{data}) // {}, { reason => 'gap', channel => 'b' },
    '... reason gap, for channel b');
is_deeply([map { $_->{data} } @{$gs->events}[1 .. 4]], [map { payload('b', $_) } $G - 3 .. $G],
    '... then the 4 events history still has');
$gs->close;
$gslow->close;
$gfast->close;

# -- 50 stalled readers: the worker's memory stays bounded ----------------------

sub mem {
    my ($pid) = @_;
    my $st = SSETest::_slurp("/proc/$pid/status") // '';
    my ($rss) = $st =~ /^VmRSS:\s+(\d+)\s+kB/m;
    my ($anon) = $st =~ /^RssAnon:\s+(\d+)\s+kB/m;
    return ($rss // 0, $anon // 0);
}

my $STALLED = 50;
my @stalled = map {
    $t->subscribe('/msub?ch=mem', rcvbuf => 4096, port => 2, untracked => 1)
} 1 .. $STALLED;
my $mfast = $t->subscribe('/msub?ch=mem');
ok(SSETest::Stream::wait_all([@stalled, $mfast], sub { @{$_[0]->comments} >= 1 }, 5),
    "$STALLED stalled subscribers and one that reads");
ok(wait_until(sub { ($t->zone_status('m')->{subscribers} // 0) == $STALLED + 1 }, 3),
    'all counted');

# warm up the worker's buffers for one reader, then take the baseline
$t->publish('/mpub?ch=mem', 'warm-up');
$mfast->wait_events(1, 1);
my ($rss0, $anon0) = mem($worker);
ok($rss0 > 0, "worker VmRSS before: $rss0 kB (RssAnon $anon0 kB)");

my $BIG = 16000;
my $M = 320;        # 320 x 16 KB = 5 MB
my ($rss_max, $anon_max) = ($rss0, $anon0);
my $mbad = 0;
for my $n (1 .. $M) {
    my $r = $t->publish('/mpub?ch=mem', sprintf("m%05d-", $n) . ('y' x $BIG));
    $mbad++ unless $r->status == 201 || $r->status == 202;
    $mbad++ unless $mfast->wait_events($n + 1, 1);
    $mfast->forget if $n % 50 == 0;
    if ($n % 10 == 0) {
        my ($rss, $anon) = mem($worker);
        $rss_max = $rss if $rss > $rss_max;
        $anon_max = $anon if $anon > $anon_max;
    }
}
is($mbad, 0, "$M events of 16 KB (5 MB): the reading subscriber got each at once");
ok(wait_until(sub { ($t->zone_status('m')->{dropped_slow} // 0) == $STALLED }, 3),
    "dropped_slow: $STALLED")
    or diag(explain $t->zone_status('m'));
ok(wait_until(sub { ($t->zone_status('m')->{subscribers} // 0) == 1 }, 3),
    'only the reading subscriber is left');
my ($rss1, $anon1) = mem($worker);
$rss_max = $rss1 if $rss1 > $rss_max;
$anon_max = $anon1 if $anon1 > $anon_max;
# unbounded, the 50 stalled readers would hold 50 x 5 MB.  (Under a
# sanitizer, freed memory sits in a quarantine: RSS says nothing there.)
SKIP: {
    skip 'worker memory is not measurable under a sanitizer', 2 if sanitized();
    cmp_ok($rss_max - $rss0, '<', 32 * 1024,
        "worker VmRSS grew by at most 32 MB (grew " . ($rss_max - $rss0) . " kB)");
    cmp_ok($anon_max - $anon0, '<', 24 * 1024,
        "worker heap (RssAnon) grew by at most 24 MB (grew " . ($anon_max - $anon0) . " kB)");
}
is(scalar $t->active_workers, 1, 'the worker is still the same one');
is(($t->active_workers)[0], $worker, '...');
$_->close for @stalled;

$t->done;
