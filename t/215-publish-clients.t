# Publishers as they come: curl (Expect: 100-continue for bigger bodies),
# keep-alive connections with pipelined requests, bodies nginx spools to a
# temp file, HTTP/1.0, a Content-Type with parameters.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_zone z 8m history=5000;
    server {
        listen 127.0.0.1:%%PORT%%;
        client_body_buffer_size 1k;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /pub { sse_publish $arg_ch zone=z; }
    }
}
EOF

my $s = $t->subscribe('/sub?ch=pc');
ok($s->wait_comment(1), 'a subscriber');
my $n = 0;

# -- curl ------------------------------------------------------------------

my $body = 'c' x 5000;
my ($rc, $out, $err) = $t->curl('-i', '--data-binary', $body, $t->url('/pub?ch=pc'));
is($rc, 0, 'curl publishes a 5000-byte body') or diag($err);
like($out, qr{HTTP/1.1 201 Created}, '... 201');
ok($s->wait_events(++$n, 2), 'the event arrives');
is($s->events->[-1]{data}, $body, '... whole');

# a client that waits for 100 Continue before it sends the body
my $req100 = $t->open_request('POST', '/pub?ch=pc', length => 5,
    headers => { Expect => '100-continue' });
my $sk = $req100->socket;
my $got = '';
my $st = SSETest::Stream->new(fh => $sk, sse => 0);
ok($st->wait_for(sub { ($st->{raw_head} // '') =~ m{^HTTP/1.1 100 Continue} }, 2),
    'Expect: 100-continue: nginx answers 100 Continue');
$req100->send('exp!!');
my $r100 = $req100->response(2);
is($r100->status, 201, '... then takes the body: 201');
ok($s->wait_events(++$n, 2), '... the event arrives');

($rc, $out) = $t->curl('-H', 'Content-Type: text/event-stream', '--data-binary',
    "event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", $t->url('/pub?ch=pc'));
like($out, qr/"events":2/, 'curl publishes an event stream');
ok($s->wait_events($n += 2, 2), 'both events arrive');

# -- keep-alive, pipelined ----------------------------------------------------

my $sock = $t->connect;
my $req = join '', map {
    "POST /pub?ch=pc HTTP/1.1\r\nHost: x\r\nContent-Length: " . length("pipe $_")
    . "\r\n\r\npipe $_"
} 1 .. 5;
syswrite $sock, $req;
my $rs = SSETest::Stream->new(fh => $sock, sse => 0);
my @status;
for (1 .. 5) {
    last unless $rs->wait_complete(2);
    push @status, $rs->status;
    # the next response follows in the same stream of bytes
    my $rest = $rs->{after} // '';
    $rs = SSETest::Stream->new(fh => $sock, sse => 0);
    $rs->_feed($rest) if length $rest;
}
is_deeply(\@status, [(201) x 5], '5 pipelined publishes on one connection: 5 replies');
ok($s->wait_events($n += 5, 2), 'their events arrive');
is_deeply([map { $_->{data} } @{$s->events}[-5 .. -1]], [map { "pipe $_" } 1 .. 5],
    '... in order');
close $sock;

# -- bodies in a temp file (client_body_buffer_size 1k) -------------------------

my $big = join '', map { "data: spooled $_ " . ('s' x 80) . "\n\n" } 1 .. 2000;
my $r = $t->publish_stream('/pub?ch=pc', $big);
is($r->status, 201, 'a 200 KB event-stream body spooled to disk: 201');
is($r->json->{events}, 2000, '... 2000 events');
ok($s->wait_events($n += 2000, 5), '... all arrive');
my @sp = map { $_->{data} } @{$s->events}[-2000 .. -1];
is_deeply([map { (/^spooled (\d+) /)[0] } @sp], [1 .. 2000], '... in order, none lost');

$r = $t->request('POST', '/pub?ch=pc', body => [map { "part $_ " } 1 .. 300],
    headers => { 'Content-Type' => 'text/plain' });
is($r->status, 201, 'a raw chunked body of 300 parts, spooled: 201');
ok($s->wait_events(++$n, 2), '... one event');
is($s->events->[-1]{data}, join('', map { "part $_ " } 1 .. 300), '... with the whole body');

# -- HTTP/1.0 and Content-Type parameters -------------------------------------------

$r = $t->request('POST', '/pub?ch=pc', body => 'old', proto => 'HTTP/1.0');
is($r->status, 201, 'an HTTP/1.0 publish');
ok($s->wait_events(++$n, 2), '... arrives');

$r = $t->publish_stream('/pub?ch=pc', "data: with charset\n\n",
    'Content-Type' => 'text/event-stream; charset=utf-8');
is($r->json->{events}, 1, 'text/event-stream; charset=utf-8 is an event stream');
ok($s->wait_events(++$n, 2), '... arrives');
is($s->events->[-1]{data}, 'with charset', '... parsed as an event stream');

$r = $t->publish('/pub?ch=pc', "data: as text\n\n", 'Content-Type' => 'text/plain');
ok($s->wait_events(++$n, 2), 'a text/plain body that looks like an event stream');
is($s->events->[-1]{data}, "data: as text\n\n", '... is one raw event');

$t->done;
