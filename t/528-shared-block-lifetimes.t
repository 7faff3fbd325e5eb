# Shared blocks of large events (t/527) on the paths where a stream's
# output may outlive the stream's own bookkeeping: whatever nginx still
# points at must stay valid, every reference must be released, and no
# client gets a byte that is not the event's.  The sanitizer tier runs
# this file with ASan on every read of a block and LeakSanitizer on the
# workers (every block released by the time a worker exits).
#  - TLS: a detached stream copies (its writes encrypt one buffer at a
#    time); a stream on its request (limit_conn) references blocks and
#    hands the chain to the TLS writer; HTTP/2 over TLS; clients that go
#    away while nginx holds their bytes; a stream on its request read
#    slowly gets its last bytes when TLS held them (not at the next event);
#  - HTTP/2 DATA frames queued on the connection's socket (the client's
#    window open, its socket not read): a RST_STREAM, a stream dropped as
#    too slow and a closed connection while frames point into blocks;
#  - sse_lifetime ending streams (detached, on their request, HTTP/2)
#    whose output references blocks: everything goes out, then the end;
#  - a reload while streams of every kind hold references: the old worker
#    ends them, exits, and nothing it sent is not the events' bytes.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::H2;

my $ver = `curl --version 2>/dev/null` // '';
skip_file('needs curl with HTTP/2 and TLS')
    unless $ver =~ /HTTP2/ && $ver =~ /SSL/;

# a lifetime long enough to subscribe and publish on a slow machine
my $life = int(SSETest::tmo(2)) + 1;

