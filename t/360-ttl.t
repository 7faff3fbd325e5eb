# channel_ttl and history_ttl.
#
# channel_ttl=2s: a channel with no subscriber and no publish for 2 s is
# removed with its history (channel info 404, status counts one channel
# less, the zone memory it used is free again); a channel with a
# subscriber, or one that keeps getting events, stays.
#
# history_ttl=2s: events older than 2 s are dropped, oldest first
# (stored_events falls to 0, a late subscriber with sse_replay all gets
# nothing); and a channel ended with DELETE answers subscribers 204 for
# history_ttl, then accepts them again.
#
# Times have the one-second resolution of nginx's clock: "after 2 s" means
# after more than 1 and at most about 3 seconds.
#
# harness: serial (tight time bounds: expiry times of a clock with one-second resolution); t/run-all.sh runs it
# alone, after the files that run two at a time.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone c 1m channel_ttl=2s;
    sse_zone h 1m history_ttl=2s;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;

        location /csub { sse_subscribe $arg_ch zone=c; }
        location /cpub { sse_publish $arg_ch zone=c; }
        location /hsub { sse_subscribe $arg_ch zone=h; }
        location /hall { sse_subscribe $arg_ch zone=h; sse_replay all; }
        location /hpub { sse_publish $arg_ch zone=h; }
        location = /status { sse_status; }
    }
}
EOF

my $cst0 = $t->zone_status('c');
my $used0 = $cst0->{used};
is($cst0->{channels}, 0, 'zone c starts empty');

# -- set up everything at once, then let the time pass ------------------------

# zone c: an idle channel with 100 KB of history, a channel with a
# subscriber, a channel that keeps getting events
my $t0 = time;
for my $n (1 .. 5) {
    is($t->publish('/cpub?ch=idle', "$n" . ('i' x 20000))->status, 202, "idle channel: event $n");
}
my $t_idle = time;
my $used1 = $t->zone_status('c')->{used};
cmp_ok($used1, '>=', $used0 + 100000, "the idle channel's history uses zone memory ($used0 -> $used1)");

my $held = $t->subscribe('/csub?ch=held');
ok($held->wait_comment(1), 'a channel with a subscriber');
is($t->publish('/cpub?ch=held', 'h1')->status, 201, '... and an event');
is($t->publish('/cpub?ch=busy', 'b0')->status, 202, 'a channel that will keep getting events');
is($t->zone_status('c')->{channels}, 3, 'zone c: 3 channels');

# zone h: history that will expire, and a deleted channel
my @hids = map { $t->publish('/hpub?ch=hist', "old$_")->json->{id} } 1 .. 5;
my $t_hist = time;
is($t->zone_status('h')->{stored_events}, 5, 'zone h: 5 stored events');

my $dsub = $t->subscribe('/hsub?ch=del');
ok($dsub->wait_comment(1), 'a subscriber of channel "del"');
is($t->publish('/hpub?ch=del', 'last words')->status, 201, '... an event to it');
my $r = $t->delete('/hpub?ch=del');
my $t_del = time;
is($r->status, 200, 'DELETE of channel "del": 200');
ok($dsub->wait_closed(2), 'its subscriber\'s stream ends');
ok($dsub->complete, '... cleanly (the end of the response)');
is_deeply([$dsub->data], ['last words'], '... after the event published before the DELETE');

my $s = $t->subscribe('/hsub?ch=del', untracked => 1);
$s->wait_complete(1);
is($s->status, 204, 'a subscriber of the deleted channel: 204');
$s->close;

# -- just under a second later: nothing has expired yet -----------------------

# (with a clock of one-second resolution, anything less than 1 s after its
# last activity is certainly not expired)
sleep(0.9 - (time - $t0)) if time - $t0 < 0.9;      # a deliberate gap
SKIP: {
    skip_tests('the setup took more than a second', 3) if time - $t0 >= 1;
    ok($t->channel_info('/cpub?ch=idle'), 'idle channel: still there 0.9 s later');
    is($t->zone_status('h')->{stored_events}, 5, 'zone h: the events are still stored');
    $s = $t->subscribe('/hsub?ch=del', untracked => 1);
    $s->wait_complete(1);
    is($s->status, 204, 'deleted channel: still 204');
    $s->close;
}

# an event of zone h published 1.5 s after the first ones
sleep(1.5 - (time - $t_hist)) if time - $t_hist < 1.5;  # a deliberate gap
my $young_id = $t->publish('/hpub?ch=hist', 'young')->json->{id};
my $t_young = time;
ok($young_id, 'one more event, 1.5 s after the others');

# -- watch everything expire ---------------------------------------------------

