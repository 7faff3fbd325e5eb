# Many publishers at once, on every worker, to the same channels: ids stay
# unique and gap-free, every subscriber (on whatever worker) sees the same
# events in the same order, and each publisher's events keep its order.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $PUBLISHERS = 8;
my $EACH       = 150;
my $TOTAL      = $PUBLISHERS * $EACH;

my $t = SSETest->new(workers => 4)->run(<<'EOF');
http {
    sse_zone z 16m history=5000;
    server {
        listen 127.0.0.1:%%PORT%% reuseport backlog=1024;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

my @subs = map { $t->subscribe('/sub?ch=race', keep_raw => 0) } 1 .. 40;
my @both = map { $t->subscribe('/sub?ch=race,race2', keep_raw => 0) } 1 .. 8;
ok(SSETest::Stream::wait_all([@subs, @both], sub { @{$_[0]->comments} }, 3),
    '48 subscribers spread over 4 workers');

my @pids = map {
    $t->publisher('/pub?ch=' . ($_ % 2 ? 'race' : 'race2'), $EACH,
        prefix => "p$_-")
} 1 .. $PUBLISHERS;

my $nrace  = $TOTAL / 2;
ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= $nrace }, 60),
    "every subscriber of one channel got its $nrace events");
ok(SSETest::Stream::wait_all(\@both, sub { $_[0]->event_count >= $TOTAL }, 60),
    "every subscriber of both channels got all $TOTAL events");
my $fails = 0;
$fails += $t->wait_proc($_, 60) // 1000 for @pids;
is($fails, 0, "$PUBLISHERS publishers, $TOTAL publishes, all accepted");
SSETest::Stream::poll_many([@subs, @both], 0.3);

# one channel: ids 1..N without gap, identical everywhere
my @ref = map { $_->{id} } @{$subs[0]->events};
my @seq = map { /-(\d+)$/ ? $1 : 0 } @ref;
is_deeply(\@seq, [1 .. $nrace], 'the ids of the channel are 1..N, no gap, no repeat');
my $same = grep {
    join(',', map { $_->{id} } @{$_->events}) eq join(',', @ref)
    && $_->event_count == $nrace
} @subs;
is($same, scalar @subs, 'every subscriber saw exactly the same sequence');

# each publisher's events in the order it published them
my %last;
my $order = 1;
for my $d (map { $_->{data} } @{$subs[0]->events}) {
    my ($p, $n) = $d =~ /^(p\d+)-(\d+)$/ or do { $order = 0; next };
    $order = 0 if ($last{$p} // 0) + 1 != $n;
    $last{$p} = $n;
}
ok($order, 'each publisher\'s events arrive in its own order, none missing');

# two channels on one stream: positions move one channel at a time
my $mono = 1;
for my $s (@both) {
    my ($pa, $pb) = (0, 0);
    for my $e (@{$s->events}) {
        my ($a, $b) = map { /-(\d+)$/ ? $1 : -1 } split /\./, $e->{id} // '';
        $mono = 0 unless $a >= $pa && $b >= $pb && ($a - $pa) + ($b - $pb) == 1;
        ($pa, $pb) = ($a, $b);
    }
    $mono = 0 unless $pa == $nrace && $pb == $nrace;
}
ok($mono, 'on a two-channel stream each event advances exactly one position by one step');

my $st = $t->zone_status('z');
is($st->{published}, $TOTAL, 'status: published');
is($st->{stored_events}, $TOTAL, 'status: stored_events');

$t->done;
