# SPEC behaviours checked at their edges, with the defaults:
#  - history=100 (the zone's default): the 101st event evicts the first;
#  - max_message=1m: an event of exactly 1 MiB is accepted, 1 MiB + 1 is 413;
#  - sse_heartbeat 15s by default (one wait of about 16 s, overlapping the rest);
#  - a real id of another channel as Last-Event-ID: reset "unknown";
#  - a new epoch after channel_ttl removed an idle channel;
#  - the DELETE reply's fields;
#  - PUT with an event-stream body;
#  - 201 when only one of several channels has a subscriber.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone d 16m;
    sse_zone ttl 1m channel_ttl=1s;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        client_max_body_size 2m;

        location /hb   { sse_subscribe $arg_ch zone=d; }
        location /sub  { sse_subscribe $arg_ch zone=d; sse_heartbeat off; }
        location /all  { sse_subscribe $arg_ch zone=d; sse_heartbeat off; sse_replay all; }
        location /pub  { sse_publish $arg_ch zone=d; }
        location /tsub { sse_subscribe $arg_ch zone=ttl; sse_heartbeat off; }
        location /tpub { sse_publish $arg_ch zone=ttl; }
        location = /status { sse_status; }
    }
}
EOF

# -- default heartbeat: started first, checked last ----------------------------

my $hb = $t->subscribe('/hb?ch=quiet');
my $hb_first = $hb->wait_comment(2);
ok($hb_first, 'a stream with the default heartbeat opens with a comment');

# -- history=100 by default -----------------------------------------------------

