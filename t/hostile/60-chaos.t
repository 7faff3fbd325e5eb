# Chaos under load: a publisher publishes continuously to followers
# (EventSource-like clients that resume with Last-Event-ID) while hostile
# clients hold streams that cannot send (HTTP/1.0 and pipelined HTTP/1.1
# that never read, HTTP/2 with a 1 KB window); nginx is reloaded twice and
# a worker is killed with SIGKILL.  Old workers exit within about a second
# each time; every follower gets every event exactly once, in order.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use SSETest;
use SSETest::H2;
use SSETest::Hostile;

# a third port with small socket buffers: the hostile streams' sockets
# fill with a few events and stay full
(my $conf = $SSETest::Hostile::CONFIG) =~ s/history=50/history=2000/;
$conf =~ s/(listen 127\.0\.0\.1:%%PORT2%% http2;)/$1\n        listen 127.0.0.1:%%PORT3%% sndbuf=8k;/;
# and send_timeout long enough that only the module's shutdown ends them
$conf =~ s/send_timeout 3s;/send_timeout 30s;/;
my $t = SSETest::Hostile::start(workers => 2, config => $conf, ports => 3);
my $base = SSETest::Hostile::baseline($t);

my @f = map { SSETest::Follower->new($t, '/sub?ch=chaos') } 1 .. 6;
ok(SSETest::wait_until(sub { $_->poll(0) for @f;
        !grep { !$_->stream || !@{$_->stream->comments} } @f }, SSETest::tmo(5)),
    '6 followers');

my @hostile;
# streams that cannot send: they follow "bulk", where 150 KB (less than
# sse_max_pending) is published before each round
sub attach_hostile {
    push @hostile, SSETest::Hostile::sockets($t, 5,
        "GET /sub?ch=bulk HTTP/1.0\r\n\r\n", rcvbuf => 4096, port => $t->port(3));
    push @hostile, SSETest::Hostile::sockets($t, 5,
        "GET /sub?ch=bulk HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: x\r\n\r\n",
        rcvbuf => 4096, port => $t->port(3));
    my $h2 = SSETest::H2->new($t->port(2), window => 1024);
    $h2->request('GET', '/sub?ch=bulk') for 1 .. 10;
    push @hostile, $h2;
    SSETest::wait_until(sub {
        ($t->get('/pub?ch=bulk')->json->{subscribers} // 0) >= 20 }, SSETest::tmo(5));
    $t->publish('/pub?ch=bulk', 'b' x 50000) for 1 .. 3;
}
attach_hostile();

# the publisher notes each publish's status: one in flight when a worker
# is killed may or may not have been stored (its reply never came)
my $N = 600;
my $plog = $t->dir . '/publisher.log';
my $ppid = fork;
die "fork: $!" unless defined $ppid;
if ($ppid == 0) {
    open my $log, '>', $plog or POSIX::_exit(1);
    $log->autoflush(1);
    for my $n (1 .. $N) {
        my $r = eval { $t->publish('/pub?ch=chaos', "p$n") };
        print $log "$n ", ($r ? $r->status : 0), "\n";
        sleep 0.005;
    }
    POSIX::_exit(0);
}
push @{$t->{procs}}, { pid => $ppid };      # the harness stops it if we die
sub poll_for { my ($sec) = @_; my $end = time + $sec;
    do { $_->poll(0.01) for @f } while time < $end;
}

my @slow_exit;
my @killed;
for my $round (1 .. 3) {
    poll_for(0.5);
    my %old = map { $_ => 1 } $t->workers;
    my $t0 = time;
    if ($round == 2) {
        my ($victim) = $t->active_workers;
        push @killed, $victim;
        $t->expect_log(qr/process $victim exited on signal 9/);
        kill 'KILL', $victim;
    } else {
        kill 'HUP', $t->master_pid;
    }
    my $gone = SSETest::wait_until(sub {
        $_->poll(0.005) for @f;
        my %now = map { $_ => 1 } $t->workers;
        !grep { $now{$_} } keys %old
            or ($round == 2 && !$now{$killed[-1]});
    }, SSETest::tmo(10), 0.001);
    my $took = time - $t0;
    push @slow_exit, sprintf('round %d: %.2fs', $round, $took)
        if !$gone || $took > SSETest::tmo(2.5);
    ok(scalar($t->wait_workers(2, SSETest::tmo(5))), "round $round: 2 workers run");
    attach_hostile();
}
is_deeply(\@slow_exit, [], 'old workers exited within about a second after each reload, the killed one at once');

my $rc;
SSETest::wait_until(sub {
    $_->poll(0.01) for @f;
    my $r = waitpid($ppid, POSIX::WNOHANG());
    $rc = $? >> 8 if $r == $ppid;
    defined $rc;
}, SSETest::tmo(30), 0);
$_->{pid} = 0 for grep { ($_->{pid} // 0) == $ppid } @{$t->{procs}};
is($rc, 0, "the publisher ran through");
my %status = map { split ' ' } do { open my $l, '<', $plog; <$l> };
my @acked = grep { ($status{$_} // 0) =~ /^20[12]$/ } 1 .. $N;
my @unsure = grep { ($status{$_} // 0) !~ /^20[12]$/ } 1 .. $N;
ok(@unsure <= 1, scalar(@acked) . " publishes acknowledged; without a reply: @unsure"
    . ' (at most the one in flight at the SIGKILL)');
ok(SSETest::wait_until(sub { $_->poll(0.01) for @f; !grep { @{$_->events} < @acked } @f },
    SSETest::tmo(10), 0), 'every follower got every acknowledged event');
$_->poll(0.2) for @f;
my %maybe = map { ("p$_" => 1) } @unsure;
my $want = join ' ', map { "p$_" } @acked;
is(scalar(grep { join(' ', grep { !$maybe{$_} } $_->data) ne $want
                 || scalar($_->data) > @acked + @unsure } @f), 0,
    'each got every acknowledged event exactly once, in order (and nothing else)');

$_->close for @f;
for my $h (@hostile) { ref($h) eq 'SSETest::H2' ? $h->close : close($h) }

SSETest::Hostile::healthy($t, $base, name => 'chaos', reloaded => 1,
    killed => \@killed, channels => ['chaos', 'bulk']);
$t->done;
