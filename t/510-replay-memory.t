# What a replay costs a worker is bounded by sse_max_pending, whatever the
# client asked to replay (issue 10 item 3): 20 clients that never read,
# each with a garbage Last-Event-ID ("reset unknown", then the whole
# history), against 40 stored events of 500 KB (20 MB of history).  Before
# lazy replay every connection copied the whole history into its buffer:
# 20 x 20 MB of worker memory.  Now a stream holds at most
# sse_max_pending (1m here) and pulls the rest as its socket drains, so the
# worker grows by at most clients x sse_max_pending plus a constant (8 MB:
# scratch buffers, allocator slack, connection structures).
#
# Then the same clients read: each gets the reset and all 40 events, in
# order, once, while the worker's memory stays within the same bound.
#
# The clients connect to a port with a small SO_SNDBUF and set a small
# SO_RCVBUF: the kernel holds a few tens of kilobytes for each, so what the
# worker holds is what is measured (VmRSS of /proc/<pid>/status).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_zone sse 64m history=40;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;
        sse_heartbeat off;
        sse_max_pending 1m;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my ($worker) = $t->wait_workers(1);
ok($worker, 'one worker');

# Under a sanitizer, freed memory sits in a quarantine: RSS says nothing
# there, and the memory bounds are skipped (delivery is still checked).
sub within {
    my ($grew, $bound, $name) = @_;
    SKIP: {
        skip 'worker memory is not measurable under a sanitizer', 1 if sanitized();
        cmp_ok($grew, '<=', $bound, $name);
    }
}

my $EVENTS = 40;
my $SIZE = 500_000;
my $CLIENTS = 20;
my $MAX_PENDING = 1024 * 1024;
my $CONSTANT = 8 * 1024 * 1024;

# the history, and one stream that reads it all (warms the worker's
# buffers, so the baseline includes what every worker keeps anyway)
for my $n (1 .. $EVENTS) {
    my $r = $t->publish('/pub?ch=big', sprintf('%04d', $n) . ('x' x ($SIZE - 4)));
    ok($r->status == 202, "event $n of 500 KB: " . $r->status) unless $r->status == 202;
}
is(($t->channel_info('/pub?ch=big') // {})->{events}, $EVENTS, "$EVENTS events of 500 KB stored");
my $warm = $t->subscribe('/sub?ch=big', headers => { 'Last-Event-ID' => 'junk' });
ok($warm->wait_events($EVENTS + 1, 20), 'a reading client gets the reset and the whole history');
$warm->close;
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == 0 }, 5), 'and is gone');

my $base = (rss_kb($worker) // 0);
ok($base, "worker RSS before: $base kB");

# -- 20 clients that never read ----------------------------------------------

my @c;
for (1 .. $CLIENTS) {
    push @c, $t->subscribe('/sub?ch=big', port => 2, rcvbuf => 4096,
        keep_raw => 0, headers => { 'Last-Event-ID' => 'junk' });
}
is(scalar(grep { ($_->status // 0) == 200 } @c), $CLIENTS, "$CLIENTS clients with Last-Event-ID: junk, none reading");
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == $CLIENTS }, 5), 'all subscribed');
# what they would copy, they copy at once: the RSS once the worker is idle
my $peak = rss_settled($worker, 10);
ok(defined $peak, 'the worker settles with nobody reading');
$peak //= 0;
my $grew = ($peak - $base) * 1024;
my $bound = $CLIENTS * $MAX_PENDING + $CONSTANT;
within($grew, $bound, sprintf('the worker grew by %.1f MB, at most %d x sse_max_pending + %d MB (%.1f MB)',
    $grew / 1048576, $CLIENTS, $CONSTANT / 1048576, $bound / 1048576));

# -- now they read ------------------------------------------------------------

my $max = $peak;
my $done = SSETest::Stream::wait_all(\@c, sub {
    my $r = rss_kb($worker) // 0;
    $max = $r if $r > $max;
    $_[0]->event_count >= $EVENTS + 1 }, 60);
ok($done, "each client, once it reads, gets the reset and all $EVENTS events");
my $exact = grep {
    my @e = @{$_->events};
    @e == $EVENTS + 1 && ($e[0]{type} // '') eq 'reset'
    && join(',', map { substr($_->{data}, 0, 4) } @e[1 .. $#e]) eq join(',', map { sprintf '%04d', $_ } 1 .. $EVENTS)
    && !grep { length($_->{data}) != $SIZE } @e[1 .. $#e]
} @c;
is($exact, $CLIENTS, '... in order, each once, whole');
$grew = ($max - $base) * 1024;
within($grew, $bound, sprintf('the worker grew by at most %.1f MB while they read', $grew / 1048576));
is($t->zone_status->{dropped_slow}, 0, 'nobody was dropped as too slow: a replay may be behind by itself');
$_->close for @c;
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == 0 }, 5), 'they are gone');

# -- 64 channels per stream ---------------------------------------------------

# 10 clients that never read, each on 64 channels with a garbage id: 64
# resets, then 64 histories of 10 events of 16 KB (10 MB per client).
my $CH = 64;
my $PER = 10;
my $SMALL = 16_000;
my @list = map { "m$_" } 1 .. $CH;
for my $ch (@list) {
    for my $n (1 .. $PER) {
        my $r = $t->publish("/pub?ch=$ch", "$ch:" . sprintf('%02d', $n) . ('x' x $SMALL));
        ok(0, "publish to $ch") unless $r->status == 202;
    }
}
$base = (rss_kb($worker) // 0);
my $M = 10;
my @m;
for (1 .. $M) {
    push @m, $t->subscribe('/sub?ch=' . join(',', @list), port => 2, rcvbuf => 4096,
        keep_raw => 0, headers => { 'Last-Event-ID' => 'junk' });
}
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == $M }, 5), "$M clients on $CH channels each, none reading");
$grew = ((rss_settled($worker, 10) // 0) - $base) * 1024;
$bound = $M * $MAX_PENDING + $CONSTANT;
within($grew, $bound, sprintf('the worker grew by %.1f MB, at most %d x sse_max_pending + 8 MB (%.1f MB)',
    $grew / 1048576, $M, $bound / 1048576));

$max = (rss_kb($worker) // 0);
ok(SSETest::Stream::wait_all(\@m, sub {
    my $r = rss_kb($worker) // 0;
    $max = $r if $r > $max;
    $_[0]->event_count >= $CH * ($PER + 1) }, 60),
    'once they read, each gets 64 resets and 64 histories');
my $right = grep {
    my @e = @{$_->events};
    my @resets = grep { ($_->{type} // '') eq 'reset' } @e;
    my %seq;
    my $ok = @resets == $CH && @e == $CH * ($PER + 1);
    for my $ev (grep { !defined $_->{type} } @e) {
        my ($ch, $n) = $ev->{data} =~ /^(m\d+):(\d\d)/ or do { $ok = 0; last };
        $ok = 0 unless $n == ($seq{$ch} // 0) + 1;
        $seq{$ch} = $n;
    }
    $ok && !grep { ($seq{$_} // 0) != $PER } @list;
} @m;
is($right, $M, '... every channel\'s events in order, each once');
$grew = ($max - $base) * 1024;
within($grew, $bound, sprintf('the worker grew by at most %.1f MB while they read', $grew / 1048576));
$_->close for @m;

$t->done;
