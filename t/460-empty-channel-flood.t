# Anonymous subscribers cannot fill the zone with channels: a channel that
# holds no event and no subscriber never pushes out a publish.  Subscribes
# of 64 new channels each, closed at once, leave empty channels behind;
# they are the first thing reclaimed when a publish needs room, and at
# max_channels.  Channels that hold events still count against
# max_channels, and resuming a quiet channel still works without a reset.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 512k;
    sse_zone c 1m max_channels=50;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location /csub { sse_subscribe $arg_ch zone=c; }
        location /cpub { sse_publish $arg_ch zone=c; }
        location = /status { sse_status; }
    }
}
EOF

# subscribes to $n (64) new channels and leaves; returns the status
sub flood_one {
    my ($loc, $i, $n) = @_;
    my $list = join ',', map { "f$i-$_" } 1 .. ($n // 64);
    my $s = $t->subscribe("/$loc?ch=$list", untracked => 1);
    $s->wait_headers(2);
    my $st = $s->status;
    $s->close;
    return $st;
}

# -- a zone filled with channels nobody published to ------------------------

# a channel with history, and a quiet one a client will resume
is($t->publish('/pub?ch=keep', 'kept')->status, 202, 'a channel with an event');
my $q = $t->subscribe('/sub?ch=quiet');
ok($q->wait_comment(2), 'a subscriber of a quiet channel');
$q->close;

my %st;
$st{flood_one('sub', $_)}++ for 1 .. 120;
is_deeply(\%st, { 200 => 120 }, '120 subscribes of 64 new channels each');
ok(SSETest::wait_until(sub { ($t->zone_status('z')->{subscribers} // -1) == 0 }, 5),
    'the flood left: no subscriber');
my $zs = $t->zone_status('z');
ok($zs->{channels} > 1000, "the flood left $zs->{channels} empty channels");

my %pub;
for my $i (1 .. 40) {
    my $r = $t->publish("/pub?ch=new$i", 'x' x 2000);
    $pub{$r->status}++;
}
is_deeply(\%pub, { 202 => 40 }, 
    'publishes to 40 new channels all succeed (no 507)');
is($t->zone_status('z')->{evicted}, 0, 'and evict no event');
is($t->get('/pub?ch=keep')->json->{events}, 1, 'the old event is still there');

# resuming the quiet channel: no reset, live events come
my $q2 = $t->subscribe('/sub?ch=quiet');
ok($q2->wait_comment(2), 'the quiet channel is subscribed again');
is($t->publish('/pub?ch=quiet', 'q1')->status, 201, 'a publish to it');
ok($q2->wait_events(1, 2), 'arrives');
$q2->close;

# -- max_channels: empty channels make way, channels with events do not ----

%st = ();
# one after the other: channels a subscriber still holds cannot make way
for my $i (1 .. 5) {
    $st{flood_one('csub', $i, 30)}++;
    SSETest::wait_until(sub { ($t->zone_status('c')->{subscribers} // -1) == 0 },
        SSETest::tmo(3));
}
is_deeply(\%st, { 200 => 5 },
    'max_channels=50: 5 subscribes of 30 new channels each are taken');
ok(SSETest::wait_until(sub { ($t->zone_status('c')->{subscribers} // -1) == 0 }, 5),
    'max_channels=50: the flood left');
my $ok = 0;
for my $i (1 .. 50) {
    $ok++ if $t->publish("/cpub?ch=k$i", "k$i")->status == 202;
}
is($ok, 50, 'all 50 channels can be published to: empty ones made way');
is($t->zone_status('c')->{channels}, 50, 'status: 50 channels');
my $r = $t->publish('/cpub?ch=k51', 'k51');
is($r->status . ' ' . ($r->json->{error} // ''), '507 too_many_channels',
    'a 51st channel is refused: the 50 hold events');
my $s = $t->subscribe('/csub?ch=k51', untracked => 1);
$s->wait_complete(2);
is($s->status, 503, 'and so is a subscriber to a 51st');
$s->close;

$t->done;
