# After a reload, an old worker ends within about a second even when its
# streams that stay on their request cannot send: an HTTP/1.0 subscriber
# that reads nothing, an HTTP/1.1 one with a pipelined request behind its
# stream, and an HTTP/2 one with a 1 KB window that never grants more.
# Meanwhile it gives its worker slot back at once.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;
use SSETest::H2;

my $t = SSETest->new(workers => 1, ports => 2)->run(<<'EOF');
http {
    sse_zone z 8m max_message=64k;
    server {
        listen 127.0.0.1:%%PORT%% sndbuf=8k;
        listen 127.0.0.1:%%PORT2%% http2 sndbuf=8k;
        location /sub  { sse_subscribe $arg_ch zone=z; sse_max_pending 4m; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

my ($old) = $t->wait_workers(1);

# an HTTP/1.0 stream and a pipelined HTTP/1.1 one, small receive buffers,
# never read
my $h10 = $t->connect_small(4096);
print $h10 "GET /sub?ch=b HTTP/1.0\r\nHost: x\r\n\r\n";
my $pipe = $t->connect_small(4096);
print $pipe "GET /sub?ch=b HTTP/1.1\r\nHost: x\r\n\r\n"
          . "GET /status HTTP/1.1\r\nHost: x\r\n\r\n";

# an HTTP/2 stream with a 1 KB window, never a WINDOW_UPDATE
my $h2 = SSETest::H2->new($t->port(2), window => 1024);
my $sid = $h2->request('GET', '/sub?ch=b');
$h2->read_frames(2);
is($h2->status($sid), 200, 'the HTTP/2 stream started');

ok(SSETest::wait_until(sub { ($t->zone_status('z')->{subscribers} // 0) == 3 }, 5),
    'three subscribers');

# far more than the sockets and the window take: every stream is blocked
for my $i (1 .. 16) {
    is($t->publish('/pub?ch=b', sprintf('%02d', $i) . ('x' x 60000))->status, 201,
        "event $i published") if $i == 1 || $i == 16;
    $t->publish('/pub?ch=b', sprintf('%02d', $i) . ('x' x 60000)) if $i > 1 && $i < 16;
}

is($t->zone_status('z')->{workers}, 1, 'one worker slot taken');

my $t0 = time;
ok($t->reload(wait_old => 0), 'reload: a new worker runs');
my $gone = SSETest::wait_until(sub { !kill(0, $old) }, SSETest::tmo(10), 0.02);
my $took = time - $t0;
ok($gone, 'the old worker exited');
ok($took < SSETest::tmo(2.5), sprintf('... within about a second (%.2f s)', $took));

my $slots = $t->zone_status('z')->{workers};
is($slots, 1, 'the zone holds one worker slot, the new worker\'s');
ok(SSETest::wait_until(sub { ($t->zone_status('z')->{subscribers} // -1) == 0 }, 2),
    'no subscriber is counted');

# the new worker serves a normal round trip
my $s = $t->subscribe('/sub?ch=after');
is($t->publish('/pub?ch=after', 'fine')->status, 201, 'a publish after the reload');
ok($s->wait_events(1, 2), 'is delivered');
is(($s->events->[0] // {})->{data}, 'fine', 'exactly');
$s->close;

close $h10;
close $pipe;
$h2->close;

$t->done;
