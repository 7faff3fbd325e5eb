# A full zone: publishing evicts the zone's oldest history first (counted
# as evicted; publishes keep succeeding; a resume from an evicted id gets a
# "gap" reset); channel records that hold no event and no subscriber make
# way too.  When nothing evictable is left (the zone is held by subscribed
# channels, or the event is larger than it) the publish is refused with
# 507 {"error":"zone_full"} and Retry-After, counted in refused_full, and
# logged once (rate-limited), never as [alert] or [crit]; once memory frees
# up, publishing works again.  max_channels and max_subscribers refuse the
# one too many (507 / 503 with Retry-After) and accept again when there is
# room.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 256k history=1000;
    sse_zone f 256k history_ttl=2s;
    sse_zone c 1m max_channels=3;
    sse_zone s 1m max_subscribers=2;
    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 2m;

        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /all  { sse_subscribe $arg_ch zone=z; sse_replay all; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location /fsub { sse_subscribe $arg_ch zone=f; }
        location /fpub { sse_publish $arg_ch zone=f; }
        location /csub { sse_subscribe $arg_ch zone=c; }
        location /cpub { sse_publish $arg_ch zone=c; }
        location /ssub { sse_subscribe $arg_ch zone=s; }
        location /spub { sse_publish $arg_ch zone=s; }
        location = /status { sse_status; }
    }
}
EOF

sub full_lines {
    my ($zone) = @_;
    my @l = grep { /sse zone "\Q$zone\E" is full/ } split /\n/, $t->error_log;
    return scalar @l;
}

