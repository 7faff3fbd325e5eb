# A worker dies (kill -9) while events are being published: the other
# workers never stall (their subscribers keep getting events), the dead
# worker's subscribers see their connection close, reconnect with their
# Last-Event-ID and get every event they missed (history is big enough
# that nothing is evicted), and sse_status corrects itself: no phantom
# subscribers of the dead worker, 4 workers again.
#
# harness: serial (tight time bounds: closes and gaps within a second); t/run-all.sh runs it
# alone, after the files that run two at a time.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $WORKERS = 4;
my $SUBS = 40;

my $t = SSETest->new(workers => $WORKERS)->run(<<'EOF');
http {
    sse_zone z 16m history=100000;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /all { sse_subscribe $arg_ch zone=z; sse_replay all; }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

# which worker holds the server side of each client connection: the
# connection's socket inode (/proc/net/tcp) among the workers' fds
sub owners {
    my ($streams) = @_;
    my $port = $t->port(1);
    my %inode;                      # client port -> inode of nginx's end
    open my $fh, '<', '/proc/net/tcp' or return {};
    <$fh>;
    while (<$fh>) {
        my @x = split ' ';
        my ($lp) = $x[1] =~ /:([0-9A-F]+)$/;
        my ($rp) = $x[2] =~ /:([0-9A-F]+)$/;
        next unless defined $lp && hex($lp) == $port && hex($rp);
        $inode{hex $rp} = $x[9];
    }
    close $fh;
    my %pid;                        # inode -> worker
    for my $w ($t->workers) {
        opendir my $d, "/proc/$w/fd" or next;
        for my $fd (readdir $d) {
            my $l = readlink("/proc/$w/fd/$fd") // next;
            $pid{$1} = $w if $l =~ /^socket:\[(\d+)\]$/;
        }
        closedir $d;
    }
    my %owner;
    for my $s (@$streams) {
        my $cp = $s->fh && $s->fh->sockport;
        $owner{$s} = $cp && $inode{$cp} ? $pid{$inode{$cp}} // 0 : 0;
    }
    return \%owner;
}

my @w0 = $t->active_workers;
is(scalar @w0, $WORKERS, "$WORKERS workers");

my @subs;
for (1 .. $SUBS) {
    push @subs, $t->subscribe('/sub?ch=k', keep_raw => 1);
}
ok(SSETest::Stream::wait_all(\@subs, sub { @{$_[0]->comments} >= 1 }, 5),
    "$SUBS subscribers connected");
ok(wait_until(sub { ($t->zone_status('z')->{subscribers} // 0) == $SUBS }, 3),
    "status: $SUBS subscribers");

my $owner = owners(\@subs);
my %per;
$per{$owner->{$_}}++ for @subs;
is(scalar(grep { !$owner->{$_} } @subs), 0, 'each subscriber\'s worker is known');
ok(keys(%per) >= 3, 'the subscribers are spread over the workers: '
    . join(' ', map { "$_:$per{$_}" } sort keys %per));

# the victim: the worker with the most subscribers
my ($victim) = sort { $per{$b} <=> $per{$a} || $a <=> $b } keys %per;
my @vsubs = grep { $owner->{$_} == $victim } @subs;
my @others = grep { $owner->{$_} != $victim } @subs;
my $nv = @vsubs;
ok($nv >= 1 && @others >= 1, "worker $victim holds $nv subscribers, the others " . scalar(@others));

$t->expect_log(qr/worker process $victim exited on signal 9/,
    qr/shared memory zone "z" was locked by $victim/);

# -- publish all the time; kill the victim a second into it -------------------

my $N = 300;
my $ppid = $t->publisher('/pub?ch=k', $N, prefix => 'p', interval => 0.01);
my $t0 = time;

my ($killed_at, $new_worker, %eof_at);
my $deadline = time + tmo(30);
my $pub_done;
while (time < $deadline) {
    SSETest::Stream::poll_many(\@subs, 0.02);

    if (!$killed_at && time - $t0 >= 1) {
        kill 'KILL', $victim;
        $killed_at = time;
    }
    if ($killed_at && !$new_worker) {
        my %old = map { $_ => 1 } @w0;
        ($new_worker) = grep { !$old{$_} } $t->active_workers;
    }
    for my $s (@vsubs) {
        $eof_at{$s} //= time if $killed_at && $s->eof;
    }
    if (!defined $pub_done) {
        my $r = waitpid($ppid, POSIX::WNOHANG());
        $pub_done = $? >> 8 if $r == $ppid;
        $_->{pid} = 0 for grep { ($_->{pid} // 0) == $ppid } @{$t->{procs}};
    }
    last if defined $pub_done && $killed_at && keys(%eof_at) == $nv;
}

ok($killed_at, 'the victim was killed with SIGKILL while publishing');
ok(defined $pub_done, 'the publisher finished');
cmp_ok($pub_done // 99, '<=', 3,
    'at most the few publishes in flight to the killed worker failed (' . ($pub_done // '?') . ')');
$new_worker ||= wait_until(sub {
    my %old = map { $_ => 1 } @w0;
    return (grep { !$old{$_} } $t->active_workers)[0];
}, 5);
ok($new_worker, 'the master started a new worker (' . ($new_worker || 'none') . ')');
ok(!kill(0, $victim), 'the victim is gone');

# the victim's subscribers: their connections closed at once
is(scalar(keys %eof_at), $nv, "all $nv subscribers of the killed worker see their connection close");
my ($slowest_eof) = sort { $b <=> $a } map { $_ - $killed_at } values %eof_at;
cmp_ok($slowest_eof // 99, '<', tmo(1), sprintf('... within %.2fs of the kill', $slowest_eof // 99));

# the other workers never stalled: no gap of a second between two events
# at any of their subscribers while the publisher was at work
my ($worst_gap, $gaps_ok) = (0, 1);
for my $s (@others) {
    my @t = map { $_->{time} } @{$s->events};
    for my $i (1 .. $#t) {
        my $g = $t[$i] - $t[$i - 1];
        $worst_gap = $g if $g > $worst_gap;
    }
    $gaps_ok = 0 if $s->is_closed;
}
ok($gaps_ok, 'the subscribers of the other workers are still connected');
cmp_ok($worst_gap, '<', tmo(1),
    sprintf('... and never waited long for the next event (longest gap %.3fs)', $worst_gap));
my $during = 0;
for my $s (@others) {
    $during++ if grep { $_->{time} > $killed_at && $_->{time} < $killed_at + tmo(0.5) } @{$s->events};
}
is($during, scalar @others, 'each of them got events in the half second after the kill');

# -- no phantom subscribers -----------------------------------------------------

# the channel's own count first (sse_status reaps dead workers itself; the
# channel info does not)
ok(wait_until(sub {
    (($t->channel_info('/pub?ch=k') // {})->{subscribers} // -1) == $SUBS - $nv
}, 3), 'the channel counts ' . ($SUBS - $nv) . ' subscribers: none of the dead worker')
    or diag(explain $t->channel_info('/pub?ch=k'));
my $st;
ok(wait_until(sub {
    $st = $t->zone_status('z');
    ($st->{subscribers} // -1) == $SUBS - $nv && ($st->{workers} // 0) == $WORKERS;
}, 5), "status: the $nv subscribers of the dead worker are no longer counted, "
    . "$WORKERS workers") or diag(explain $st);

# -- the truth: every event the zone stored -------------------------------------

my $truth = $t->subscribe('/all?ch=k');
my $info = $t->channel_info('/pub?ch=k') // {};
my $total = $info->{events} // 0;
ok($truth->wait_events($total, 5), "the zone stored $total events");
my @want = map { [$_->{id}, $_->{data}] } @{$truth->events};
$truth->close;
cmp_ok($total, '>=', $N - 3, "... at least " . ($N - 3) . " of the $N published");
is($want[-1][0], $info->{last_id}, '... up to the last id');

# -- the dead worker's subscribers resume ---------------------------------------

my @resumed;
for my $s (@vsubs) {
    my $last = @{$s->events} ? $s->events->[-1]{id} : undef;
    push @resumed, [$s, $t->subscribe('/sub?ch=k',
        headers => { $last ? ('Last-Event-ID' => $last) : () })];
}
is(scalar(grep { ($_->[1]->status // 0) == 200 } @resumed), $nv,
    'they reconnect with their last ids: 200');
$_->[1]{before} = $_->[0]->event_count for @resumed;
ok(SSETest::Stream::wait_all([map { $_->[1] } @resumed],
    sub { $_[0]->event_count + $_[0]{before} >= $total }, 5),
    "each got what it missed");
SSETest::Stream::poll_many([map { $_->[1] } @resumed], 0.2);

my $bad = 0;
for my $p (@resumed) {
    my ($old, $new) = @$p;
    my @got = map { [$_->{id}, $_->{data}] } @{$old->events}, @{$new->events};
    if (json_encode(\@got) ne json_encode(\@want)) {
        $bad++;
        diag('a resumed subscriber: ' . scalar(@{$old->events}) . ' + '
            . scalar(@{$new->events}) . " events, want $total") if $bad == 1;
    }
}
is($bad, 0, 'before the kill and after the resume together: every event exactly once, in order, no reset');

$bad = 0;
for my $s (@others) {
    my @got = map { [$_->{id}, $_->{data}] } @{$s->events};
    $bad++ if json_encode(\@got) ne json_encode(\@want);
}
is($bad, 0, 'the subscribers of the other workers got every event exactly once, in order');

ok(wait_until(sub { ($t->zone_status('z')->{subscribers} // -1) == $SUBS }, 3),
    "status: $SUBS subscribers again, the true number");
is(($t->channel_info('/pub?ch=k') // {})->{subscribers}, $SUBS, '... and the channel agrees');
is($t->zone_status('z')->{workers}, $WORKERS, "status: $WORKERS workers");

# the resumed and the old streams keep working
my $r = $t->publish('/pub?ch=k', 'after');
is($r->json->{subscribers}, $SUBS, "a publish reaches $SUBS subscribers");
my @live = (@others, map { $_->[1] } @resumed);
ok(SSETest::Stream::wait_all(\@live, sub { $_[0]->events->[-1]{data} eq 'after' }, 3),
    '... all of them get it');

$_->close for @live;
ok(wait_until(sub { ($t->zone_status('z')->{subscribers} // -1) == 0 }, 3),
    'after everyone left: 0 subscribers');

$t->done;
