# sse_status counts exactly what happened: after a known sequence of
# publishes, subscribers receiving, disconnects, a reload and a worker
# killed with SIGKILL, published, delivered, subscribers, channels and
# stored_events are exact; counters are never reset by a reload; the
# Prometheus output says the same.  evicted, refused_full and dropped_slow
# are made non-zero before the reload and the kill (a channel filling the
# zone, a 507 at max_channels=5, a stalled reader past sse_max_pending), so
# that a reset of any of them across either would show.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $WORKERS = 2;
my $t = SSETest->new(workers => $WORKERS)->run(<<'EOF');
http {
    sse_zone z 4m history=1000 max_channels=5;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        listen 127.0.0.1:%%PORT2%% reuseport sndbuf=16k;
        sse_heartbeat off;
        client_max_body_size 1m;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /slowsub { sse_subscribe $arg_ch zone=z; sse_max_pending 16k; }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

# which worker holds the server side of each client connection
sub owners {
    my ($streams) = @_;
    my $port = $t->port(1);
    my %inode;
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
    my %pid;
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

# what the status must say, kept up to date as the test goes
my %want = (channels => 0, subscribers => 0, stored_events => 0, published => 0,
    delivered => 0, evicted => 0, dropped_slow => 0, refused_full => 0,
    workers => $WORKERS);
my @FIELDS = sort keys %want;

sub check {
    my ($name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $st;
    # counters of other workers arrive a moment after the events
    my $ok = wait_until(sub {
        $st = $t->zone_status('z');
        !grep { ($st->{$_} // -1) != $want{$_} } @FIELDS;
    }, 3);
    ok($ok, "$name: " . join(' ', map { "$_=$want{$_}" } @FIELDS))
        or diag('status says: ' . join(' ', map { "$_=" . ($st->{$_} // 'undef') } @FIELDS));
    return $st;
}

# publishes $n events to a channel; every subscriber in @$subs must get them
sub publish_n {
    my ($ch, $n, $subs) = @_;
    my $base = { map { $_ => $_->event_count } @$subs };
    for my $i (1 .. $n) {
        my $r = $t->publish("/pub?ch=$ch", "$ch-$i");
        $want{published}++;
        $want{stored_events}++;
    }
    $want{delivered} += $n * @$subs;
    return SSETest::Stream::wait_all($subs,
        sub { $_[0]->event_count >= $base->{$_[0]} + $n }, 3);
}

check('at the start');

# -- evicted: 900 KB events fill the 4 MB zone ----------------------------------

# channel e is the zone's only channel: what is evicted is its own oldest
my $filled = wait_until(sub {
    is($t->publish('/pub?ch=e', 'f' x 900000)->status, 202, '900 KB event to channel e');
    $want{published}++;
    $want{stored_events}++;
    return $t->zone_status('z')->{evicted};
}, 5, 0);
ok($filled, "the zone filled up: $want{published} events, the oldest evicted");
$want{evicted} = $filled;
$want{stored_events} -= $filled;
$want{channels} = 1;
check("evicted: $filled");
# DELETE frees the zone for what follows; the ended channel stays counted
# (its 204 lasts history_ttl)
is($t->delete('/pub?ch=e')->status, 200, 'channel e deleted');
$want{stored_events} = 0;
check('channel e ended: its events are gone, the counters stay');

# -- N publishes, M subscribers receiving ------------------------------------

my @a = map { $t->subscribe('/sub?ch=a') } 1 .. 6;
my @b = map { $t->subscribe('/sub?ch=b') } 1 .. 2;
ok(SSETest::Stream::wait_all([@a, @b], sub { @{$_[0]->comments} >= 1 }, 3),
    '6 subscribers of channel a, 2 of channel b');
$want{channels} = 3;
$want{subscribers} = 8;
check('8 subscribers');

ok(publish_n('a', 10, \@a), '10 events to a reach its 6 subscribers');
ok(publish_n('b', 3, \@b), '3 events to b reach its 2 subscribers');
check('13 published, 66 delivered');

# a channel with no subscriber: published and stored, delivered to nobody
ok(publish_n('c', 4, []), '4 events to channel c, nobody listens');
$want{channels} = 4;
check('a third channel');

# -- K disconnects -------------------------------------------------------------

$_->close for splice(@a, 0, 2);
$want{subscribers} = 6;
check('2 subscribers of a left');
ok(publish_n('a', 5, \@a), '5 more events to a reach its 4 subscribers');
check('after the disconnects');

# -- dropped_slow and refused_full -------------------------------------------------

# a stalled reader on channel s falls past sse_max_pending
my $slow = $t->subscribe('/slowsub?ch=s', rcvbuf => 4096, port => 2);
ok($slow->wait_comment(1), 'a subscriber of channel s that stops reading');
$want{channels} = 5;
$want{subscribers}++;
check('the stalled reader counts');
my $delivered0 = $t->zone_status('z')->{delivered};
my $sent = 0;
my $dropped = wait_until(sub {
    my $r = $t->publish('/pub?ch=s', 'x' x 8000);
    $sent++, $want{published}++, $want{stored_events}++ if $r->status =~ /^20[12]$/;
    ($t->zone_status('z')->{dropped_slow} // 0) == 1;
}, 5, 0.01);
ok($dropped, "dropped_slow: 1 after $sent events of 8 KB to it");
$want{dropped_slow} = 1;
$want{subscribers}--;
# what reached its socket before the drop counts as delivered: at most
# what was published (how much fitted in the socket buffers is the kernel's)
my $delivered1 = $t->zone_status('z')->{delivered};
cmp_ok($delivered1 - $delivered0, '<=', $sent, 'delivered to it: at most what was published ('
    . ($delivered1 - $delivered0) . " of $sent)");
$want{delivered} = $delivered1;
$slow->close;
check('after the drop');

# a sixth channel: max_channels=5 refuses it
my $r507 = $t->publish('/pub?ch=sixth', 'no room');
is($r507->status, 507, 'a publish to a sixth channel: 507 (max_channels=5)');
$want{refused_full} = 1;
check('refused_full: 1');
my $before_reload = $t->zone_status('z');

# -- a reload -------------------------------------------------------------------

ok($t->reload, 'nginx -s reload');
ok(SSETest::Stream::wait_all([@a, @b], sub { $_[0]->complete }, 3),
    'the reload ended every stream cleanly');
$want{subscribers} = 0;
my $st = check('after the reload: the counters went on, nothing was reset');
for my $f (qw(published delivered evicted dropped_slow refused_full)) {
    is($st->{$f}, $before_reload->{$f}, "$f is what it was before the reload ($before_reload->{$f})");
}

@a = map { $t->subscribe('/sub?ch=a') } 1 .. 4;
@b = map { $t->subscribe('/sub?ch=b') } 1 .. 2;
ok(SSETest::Stream::wait_all([@a, @b], sub { @{$_[0]->comments} >= 1 }, 3),
    '4 subscribers of a and 2 of b again');
$want{subscribers} = 6;
check('subscribers on the new workers');
ok(publish_n('a', 3, \@a), '3 events to a');
ok(publish_n('b', 2, \@b), '2 events to b');
check('after the reload and more events');

# -- a worker killed ---------------------------------------------------------------

my $owner = owners([@a, @b]);
my %per;
$per{$owner->{$_}}++ for @a, @b;
my ($victim) = sort { $per{$b} <=> $per{$a} || $a <=> $b } grep { $_ } keys %per;
ok($victim, "worker $victim holds $per{$victim} of the 6 subscribers");
$t->expect_log(qr/worker process $victim exited on signal 9/,
    qr/shared memory zone "z" was locked by $victim/);
my @dead_a = grep { $owner->{$_} == $victim } @a;
my @dead_b = grep { $owner->{$_} == $victim } @b;
my $new = $t->kill_worker($victim);
ok($new, "killed it (SIGKILL); the master started worker $new");
@a = grep { $owner->{$_} != $victim } @a;
@b = grep { $owner->{$_} != $victim } @b;
ok(SSETest::Stream::wait_all([@dead_a, @dead_b], sub { $_[0]->is_closed }, 3),
    'its subscribers lost their connections');
$want{subscribers} = @a + @b;
check('after the kill: no phantom subscribers, counters intact');

ok(publish_n('a', 2, \@a), '2 events to a reach its ' . scalar(@a) . ' remaining subscribers');
check('after the kill and more events');

# the ones that lost their connection come back, with their last ids:
# nothing to replay
my @back_a = map { $t->subscribe('/sub?ch=a', headers => { 'Last-Event-ID' => $_->events->[-1]{id} }) } @dead_a;
my @back_b = map { $t->subscribe('/sub?ch=b', headers => { 'Last-Event-ID' => $_->events->[-1]{id} }) } @dead_b;
# the dead worker's subscribers of a missed 2 events: the resume replays them
my $replayed = 2 * @back_a;
ok(SSETest::Stream::wait_all(\@back_a, sub { $_[0]->event_count >= 2 }, 3),
    'the resumed subscribers of a get the 2 events they missed');
$want{delivered} += $replayed;
push @a, @back_a;
push @b, @back_b;
$want{subscribers} = 6;
check('everyone back (replayed events count as delivered)');
ok(publish_n('a', 1, \@a), 'one more event to a reaches all 4');
$st = check('the final count');

# -- Prometheus ---------------------------------------------------------------------

my $r = $t->get('/status?format=prometheus');
is($r->status, 200, 'prometheus: 200');
my $p = $r->body;
like($p, qr/^# TYPE sse_published_total counter$/m, '# TYPE sse_published_total counter');
like($p, qr/^# TYPE sse_delivered_total counter$/m, '# TYPE sse_delivered_total counter');
like($p, qr/^# TYPE sse_subscribers gauge$/m, '# TYPE sse_subscribers gauge');
my %prom = $p =~ /^sse_([a-z_]+)\{zone="z"\} (\d+)$/mg;
for my $f (qw(published delivered evicted dropped_slow refused_full)) {
    is($prom{"${f}_total"}, $want{$f}, "sse_${f}_total is $want{$f}");
}
for my $f (qw(channels subscribers stored_events workers)) {
    is($prom{$f}, $want{$f}, "sse_$f is $want{$f}");
}
is($prom{size}, 4 * 1024 * 1024, 'sse_size');
is($prom{used}, $st->{used}, 'sse_used is what the JSON says');

$_->close for @a, @b, @dead_a, @dead_b;
$want{subscribers} = 0;
check('everyone left');

$t->done;