sub is_refusal {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->status, $status, "$name: $status");
    like($r->header('Content-Type') // '', qr{^application/json}, "$name: JSON");
    is($r->json->{error}, $code, "$name: error $code");
    like($r->header('Retry-After') // '', qr/^\d+$/, "$name: Retry-After");
}

# -- eviction: the oldest history goes first, publishes keep succeeding ------

my $st0 = $t->zone_status('z');
is($st0->{size}, 256 * 1024, 'zone z: 256k');

my $watch = $t->subscribe('/sub?ch=new');
ok($watch->wait_comment(1), 'a subscriber of channel "new"');

my @old = map { $t->publish('/pub?ch=old', "old$_")->json->{id} } 1 .. 5;
is(($t->channel_info('/pub?ch=old') // {})->{events}, 5, 'channel "old": 5 small events');

my $BIG = 20000;
my (@ids, $bad);
for my $n (1 .. 40) {          # 800 KB through a 256 KB zone
    my $r = $t->publish('/pub?ch=new', sprintf("%03d", $n) . ('n' x $BIG));
    $bad++ unless $r->status == 201;
    push @ids, $r->json->{id};
}
ok(!$bad, '40 events of 20 KB (800 KB) through the 256 KB zone: every publish 201');
ok($watch->wait_events(40, 3), 'the subscriber got all 40');
is_deeply([map { substr($_, 0, 3) } $watch->data], [map { sprintf "%03d", $_ } 1 .. 40],
    '... in order');

my $st = $t->zone_status('z');
ok($st->{evicted} > 0, "status: evicted grew ($st->{evicted})");
is($st->{published}, 45, 'status: published 45');
is($st->{refused_full}, 0, 'status: refused_full 0');
ok($st->{used} <= $st->{size}, 'used stays within the size');
is($st->{stored_events} + $st->{evicted}, 45, 'stored_events + evicted = published');

my $old = $t->channel_info('/pub?ch=old') // {};
is($old->{events}, 0, 'the oldest history (channel "old") went first');
my $new = $t->channel_info('/pub?ch=new') // {};
my $kept = $new->{events} // 0;
ok($kept > 0 && $kept < 40, "channel \"new\" keeps its newest $kept events");
is($kept, $st->{stored_events}, 'and they are all the zone stores');

# a replay of everything gives exactly the newest ones, in order
my $s = $t->subscribe('/all?ch=new');
ok($s->wait_events($kept, 3), 'sse_replay all: the stored events');
ok(!$s->wait_events($kept + 1, 0.3), '...');
is_deeply([map { substr($_, 0, 3) } $s->data],
    [map { sprintf "%03d", $_ } 40 - $kept + 1 .. 40], '... the newest ones');
$s->close;

# a resume from an evicted id: gap reset, then what is stored
$s = $t->subscribe('/sub?ch=new', headers => { 'Last-Event-ID' => $ids[0] });
ok($s->wait_events($kept + 1, 3), 'resume from an evicted id');
my $e = $s->events->[0];
is($e && $e->{type}, 'reset', '... a reset first');
is((json_decode($e && $e->{data}) // {})->{reason}, 'gap', '... reason gap');
is_deeply([map { substr($_, 0, 3) } map { $_->{data} } @{$s->events}[1 .. $kept]],
    [map { sprintf "%03d", $_ } 40 - $kept + 1 .. 40], '... then the stored events');
$s->close;

$s = $t->subscribe('/sub?ch=old', headers => { 'Last-Event-ID' => $old[1] });
ok($s->wait_events(1, 2), 'resume of channel "old" (all evicted)');
is($s->events->[0]{type}, 'reset', '... a reset');
is((json_decode($s->events->[0]{data}) // {})->{reason}, 'gap', '... reason gap');
ok(!$s->wait_events(2, 0.3), '... and nothing else');
$s->close;

# -- nothing left to evict: 507 zone_full ------------------------------------

# one event larger than the whole zone (but within max_message, 1m): no
# eviction can make room for it
my $huge = 'h' x 300000;
my $before = $t->zone_status('z');
my $r = $t->publish('/pub?ch=new', $huge);
is_refusal($r, 507, 'zone_full', 'an event larger than the zone');
ok(length($r->json->{message} // ''), '... with a message');
my $after = $t->zone_status('z');
is($after->{refused_full}, 1, 'refused_full: 1');
# evicting could not have made room: the refused event must not cost the
# other events their place
is($after->{stored_events}, $before->{stored_events}, '... the stored history is intact');
is($after->{evicted}, $before->{evicted}, '... nothing was evicted for it');
is(($t->channel_info('/pub?ch=new') // {})->{events}, $kept, '... the channel keeps its events');

my $n507 = 0;
for (1 .. 20) {
    $n507++ if $t->publish('/pub?ch=new', $huge)->status == 507;
}
is($n507, 20, '20 more such publishes: all 507');
is($t->zone_status('z')->{refused_full}, 21, 'refused_full: 21');
ok($t->wait_log(qr/sse zone "z" is full/, 2), 'error.log says the zone is full');
is(full_lines('z'), 1, '... once, however many publishes were refused');
unlike($t->error_log, qr/\[(?:alert|crit)\].*(?:no memory|ngx_slab_alloc)/,
    'no [alert]/[crit] about the slab allocator');

# what fits is accepted again at once
$r = $t->publish('/pub?ch=new', 'small again');
is($r->status, 201, 'a small event right after: 201');
ok($watch->wait_for(sub { grep { $_ eq 'small again' } $watch->data }, 2),
    '... and it is delivered');
is($t->publish('/pub?ch=other', 'x' x $BIG)->status, 202, 'a 20 KB event to another channel: 202');
ok(!$watch->is_closed, 'the subscriber was never disturbed');

# -- a zone full of channels ----------------------------------------------

# Channels without subscribers stay for channel_ttl (1h), but one whose
# events are all gone holds nothing: once no event is left to evict, such
# records make room, so publishing to ever new channels never gets a 507.
# Long channel ids: a channel record is then bigger than any event.
my $L = 'c' x 200;
my %codes;
for my $i (1 .. 1500) {
    $codes{$t->publish("/fpub?ch=$L$i", "e$i")->status}++;
}
is_deeply(\%codes, { 202 => 1500 },
    'zone f: 1500 publishes to new channels (far more than fit): all 202');
my $fst = $t->zone_status('f');
ok($fst->{channels} < 1500, "zone f holds $fst->{channels} channels: drained ones made way");
is($fst->{refused_full}, 0, 'zone f: refused_full 0');

# channels held by subscribers cannot go: when they fill the zone, a new
# channel has no room (507 for a publish, 503 for a subscriber).  A
# refused subscriber gives back what it had taken, which may leave room
# for a few more single channels: subscribers to one channel take it until
# even one channel no longer fits.
my ($held, $held_503, $single_503) = $t->hold_channels_until_full('/fsub', 's');
my @held = @$held;
is($held_503, 503, 'subscribers of 64 channels each fill zone f; the next one: 503');
is($single_503, 503, 'then subscribers of one channel each, until one gets 503');
my $rc0f = $t->zone_status('f')->{refused_full};
$r = $t->publish("/fpub?ch=${L}one-more", 'x');
is_refusal($r, 507, 'zone_full', 'a zone full of subscribed channels');
is($t->zone_status('f')->{refused_full}, $rc0f + 1,
    'zone f: refused_full counts the refused publish');
is(full_lines('f'), 1, 'zone f: one "is full" line');

my $fs = $t->subscribe('/fsub?ch=sub-new', untracked => 1);
$fs->wait_complete(2);
is($fs->status, 503, 'a subscriber to a new channel of the full zone: 503');
like($fs->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
$fs->close;

# the subscribers leave: their channels held nothing, there is room again
$_->close for @held;
ok(wait_until(sub { ($t->zone_status('f')->{subscribers} // -1) == 0 }, 5),
    'the subscribers of zone f left');
is($t->publish('/fpub?ch=after-leave', 'back')->status, 202,
    'publishing to a new channel works again');
my $fs2 = $t->subscribe('/fsub?ch=after-leave');
is($fs2->status, 200, 'and a subscriber is accepted again');
$fs2->close;

# -- max_channels=3 ---------------------------------------------------------

for my $i (1 .. 3) {
    is($t->publish("/cpub?ch=k$i", "k$i")->status, 202, "max_channels=3: channel $i: 202");
}
my $rc0 = $t->zone_status('c')->{refused_full};
$r = $t->publish('/cpub?ch=k4', 'k4');
is_refusal($r, 507, 'too_many_channels', 'a 4th channel');
is(($t->channel_info('/cpub?ch=k4')), undef, '... it does not exist');
is($t->zone_status('c')->{channels}, 3, 'status: 3 channels');
is($t->zone_status('c')->{refused_full}, $rc0 + 1,
    'status: refused_full counts the publish refused with 507');
is($t->publish('/cpub?ch=k2', 'more')->status, 202, 'the 3 channels still take events');

$s = $t->subscribe('/csub?ch=k4', untracked => 1);
$s->wait_complete(2);
is($s->status, 503, 'a subscriber to a 4th channel: 503');
is((json_decode($s->raw) // {})->{error}, 'too_many_channels', '... too_many_channels');
like($s->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
$s->close;
$s = $t->subscribe('/csub?ch=k1,k4', untracked => 1);
$s->wait_complete(2);
is($s->status, 503, 'a subscriber to an existing and a 4th channel: 503');
$s->close;
ok(wait_until(sub { ($t->zone_status('c')->{subscribers} // -1) == 0 }, 2),
    '... and it holds nothing in the zone');
$s = $t->subscribe('/csub?ch=k1');
is($s->status, 200, 'a subscriber to an existing channel: 200');
is($t->publish('/cpub?ch=k1', 'to k1')->status, 201, '... publish 201');
ok($s->wait_events(1, 2), '... it gets the event');
$s->close;

$r = $t->delete('/cpub?ch=k3');
is($r->status, 200, 'DELETE of channel k3');
# a deleted channel is kept for history_ttl (1h) to answer 204: the zone
# still has 3 channel records, the 4th is still refused
is($t->publish('/cpub?ch=k4', 'k4')->status, 507, 'a deleted channel still counts (its 204 record)');

# -- max_subscribers=2 ------------------------------------------------------

my @subs = map { $t->subscribe("/ssub?ch=m$_") } 1 .. 2;
is_deeply([map { $_->status } @subs], [200, 200], 'max_subscribers=2: two subscribers');
ok(wait_until(sub { ($t->zone_status('s')->{subscribers} // 0) == 2 }, 2), 'counted');
for my $try (1 .. 3) {
    my $x = $t->subscribe("/ssub?ch=m$try", untracked => 1);
    $x->wait_complete(2);
    is($x->status, 503, "one more subscriber (try $try): 503");
    is((json_decode($x->raw) // {})->{error}, 'too_many_subscribers', '... too_many_subscribers');
    like($x->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
    $x->close;
}
is($t->zone_status('s')->{subscribers}, 2, 'the refused ones are not counted');
is($t->publish('/spub?ch=m1', 'still')->status, 201, 'the two keep working');
ok($subs[0]->wait_events(1, 2), '...');

$subs[1]->close;
ok(wait_until(sub { ($t->zone_status('s')->{subscribers} // -1) == 1 }, 3),
    'one leaves: status counts 1');
my $x = $t->subscribe('/ssub?ch=m3');
is($x->status, 200, 'a new subscriber is accepted again');
ok($x->wait_comment(1), '... its stream is open');
my $y = $t->subscribe('/ssub?ch=m3', untracked => 1);
$y->wait_complete(2);
is($y->status, 503, 'and the next one is refused again');
$y->close;
$x->close;
$subs[0]->close;

$t->done;