# the first moment each condition was seen, polled together
my %when;
my $del_sub;
my %cond = (
    hist_one  => sub { ($t->zone_status('h')->{stored_events} // -1) == 1 },
    idle_gone => sub { !defined $t->channel_info('/cpub?ch=idle') },
    young_gone => sub { ($t->zone_status('h')->{stored_events} // -1) == 0 },
    del_back  => sub {
        my $x = $t->subscribe('/hsub?ch=del', untracked => 1);
        $x->wait_headers(1);
        return 1 if ($x->status // 0) == 200 and $del_sub = $x;
        $x->close;
        return 0;
    },
);
my $hist_one_young_ok;
wait_until(sub {
    # keep "busy" busy
    $t->publish('/cpub?ch=busy', 'b');
    for my $k (sort keys %cond) {
        next if $when{$k};
        next unless $cond{$k}->();
        $when{$k} = time;
        if ($k eq 'hist_one') {
            # at this very moment the young event must be the one stored
            my $x = $t->subscribe('/hall?ch=hist');
            $x->wait_events(1, 1);
            $x->wait_events(2, 0.2);
            $hist_one_young_ok = join(',', $x->data);
            $x->close;
        }
    }
    return keys(%when) == keys(%cond);
}, 5, 0.05);

# history_ttl: the old events go first, then the young one
ok($when{hist_one}, 'zone h: the 5 old events expired while the young one was still stored');
is($hist_one_young_ok, 'young', '... sse_replay all then replays only the young one');
my $d = ($when{hist_one} // time) - $t_hist;
cmp_ok($d, '>', 1, sprintf('... more than 1 s after they were published (%.1fs)', $d));
cmp_ok($d, '<', tmo(3.3), '... and not much more than 2 s');

ok($when{young_gone}, 'zone h: stored_events 0 once the young event is older than 2 s too');
$d = ($when{young_gone} // 0) - $t_young;
cmp_ok($d, '>', 1, sprintf('... more than 1 s after it was published (%.1fs)', $d));
cmp_ok($d, '<', tmo(3.3), '... and not much more than 2 s');

# channel_ttl: the idle channel is gone
ok($when{idle_gone}, 'the idle channel is removed');
$d = ($when{idle_gone} // time) - $t_idle;
cmp_ok($d, '>', 1, sprintf('... more than 1 s after its last publish (%.1fs)', $d));
cmp_ok($d, '<', tmo(3.3), '... and not much more than 2 s');
is($t->get('/cpub?ch=idle')->status, 404, 'its channel info: 404');
my $cst = $t->zone_status('c');
is($cst->{channels}, 2, 'zone c: 2 channels left');
my $busy = $t->channel_info('/cpub?ch=busy') // {};
is($cst->{stored_events}, 1 + ($busy->{events} // 0), "zone c: the idle channel's events are gone too");
cmp_ok($used1 - $cst->{used}, '>=', 90000,
    "the zone memory of its history is given back (used $used1 -> $cst->{used})");
cmp_ok($cst->{used}, '<=', $used0 + 32768,
    "... used is back near where it started ($used0)");
ok($t->channel_info('/cpub?ch=held'), 'the channel with a subscriber stays');
ok($busy->{events}, 'the channel that keeps getting events stays');
ok(!$held->is_closed, 'the subscriber was not disturbed');

# DELETE: 204 for history_ttl, then subscribers are accepted again
ok($when{del_back}, 'after history_ttl a subscriber of the deleted channel gets 200 again');
$d = ($when{del_back} // time) - $t_del;
cmp_ok($d, '>', 1, sprintf('... more than 1 s after the DELETE (%.1fs)', $d));
cmp_ok($d, '<', tmo(3.3), '... and not much more than 2 s');
$s = $del_sub // $t->subscribe('/hsub?ch=del');
$r = $t->publish('/hpub?ch=del', 'reborn');
is($r->status, 201, 'a publish reaches the new subscriber');
ok($s->wait_events(1, 2), '... it gets the event');
like($r->json->{id} // '', qr/-1$/, '... the re-created channel counts from 1');
$s->close;

# -- after expiry -------------------------------------------------------------

my $info = $t->channel_info('/hpub?ch=hist');
is($info && $info->{events}, 0, 'channel "hist" has no events');
is($info && $info->{last_id}, $young_id, '... and still knows its last id');

$s = $t->subscribe('/hall?ch=hist');
ok($s->wait_comment(1), 'a late subscriber with sse_replay all');
ok(!$s->wait_events(1, 0.5), '... gets nothing');

# resuming: from the last id exactly, from an expired id with a gap reset
my $exact = $t->subscribe('/hsub?ch=hist', headers => { 'Last-Event-ID' => $young_id });
my $gap = $t->subscribe('/hsub?ch=hist', headers => { 'Last-Event-ID' => $hids[1] });
ok($exact->wait_comment(1) && $gap->wait_comment(1), 'two subscribers resume');
is($t->publish('/hpub?ch=hist', 'new')->status, 201, 'a new event');
ok($s->wait_events(1, 2), 'the late subscriber gets it live');
is($s->events->[0]{data}, 'new', '...');
ok($exact->wait_events(1, 2), 'resumed from the last id:');
ok(!$exact->wait_events(2, 0.3), '... only the new event');
is_deeply([$exact->data], ['new'], '... no reset');
ok($gap->wait_events(2, 2), 'resumed from an expired id:');
is($gap->events->[0]{type}, 'reset', '... a reset');
is((json_decode($gap->events->[0]{data}) // {})->{reason}, 'gap', '... reason gap');
is($gap->events->[1]{data}, 'new', '... then the new event');
$_->close for $s, $exact, $gap;

# -- the subscriber of "held" leaves: 2 s later its channel is gone too ---------

$held->close;
ok(wait_until(sub { ($t->zone_status('c')->{subscribers} // -1) == 0 }, 2),
    'the last subscriber left');
my $t_left = time;
ok($t->channel_info('/cpub?ch=held'), '... its channel is still there');
ok(wait_until(sub { !defined $t->channel_info('/cpub?ch=held') }, 3.5, 0.05),
    'and is removed 2 s after the subscriber left');
cmp_ok(time - $t_left, '>', 1, '... not before');

$t->done;
