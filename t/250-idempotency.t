# Idempotency-Key on one node (SPEC "Idempotent publishing"): a publish
# repeated with its key to the same channels within history_ttl publishes
# nothing and answers as the first did (same ids, same 201/202, same JSON;
# Idempotent-Replayed: true); the key covers the channel list in its
# order; a publish refused before it stored anything is not remembered,
# one refused part way (a full zone) is; bad keys are 400; a key
# makes a streaming body one publish; concurrent repeats publish once; a
# flood of distinct keys is held to the zone, drops the oldest records
# first and never another channel's history.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Select;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone i 4m max_message=64k;
    sse_zone t 1m history_ttl=2s;
    sse_zone c 1m max_channels=1 channel_ttl=1s;
    sse_zone h 1m history=100;
    sse_zone p 256k max_message=1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        keepalive_requests 1000000;

        location /sub  { sse_subscribe $arg_ch zone=i; }
        location /pub  { sse_publish $arg_ch zone=i; }
        location /tpub { sse_publish $arg_ch zone=t; }
        location /cpub { sse_publish $arg_ch zone=c; }
        location /hsub { sse_subscribe $arg_ch zone=h; }
        location /hpub { sse_publish $arg_ch zone=h; }
        location /ppub { sse_publish $arg_ch zone=p; }
        location = /status { sse_status; }
    }
}
EOF

sub keyed {
    my ($path, $key, $body, %h) = @_;
    return $t->publish($path, $body, 'Idempotency-Key' => $key, %h);
}

