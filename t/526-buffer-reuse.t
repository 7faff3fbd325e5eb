# Stream buffers are reused, not allocated per event: a quiet stream's
# buffers go to a bounded per-worker cache (by size: 512 B to 4 KB), and a
# stream catching up on history keeps its one buffer through its pulls.
# What can go wrong with reuse is bytes: a buffer handed to the next
# stream with old bytes showing, or a sent buffer refilled while still
# being sent.  So: many sparse streams (more than the cache holds, so both
# cached and freed buffers are used), quiet long enough between events for
# their buffers to go back, events of every cached size and a larger one;
# then a replay through a small sse_max_pending while live events come.
# Every stream must get exactly its events, in order, byte for byte.
# (The allocation counts themselves are measured with perf uprobes, see
# docs/architecture.md; a test here cannot see malloc.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_zone z 64m history=2000;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /replay {
            sse_subscribe $arg_ch zone=z;
            sse_replay all;
            sse_max_pending 16k;
        }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

my $N = 150;
my @s = map { $t->subscribe("/sub?ch=q$_") } 1 .. $N;
ok(SSETest::Stream::wait_all(\@s, sub { @{$_[0]{comments}} }, 5),
    "$N streams open");

# sizes: within 512 B, 1 KB, 2 KB, 4 KB buffers, and one past the cache
my @sizes = (100, 700, 1500, 3500, 20000);
my @sent;

for my $round (0 .. $#sizes) {
    for my $i (1 .. $N) {
        my $data = sprintf('%d/%d:', $round, $i);
        $data .= chr(ord('a') + ($i + $round) % 26) x ($sizes[$round] - length $data);
        push @{$sent[$i]}, $data;
        $t->publish("/pub?ch=q$i", $data)->status == 201
            or fail("publish $round/$i");
    }
    ok(SSETest::Stream::wait_all(\@s, sub { @{$_[0]->events} >= $round + 1 }, 10),
        "round $round ($sizes[$round] bytes): every stream got its event");

    # the scenario is quiet streams: their buffers go back after two
    # seconds without a write (the sweep looks once a second)
    sleep(2.5) if $round < $#sizes;
}

my $bad = 0;
for my $i (1 .. $N) {
    my @got = map { $_->{data} } @{$s[$i - 1]->events};
    $bad++ unless join("\n", @got) eq join("\n", @{$sent[$i]});
}
is($bad, 0, 'every stream got exactly its events, byte for byte, in order');
is(scalar(grep { $_->complete } @s), 0, '... and no stream ended');

# -- catching up through pulls, one buffer, while live events come -----------

my @hist = map { "h$_:" . ('z' x 1000) } 1 .. 1500;
$t->publish('/pub?ch=h', $_)->status =~ /^20[12]$/ or fail('history') for @hist;

my $r = $t->subscribe('/replay?ch=h');
my @live = map { "live$_:" . ('w' x 300) } 1 .. 50;
for (@live) {
    $t->publish('/pub?ch=h', $_)->status == 201 or fail('live publish');
}
ok($r->wait_events(1550, 20), 'a replay of 1500 x 1 KB through 16 KB, '
    . 'then 50 live events: all came');
my @got = map { $_->{data} } @{$r->events};
is(scalar @got, 1550, '... each once');
ok(join("\n", @got) eq join("\n", @hist, @live), '... in order, byte for byte');
ok(!$r->complete, '... and the stream goes on');

is($t->zone_status('z')->{dropped_slow} // -1, 0,
    'nobody was dropped as too slow');

$_->close for @s, $r;
$t->done;
