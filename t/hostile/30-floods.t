# Floods: of channels (subscribes of 64 new channels each, closed at once:
# the zone must still take publishes), of connections (hundreds of
# subscribers at once, then all gone abruptly), of pipelined requests
# (status, subscribes, publishes in one write), and of publishes to ever
# new channels.  Counters return to 0; memory stays bounded.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use SSETest;
use SSETest::Hostile;

my $t = SSETest::Hostile::start(workers => 2);
my $base = SSETest::Hostile::baseline($t);

# -- channels: 600 subscribes x 64 new channels (38400 channels, far more
# than the 8 MB zone holds), each closed once its headers came
my ($ok, $n) = (0, 0);
for my $i (1 .. 600) {
    my $list = join ',', map { "f$i-$_" } 1 .. 64;
    my $s = $t->connect;
    print $s "GET /sub?ch=$list HTTP/1.1\r\nHost: x\r\n\r\n";
    my $got = SSETest::Hostile::drain($s, SSETest::tmo(2), 12);
    $ok++ if $got =~ m{^HTTP/1\.1 200};
    close $s;
}
is($ok, 600, 'a flood of 600 subscribes of 64 new channels: all 200');
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 0 }, SSETest::tmo(5)),
    'all gone');
my %codes;
$codes{$t->publish("/pub?ch=after$_", 'x' x 1000)->status}++ for 1 .. 50;
is_deeply(\%codes, { 202 => 50 }, 'then 50 publishes to new channels: all 202, no 507');

# -- connections: 800 subscribers at once, then all closed abruptly (RST)
my @socks = SSETest::Hostile::sockets($t, 800,
    "GET /sub?ch=crowd HTTP/1.1\r\nHost: x\r\n\r\n");
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 800 }, SSETest::tmo(10)),
    '800 subscribers at once');
is($t->publish('/pub?ch=crowd', 'all of you')->json->{subscribers}, 800,
    'a publish reaches 800');
for my $s (@socks) {
    setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
    close $s;
}
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) == 0 }, SSETest::tmo(10)),
    'all 800 reset: 0 subscribers');

# -- pipelining: 200 requests in one write, the last a subscribe
my $pipe = join '', (map { "GET /status HTTP/1.1\r\nHost: x\r\n\r\n" } 1 .. 100),
    (map { "POST /pub?ch=piped HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\np$_" } 0 .. 9),
    (map { "GET /sub?ch=piped HTTP/1.1\r\nHost: x\r\n\r\n" } 1 .. 89),
    "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
my $ps = $t->connect;
print $ps $pipe;
my $got = SSETest::Hostile::drain($ps, SSETest::tmo(3));
my $replies = () = $got =~ m{HTTP/1\.1 \d\d\d }g;
ok($replies >= 111, "200 pipelined requests: $replies replies so far (the first subscribe keeps the connection)");
close $ps;
is($t->get('/pub?ch=piped')->json->{events}, 10, 'the 10 pipelined publishes were published');

# -- publishes to ever new channels, from many connections
my $bad = 0;
for my $i (1 .. 2000) {
    my $st = $t->publish("/pub?ch=new$i", "n$i")->status;
    $bad++ unless $st == 202;
}
is($bad, 0, '2000 publishes to new channels: all 202');

SSETest::Hostile::healthy($t, $base, name => 'floods',
    channels => [qw(crowd piped)]);
$t->done;
