# Hostile ids: channel lists that are huge, junk, too many, with control
# bytes; Last-Event-ID headers that are huge, junk, or 64 positions for a
# 64-channel stream; many such non-reading streams at once.  Each gets a
# clear answer (400, 414, a reset), the log stays one line per entry, and
# the worker holds no more than its limits allow.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use SSETest;
use SSETest::Hostile;

my $t = SSETest::Hostile::start(workers => 2);
$t->expect_log(qr/sse: invalid channel list/);
my $base = SSETest::Hostile::baseline($t);

# 64 channels of 100 bytes: the longest list that fits nginx's header buffers
my @long = map { sprintf('%03d', $_) . ('L' x 97) } 1 .. 64;
my $s = $t->subscribe('/sub?ch=' . join(',', @long));
is($s->status, 200, '64 channels of 100 bytes: 200');
is($t->publish('/pub?ch=' . $long[63], 'to the last')->status, 201, 'the 64th channel takes events');
ok($s->wait_events(1, SSETest::tmo(2)), '... delivered');
$s->close;

is($t->get('/sub?ch=' . join(',', map { "c$_" } 1 .. 65))->status, 400, '65 channels: 400');
is($t->get('/sub?ch=' . ('x' x 256))->status, 400, 'an id of 256 bytes: 400');
is($t->get('/sub?ch=' . join(',', map { 'y' x 255 } 1 .. 64))->status, 414,
    '64 ids of 255 bytes (16 KB of URI): 414 from nginx');
is($t->get('/events/,,,%20,')->status, 400, 'only separators: 400');
for my $junk ('%00', '%7F', '%FF', 'a%09b', 'a%0D%0Ab', '%1B[2J') {
    is($t->get("/events/x$junk")->status, 400, "a channel id with $junk: 400");
}
my @bad = grep { !m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[} } split /\n/, $t->error_log;
is_deeply(\@bad, [], 'error.log: every line starts with a timestamp');

# Last-Event-ID: huge, junk, and 64 positions
my $chs = join ',', map { "m$_" } 1 .. 64;
$t->publish("/pub?ch=m$_", "m$_") for 1 .. 64;
my $ids = join '.', map { "zzzzzzzzzzzzz-99999999999999999999" } 1 .. 64;
$s = $t->subscribe("/sub?ch=$chs", headers => { 'Last-Event-ID' => $ids });
is($s->status, 200, '64 channels with 64 positions of unknown epochs: 200');
ok($s->wait_events(128, SSETest::tmo(3)), '... a reset and the history of each');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$s->events}), 64, '... 64 resets');
$s->close;
for my $lei ('x' x 7000, "\x01\x02junk", '-', '0-0', ('1-1.' x 1500) . '1-1') {
    my $x = $t->subscribe('/sub?ch=m1', headers => { 'Last-Event-ID' => $lei });
    ok($x->status == 200 || $x->status == 400 || $x->status == 431 || $x->status == 494,
        'a hostile Last-Event-ID (' . length($lei) . ' bytes): ' . $x->status);
    $x->close;
}

# 100 non-reading streams with junk Last-Event-IDs on a channel with
# history: each holds at most sse_max_pending of replay
$t->publish('/pub?ch=hist', 'h' x 30000) for 1 .. 20;
my @socks = SSETest::Hostile::sockets($t, 100,
    "GET /sub?ch=hist HTTP/1.1\r\nHost: x\r\nLast-Event-ID: junk\r\n\r\n",
    rcvbuf => 4096);
ok(SSETest::wait_until(sub { SSETest::Hostile::zones_subscribers($t) >= 100 }, SSETest::tmo(5)),
    '100 non-reading streams with a junk Last-Event-ID');
my $growth = SSETest::Hostile::rss_growth($t, $base);
ok($growth <= SSETest::Hostile::bound_kb(), "worker RSS grew by $growth kB meanwhile");
close $_ for @socks;

SSETest::Hostile::healthy($t, $base, name => 'ids',
    channels => ['hist', 'm1', $long[0], $long[63]]);
$t->done;
