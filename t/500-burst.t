# A burst larger than history in one publish never cuts live streams
# (docs/directives.md, history=): 465 events in one text/event-stream POST
# to a channel with history=100 reach every live subscriber, on the
# publishing worker and on the other one, all of them, in order, once.
# Before lazy replay, 4 x history + 64 = 464 was the most a worker could be
# behind: the 465th event silently ended every stream of the channel.
#
# Then the same with a burst far beyond what a subscriber may be behind
# (sse_max_pending): such a subscriber is dropped as too slow and counted,
# never silently.  And a worker that does not read at all (SIGSTOP) costs
# the zone at most history events plus what its streams may be behind: the
# other worker's subscribers get everything meanwhile; once it runs again,
# its stream ends (counted as dropped_slow) and resumes from history with a
# "gap" reset.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone sse 16m history=100;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        listen 127.0.0.1:%%PORT2%% reuseport sndbuf=16k;
        sse_heartbeat off;
        sse_max_pending 64k;
        location /sub { sse_subscribe $arg_ch; }
        location /bigsub { sse_subscribe $arg_ch; sse_max_pending 1m; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my @workers = $t->wait_workers(2);
is(scalar @workers, 2, 'two workers');

# subscribers until both workers hold some (reuseport spreads connections)
sub subscribers_on_both {
    my ($ch) = @_;
    my %base = map { $_ => $t->socket_count($_) } @workers;
    my @subs;
    for (1 .. 40) {
        my $s = $t->subscribe("/sub?ch=$ch");
        $s->wait_comment(2);
        push @subs, $s;
        next if @subs < 4;
        my @n = map { $t->socket_count($_) - $base{$_} } @workers;
        return @subs if !grep { $_ < 1 } @n;
    }
    return @subs;
}

sub burst {
    my ($from, $to, $size) = @_;
    my $pad = $size ? 'x' x $size : '';
    return join '', map { "data: $_$pad\n\n" } $from .. $to;
}

# -- 465 events in one publish, history=100 -----------------------------------

my @subs = subscribers_on_both('b');
my %held = map { $_ => $t->socket_count($_) } @workers;
ok(@subs >= 4 && @subs < 40, scalar(@subs) . ' subscribers, on both workers');

my $N = 465;
my $r = $t->publish_stream('/pub?ch=b', burst(1, $N));
is($r->status, 201, "$N events in one POST: 201");
is($r->json->{events}, $N, "... all $N published") or diag($r->body);
is($r->json->{subscribers}, scalar @subs, '... with every subscriber counted');

my $all = SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= $N }, 10);
ok($all, "every subscriber got $N events");
my $exact = grep { join(',', $_->data) eq join(',', 1 .. $N) } @subs;
is($exact, scalar @subs, '... each exactly 1..465, in order, once');
is(scalar(grep { $_->is_closed } @subs), 0, 'no stream was cut');

my $st = $t->zone_status;
is($st->{dropped_slow}, 0, 'nobody dropped as slow');
is($st->{subscribers}, scalar @subs, 'all still subscribed');

# live afterwards too
$r = $t->publish('/pub?ch=b', 'after');
ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= $N + 1 }, 5),
    'the next event reaches everybody');

