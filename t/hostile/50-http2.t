# HTTP/2 attacks (h2c): 100 streams on one connection with a 1 KB window
# that is never raised, while much is published; a storm of streams opened
# and reset at once; a publish whose DATA never ends; a client that opens
# streams and vanishes.  Streams are dropped by their limits, the worker
# keeps serving, nothing stays counted.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use SSETest;
use SSETest::H2;
use SSETest::Hostile;

my $t = SSETest::Hostile::start(workers => 2);
my $base = SSETest::Hostile::baseline($t);
my $P2 = $t->port(2);

# -- tiny windows: 100 streams (nginx's default max concurrent streams is
# 128), 1 KB each, no WINDOW_UPDATE ever
my $h2 = SSETest::H2->new($P2, window => 1024);
my @ids = map { $h2->request('GET', '/sub?ch=tiny') } 1 .. 100;
$h2->read_frames(SSETest::tmo(2), all => 1);
is(scalar(grep { ($h2->status($_) // 0) == 200 } @ids), 100, '100 streams with a 1 KB window: 200');
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 100 }, SSETest::tmo(5)),
    'counted');
my $reader = $t->subscribe('/sub?ch=tiny');
for my $i (1 .. 40) {
    $t->publish('/pub?ch=tiny', sprintf('%02d', $i) . ('w' x 30000));
    $reader->wait_events($i, SSETest::tmo(2));
}
is($reader->event_count, 40, 'a normal reader of the same channel gets all 40 events');
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 1 }, SSETest::tmo(8)),
    'the 100 starved streams were dropped (sse_max_pending, send_timeout)');
$reader->close;
$h2->close;

# -- a storm of streams opened and reset at once
my $storm = SSETest::H2->new($P2);
for my $k (1 .. 300) {
    my $id = $storm->request('GET', "/sub?ch=storm$k");
    $storm->send_frame(SSETest::H2::RST_STREAM(), 0, $id, pack('N', 8));
}
$storm->read_frames(SSETest::tmo(1));
ok(!$storm->eof || $storm->goaway, '300 streams opened and reset: the connection is served or cut cleanly');
$storm->close;
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 0 }, SSETest::tmo(5)),
    '... nothing stays counted');

# -- a publish over HTTP/2 whose body never ends: complete events go out,
# the stream ends at client_body_timeout
my $sub = $t->subscribe('/sub?ch=h2pub');
my $pc = SSETest::H2->new($P2);
my $pid = $pc->request('POST', '/pub?ch=h2pub', open_body => 1,
    headers => ['content-type' => 'text/event-stream'],
    body => "data: over h2\n\ndata: never finished");
ok($sub->wait_events(1, SSETest::tmo(3)), 'an open HTTP/2 publish body: its complete event arrives');
ok(SSETest::wait_until(sub {
        $pc->read_frames(0.2);
        defined $pc->status($pid) || defined $pc->reset($pid) || $pc->eof;
    }, SSETest::tmo(5)),
    'the never-ending body is ended by nginx (client_body_timeout)');
is_deeply([$sub->data], ['over h2'], 'only the complete event');
$pc->close;
$sub->close;

# -- a client that opens streams of 64 new channels and vanishes
my $v = SSETest::H2->new($P2);
for my $k (1 .. 50) {
    $v->request('GET', '/sub?ch=' . join(',', map { "v$k-$_" } 1 .. 64));
}
$v->read_frames(SSETest::tmo(1));
$v->close;
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 0 }, SSETest::tmo(5)),
    '50 streams of 64 channels, connection dropped: nothing counted');

# -- HEAD over HTTP/2
my $hh = SSETest::H2->new($P2);
my $hid = $hh->request('HEAD', '/sub?ch=head');
$hh->read_frames(SSETest::tmo(2));
is($hh->status($hid), 200, 'HEAD over HTTP/2: 200');
ok($hh->ended($hid), '... and the stream ends');
$hh->close;

SSETest::Hostile::healthy($t, $base, name => 'http2',
    channels => [qw(tiny h2pub head), map { "storm$_" } 1 .. 300]);
$t->done;