sub replays { $t->zone_status($_[0] // 'i')->{idempotent_replays} }

sub seq_of { ($_[0] // '') =~ /-(\d+)$/ ? $1 : undef }

# -- the same key twice: one event, the same answer ---------------------------

my $s = $t->subscribe('/sub?ch=once');
ok($s->wait_comment(1), 'a subscriber of "once"');

my $before = replays();
is($before, 0, 'idempotent_replays starts at 0');

my $r1 = keyed('/pub?ch=once', 'order-1', 'hello');
is($r1->status, 201, 'first keyed publish, one subscriber: 201');
ok(!defined $r1->header('Idempotent-Replayed'), '... not marked as a replay');
my $id1 = $r1->json->{id};
like($id1 // '', qr/^\w+-1$/, "... id $id1");

my $r2 = keyed('/pub?ch=once', 'order-1', 'hello');
is($r2->status, 201, 'the repeat: 201 as the first');
is($r2->header('Idempotent-Replayed'), 'true', '... Idempotent-Replayed: true');
is($r2->body, $r1->body, '... the very same JSON (same id, ids, events, subscribers)');

ok($s->wait_events(1, 2), 'the subscriber got the event');
$s->poll(0.3);
is($s->event_count, 1, '... exactly once');
is(($t->channel_info('/pub?ch=once') // {})->{events}, 1, 'the channel holds one event');
is(replays(), $before + 1, 'idempotent_replays counted the repeat');

# a different body with the same key is still the same request
my $r3 = keyed('/pub?ch=once', 'order-1', 'something else');
is($r3->json->{id}, $id1, 'the key, not the body, names the request: same id');
$s->poll(0.3);
is($s->event_count, 1, '... and nothing was published');

# a key differing only in case is another key
my $r4 = keyed('/pub?ch=once', 'ORDER-1', 'hello');
is(seq_of($r4->json->{id}), 2, 'another key (case counts): published, seq 2');
ok($s->wait_events(2, 2), '... and delivered');

# -- the status class is the first's ------------------------------------------

my $lone = keyed('/pub?ch=lonely', 'k202', 'x');
is($lone->status, 202, 'published with no subscriber: 202');
my $late = $t->subscribe('/sub?ch=lonely');
ok($late->wait_comment(1), 'then a subscriber arrives');
my $lone2 = keyed('/pub?ch=lonely', 'k202', 'x');
is($lone2->status, 202, 'the repeat still answers 202 (as recorded)');
is($lone2->body, $lone->body, '... with the same JSON');
$late->poll(0.3);
is($late->event_count, 0, '... and the new subscriber gets nothing');

my $watch = $t->subscribe('/sub?ch=watched');
ok($watch->wait_comment(1), 'a subscriber of "watched"');
my $w1 = keyed('/pub?ch=watched', 'k201', 'y');
is($w1->status, 201, 'published to a subscriber: 201');
$watch->close;
ok(wait_until(sub { ($t->channel_info('/pub?ch=watched') // {})->{subscribers} == 0 }, 5),
    'the subscriber left');
my $w2 = keyed('/pub?ch=watched', 'k201', 'y');
is($w2->status, 201, 'the repeat still answers 201 (as recorded)');
is($w2->body, $w1->body, '... with the same JSON');

# -- the key covers the channel list, in its order ----------------------------

my $a = $t->subscribe('/sub?ch=ma');
my $b = $t->subscribe('/sub?ch=mb');
ok($a->wait_comment(1) && $b->wait_comment(1), 'subscribers of "ma" and "mb"');

my $m1 = keyed('/pub?ch=ma,mb', 'multi', 'both');
is($m1->status, 201, 'keyed publish to ma,mb: 201');
my @m1 = map { $_->{id} } @{$m1->json->{channels} // []};
is(scalar(grep { defined } @m1), 2, '... an id per channel');
my $m2 = keyed('/pub?ch=ma,mb', 'multi', 'both');
is($m2->body, $m1->body, 'the repeat: the same JSON, every channel');
is($m2->header('Idempotent-Replayed'), 'true', '... marked as a replay');

my $m3 = keyed('/pub?ch=mb,ma', 'multi', 'both');
is($m3->status, 201, 'the same key, the channels in another order: published');
ok(!defined $m3->header('Idempotent-Replayed'), '... not a replay');
my $m4 = keyed('/pub?ch=ma', 'multi', 'one');
ok(!defined $m4->header('Idempotent-Replayed'), 'the same key, one of the channels: published');
is(seq_of($m4->json->{id}), 3, '... seq 3 on "ma"');
ok($a->wait_events(3, 2) && $b->wait_events(2, 2), 'subscribers got 3 and 2 events');
$a->poll(0.3);
$b->poll(0.3);
is($a->event_count, 3, '"ma": exactly 3');
is($b->event_count, 2, '"mb": exactly 2');

# -- bad keys: 400, nothing published -----------------------------------------

for my $case (['', 'empty'],
              ['k' x 256, '256 bytes'],
              ["a\x01b", 'a control byte'],
              ["a\tb", 'a tab'],
              ["caf\xc3\xa9", 'non-ASCII (UTF-8)'],
              ["\x7f", 'DEL'])
{
    my ($key, $what) = @$case;
    my $r = keyed('/pub?ch=badkey', $key, 'z');
    is($r->status, 400, "key $what: 400");
    is($r->json->{error}, 'bad_idempotency_key', "... error bad_idempotency_key");
}
my $two = $t->request('POST', '/pub?ch=badkey', body => 'z',
    headers => ['Idempotency-Key' => 'a', 'Idempotency-Key' => 'b']);
is($two->status, 400, 'two Idempotency-Key headers: 400');
is($two->json->{error}, 'bad_idempotency_key', '... bad_idempotency_key');
ok(!defined $t->channel_info('/pub?ch=badkey'), 'no bad key published anything');

my $max = keyed('/pub?ch=goodkey', 'k' x 255, 'z');
is($max->status, 202, 'a key of 255 bytes: accepted');
my $sp = keyed('/pub?ch=goodkey', 'a b', 'z');
is($sp->status, 202, 'a key with a space inside: accepted');
is(keyed('/pub?ch=goodkey', 'a b', 'z')->header('Idempotent-Replayed'), 'true',
    '... and remembered');

# -- a streaming body with a key is one publish -------------------------------

my $st = $t->subscribe('/sub?ch=stream');
ok($st->wait_comment(1), 'a subscriber of "stream"');

my $req = $t->open_request('POST', '/pub?ch=stream', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream',
                 'Idempotency-Key' => 'stream-1' });
$req->send_chunk("data: s1\n\n");
$req->send_chunk("data: s2\n\n");
ok(!$st->wait_events(1, 1), 'keyed streaming body: nothing published while it is open');
$req->send_chunk("data: s3\n\n");
$req->finish;
my $sr = $req->response(5);
is($sr->status, 201, 'the body ended: 201');
is_deeply($sr->json->{ids}, [map { $sr->json->{id} =~ s/-\d+$/-$_/r } 1 .. 3],
    '... with the ids of its 3 events');
ok($st->wait_events(3, 2), 'the subscriber got the 3 events');
is_deeply([$st->data], ['s1', 's2', 's3'], '... in order');

my $sr2 = $t->request('POST', '/pub?ch=stream', body => ["data: s1\n\n", "data: s2\n\n", "data: s3\n\n"],
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'stream-1' });
is($sr2->body, $sr->body, 'the same stream repeated: the same JSON');
$st->poll(0.3);
is($st->event_count, 3, '... nothing more delivered');

# a bad event in a keyed body: none of it is published
my $bad = $t->request('POST', '/pub?ch=stream', body => ["data: ok\n\n", "data: \xff\n\n"],
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'stream-bad' });
is($bad->status, 400, 'a keyed body with a bad event: 400');
is($bad->json->{events}, 0, '... events 0: the good event before it is not published either');
ok(!defined $bad->json->{id}, '... id null');
$st->poll(0.3);
is($st->event_count, 3, '... the subscriber got nothing');

# a keyed body cut short: nothing published, and nothing remembered
my $cut = $t->open_request('POST', '/pub?ch=stream', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'stream-cut' });
$cut->send_chunk("data: lost\n\n");
$cut->close;
ok(!$st->wait_events(4, 1), 'a keyed body cut short publishes nothing');
my $retry = $t->request('POST', '/pub?ch=stream', body => ["data: kept\n\n"],
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'stream-cut' });
is($retry->status, 201, '... its retry publishes');
ok(!defined $retry->header('Idempotent-Replayed'), '... not as a replay');
ok($st->wait_events(4, 2), '... and is delivered');
is(($st->events->[3] // {})->{data}, 'kept', '... the retried event');

# bounds of a keyed body: max_message bytes in all, 1000 events
my $big = join('', map { "data: " . ('b' x 30000) . "\n\n" } 1 .. 3);
my $r_big = $t->request('POST', '/pub?ch=kbig', body => $big,
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'big' });
is($r_big->status, 413, 'keyed: 3 events of 30 KB with max_message=64k: 413');
is($r_big->json->{error}, 'too_large', '... too_large');
ok(!defined $t->channel_info('/pub?ch=kbig'), '... nothing published');
my $r_unkeyed = $t->request('POST', '/pub?ch=kbig', body => $big,
    headers => { 'Content-Type' => 'text/event-stream' });
is($r_unkeyed->json->{events}, 3, 'without a key the same body publishes its 3 events');

my $many = join('', map { "data: $_\n\n" } 1 .. 1001);
my $r_many = $t->request('POST', '/pub?ch=kmany', body => $many,
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'many' });
is($r_many->status, 413, 'keyed: 1001 events: 413');
ok(!defined $t->channel_info('/pub?ch=kmany'), '... nothing published');
my $r_1000 = $t->request('POST', '/pub?ch=kmany', body => join('', map { "data: $_\n\n" } 1 .. 1000),
    headers => { 'Content-Type' => 'text/event-stream', 'Idempotency-Key' => 'many' });
is($r_1000->json->{events}, 1000, 'keyed: 1000 events: published');

# -- 20 identical requests at once: exactly one publishes ---------------------

my $race = $t->subscribe('/sub?ch=race');
ok($race->wait_comment(1), 'a subscriber of "race"');
my $raced0 = replays();
my $body = 'race-body';
my $head = "POST /pub?ch=race HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
         . "Idempotency-Key: race-key\r\nContent-Length: " . length($body) . "\r\n\r\n";
my @socks = map { $t->connect } 1 .. 20;
# everything but the last byte, then the last bytes as close together as
# can be: the 20 requests are complete on both workers at once
for my $c (@socks) { syswrite($c, $head . substr($body, 0, -1)) }
for my $c (@socks) { syswrite($c, substr($body, -1)) }
my @resp = map { SSETest::Request->new($_, 'POST')->response(10) } @socks;
is(scalar(grep { $_->status == 201 } @resp), 20, '20 concurrent identical keyed publishes: all 201');
my %ids = map { ($_->json->{id} // 'none') => 1 } @resp;
is(scalar(keys %ids), 1, '... one id for all');
is(scalar(grep { !defined $_->header('Idempotent-Replayed') } @resp), 1,
    '... exactly one of them published');
ok($race->wait_events(1, 2), 'the subscriber got the event');
$race->poll(0.5);
is($race->event_count, 1, '... once');
is(($t->channel_info('/pub?ch=race') // {})->{events}, 1, 'the channel holds one event');
is(replays(), $raced0 + 19, 'idempotent_replays: 19 more');

# -- after history_ttl the key is forgotten -----------------------------------

# nginx's clock has whole seconds: a record made at t0 lives at least
# until floor(t0) + 2 > t0 + 1
my $t0 = time;
my $e1 = keyed('/tpub?ch=ttl', 'ttl-key', 'one');
is(seq_of($e1->json->{id}), 1, 'zone t (history_ttl=2s): keyed publish, seq 1');
is(keyed('/tpub?ch=ttl', 'ttl-key', 'one')->json->{id}, $e1->json->{id},
    '... repeated at once: the same id');
my $again;
ok(wait_until(sub {
        $again = keyed('/tpub?ch=ttl', 'ttl-key', 'one');
        !defined $again->header('Idempotent-Replayed');
    }, 10, 0.2), 'the same key publishes again once history_ttl has passed');
cmp_ok(time - $t0, '>', 1, '... not before (more than a second later)');
is(seq_of($again->json->{id}), 2, '... as seq 2: every repeat before it published nothing');

# -- a publish that failed is not remembered ----------------------------------

is($t->publish('/cpub?ch=x', 'x1')->status, 202, 'zone c (max_channels=1): "x" published');
my $f1 = keyed('/cpub?ch=x,y', 'fail-key', 'xy');
is($f1->status, 507, 'keyed publish to x,y: 507 (max_channels)');
is(($t->channel_info('/cpub?ch=x') // {})->{events}, 1,
    '... and "x" got nothing: a keyed request is refused whole');
my $f2;
ok(wait_until(sub {
        $f2 = keyed('/cpub?ch=y', 'fail-key', 'y1');
        $f2->status != 507;
    }, 10, 0.2), 'keyed publish to "y" once "x" expired (channel_ttl=1s)');
is($f2->status, 202, '... 202');
my $f3 = keyed('/cpub?ch=y', 'fail-key', 'y1');
is($f3->body, $f2->body, 'the successful one is remembered');
my $f4 = keyed('/cpub?ch=z', 'z-key', 'z1');
is($f4->status, 507, 'a keyed publish refused (507)...');
is($f4->header('Retry-After'), '5', '... with Retry-After: its retry may succeed');
ok(!defined $f4->header('Idempotent-Replayed'), '... is not a replay');

# -- a refusal part way is remembered: its retry never duplicates ------------

# zone p holds 256 KB: the first event fits, the second (300 KB, within
# max_message) never can, so the keyed publish stops after p1's first event
my $ES = { 'Content-Type' => 'text/event-stream' };
my $part_body = "data: small\n\ndata: " . ('h' x 300000) . "\n\n";
my $p1 = $t->request('POST', '/ppub?ch=p1,p2', body => $part_body,
    headers => { %$ES, 'Idempotency-Key' => 'part-key' });
is($p1->status, 507, 'keyed publish to p1,p2 that runs out of room part way: 507');
my %pby = map { $_->{channel} => $_ } @{($p1->json // {})->{channels} // []};
is($pby{p1}{events}, 1, '... p1: its first event published');
is($pby{p2}{events}, 0, '... p2: nothing');
is(scalar @{$pby{p1}{ids} // []}, 1, '... p1: its id listed');
like(($p1->json // {})->{message} // '', qr/new key/, '... the message says to use a new key for the rest');
ok(!defined $p1->header('Idempotent-Replayed'), '... not a replay');
ok(!defined $p1->header('Retry-After'), '... no Retry-After: the same request cannot succeed');
is(($t->channel_info('/ppub?ch=p1') // {})->{events}, 1, 'p1 holds one event');

my $preplays = replays('p');
my $p2 = $t->request('POST', '/ppub?ch=p1,p2', body => $part_body,
    headers => { %$ES, 'Idempotency-Key' => 'part-key' });
is($p2->status, 507, 'the retry with the key: the same 507');
is($p2->body, $p1->body, '... byte for byte (the same ids)');
is($p2->header('Idempotent-Replayed'), 'true', '... marked Idempotent-Replayed');
is(($t->channel_info('/ppub?ch=p1') // {})->{events}, 1,
    '... and p1 still holds one event: nothing was published twice');
is(replays('p'), $preplays + 1, '... counted in idempotent_replays');

# the rest, under a new key, as the message says
my $p3 = $t->request('POST', '/ppub?ch=p2', body => "data: small\n\n",
    headers => { %$ES, 'Idempotency-Key' => 'part-key-rest' });
is($p3->status, 202, 'the missing part to p2 under a new key: 202');
is(($t->channel_info('/ppub?ch=p2') // {})->{events}, 1, '... p2 holds its event');

# -- a flood of distinct keys: bounded by the zone, oldest records first ------

my @kept = map { $t->publish('/hpub?ch=keep', "keep$_")->json->{id} } 1 .. 50;
is(scalar(grep { defined } @kept), 50, 'zone h (1m): 50 events on channel "keep"');
my $first = keyed('/hpub?ch=flood', (flood_request(0))[1], 'f');
my $first_id = $first->json->{id};
ok($first_id, 'the first flood key published');

# pipelined keyed publishes, 100000 distinct keys, on one connection.
# Each request is 128 bytes and they go 8 at a time, so that nginx's 1 KB
# header buffer never ends inside one: moving a request cut there to a
# large header buffer is where nginx 1.22's own code computes pointers
# out of range (UBSan reports it on the sanitizer build).
my $N = 100000;
sub flood_request {
    my ($k) = @_;
    my $req = "POST /hpub?ch=flood HTTP/1.1\r\nHost: localhost\r\n"
            . "Idempotency-Key: %s\r\nContent-Length: 1\r\n\r\nf";
    my $key = sprintf('flood-%06d-', $k);
    $key .= 'p' x (128 - length(sprintf($req, $key)));
    return (sprintf($req, $key), $key);
}
is(length((flood_request(1))[0]), 128, 'a flood request is 128 bytes');
my ($sent, $ok2xx, $other) = (0, 0, 0);
my $conn = $t->connect;
my $buf = '';
my $sel = IO::Select->new($conn);
my $deadline = time + tmo(240);
while ($sent < $N && time < $deadline) {
    my $batch = $N - $sent > 8 ? 8 : $N - $sent;
    my $out = join('', map { (flood_request($_))[0] } $sent + 1 .. $sent + $batch);
    SSETest::_write_all($conn, $out);
    my $got = 0;
    while ($got < $batch && time < $deadline) {
        if ($buf =~ /\A(HTTP\/1\.1 (\d+)[^\r]*\r\n.*?Content-Length: (\d+)\r\n.*?\r\n\r\n)/s
            && length($buf) >= length($1) + $3)
        {
            my ($hlen, $st, $blen) = (length($1), $2, $3);
            substr($buf, 0, $hlen + $blen) = '';
            ($st == 201 || $st == 202) ? $ok2xx++ : $other++;
            $got++;
            next;
        }
        last unless $sel->can_read(tmo(10));
        my $n = sysread($conn, $buf, 1 << 20, length $buf);
        last unless $n;
    }
    last if $got < $batch;
    $sent += $batch;
}
close $conn;
is($sent, $N, "$N keyed publishes with distinct keys sent and answered");
is($ok2xx, $N, '... every one accepted (201/202): records never refuse a publish');
is($other, 0, '... none refused');

my $hs = $t->zone_status('h');
cmp_ok($hs->{used}, '<=', $hs->{size}, "zone h: used $hs->{used} <= size $hs->{size}");
cmp_ok($hs->{idempotency_records}, '>', 0, "records kept: $hs->{idempotency_records}");
# a record here takes more than 96 bytes; records get a quarter of the zone
cmp_ok($hs->{idempotency_records}, '<=', $hs->{size} / 4 / 96,
    '... no more than fit in a quarter of the zone');
is($hs->{idempotency_records} + $hs->{idempotency_dropped}, $N + 1,
    '... kept + dropped = every keyed publish (nothing counted twice or lost)');
is($hs->{evicted}, 0, 'no event was evicted for the records');
is(($t->channel_info('/hpub?ch=keep') // {})->{events}, 50,
    'channel "keep" still holds its 50 events: records went first');
my $resume = $t->subscribe('/hsub?ch=keep', headers => { 'Last-Event-ID' => $kept[0] });
ok($resume->wait_events(49, 3), 'a resume from its first id replays the other 49');
is_deeply([$resume->data], [map { "keep$_" } 2 .. 50], '... keep2 .. keep50, no reset');

my $newest = keyed('/hpub?ch=flood', (flood_request($N))[1], 'f');
is($newest->header('Idempotent-Replayed'), 'true', 'the newest key is still remembered');
my $oldest = keyed('/hpub?ch=flood', (flood_request(0))[1], 'f');
ok(!defined $oldest->header('Idempotent-Replayed'), 'the oldest key was dropped first: it publishes again');
isnt($oldest->json->{id}, $first_id, '... with a new id');

my $room = $t->publish('/hpub?ch=roomy', 'r' x 200000);
is($room->status, 202, 'a 200 KB event into the zone after the flood: 202');
is(($t->channel_info('/hpub?ch=keep') // {})->{events}, 50, '... and "keep" still has its 50');

# history that needs room takes every record before the first event: fill
# the zone with 2 KB events on 8 channels until one is evicted
my $records = $t->zone_status('h')->{idempotency_records};
cmp_ok($records, '>', 0, "$records records before filling the zone");
my ($fills, $refused, $hz) = (0, 0);
while ($fills < 2000) {
    my $r = $t->publish('/hpub?ch=fill' . ($fills % 8), 'p' x 2000);
    $refused++ unless $r->status == 202;
    $fills++;
    $hz = $t->zone_status('h');
    last if $hz->{evicted};
}
ok($hz->{evicted}, "the zone is full after $fills publishes of 2 KB: an event was evicted");
is($refused, 0, '... every publish accepted');
is($hz->{idempotency_records}, 0, '... and by then no record was left: records go before any event');
is($hz->{idempotency_dropped}, $hs->{idempotency_dropped} + $records + 1,
    '... each counted as dropped');

# -- sse_status and Prometheus ------------------------------------------------

my $prom = $t->get('/status?format=prometheus')->body;
my $n_i = replays();
like($prom, qr/^sse_idempotent_replays_total\{zone="i"\} $n_i$/m,
    "Prometheus: sse_idempotent_replays_total{zone=\"i\"} $n_i");
like($prom, qr/^sse_idempotency_records\{zone="h"\} \d+$/m, 'Prometheus: sse_idempotency_records');
like($prom, qr/^sse_idempotency_dropped_total\{zone="h"\} [1-9]\d*$/m,
    'Prometheus: sse_idempotency_dropped_total');

$t->done;
