# sse_max_pending limits how far a subscriber may fall behind; it is not a
# limit on the size of an event.  A subscriber that has read everything
# gets an event larger than sse_max_pending (but within the zone's
# max_message) like any other, and is not dropped as too slow; a
# subscriber that does not read is still dropped.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_zone z 16m history=100;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;
        client_max_body_size 2m;
        sse_heartbeat off;
        location /sub32 { sse_subscribe $arg_ch zone=z; sse_max_pending 32k; }
        location /sub   { sse_subscribe $arg_ch zone=z; }
        location /pub   { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

for my $case (['/sub32', 32 * 1024, 40_000], ['/sub', 256 * 1024, 300_000]) {
    my ($loc, $limit, $size) = @$case;
    my $name = "sse_max_pending " . ($limit / 1024) . "k";
    my $ch = substr($loc, 1);
    my $dropped0 = $t->zone_status('z')->{dropped_slow};

    # HTTP/1.1 (a detached stream) and HTTP/1.0 (a stream on its request)
    my $s = $t->subscribe("$loc?ch=$ch");
    my $s10 = $t->subscribe("$loc?ch=$ch", proto => 'HTTP/1.0');
    ok($s->wait_comment(1) && $s10->wait_comment(1), "$name: two subscribers that read everything");

    my $r = $t->publish("/pub?ch=$ch", 'small');
    ok($s->wait_events(1, 1) && $s10->wait_events(1, 1), "$name: a small event arrives");

    my $big = 'B' x $size;
    $r = $t->publish("/pub?ch=$ch", $big);
    is($r->status, 201, "$name: an event of $size bytes (within max_message): 201");
    ok($s->wait_events(2, 3), "$name: the HTTP/1.1 subscriber gets it");
    is(length($s->events->[1]{data} // ''), $size, '... whole');
    ok($s10->wait_events(2, 3), "$name: the HTTP/1.0 subscriber gets it");
    ok(!$s->is_closed && !$s10->is_closed, "$name: neither was disconnected");
    is($t->zone_status('z')->{dropped_slow} - $dropped0, 0, "$name: dropped_slow did not move");

    $r = $t->publish("/pub?ch=$ch", 'after');
    ok($s->wait_events(3, 1) && $s10->wait_events(3, 1), "$name: and the next event follows on the same streams");
    $s->close;
    $s10->close;
}

# the limit still cuts a subscriber that does not read
my $fast = $t->subscribe('/sub32?ch=slow');
my $slow = $t->subscribe('/sub32?ch=slow', rcvbuf => 4096, port => 2);
ok($fast->wait_comment(1) && $slow->wait_comment(1), 'a reader and one that stopped reading');
my $d0 = $t->zone_status('z')->{dropped_slow};
for my $n (1 .. 30) {
    $t->publish('/pub?ch=slow', "$n " . ('x' x 8000));
    $fast->wait_events($n, 1);
}
is($fast->event_count, 30, '30 events of 8 KB: the reader got them all');
ok(wait_until(sub { $t->zone_status('z')->{dropped_slow} == $d0 + 1 }, 2),
    'the one that stopped reading was dropped');
ok($slow->wait_closed(5), '... its connection is closed');

$t->done;
