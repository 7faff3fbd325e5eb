# Wake-ups cost what changed: 1000 channels with one subscriber each, on
# two workers.  One worker is stopped while 1000 channels are published to
# (16 multi-channel publishes, through the other worker), so when it runs
# again some 500 changed channels wait for it in one wake-up, far more than
# the 64 the old fixed queue held before it fell back to scanning every
# channel and flushing every stream.  Every subscriber gets its event, and
# sse_status's "woken" (changed channels taken from the workers' queues)
# grows by exactly 1000: each channel was looked at once, by the one worker
# that has its subscriber, and nothing else was.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use SSETest;

my $CHANNELS = 1000;

if (fd_limit() < $CHANNELS + 200) {
    plan skip_all => "needs " . ($CHANNELS + 200) . " open files";
}

my $t = SSETest->new(workers => 2)->run(<<'EOF');
worker_rlimit_nofile 4096;
events { worker_connections 2048; }
http {
    sse_zone sse 32m;
    server {
        listen 127.0.0.1:%%PORT%% reuseport backlog=2048;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my @workers = $t->wait_workers(2);
is(scalar @workers, 2, 'two workers');

my @subs;
for my $i (0 .. $CHANNELS - 1) {
    push @subs, $t->subscribe("/sub?ch=c$i", wait => 0, keep_raw => 0);
}
ok(SSETest::Stream::wait_all(\@subs, sub { @{$_[0]->comments} >= 1 }, 30),
    "$CHANNELS subscribers, one per channel");
my @held = map { $t->socket_count($_) } @workers;
ok(!grep({ $_ < $CHANNELS / 8 } @held), "both workers hold many of them (@held sockets)");

# a keepalive connection served by the worker that keeps running
sub request_on {
    my ($c, $req) = @_;
    print $c $req;
    my $r = read_response($c, tmo(5)) // '';
    my ($status) = $r =~ m{^HTTP/1.1 (\d+)};
    my ($body) = $r =~ /\r\n\r\n(.*)$/s;
    return ($status // 0, $body // '');
}

my $victim = $workers[1];
kill 'STOP', $victim;

my $conn;
for (1 .. 40) {
    my $c = $t->connect;
    print $c "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    my $r = read_response($c, 1);
    if ($r && $r =~ m{^HTTP/1.1 200}) { $conn = $c; last; }
    close $c;
}
ok($conn, 'a connection to the running worker');

my (undef, $body) = request_on($conn, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
my $before = (json_decode($body) // {})->{zones}{sse} // {};

my ($bad, $subscribed) = (0, 0);
for (my $i = 0; $i < $CHANNELS; $i += 64) {
    my $last = $i + 63 < $CHANNELS - 1 ? $i + 63 : $CHANNELS - 1;
    my $list = join ',', map { "c$_" } $i .. $last;
    my ($status, $b) = request_on($conn,
        "POST /pub?ch=$list HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    $bad++ unless $status == 201;
}
is($bad, 0, "$CHANNELS channels published to, 64 per publish, while a worker is stopped");

kill 'CONT', $victim;

ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= 1 }, 10),
    'every subscriber got its event');
is(scalar(grep { $_->event_count == 1 && ($_->data)[0] eq 'hello' } @subs), $CHANNELS,
    '... exactly one, the right one');

my $after;
ok(wait_until(sub {
    my (undef, $b) = request_on($conn, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n");
    $after = (json_decode($b) // {})->{zones}{sse} // {};
    ($after->{delivered} // 0) - ($before->{delivered} // 0) == $CHANNELS }, 5),
    "delivered grew by $CHANNELS");
is(($after->{woken} // 0) - ($before->{woken} // 0), $CHANNELS,
    "woken grew by $CHANNELS: each changed channel was taken once, nothing was scanned")
    or diag(explain [$before, $after]);
cmp_ok(($after->{wakeups} // 0) - ($before->{wakeups} // 0), '<=', 16 + 4,
    'in few wake-ups: one per publish on the running worker, one or two on the other');
is($after->{dropped_slow}, 0, 'nobody dropped');

close $conn;
$_->close for @subs;
$t->done;
