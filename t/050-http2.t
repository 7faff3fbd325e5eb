# HTTP/2: curl as the subscriber, over h2c (prior knowledge) and over TLS.
# Headers and the first comment leave at once (no "pending until the first
# byte"), every event arrives as soon as it is published.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $ver = `curl --version 2>/dev/null` // '';
skip_file('curl not installed') if $? != 0;
skip_file('curl without HTTP/2') unless $ver =~ /HTTP2/;

my $t = SSETest->new(workers => 2);
my ($crt, $key) = $t->make_cert;
$t->run(<<"EOF");
http {
    log_format conn '\$connection \$request';
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        listen 127.0.0.1:%%PORT3%% ssl http2;
        ssl_certificate     $crt;
        ssl_certificate_key $key;
        access_log %%TESTDIR%%/conn.log conn;

        location /sub { sse_subscribe \$arg_ch; }
        location /pub { sse_publish \$arg_ch; }
        location /hb  { sse_subscribe \$arg_ch; sse_heartbeat 1s; sse_retry 3s; }
    }
}
EOF

my %how = (
    'h2c'        => [ $t->url('/sub?ch=h2c', 2), '--http2-prior-knowledge' ],
    'h2 over TLS' => [ 'https://127.0.0.1:' . $t->port(3) . '/sub?ch=tls',
                       '--http2', '-k' ],
);

for my $name (sort keys %how) {
    my ($url, @args) = @{$how{$name}};
    my ($ch) = $url =~ /ch=(\w+)/;

    my $t0 = time;
    my $s = $t->curl_subscribe($url, @args);
    ok($s->wait_headers(2), "$name: response headers arrive")
        or diag(`cat $s->{errfile}`);
    like($s->raw_head // '', qr{^HTTP/2 }, "$name: the response is HTTP/2");
    is($s->status, 200, "$name: 200");
    is($s->header('content-type'), 'text/event-stream; charset=utf-8',
        "$name: content-type");
    is($s->header('cache-control'), 'no-cache', "$name: cache-control");
    is($s->header('x-accel-buffering'), 'no', "$name: x-accel-buffering");
    ok(!defined $s->header('content-length'), "$name: no content-length");

    my $c = $s->wait_comment(1);
    ok($c, "$name: the first comment arrives before anything is published");
    ok($c && $c->{time} - $t0 < tmo(1), "$name: ... within a second");

    my $late = 0;
    for my $i (1 .. 5) {
        my $pt = time;
        my $r = $t->publish("/pub?ch=$ch", "$name event $i", 'SSE-Event' => 'tick');
        is($r->status, 201, "$name: publish $i reaches the subscriber");
        my $e = $s->next_event(1);
        is($e && $e->{data}, "$name event $i", "$name: event $i arrives");
        is($e && $e->{type}, 'tick', "$name: event $i has its type");
        $late++ unless $e && $e->{time} - $pt < tmo(1);
        sleep 0.05;
    }
    is($late, 0, "$name: every event arrived within 1s of its publish");

    # multi-line data survives h2 framing
    $t->publish("/pub?ch=$ch", "x\ny\r\nz");
    my $e = $s->next_event(1);
    is($e && $e->{data}, "x\ny\nz", "$name: multi-line data");

    # a big event crosses several DATA frames
    my $big = 'b' x 70000;
    $t->publish("/pub?ch=$ch", $big);
    $e = $s->next_event(2);
    is($e && length($e->{data}), 70000, "$name: a 70000-byte event arrives whole");

    # the subscriber goes away: the channel no longer counts it
    $s->close;
    ok(wait_until(sub {
        (($t->channel_info("/pub?ch=$ch") // {})->{subscribers} // -1) == 0 }, 5),
        "$name: after curl exits the channel has no subscriber");
    is($t->publish("/pub?ch=$ch", 'nobody')->status, 202,
        "$name: publishing now gives 202");
}

# retry: and heartbeats over HTTP/2
my $hb = $t->curl_subscribe($t->url('/hb?ch=h2hb', 2), '--http2-prior-knowledge');
my $c0 = $hb->wait_comment(2);
ok($c0, 'h2c: first comment on a heartbeat stream');
is($hb->retry, 3000, 'h2c: sse_retry 3s gives retry: 3000');
my $c1 = $hb->wait_comment(3);
ok($c1 && $c1->{time} - $c0->{time} > 0.8, 'h2c: a heartbeat after a second of silence');
$hb->close;

# publishing over HTTP/2 works as well
my ($code, $out, $err) = $t->curl('--http2-prior-knowledge', '-i',
    '--data-binary', 'from h2', $t->url('/pub?ch=h2pub', 2));
is($code, 0, 'curl publish over h2c') or diag($err);
like($out, qr{^HTTP/2 202}, 'publish over h2c: 202');
like($out, qr/"channel":"h2pub"/, 'publish over h2c: JSON reply');

# two streams on one HTTP/2 connection: curl fetches two URLs in parallel
# (over TLS: curl 7.88 cannot multiplex h2c with prior knowledge), each into
# its own file
my ($f1, $f2) = map { $t->dir . "/multi$_.out" } 1, 2;
my $url = 'https://127.0.0.1:' . $t->port(3) . '/sub?ch=multi';
my $pid = $t->spawn('curl', '-sS', '-N', '-k', '--http2', '-Z',
    '-H', 'Accept: text/event-stream', $url, '-o', $f1, $url, '-o', $f2);
my $slurp = sub { open my $fh, '<', $_[0] or return ''; local $/; <$fh> // '' };
ok(wait_until(sub { $slurp->($f1) =~ /^:/ && $slurp->($f2) =~ /^:/ }, 3),
    'two streams on one h2 connection both open');
my $r = $t->publish('/pub?ch=multi', 'twice');
is($r->json->{subscribers}, 2, 'both streams are subscribers');
ok(wait_until(sub { $slurp->($f1) =~ /data: twice\n\n/
                 && $slurp->($f2) =~ /data: twice\n\n/ }, 2),
    'both streams get the event');
$t->kill_proc($pid);
ok(wait_until(sub {
    (($t->channel_info('/pub?ch=multi') // {})->{subscribers} // -1) == 0 }, 5),
    'when the connection goes, both streams are gone');
# the access log line is written when a stream ends
my @conns;
wait_until(sub {
    @conns = $slurp->($t->dir . '/conn.log') =~ /^(\d+) GET \/sub\?ch=multi /mg;
    @conns == 2 }, 3);
ok(@conns == 2 && $conns[0] == $conns[1], 'the two streams shared one connection')
    or diag("connections: @conns");

$t->done;
