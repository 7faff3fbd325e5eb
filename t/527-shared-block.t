# Large events (8 KB and more) are kept once per worker in a shared,
# counted block, which each live stream's output references instead of
# holding its own copy (docs/architecture.md, "The path of one event").
# What that must not change or break:
#  - memory: 1000 streams that do not read yet hold about one block per
#    event, not one copy per stream (a copy each would be ~125 MB here);
#    then each gets every byte;
#  - sse_max_pending counts referenced bytes as it counted copied ones: a
#    reader that stalls is dropped at the same bound, the others go on;
#  - clients that go away while their output references a block (closed
#    sockets of detached streams and of streams on their request, HTTP/2
#    streams reset while their DATA waits for the flow-control window, a
#    whole HTTP/2 connection), then more publishes: no crash, nothing left
#    behind (the sanitizer tier runs this file with LeakSanitizer on the
#    workers);
#  - HTTP/2 streams get large events byte for byte;
#  - a stream of several channels writes its own id line in front of each
#    shared body; small and large events interleave in order, also past
#    the number of blocks one buffer may reference (the rest is copied);
#  - streams that decline a large event (behind, replaying) beside one
#    that takes it, and an event every stream declines: each stream still
#    gets every byte (that no block is made for an event nobody takes is
#    not visible from outside: the old code freed it in the same round);
#  - streams that end while their buffers reference blocks (a DELETE: all
#    of it goes out first, on a request through nginx's writer; a
#    shutdown: freed with the worker).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use SSETest;
use SSETest::H2;

my $N = 1000;
my $need = $N + 200;
if (fd_limit() < $need) {
    skip_file("needs $need open files, the limit is " . fd_limit());
}

