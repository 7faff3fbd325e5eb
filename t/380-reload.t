# Reload (SIGHUP) with subscribers on HTTP/1.1 and HTTP/2 while a publisher
# keeps publishing: the old workers end their streams at once, cleanly
# (not after worker_shutdown_timeout) and exit; the clients reconnect with
# their Last-Event-ID to the new workers and resume from the zone's
# history, which survived the reload: through 3 reloads, nothing is lost
# or repeated.  A reload that changes the zone's size is refused with an
# [emerg] naming the zone and both sizes, and the running configuration
# keeps serving.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use SSETest;

my $h2 = (`curl --version 2>/dev/null` // '') =~ /HTTP2/;

my $CONF = <<'EOF';
worker_shutdown_timeout 30s;
http {
    sse_zone z %%SIZE%% history=10000;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        listen 127.0.0.1:%%PORT3%% sndbuf=16k;
        sse_heartbeat 1s;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF
(my $conf = $CONF) =~ s/%%SIZE%%/8m/;

my $t = SSETest->new(workers => 2)->run($conf);

# An HTTP/2 EventSource: curl over h2c; when the stream ends it starts
# curl again with the last id it saw.
{
    package H2Follower;
    sub new {
        my ($class, $t, $path) = @_;
        my $self = bless { t => $t, url => $t->url($path, 2), events => [],
            conns => 0, rcs => [], ended => [] }, $class;
        $self->_connect;
        return $self;
    }
    sub _connect {
        my ($self) = @_;
        my @h = defined $self->{last_id} ? ('-H', "Last-Event-ID: $self->{last_id}") : ();
        $self->{s} = $self->{t}->curl_subscribe($self->{url}, '--http2-prior-knowledge', @h);
        $self->{taken} = 0;
        $self->{conns}++;
    }
    sub stream { $_[0]{s} }
    sub events { $_[0]{events} }
    sub connections { $_[0]{conns} }
    sub data { map { $_->{data} } @{$_[0]{events}} }
    sub _collect {
        my ($self) = @_;
        my $s = $self->{s};
        while ($self->{taken} < $s->event_count) {
            my $e = $s->events->[$self->{taken}++];
            push @{$self->{events}}, $e;
            $self->{last_id} = $e->{id} if defined $e->{id};
        }
    }
    sub poll {
        my ($self, $timeout) = @_;
        my $s = $self->{s};
        $s->poll($timeout // 0);
        $self->_collect;
        return unless $s->{eof};
        # curl closed its output: it exits; its exit code says whether the
        # stream ended cleanly (0) or broke (18, 56, 92, ...)
        my $pid = $s->{pid};
        waitpid($pid, 0);
        push @{$self->{rcs}}, $? >> 8;
        $s->{pid} = 0;
        $s->close;
        push @{$self->{ended}}, $s;
        $self->_connect;
    }
    sub close { my ($self) = @_; $self->{s}->close if $self->{s}; }
}

# -- subscribers and a publisher ------------------------------------------------

my @f11 = map { SSETest::Follower->new($t, '/sub?ch=r') } 1 .. 4;
my @f2 = $h2 ? map { H2Follower->new($t, '/sub?ch=r') } 1 .. 2 : ();
my $connected = wait_until(sub {
    $_->poll(0) for @f11, @f2;
    !grep { !$_->stream || !@{$_->stream->comments} } @f11, @f2;
}, 5);
ok($connected, scalar(@f11) . ' HTTP/1.1 and ' . scalar(@f2) . ' HTTP/2 subscribers')
    or BAIL_OUT('subscribers did not connect');
SKIP: { skip_tests('curl without HTTP/2', 1) unless $h2;
    like($f2[0]->stream->raw_head // '', qr{^HTTP/2 200}, 'the HTTP/2 ones are HTTP/2 streams');
}
is($t->zone_status('z')->{subscribers}, @f11 + @f2, 'status counts them');

my $before_id = $t->publish('/pub?ch=before', 'b1')->json->{id};
$t->publish('/pub?ch=before', "b$_") for 2 .. 4;

my $N = 400;
my $ppid = $t->publisher('/pub?ch=r', $N, prefix => 'p', interval => 0.01);
my $tp = time;

sub poll_all { my ($sec) = @_; my $end = time + $sec;
    do { $_->poll(0.01) for @f11, @f2 } while time < $end;
}

sub current_streams { return map { $_->stream } @f11, @f2 }

# -- three reloads while it publishes ---------------------------------------------

my (@ended_late, @unclean, @exit_slow, @reloaded);
my ($max_end, $max_exit) = (0, 0);
for my $round (1 .. 3) {
    poll_all(0.8);
    my @old_streams = grep { defined } current_streams();
    my %old_workers = map { $_ => 1 } $t->workers;
    my $hup = time;
    kill('HUP', $t->master_pid);

    # follow everything until the old workers are gone and every old
    # stream has ended
    my ($gone_at);
    my $done = wait_until(sub {
        $_->poll(0.005) for @f11, @f2;
        my %now = map { $_ => 1 } $t->workers;
        $gone_at //= time unless grep { $now{$_} } keys %old_workers;
        my @open = grep { !$_->{eof} && !$_->{complete} } @old_streams;
        return $gone_at && !@open;
    }, 10, 0.001);
    ok($done, "reload $round: the old workers exited and their streams ended");
    for my $s (@old_streams) {
        my $end = $s->{complete_time} // $s->{eof_time} // time;
        push @ended_late, sprintf('%.2f', $end - $hup) if $end - $hup > tmo(2);
        $max_end = $end - $hup if $end - $hup > $max_end;
        push @unclean, $s unless $s->{complete} || $s->{decoded};
    }
    push @exit_slow, sprintf('%.2f', $gone_at - $hup) if !$gone_at || $gone_at - $hup > tmo(2.5);
    $max_exit = $gone_at - $hup if $gone_at && $gone_at - $hup > $max_exit;
    ok(scalar($t->wait_workers(2, 5)), "reload $round: 2 new workers run");
    my @now = $t->workers;
    push @reloaded, (@now == 2 && !grep { $old_workers{$_} } @now) ? 1 : 0;
}
is(join(' ', @reloaded), '1 1 1',
    'three reloads: each time two new workers replaced all the old ones');
is(scalar(@ended_late), 0, sprintf('every stream of the old workers ended within 2 s of the SIGHUP (at most %.2fs)', $max_end))
    or diag("ended after @ended_late s");
is(scalar(@unclean), 0, 'every HTTP/1.1 stream ended cleanly (the last chunk)');
is(scalar(@exit_slow), 0, sprintf('the old workers exited within 2.5 s (at most %.2fs; worker_shutdown_timeout is 30s)', $max_exit))
    or diag("exited after @exit_slow s");

# -- the publisher finishes; everyone has everything ---------------------------

my $pub_rc;
wait_until(sub {
    $_->poll(0.01) for @f11, @f2;
    my $r = waitpid($ppid, POSIX::WNOHANG());
    $pub_rc = $? >> 8 if $r == $ppid;
    return defined $pub_rc;
}, 30, 0);
$_->{pid} = 0 for grep { ($_->{pid} // 0) == $ppid } @{$t->{procs}};
is($pub_rc, 0, "the publisher published $N events through the reloads, none refused");
my $all = wait_until(sub {
    $_->poll(0.01) for @f11, @f2;
    !grep { scalar(@{$_->events}) < $N } @f11, @f2;
}, 10, 0);
ok($all, "every subscriber got $N events");
$_->poll(0.2) for @f11, @f2;

my @want = map { "p$_" } 1 .. $N;
my $wrong = 0;
for my $f (@f11, @f2) {
    my @got = $f->data;
    next if "@got" eq "@want";
    $wrong++;
    diag(ref($f) . ': ' . scalar(@got) . ' events over ' . ($f->{conns}) . ' connections')
        if $wrong <= 2;
}
is($wrong, 0, 'each got every event exactly once, in order, across its reconnects');
is(scalar(grep { ($_->{type} // '') eq 'reset' } map { @{$_->events} } @f11, @f2), 0,
    'no reset: the zone history survived every reload');
ok(!grep({ $_->connections < 4 } @f11), 'each HTTP/1.1 subscriber reconnected after each reload (connections: ' . join(' ', map { $_->connections } @f11) . ')');
is(scalar(grep { $_ != 200 } map { @{$_->statuses} } @f11), 0, '... always to a 200 stream');
SKIP: { skip_tests('curl without HTTP/2', 2) unless $h2;
    ok(!grep({ $_->{conns} < 4 } @f2), 'each HTTP/2 subscriber reconnected after each reload');
    my @rcs = map { @{$_->{rcs}} } @f2;
    ok(@rcs >= 3 * @f2 && !grep({ $_ != 0 } @rcs),
        '... and curl saw every HTTP/2 stream end cleanly (exit 0)')
        or diag("curl exit codes: @rcs");
}

# an id from before the first reload resumes exactly
my $s = $t->subscribe('/sub?ch=before', headers => { 'Last-Event-ID' => $before_id });
ok($s->wait_events(3, 2), 'an id from before the reloads resumes');
ok(!$s->wait_events(4, 0.3), '...');
is_deeply([$s->data], [qw(b2 b3 b4)], '... exactly after it');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$s->events}), 0, '... no reset');
$s->close;

my $st;
ok(wait_until(sub {
    $st = $t->zone_status('z');
    ($st->{subscribers} // -1) == @f11 + @f2 && ($st->{workers} // 0) == 2;
}, 3), 'status: exactly the connected subscribers, 2 workers (no leftovers of old workers)')
    or diag(explain $st);
is($st->{published}, $N + 4, "status: published $N + 4 (counters survived)");

# -- a reload that changes the zone size is refused ------------------------------

(my $bigger = $CONF) =~ s/%%SIZE%%/16m/;
$t->expect_log(qr/\[emerg\].*sse_zone "z"/);
my @w = sort $t->workers;
my %conns = map { $_ => $_->connections } @f11, @f2;
$t->write_config($bigger);
kill 'HUP', $t->master_pid;
my $emerg = $t->wait_log(qr/\[emerg\][^\n]*sse_zone "z"[^\n]*/, 5);
ok($emerg, 'a reload with the zone at 16m: [emerg] about zone "z"') or diag($t->error_log);
like($emerg // '', qr/\b(?:8388608|8m|8192k)\b/i, '... naming the old size');
like($emerg // '', qr/\b(?:16777216|16m|16384k)\b/i, '... and the new one');
is(join(' ', sort $t->workers), join(' ', @w), 'the same workers keep running');
ok($t->master_pid && kill(0, $t->master_pid), 'the master too');
is($t->zone_status('z')->{size}, 8 * 1024 * 1024, 'the zone still has its 8m');
my $r = $t->publish('/pub?ch=r', 'still here');
is($r->status, 201, 'publishing works');
ok(wait_until(sub {
    $_->poll(0.01) for @f11, @f2;
    !grep { ($_->events->[-1]{data} // '') ne 'still here' } @f11, @f2;
}, 3, 0), 'every subscriber, not disturbed, gets the event');
is(scalar(grep { $_->connections != $conns{$_} } @f11, @f2), 0, '... on the connection it had');

# -- the right configuration back; a stalled subscriber does not hold a reload ---

# a subscriber that stopped reading, with 120 KB unsent (within
# sse_max_pending, beyond its socket buffers: port 3 has sndbuf=16k): its
# worker cannot end its stream cleanly, gives it a moment and exits anyway
my $stalled = $t->subscribe('/sub?ch=stall', rcvbuf => 4096, port => 3);
ok($stalled->wait_comment(1), 'a subscriber that will stop reading');
for my $i (1 .. 10) {
    $t->publish('/pub?ch=stall', sprintf('s%02d-', $i) . ('s' x 12000));
}
is($t->zone_status('z')->{dropped_slow}, 0, '120 KB are queued for it (not enough to drop it)');

$t->write_config($conf);
my $t_r = time;
ok($t->reload(timeout => 10), 'a reload with the original size works again');
my $dt = time - $t_r;
cmp_ok($dt, '<', tmo(3), sprintf('... and the old workers exited in %.2fs despite the stalled subscriber', $dt));
$r = $t->publish('/pub?ch=r', 'after');
ok(wait_until(sub {
    $_->poll(0.01) for @f11, @f2;
    !grep { ($_->events->[-1]{data} // '') ne 'after' } @f11, @f2;
}, 5, 0), 'everyone resumes on the new workers');

ok($stalled->wait_closed(5), 'the stalled subscriber, once it reads, finds its stream ended');
my $k = $stalled->event_count;
ok($k < 10, "... after $k of the 10 events");
my $last = $k ? $stalled->events->[-1]{id} : undef;
my $again = $t->subscribe('/sub?ch=stall', $last ? (headers => { 'Last-Event-ID' => $last }) : ());
ok($again->wait_events(10 - $k, 3), 'it resumes with its last id');
ok(!$again->wait_events(11 - $k, 0.3), '...');
is_deeply([map { substr($_, 0, 3) } $stalled->data, $again->data], [map { sprintf 's%02d', $_ } 1 .. 10],
    '... and has all 10 events, once each');
$again->close;
$stalled->close;

$_->close for @f11, @f2;
$t->done;