# history holds the newest 100 once everybody has read the burst
ok(wait_until(sub {
        $t->publish('/pub?ch=b', 'tick');
        (($t->channel_info('/pub?ch=b') // {})->{events} // 0) == 100 }, 5),
    'history trimmed back to 100 events once read')
    or diag(explain $t->channel_info('/pub?ch=b'));
$_->close for @subs;

# -- a burst beyond what a subscriber may be behind ---------------------------

# 2000 events of 100 bytes: 200 KB in one body, more than sse_max_pending
# 64k.  A subscriber allowed 1m keeps up (its socket drains as it pulls); a
# subscriber that does not read falls behind and is dropped, counted.
my $reader = $t->subscribe('/bigsub?ch=c');
my $stalled = $t->subscribe('/sub?ch=c', rcvbuf => 4096, port => 2);
ok($reader->wait_comment(2) && $stalled->wait_comment(2), 'a reader and a stalled subscriber');
my $base = $t->zone_status->{dropped_slow} // 0;

$N = 2000;
$r = $t->publish_stream('/pub?ch=c', burst(1, $N, 100));
is($r->status, 201, "$N events of 100 bytes in one POST");
ok($reader->wait_events($N, 10), "the reading subscriber got all $N");
is_deeply([map { $_ =~ /^(\d+)/ ? $1 : -1 } $reader->data], [1 .. $N], '... in order, once');

ok(wait_until(sub { ($t->zone_status->{dropped_slow} // 0) == $base + 1 }, 5),
    'the stalled subscriber is dropped as too slow, and counted')
    or diag(explain $t->zone_status);
$reader->close;
$stalled->close;

# -- a worker that does not read ----------------------------------------------

@subs = subscribers_on_both('d');
ok(@subs >= 2, 'subscribers of d on both workers');
# one worker stops: the streams it holds are not read meanwhile
my $victim = $workers[1];
kill 'STOP', $victim;
my @live;
for (1 .. 20) {
    my $s = $t->subscribe('/bigsub?ch=d', wait => 0);
    push @live, $s if $s->wait_comment(1);
    last if @live >= 2;
}
ok(@live >= 2, 'new subscribers (sse_max_pending 1m) reach the worker that runs');

# requests to the worker that runs: a keepalive connection that answered
# once is served by it (reuseport may hand a connection to either worker)
sub running_conn {
    for (1 .. 40) {
        my $c = $t->connect;
        print $c "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
        my $resp = read_response($c, 1);
        return $c if $resp && $resp =~ m{^HTTP/1.1 200};
        close $c;
    }
    return undef;
}

my $conn = running_conn();
ok($conn, 'a connection to the worker that runs');

$N = 3000;
my $body = burst(1, $N, 100);
print $conn "POST /pub?ch=d HTTP/1.1\r\nHost: x\r\nContent-Type: text/event-stream\r\n"
    . "Content-Length: " . length($body) . "\r\n\r\n$body";
my $resp = read_response($conn, 10) // '';
like($resp, qr{^HTTP/1.1 201}, "$N events of 100 bytes published while a worker is stopped");
ok(SSETest::Stream::wait_all(\@live, sub { $_[0]->event_count >= $N }, 10),
    'the running worker\'s subscribers get all of them');
print $conn "GET /pub?ch=d HTTP/1.1\r\nHost: x\r\n\r\n";
$resp = read_response($conn, 5) // '';
my $info = json_decode($resp =~ /\r\n\r\n(.*)$/s ? $1 : '{}') // {};
cmp_ok($info->{events} // 1e9, '<=', 100 + int(64 * 1024 / 100) + 2,
    'the stopped worker holds back at most history + sse_max_pending worth of events')
    or diag(explain $info);

kill 'CONT', $victim;
close $conn;
ok(SSETest::Stream::wait_all(\@subs, sub {
        $_[0]->is_closed || $_[0]->event_count >= $N }, 10),
    'the earlier streams (sse_max_pending 64k), once that worker runs, end or are complete');
my ($complete, $ended, $prefix) = (0, 0, 0);
for my $s (@subs) {
    my @d = $s->data;
    if (@d == $N && $d[-1] eq $N . ('x' x 100)) { $complete++; next; }
    $ended++;
    $prefix++ if join(',', @d) eq join(',', map { $_ . ('x' x 100) } 1 .. @d);
}
ok($ended >= 1, "the stopped worker's streams ($ended) ended: they were too far behind");
is($prefix, $ended, '... each after a prefix of the events, in order');
ok(wait_until(sub { ($t->zone_status->{dropped_slow} // 0) == $base + 1 + $ended }, 5),
    "the ended streams are counted as dropped_slow")
    or diag(explain $t->zone_status);
$_->close for @subs, @live;

$t->done;