my $t = SSETest->new(workers => 1, ports => 4);
my ($crt, $key) = $t->make_cert;
$t->run(<<"EOF");
events { worker_connections 1024; }
http {
    sse_zone z 32m history=50 max_message=256k;
    client_max_body_size 1m;
    limit_conn_zone \$binary_remote_addr zone=lc:1m;
    ssl_certificate     $crt;
    ssl_certificate_key $key;
    server {
        listen 127.0.0.1:%%PORT%% sndbuf=16k;
        listen 127.0.0.1:%%PORT2%% ssl sndbuf=16k;
        listen 127.0.0.1:%%PORT3%% ssl http2 sndbuf=16k;
        listen 127.0.0.1:%%PORT4%% http2 sndbuf=16k;
        sse_heartbeat off;
        location /big   { sse_subscribe \$arg_ch zone=z; sse_max_pending 2m; }
        location /slow  { sse_subscribe \$arg_ch zone=z; sse_max_pending 64k; }
        location /onreq {
            sse_subscribe \$arg_ch zone=z;
            sse_max_pending 2m;
            limit_conn lc 1000;
        }
        location /life  {
            sse_subscribe \$arg_ch zone=z;
            sse_max_pending 2m;
            sse_lifetime ${life}s;
        }
        location /liferq {
            sse_subscribe \$arg_ch zone=z;
            sse_max_pending 2m;
            sse_lifetime ${life}s;
            limit_conn lc 1000;
        }
        location /pub   { sse_publish \$arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

sub subscribers {
    my ($ch) = @_;
    return (($t->channel_info("/pub?ch=$ch") // {})->{subscribers} // -1);
}

sub publish_all {
    my ($ch, @v) = @_;
    my $bad = 0;
    for (@v) { $t->publish("/pub?ch=$ch", $_)->status == 201 or $bad++ }
    return $bad == 0;
}

my $tls = 'https://127.0.0.1:' . $t->port(2);
my $h2tls = 'https://127.0.0.1:' . $t->port(3);

# -- (a) TLS: detached (copies), on its request (references), HTTP/2 ---------

# curl writes into a pipe this test does not read yet: once the pipe
# (64 KB) and the sockets fill up, nginx holds the rest
my %how = (
    'HTTP/1.1 detached'    => [ "$tls/big?ch=tls", '-k', '--http1.1' ],
    'HTTP/1.0 detached'    => [ "$tls/big?ch=tls", '-k', '--http1.0' ],
    'HTTP/1.1 on request'  => [ "$tls/onreq?ch=tls", '-k', '--http1.1' ],
    'HTTP/2'               => [ "$h2tls/big?ch=tls", '-k', '--http2' ],
);
my (%keep, %gone);
for my $name (sort keys %how) {
    my ($url, @args) = @{$how{$name}};
    $keep{$name} = $t->curl_subscribe($url, @args);
    $gone{$name} = $t->curl_subscribe($url, @args);
}
ok(wait_until(sub { subscribers('tls') == 8 }, 10),
    'TLS: 8 streams that do not read (detached 1.1 and 1.0, on request, h2)');

my @tlsv = map { sized_data("t$_", 40000 + 1000 * $_) } 1 .. 16;
ok(publish_all('tls', @tlsv[0 .. 11]), '12 events of ~45 KB: 201');
$_->close for values %gone;
ok(publish_all('tls', @tlsv[12 .. 15]), 'half of them went away: 4 more: 201');
for my $name (sort keys %keep) {
    ok($keep{$name}->wait_events(16, 30) && $keep{$name}->same_data(\@tlsv),
        "TLS $name: every event, byte for byte");
}
ok(wait_until(sub { subscribers('tls') == 4 }, 10), '... the others are gone');
$_->close for values %keep;

# -- (a2) TLS on its request, read slowly: the last bytes are not left behind --

# curl reads at 30 KB/s: TLS often takes a buffer's last bytes into its
# own buffer when the socket is full; they must go out when the socket
# drains, not wait for an event that never comes (heartbeats are off)
# (the same with copied events: a channel with one stream in the worker)
my @slowtls = ((map { $t->curl_subscribe("$tls/onreq?ch=tlsslow", '-k',
                                         '--http1.1', '--limit-rate', '30k') } 1 .. 4),
               (map { $t->curl_subscribe("$tls/onreq?ch=tlsone$_", '-k',
                                         '--http1.1', '--limit-rate', '30k') } 1 .. 2));
ok(wait_until(sub { subscribers('tlsslow') == 4 && subscribers('tlsone1') == 1
                    && subscribers('tlsone2') == 1 }, 10),
    'TLS on request: 6 streams read slowly (4 share blocks, 2 copy)');
my @slowv = map { sized_data("u$_", 20000 + $_) } 1 .. 6;
ok(publish_all('tlsslow', @slowv) && publish_all('tlsone1', @slowv)
   && publish_all('tlsone2', @slowv), '6 events of 20 KB to each channel: 201');
ok(SSETest::Stream::wait_all(\@slowtls, sub { $_[0]->event_count >= 6 }, 20),
    '... every stream got the last event too');
is(scalar(grep { !$_->same_data(\@slowv) } @slowtls), 0, '... byte for byte');
$_->close for @slowtls;

# -- (b) HTTP/2 DATA frames queued on an unread socket --------------------------

# the client opens its windows (connection and streams) and never reads:
# nginx's frames wait in its output queue, pointing into the blocks
sub h2_unread {
    my $h2 = SSETest::H2->new($t->port(4), window => 1 << 24, rcvbuf => 4096);
    $h2->send_frame(8, 0, 0, pack('N', 1 << 30));   # WINDOW_UPDATE, stream 0
    return $h2;
}

my $h2a = h2_unread();
my @ida = map { $h2a->request('GET', $_) } ('/big?ch=q') x 3;
my $h2b = h2_unread();
$h2b->request('GET', '/slow?ch=q');
my $h2c = h2_unread();
$h2c->request('GET', '/big?ch=q') for 1 .. 2;
my $reader = $t->subscribe('/big?ch=q');
ok(wait_until(sub { subscribers('q') == 7 }, 10),
    'HTTP/2: 6 streams on 3 connections that never read, and a reader');

my @qv = map { sized_data("q$_", 30000) } 1 .. 12;
my $dropped0 = $t->zone_status('z')->{dropped_slow};
ok(publish_all('q', @qv[0 .. 5]), '6 events of 30 KB: 201');
ok(wait_until(sub { $t->zone_status('z')->{dropped_slow} == $dropped0 + 1 }, 10),
    'the stream of sse_max_pending 64k was dropped as too slow, frames queued');
$h2a->send_frame(3, 0, $ida[0], pack('N', 8));   # RST_STREAM CANCEL
$h2c->close;
ok(publish_all('q', @qv[6 .. 11]), 'a stream reset, a connection closed: 6 more: 201');
$h2a->send_frame(3, 0, $_, pack('N', 8)) for @ida[1, 2];
ok($reader->wait_events(12, 20) && $reader->same_data(\@qv),
    'the reader got every event, byte for byte');
$h2a->close;
$h2b->close;
ok(wait_until(sub { subscribers('q') == 1 }, 10), 'the HTTP/2 streams are gone');
$reader->close;
$t->expect_log(qr/client is too slow/);

# -- (c) sse_lifetime ends streams whose output references blocks -------------

my @life = (
    (map { $t->subscribe('/life?ch=life', rcvbuf => 4096) } 1 .. 2),
    $t->subscribe('/life?ch=life', rcvbuf => 4096, proto => 'HTTP/1.0'),
    (map { $t->subscribe('/liferq?ch=life', rcvbuf => 4096) } 1 .. 2),
    $t->curl_subscribe($t->url('/life?ch=life', 4), '--http2-prior-knowledge'),
);
ok(wait_until(sub { subscribers('life') == 6 }, 5),
    'six streams of a short lifetime that do not read yet');
my @lifev = map { sized_data("l$_", 9000 * $_) } 1 .. 6;
ok(publish_all('life', @lifev), '6 large events: 201');
is(subscribers('life'), 6, '... all published within their lifetime');
ok(wait_until(sub { subscribers('life') == 0 }, $life + 5),
    'their lifetime ended while nginx held their events');
ok(SSETest::Stream::wait_all(\@life, sub { $_[0]->is_closed }, 20),
    'then they read: every stream ended');
is(scalar(grep { !$_->same_data(\@lifev) } @life), 0,
    '... after every event, byte for byte');
is(scalar(grep { $_->is_chunked && !$_->complete } @life), 0,
    '... the chunked ones with the last chunk');
$_->close for @life;

# -- (d) a reload while streams of every kind hold references ----------------

my @rl = (
    (map { $t->subscribe('/big?ch=rl', rcvbuf => 4096) } 1 .. 2),
    $t->subscribe('/big?ch=rl', rcvbuf => 4096, proto => 'HTTP/1.0'),
    (map { $t->subscribe('/onreq?ch=rl', rcvbuf => 4096) } 1 .. 2),
    $t->curl_subscribe($t->url('/big?ch=rl', 4), '--http2-prior-knowledge'),
    $t->curl_subscribe("$tls/onreq?ch=rl", '-k', '--http1.1'),
);
my $h2r = h2_unread();
$h2r->request('GET', '/big?ch=rl') for 1 .. 2;
ok(wait_until(sub { subscribers('rl') == 9 }, 5),
    'nine streams that do not read yet (detached, on request, h2, TLS, '
    . 'h2 frames queued)');
my @rlv = map { sized_data("r$_", 50000) } 1 .. 8;
ok(publish_all('rl', @rlv), '8 events of 50 KB: 201');
my %old = map { $_ => 1 } $t->workers;
ok($t->reload(wait_old => 0), 'reload: a new worker runs');
# the old worker ends its streams; it exits once the HTTP/2 client reads
# the frames queued for it (they end its streams), or after send_timeout
ok(wait_until(sub {
        $h2r->read_frames(0.05);
        SSETest::Stream::poll_many(\@rl, 0.05);
        return !grep { $old{$_} } $t->workers;
    }, 20), 'the old worker exited');
ok(SSETest::Stream::wait_all(\@rl, sub { $_[0]->is_closed }, 20),
    'every stream of the old worker ended');
is(scalar(grep { !$_->data_prefix_of(\@rlv) } @rl), 0,
    '... each with what it got byte for byte, in order');
$h2r->close;
$_->close for @rl;
is($t->get('/status')->status, 200, 'the new worker serves');

$t->done;