my @ids = map { $t->publish('/pub?ch=h', "h$_")->json->{id} } 1 .. 101;
is(scalar(grep { defined } @ids), 101, '101 events published to a zone without history=');
is($t->channel_info('/pub?ch=h')->{events}, 100, 'the channel keeps 100 of them');
my $s = $t->subscribe('/all?ch=h');
ok($s->wait_events(100, 3), 'sse_replay all replays the stored ones');
ok(!$s->wait_events(101, 0.3), '... and no more');
is_deeply([$s->data], [map { "h$_" } 2 .. 101], '... h2 .. h101: the first was evicted');
$s->close;
# resuming after h1: its successor h2 is still stored, so no gap
$s = $t->subscribe('/sub?ch=h', headers => { 'Last-Event-ID' => $ids[0] });
ok($s->wait_events(100, 3), 'resuming after h1 replays 100 events');
is_deeply([$s->data], [map { "h$_" } 2 .. 101], '... h2 .. h101, without a reset');
$s->close;
# one event more evicts h2: resuming after h1 is now a gap
$t->publish('/pub?ch=h', 'h102');
$s = $t->subscribe('/sub?ch=h', headers => { 'Last-Event-ID' => $ids[0] });
ok($s->wait_events(1, 2), 'after a 102nd event, resuming after h1');
is($s->events->[0]{type}, 'reset', '... starts with a reset: h2 was evicted');
is((json_decode($s->events->[0]{data}) // {})->{reason}, 'gap', '... reason gap');
$s->close;

# -- max_message=1m by default ---------------------------------------------------

my $sub1m = $t->subscribe('/sub?ch=big');
my $r = $t->publish('/pub?ch=big', 'm' x (1024 * 1024));
is($r->status, 201, 'an event of exactly 1 MiB (the default max_message): 201');
my $e = $sub1m->next_event(5);
is($e && length($e->{data}), 1024 * 1024, '... and it arrives whole');
$r = $t->publish('/pub?ch=big', 'm' x (1024 * 1024 + 1));
is($r->status, 413, 'an event of 1 MiB + 1 byte: 413 (client_max_body_size is 2m)');
is($r->json->{error}, 'too_large', '... too_large');
is($t->channel_info('/pub?ch=big')->{events}, 1, '... and it is not stored');
$sub1m->close;

# -- a real id of another channel ---------------------------------------------------

my $other = $t->publish('/pub?ch=x', 'x1')->json->{id};
$t->publish('/pub?ch=y', "y$_") for 1 .. 3;
$s = $t->subscribe('/sub?ch=y', headers => { 'Last-Event-ID' => $other });
ok($s->wait_events(1, 2), "channel y, resumed with channel x's id $other");
is($s->events->[0]{type}, 'reset', '... gets a reset first');
is((json_decode($s->events->[0]{data}) // {})->{reason}, 'unknown', '... reason unknown');
ok($s->wait_events(4, 2), '... then the history of y');
is_deeply([map { $_->{data} } @{$s->events}[1 .. 3]], [qw(y1 y2 y3)], '... all of it');
$s->close;

# -- a new epoch after channel_ttl ------------------------------------------------------

my $old_id = $t->publish('/tpub?ch=t', 'before')->json->{id} // '';
my ($old_epoch) = $old_id =~ /^(.+)-\d+$/;
ok($old_epoch, "an event on a channel with channel_ttl=1s: $old_id");
ok(wait_until(sub { !defined $t->channel_info('/tpub?ch=t') }, 5),
    'the idle channel is removed after its channel_ttl');
my $new_id = $t->publish('/tpub?ch=t', 'after')->json->{id} // '';
my ($new_epoch) = $new_id =~ /^(.+)-\d+$/;
ok(defined $new_epoch && defined $old_epoch && $new_epoch ne $old_epoch,
    "publishing again starts a new epoch ($old_id -> $new_id)");
$s = $t->subscribe('/tsub?ch=t', headers => { 'Last-Event-ID' => $old_id });
ok($s->wait_events(2, 2), 'the old id on the new channel');
is($s->events->[0]{type}, 'reset', '... gets a reset');
is((json_decode($s->events->[0]{data}) // {})->{reason}, 'unknown', '... unknown: another epoch');
is($s->events->[1]{data}, 'after', '... then the new history');
$s->close;

# -- the DELETE reply -------------------------------------------------------------------

my @dsubs = map { $t->subscribe('/sub?ch=del') } 1 .. 2;
ok(SSETest::Stream::wait_all(\@dsubs, sub { @{$_[0]->comments} >= 1 }, 2), 'two subscribers of "del"');
$r = $t->delete('/pub?ch=del');
is($r->status, 200, 'DELETE: 200');
like($r->header('content-type') // '', qr{^application/json}, '... JSON');
is_deeply($r->json, { channel => 'del', deleted => JSON::PP::true(), subscribers => 2 },
    '... {"channel":"del","deleted":true,"subscribers":2}');
is($t->delete('/pub?ch=never')->status, 404, 'DELETE of a channel that never was: 404');

# -- PUT with an event-stream body -----------------------------------------------------

my $ps = $t->subscribe('/sub?ch=put');
$r = $t->request('PUT', '/pub?ch=put',
    headers => { 'Content-Type' => 'text/event-stream' },
    body => "event: first\ndata: one\n\ndata: two a\ndata: two b\n\n");
is($r->status, 201, 'PUT with Content-Type text/event-stream: 201');
is($r->json->{events}, 2, '... two events');
ok($ps->wait_events(2, 2), '... both arrive');
is_deeply([map { [$_->{type} // 'message', $_->{data}] } @{$ps->events}],
    [['first', 'one'], ['message', "two a\ntwo b"]], '... read as an event stream');
$ps->close;

# -- 201 when one of several channels has a subscriber --------------------------------------

my $ms = $t->subscribe('/sub?ch=m2');
ok($ms->wait_comment(1), 'a subscriber of m2 only');
$r = $t->publish('/pub?ch=m1,m2,m3', 'to three');
is($r->status, 201, 'a publish to m1, m2, m3: 201 (m2 has a subscriber)');
is($r->json->{subscribers}, 1, '... one subscriber in all');
is_deeply([map { $_->{subscribers} } @{$r->json->{channels} // []}], [0, 1, 0],
    '... per channel: 0, 1, 0');
ok($ms->wait_events(1, 2), '... and it got the event');
is($t->publish('/pub?ch=m1,m3', 'nobody')->status, 202, 'm1 and m3 alone: 202');
$ms->close;

# -- the default heartbeat, 15 s ------------------------------------------------------------

my $hb_next = $hb->wait_comment(20);
ok($hb_next, 'sse_heartbeat by default: a comment after a silence');
my $gap = $hb_next ? $hb_next->{time} - $hb_first->{time} : 0;
cmp_ok($gap, '>', 14.5, sprintf('... not before 15 s (%.1fs)', $gap));
cmp_ok($gap, '<', 15 + tmo(2), '... and not long after');
is($hb->event_count, 0, '... on a channel nobody published to');

$t->done;