my $t = SSETest->new(workers => 1, ports => 3)->run(<<'EOF');
events { worker_connections 4096; }
http {
    sse_zone z 64m history=50 max_message=256k;
    client_max_body_size 1m;
    limit_conn_zone $binary_remote_addr zone=lc:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;
        listen 127.0.0.1:%%PORT3%% http2 sndbuf=16k;
        sse_heartbeat off;
        location /sub   { sse_subscribe $arg_ch zone=z; }
        location /sub64 { sse_subscribe $arg_ch zone=z; sse_max_pending 64k; }
        location /big   { sse_subscribe $arg_ch zone=z; sse_max_pending 1m; }
        # limit_conn keeps a stream on its request: the filter chain path
        location /onreq {
            sse_subscribe $arg_ch zone=z;
            sse_max_pending 1m;
            limit_conn lc 1000;
        }
        # replays every stored event: behind until it has them all
        location /replay {
            sse_subscribe $arg_ch zone=z;
            sse_replay all;
            sse_max_pending 64k;
        }
        location /pub   { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

my ($worker) = $t->workers;

# -- (a) 1000 streams that do not read: one block per event ------------------

my @s = map { $t->subscribe('/sub?ch=wide', rcvbuf => 4096, port => 2) } 1 .. $N;
ok(SSETest::Stream::wait_all(\@s, sub { @{$_[0]{comments}} }, 30),
    "$N streams of one channel open");

my $rss0 = SSETest::rss_settled($worker, 20);
my @wide = map { sized_data("w$_", 65536) } 1 .. 2;
for (@wide) {
    is($t->publish('/pub?ch=wide', $_)->status, 201, 'a 64 KB event: 201');
}
my $rss1 = SSETest::rss_settled($worker, 30);
ok(defined $rss0 && defined $rss1, 'the worker settled before and after');
my $grew = ($rss1 // 0) - ($rss0 // 0);
# one copy per stream would be ~128 KB each (the kernel holds ~20 KB of
# each: sndbuf 16k, rcvbuf 4k): ~125 MB; blocks: 2 x 64 KB, plus each
# stream's small buffer and its table of references (~4 KB)
cmp_ok($grew, '<', 16 * 1024,
    "2 x 64 KB to $N streams that do not read: the worker grew "
    . "$grew kB (< 16 MB; a copy per stream is ~125 MB)");

ok(SSETest::Stream::wait_all(\@s, sub { $_[0]->event_count >= 2 }, 120),
    'then they read: every stream got both');
is(scalar(grep { !$_->same_data(\@wide) } @s), 0,
    '... byte for byte, in order');
is($t->zone_status('z')->{dropped_slow}, 0, '... and nobody was dropped');
$_->close for @s;
@s = ();

# -- (b) a stalled reader among readers ---------------------------------------

my @readers = map { $t->subscribe('/sub64?ch=stall') } 1 .. 20;
my $stalled = $t->subscribe('/sub64?ch=stall', rcvbuf => 4096, port => 2);
ok(SSETest::Stream::wait_all([@readers, $stalled],
    sub { @{$_[0]{comments}} }, 5), '20 readers and one that never reads');

my @stall = map { sized_data("s$_", 16384) } 1 .. 12;
for my $i (0 .. $#stall) {
    $t->publish('/pub?ch=stall', $stall[$i])->status == 201
        or fail("publish $i");
    SSETest::Stream::wait_all(\@readers,
        sub { $_[0]->event_count >= $i + 1 }, 10);
}
is(scalar(grep { !$_->same_data(\@stall) } @readers), 0,
    '12 events of 16 KB: the readers got every byte');
ok(wait_until(sub { $t->zone_status('z')->{dropped_slow} == 1 }, 5),
    'the one that never reads was dropped as too slow');
ok($stalled->wait_closed(5), '... its connection closed');
# the bound is what it was with copies: what the stream held unsent
# (referenced bytes included) was within sse_max_pending, and the next
# event would have taken it past
my ($unsent, $behind) = $t->error_log
    =~ /client is too slow, (\d+) bytes unsent and (\d+) more behind/;
ok(defined $unsent, 'the drop was logged with its figures');
cmp_ok($unsent // 1e9, '<=', 65536, "... $unsent bytes unsent: within sse_max_pending");
cmp_ok(($unsent // 0) + ($behind // 0), '>', 65536,
    '... and with what it was behind, past it');
cmp_ok($unsent // 0, '>', 65536 - 2 * 16500,
    '... and the referenced bytes were counted as unsent');
$t->expect_log(qr/client is too slow/);
$_->close for @readers;

# -- (c) clients that go away while a block is referenced ---------------------

my @keep = map { $t->subscribe('/big?ch=gone', rcvbuf => 4096, port => 2) } 1 .. 10;
my @gone = map { $t->subscribe('/big?ch=gone', rcvbuf => 4096, port => 2) } 1 .. 20;
my @keep10 = map { $t->subscribe('/big?ch=gone', rcvbuf => 4096, port => 2,
                                 proto => 'HTTP/1.0') } 1 .. 5;
my @gone10 = map { $t->subscribe('/big?ch=gone', rcvbuf => 4096, port => 2,
                                 proto => 'HTTP/1.0') } 1 .. 10;
# on their request (limit_conn): written through the filter chain
my @keepreq = map { $t->subscribe('/onreq?ch=gone', rcvbuf => 4096, port => 2) } 1 .. 3;
my @gonereq = map { $t->subscribe('/onreq?ch=gone', rcvbuf => 4096, port => 2) } 1 .. 5;

my $h2 = SSETest::H2->new($t->port(3), window => 1024);
my @h2ids = map { $h2->request('GET', '/big?ch=gone') } 1 .. 4;
my $h2b = SSETest::H2->new($t->port(3), window => 1024);
$h2b->request('GET', '/big?ch=gone') for 1 .. 3;
$h2->read_frames(1);
$h2b->read_frames(1);

ok(SSETest::Stream::wait_all([@keep, @gone, @keep10, @gone10, @keepreq, @gonereq],
    sub { @{$_[0]{comments}} }, 5), 'streams that will stay and go');
ok(wait_until(sub { (($t->channel_info('/pub?ch=gone') // {})->{subscribers} // -1) == 60 }, 5),
    '... all 60 joined (7 of them HTTP/2, their window 1 KB; 8 on their request)');

my @gonev = map { sized_data("g$_", 30000 + 9000 * $_) } 1 .. 4;
$t->publish('/pub?ch=gone', $gonev[$_])->status == 201 or fail("publish $_")
    for 0, 1;
# their output now references the blocks; they go away before it is sent
$_->close for @gone, @gone10, @gonereq;
$h2->send_frame(3, 0, $_, pack('N', 8)) for @h2ids[0, 1];   # RST_STREAM CANCEL
$h2b->close;
$h2->read_frames(0.5);
$t->publish('/pub?ch=gone', $gonev[$_])->status == 201 or fail("publish $_")
    for 2, 3;
$h2->send_frame(3, 0, $_, pack('N', 8)) for @h2ids[2, 3];
$h2->close;

ok(SSETest::Stream::wait_all([@keep, @keep10, @keepreq],
    sub { $_[0]->event_count >= 4 }, 30),
    'the streams that stayed got all four events');
is(scalar(grep { !$_->same_data(\@gonev) } @keep, @keep10, @keepreq), 0,
    '... byte for byte (HTTP/1.1, HTTP/1.0, on their request)');
ok(wait_until(sub { (($t->channel_info('/pub?ch=gone') // {})->{subscribers} // -1) == 18 }, 10),
    'the others are gone from the channel');
is($t->get('/status')->status, 200, 'the worker is alive');
$_->close for @keep, @keep10, @keepreq;

# -- (d) HTTP/2 streams get large events byte for byte ------------------------

SKIP: {
    skip 'no curl', 3 unless -x '/usr/bin/curl' || SSETest::no_skip();
    my @h = map { $t->curl_subscribe($t->url('/big?ch=h2', 3),
                                     '--http2-prior-knowledge') } 1 .. 3;
    ok(SSETest::Stream::wait_all(\@h, sub { @{$_[0]{comments}} }, 10),
        'three HTTP/2 streams open');
    my @h2v = (sized_data('a', 100), sized_data('b', 20000),
               sized_data('c', 65536), sized_data('d', 9000),
               sized_data('e', 300), sized_data('f', 131072));
    $t->publish('/pub?ch=h2', $_)->status == 201 or fail('publish') for @h2v;
    ok(SSETest::Stream::wait_all(\@h, sub { $_[0]->event_count >= 6 }, 20),
        'HTTP/2: every stream got small and large events');
    is(scalar(grep { !$_->same_data(\@h2v) } @h), 0, '... byte for byte, in order');
    $_->close for @h;
}

# -- (e) several channels: the stream's own id lines; past 8 blocks ------------

my $m = $t->subscribe('/big?ch=ma,mb', rcvbuf => 4096, port => 2);
my $m2 = $t->subscribe('/big?ch=mb');
ok($m->wait_comment(2) && $m2->wait_comment(2),
    'a stream of two channels that does not read yet, and one of one');

# both channels have a position first (a never-published one's id has the
# channel's epoch, which the test cannot know beforehand)
my %last;
for my $ch (qw(ma mb)) {
    $last{$ch} = $t->publish("/pub?ch=$ch", "first of $ch")->json->{id} // '';
}
ok($m->wait_events(2, 5) && $m2->wait_events(1, 5), 'a first small event of each');
$m->forget;
$m2->forget;

my (@mv, @ids, @mb);
for my $i (1 .. 14) {
    my $ch = $i % 3 ? 'ma' : 'mb';
    my $v = sized_data("m$i", $i % 4 == 0 ? 200 : 8192 + 1000 * $i);
    my $r = $t->publish("/pub?ch=$ch", $v);
    is($r->status, 201, "publish $i to $ch") if $i == 1;
    $last{$ch} = $r->json->{id} // '';
    push @mv, $v;
    push @ids, "$last{ma}.$last{mb}";
    push @mb, $v if $ch eq 'mb';
}
ok($m->wait_events(16, 20), '14 events, most of them large, then it read');
ok($m->same_data(\@mv), '... byte for byte, in order (more than 8 blocks '
   . 'in one buffer: the rest were copied)');
my @gotids = map { $_->{id} // '' } @{$m->events};
is(join(' ', @gotids), join(' ', @ids),
    '... each with the stream\'s own id: both channels\' positions');
ok($m2->wait_events(1 + @mb, 10) && $m2->same_data(\@mb),
    'the one-channel stream of mb got its events with the shared bodies');
like($m2->events->[0]{id} // '', qr/^[0-9a-z]+-\d+$/, '... and one-channel ids');
$_->close for $m, $m2;

# -- (f) streams that decline a large event -----------------------------------

# Two streams that replay 320 KB of history and do not read (not even
# their headers) are behind: 64 KB in their buffers, ~40 KB in their
# sockets.  A large event is not theirs yet (they pull it from history
# later): the first stream that takes it, further down the channel's
# list, is the one that makes its block, and an event every stream
# declines makes none.  What this checks is that each stream, on either
# path, gets every byte in order.
my @lazyv = map { sized_data("z$_", 20000) } 1 .. 18;
$t->publish('/pub?ch=lazy', $_)->status == 202 or fail('publish') for @lazyv[0 .. 15];
my @lazy = map { $t->subscribe('/replay?ch=lazy', rcvbuf => 4096, port => 2,
                               wait => 0) } 1 .. 2;
ok(wait_until(sub { (($t->channel_info('/pub?ch=lazy') // {})->{subscribers} // -1) == 2 }, 5),
    'two streams replaying 16 events of 20 KB, not reading');
is($t->publish('/pub?ch=lazy', $lazyv[16])->status, 201,
    'a large event that both decline: 201');
my $lazyr = $t->subscribe('/big?ch=lazy');
ok($lazyr->wait_comment(2), 'then a stream that reads');
is($t->publish('/pub?ch=lazy', $lazyv[17])->status, 201,
    'a large event that only the third stream takes: 201');
ok($lazyr->wait_events(1, 5) && $lazyr->same_data([$lazyv[17]]),
    '... which it got byte for byte');
ok(SSETest::Stream::wait_all(\@lazy, sub { $_[0]->event_count >= 18 }, 20),
    'then the two read: they pulled all 18 from history');
is(scalar(grep { !$_->same_data(\@lazyv) } @lazy), 0, '... byte for byte, in order');
$_->close for @lazy, $lazyr;

# -- (g) streams that end while their buffers reference blocks ---------------

# a DELETE ends every stream of the channel gracefully: what each holds,
# referenced or copied, goes out before the end of its response (on a
# stream on its request, nginx's writer is handed the chain)
my @del = ((map { $t->subscribe('/big?ch=del', rcvbuf => 4096, port => 2) } 1 .. 3),
           (map { $t->subscribe('/onreq?ch=del', rcvbuf => 4096, port => 2) } 1 .. 3));
ok(SSETest::Stream::wait_all(\@del, sub { @{$_[0]{comments}} }, 5),
    'six streams (detached, and on their request) that do not read yet');
my @delv = map { sized_data("d$_", 9000 * $_) } 1 .. 5;
$t->publish('/pub?ch=del', $_)->status == 201 or fail('publish') for @delv;
is($t->delete('/pub?ch=del')->status, 200, 'the channel is deleted meanwhile');
ok(SSETest::Stream::wait_all(\@del, sub { $_[0]->is_closed }, 20),
    'then they read: every stream ended');
is(scalar(grep { !$_->same_data(\@delv) } @del), 0,
    '... after every event, byte for byte');
is(scalar(grep { $_->is_chunked && !$_->complete } @del), 0,
    '... the chunked ones with the last chunk');
$_->close for @del;

# streams still holding references when the worker shuts down: they are
# freed with the worker, their blocks with them (LeakSanitizer on the
# workers in the sanitizer tier)
my @left = ((map { $t->subscribe('/big?ch=left', rcvbuf => 4096, port => 2) } 1 .. 3),
            $t->subscribe('/onreq?ch=left', rcvbuf => 4096, port => 2));
my $h2l = SSETest::H2->new($t->port(3), window => 1024);
$h2l->request('GET', '/big?ch=left') for 1 .. 2;
$h2l->read_frames(1);
ok(SSETest::Stream::wait_all(\@left, sub { @{$_[0]{comments}} }, 5),
    'streams that will not read before the shutdown');
$t->publish('/pub?ch=left', sized_data("l$_", 40000))->status == 201
    or fail('publish') for 1 .. 3;

is($t->zone_status('z')->{dropped_slow}, 1, 'only the stalled reader was ever dropped');
$t->done;
