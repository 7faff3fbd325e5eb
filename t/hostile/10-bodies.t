# Hostile publish bodies: broken chunked coding, lying Content-Length,
# a chunked body that never ends, a body sent byte by byte (slowloris),
# invalid UTF-8 and oversized events in event-stream bodies split anyhow,
# a subscribe with a huge POST body, HEAD.  Nothing crashes, nothing
# leaks, good events before a bad one are published, the rest is refused.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/../lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;
use SSETest::Hostile;

my $t = SSETest::Hostile::start(workers => 2);
my $base = SSETest::Hostile::baseline($t);
my $CT = "Content-Type: text/event-stream\r\n";

sub raw {
    my ($bytes, $timeout) = @_;
    my $s = $t->connect;
    local $SIG{PIPE} = 'IGNORE';
    syswrite($s, $bytes);
    my $got = SSETest::Hostile::drain($s, $timeout // SSETest::tmo(4));
    close $s;
    my ($st) = $got =~ m{^HTTP/1\.1 (\d+)};
    return $st // 0;
}

# broken chunked coding: nginx answers 400
is(raw("POST /pub?ch=b1 HTTP/1.1\r\nHost: x\r\n${CT}Transfer-Encoding: chunked\r\n\r\n"
       . "zz\r\ndata: x\n\n\r\n0\r\n\r\n"), 400, 'a bad chunk size: 400');
is(raw("POST /pub?ch=b1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       . "fffffffffffffffff\r\n"), 400, 'an overflowing chunk size: 400');
is(raw("POST /pub?ch=b1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
       . "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400,
    'Content-Length with chunked: 400');
is($t->get('/pub?ch=b1')->status, 404, 'none of them made a channel');

# a Content-Length larger than what comes: the publish times out
# (client_body_timeout 2s), nothing is published
my $t0 = time;
is(raw("POST /pub?ch=b2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc",
       SSETest::tmo(6)), 0, 'a short body: no reply, the connection closes');
ok(time - $t0 < SSETest::tmo(5), 'within client_body_timeout');
is($t->get('/pub?ch=b2')->status, 404, 'nothing was published');

# a chunked event-stream body that never ends: its complete events are
# published as they come; the connection ends at client_body_timeout
my $sub = $t->subscribe('/sub?ch=b3');
my $req = $t->open_request('POST', '/pub?ch=b3', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream' });
$req->send_chunk("data: one\n\n");
$req->send_chunk("data: two\n\ndata: part");
ok($sub->wait_events(2, SSETest::tmo(2)), 'a never-ending body: its events arrive');
my $r = $req->response(SSETest::tmo(6));
ok(!$r->status || $r->status >= 400, 'and the body times out (' . $r->status . ')');
is_deeply([$sub->data], ['one', 'two'], 'the partial event is dropped');
$sub->close;

# a body byte by byte (slowloris): within the body timeout per read it is
# taken; every byte is one read for the parser
$sub = $t->subscribe('/sub?ch=b4');
my $body = "event: e\ndata: slow\n\ndata: \xff\n\ndata: never\n\n";
$r = $t->request('POST', '/pub?ch=b4', headers => { 'Content-Type' => 'text/event-stream' },
    body => [split //, $body], delay => 0.002);
is($r->status, 400, 'byte by byte, a bad event: 400');
is($r->json->{events}, 1, '... the event before it is published and listed');
ok($sub->wait_events(1, SSETest::tmo(2)), '... and delivered');
ok(!$sub->wait_events(2, 0.3), '... nothing after it');
$sub->close;

# an oversized event between good ones, in one write
$r = $t->request('POST', '/pub?ch=b5',
    headers => { 'Content-Type' => 'text/event-stream' },
    body => "data: a\n\ndata: " . ('x' x 70000) . "\n\ndata: c\n\n");
is($r->status . ' ' . ($r->json->{events} // '-'), '413 1',
    'an event over max_message after a good one: 413, 1 published');

# an endless comment and an endless data line: the parser holds at most
# max_message (64k) of an event, never a whole line of comment
$req = $t->open_request('POST', '/pub?ch=b8', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream' });
$req->send_chunk(': ' . ('c' x 65536)) for 1 .. 160;     # 10 MB of one comment
$req->send_chunk("\ndata: after the comment\n\n");
$req->send_chunk('data: ' . ('d' x 65536)) for 1 .. 4;
$r = $req->response(SSETest::tmo(5));
is($r->status . ' ' . ($r->json->{events} // '-'), '413 1',
    'a 10 MB comment line is skipped, a 256 KB data line is 413');
ok(SSETest::Hostile::rss_growth($t, $base) <= SSETest::Hostile::bound_kb(),
    '... with worker memory bounded');

# Expect: 100-continue with a large declared body that never comes
my $ec = $t->connect;
print $ec "POST /pub?ch=b9 HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        . "Content-Length: 100000000\r\n\r\n";
my $cont = SSETest::Hostile::drain($ec, SSETest::tmo(4));
like($cont, qr{^HTTP/1\.1 (100|413)}, 'Expect: 100-continue, 100 MB declared: '
    . (($cont =~ m{^HTTP/1\.1 (\d+)})[0] // 'nothing'));
close $ec;

# 200 publishes of random junk bodies, as event streams and plain
srand(10);
my %codes;
for my $i (1 .. 200) {
    my $junk = join '', map { chr(int rand 256) } 1 .. int(rand 300);
    my %h = $i % 2 ? ('Content-Type' => 'text/event-stream') : ();
    my $resp = $t->request('POST', "/pub?ch=junk$i", headers => \%h, body => $junk);
    $codes{$resp->status}++;
}
ok(!grep({ $_ != 201 && $_ != 202 && $_ != 400 } keys %codes),
    '200 junk bodies: each 202 or 400 (' . join(' ', map { "$_:$codes{$_}" } sort keys %codes) . ')');

# a subscribe with a huge POST body: discarded, the stream starts
my $s = $t->subscribe('/sub?ch=b6', method => 'POST', body => 'q' x 500000);
is($s->status, 200, 'a subscribe with a 500 KB POST body: 200');
is($t->publish('/pub?ch=b6', 'hi')->status, 201, 'publish to it');
ok($s->wait_events(1, SSETest::tmo(2)), 'it streams');
$s->close;

# HEAD on a subscribe location: headers only, holds nothing
my $h = $t->head('/sub?ch=b7');
is($h->status, 200, 'HEAD on subscribe: 200');
is($h->body, '', '... no body');

SSETest::Hostile::healthy($t, $base, name => 'bodies',
    channels => [map { "b$_" } 3 .. 9]);
$t->done;
