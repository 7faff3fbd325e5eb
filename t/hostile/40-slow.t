# Slow and odd clients: slowloris request heads on subscribe and publish,
# subscribers that never read while much is published, half-closed
# clients (shutdown of their write side), and clients that vanish.  Each
# is bounded by a timeout or a limit (client_header_timeout,
# client_body_timeout, sse_max_pending, send_timeout) and leaves nothing.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use Socket qw(SHUT_WR);
use SSETest;
use SSETest::Hostile;

my $t = SSETest::Hostile::start(workers => 2);
my $base = SSETest::Hostile::baseline($t);

# -- slowloris heads: 200 connections that send a byte now and then never
# finish their head; client_header_timeout (2s) ends them all
my @slow = SSETest::Hostile::sockets($t, 100, "GET /sub?ch=slow HTTP/1.1\r\nHo");
push @slow, SSETest::Hostile::sockets($t, 100, "POST /pub?ch=slow HTTP/1.1\r\nContent-Le");
my $t0 = time;
my %closed;
while (time - $t0 < SSETest::tmo(5) && keys %closed < @slow) {
    for my $i (0 .. $#slow) {
        next if $closed{$i};
        local $SIG{PIPE} = 'IGNORE';
        my $sel = IO::Select->new($slow[$i]);
        if ($sel->can_read(0)) {
            my $n = sysread($slow[$i], my $buf, 4096);
            $closed{$i} = 1 if !$n;
            next;
        }
        syswrite($slow[$i], 'x') or $closed{$i} = 1;
    }
    sleep 0.2;
}
is(scalar(keys %closed), 200, sprintf('200 slowloris heads: all closed by nginx (%.1f s)', time - $t0));
close $_ for @slow;

# -- subscribers that never read: 50 of them with 4 KB receive buffers,
# 8 MB published; each is dropped at sse_max_pending (256 KB) or
# send_timeout, the others are not disturbed
my @dead = SSETest::Hostile::sockets($t, 50,
    "GET /sub?ch=flood HTTP/1.1\r\nHost: x\r\n\r\n", rcvbuf => 4096);
my $reader = $t->subscribe('/sub?ch=flood');
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 51 }, SSETest::tmo(5)),
    '50 non-reading subscribers and one reader');
my $dropped0 = $t->zone_status('z')->{dropped_slow};
for my $i (1 .. 128) {
    $t->publish('/pub?ch=flood', sprintf('%03d', $i) . ('d' x 60000));
    $reader->wait_events($i, SSETest::tmo(2));
}
is($reader->event_count, 128, 'the reader got all 128 events (7.7 MB)');
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 1 }, SSETest::tmo(8)),
    'the 50 non-readers were dropped');
is($t->zone_status('z')->{dropped_slow} - $dropped0, 50, 'counted in dropped_slow');
$reader->close;
close $_ for @dead;

# -- half-closed clients: the request, then shutdown(SHUT_WR).  nginx
# takes the read EOF as the client gone: each stream starts, then ends
my @half = SSETest::Hostile::sockets($t, 20, "GET /sub?ch=half HTTP/1.1\r\nHost: x\r\n\r\n");
shutdown($_, SHUT_WR) for @half;
my $ended = 0;
for my $h (@half) {
    my $got = SSETest::Hostile::drain($h, SSETest::tmo(3));
    $ended++ if $got =~ m{^HTTP/1\.1 200} && IO::Select->new($h)->can_read(0)
        && !sysread($h, my $more, 1);
}
is($ended, 20, '20 half-closed subscribers: each started and was ended by the server');
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 0 }, SSETest::tmo(3)),
    '... and is not counted');
close $_ for @half;

# -- HTTP/1.0 subscribers that vanish mid-event
my @gone = SSETest::Hostile::sockets($t, 30, "GET /sub?ch=gone HTTP/1.0\r\n\r\n", rcvbuf => 4096);
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 30 }, SSETest::tmo(5)),
    '30 HTTP/1.0 subscribers');
$t->publish('/pub?ch=gone', 'g' x 60000) for 1 .. 3;
close $_ for @gone;

SSETest::Hostile::healthy($t, $base, name => 'slow clients',
    channels => [qw(slow flood half gone)]);
$t->done;
