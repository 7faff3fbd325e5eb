# Fan-out across worker processes: 4 workers (reuseport spreads the
# connections), 4000 subscribers over 10 channels, 100 events published to
# each channel through connections that land on any worker.  Every
# subscriber gets exactly its channel's 100 events, in order, with the same
# ids as every other subscriber of that channel.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;

my $WORKERS  = 4;
my $SUBS     = $ENV{TEST_SSE_SUBSCRIBERS} || 4000;
my $CHANNELS = 10;
my $EVENTS   = 100;

my $need = $SUBS + 200;
if (fd_limit() < $need) {
    skip_file("needs $need open files, the limit is " . fd_limit()
        . " (raise it with ulimit -n)");
}

my $t = SSETest->new(workers => $WORKERS)->run(<<'EOF');
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
    server {
        listen 127.0.0.1:%%PORT%% reuseport backlog=4096;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my @workers = $t->active_workers;
is(scalar @workers, $WORKERS, "$WORKERS workers run");

# -- connect the subscribers, in batches ------------------------------------

my $t0 = time;
my @subs;
my $batch = 200;
my $connected_ok = 1;
for (my $i = 0; $i < $SUBS; $i += $batch) {
    my @b;
    for my $k ($i .. ($i + $batch - 1 < $SUBS ? $i + $batch - 1 : $SUBS - 1)) {
        my $s = $t->subscribe('/sub?ch=ch' . ($k % $CHANNELS),
            wait => 0, keep_raw => 0);
        $s->{ch} = $k % $CHANNELS;
        push @b, $s;
    }
    # all of the batch have the stream open (headers and first comment)
    my $ok = SSETest::Stream::wait_all(\@b,
        sub { @{$_[0]{comments}} >= 1 }, 20);
    $connected_ok = 0 unless $ok;
    push @subs, @b;
    last unless $ok;
}
ok($connected_ok, "$SUBS subscribers connected and got their first comment");
is(scalar(grep { ($_->status // 0) == 200 } @subs), $SUBS, 'all got 200');
diag(sprintf "connected in %.1fs", time - $t0) if $ENV{TEST_NGINX_VERBOSE};

# the premise: connections landed on every worker
my @per_worker = map { $t->socket_count($_) } @workers;
my $min = (sort { $a <=> $b } @per_worker)[0];
ok($min > $SUBS / $WORKERS / 4, "every worker holds subscribers (@per_worker)");

my $st = $t->zone_status;
is($st->{subscribers}, $SUBS, "status counts $SUBS subscribers");
is($st->{workers}, $WORKERS, "status counts $WORKERS workers");

# -- publish 100 events to each channel ------------------------------------

$t0 = time;
my (%ids, $bad_status, $bad_count);
for my $n (1 .. $EVENTS) {
    for my $c (0 .. $CHANNELS - 1) {
        my $r = $t->publish("/pub?ch=ch$c", "ch$c-$n");
        $bad_status++ unless $r->status == 201;
        $bad_count++ unless ($r->json->{subscribers} // -1) == $SUBS / $CHANNELS;
        push @{$ids{$c}}, $r->json->{id};
    }
    # keep the socket buffers drained while publishing
    SSETest::Stream::poll_many(\@subs, 0) if $n % 10 == 0;
    # a broken server: stop early instead of timing out 1000 times
    last if ($bad_status // 0) > 20;
}
ok(!$bad_status, 'every publish: 201');
ok(!$bad_count, 'every publish counted ' . $SUBS / $CHANNELS . ' subscribers');
diag(sprintf "published in %.1fs", time - $t0) if $ENV{TEST_NGINX_VERBOSE};

# -- every subscriber gets its channel's 100 events, in order ---------------

my $all = SSETest::Stream::wait_all(\@subs,
    sub { $_[0]->event_count >= $EVENTS }, 60);
ok($all, "all $SUBS subscribers got $EVENTS events");
diag(sprintf "delivered in %.1fs", time - $t0) if $ENV{TEST_NGINX_VERBOSE};

# anything extra would have arrived by now
SSETest::Stream::poll_many(\@subs, 0.2);

my ($wrong, $shown) = (0, 0);
for my $s (@subs) {
    my $c = $s->{ch};
    my @data = map { $_->{data} } @{$s->events};
    my @got_ids = map { $_->{id} // '' } @{$s->events};
    my @want = map { "ch$c-$_" } 1 .. $EVENTS;
    if ("@data" ne "@want" || "@got_ids" ne "@{$ids{$c}}" || $s->error) {
        $wrong++;
        if ($shown++ < 3) {
            diag("subscriber of ch$c: " . scalar(@data) . " events; first "
                . "differences: " . join(' ', grep { defined }
                    (map { $data[$_] ne $want[$_] ? "[$_] $data[$_]" : undef }
                        0 .. ($#data < $#want ? $#data : $#want))[0 .. 4])
                . ($s->error ? " error: " . $s->error : ''));
        }
    }
}
is($wrong, 0, 'every subscriber got exactly its events, in order, with the ids of the replies');

# ids increase within each channel
my $order_ok = 1;
for my $c (keys %ids) {
    my @seq = map { /-(\d+)$/ ? $1 : -1 } @{$ids{$c}};
    for (1 .. $#seq) { $order_ok = 0 unless $seq[$_] == $seq[$_ - 1] + 1 }
}
ok($order_ok, 'ids of each channel count up one by one');

$st = $t->zone_status;
is($st->{published}, $EVENTS * $CHANNELS, 'status: published');
is($st->{delivered}, $SUBS * $EVENTS, 'status: delivered counts every copy, once');
is($st->{dropped_slow}, 0, 'status: nobody dropped as too slow');

# -- everyone leaves ------------------------------------------------------

$_->close for @subs;
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == 0 }, 10),
    'after they all disconnect, status counts 0 subscribers');
ok(!grep({ ($t->channel_info("/pub?ch=ch$_") // {})->{subscribers} } 0 .. 9),
    'and every channel has 0 subscribers');

$t->done;
