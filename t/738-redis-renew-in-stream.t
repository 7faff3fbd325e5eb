# SPEC "Several nginx nodes: Redis": an open stream that meets a new epoch
# of its channel (Redis restarted empty, was flushed, evicted it, was
# restored from a snapshot, failed over) gets `reset` (reason gap) and
# then the new epoch's events, and stays open.  One node, one worker and a
# real redis-server; messages of a higher epoch are injected with
# redis-cli as another node's publish would send them (docs/redis.md).
# The edges: a multi-channel stream whose channels renew two at once (its
# other channel's position stays), a stream still replaying the old epoch
# (the rest of it is void: reset at once), one whose buffer has no room
# for the reset (dropped as too slow: it resumes with a reset), clients
# gone mid-way, HTTP/2, a thousand streams on the channel; a DELETE ("D")
# still ends streams.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;
SSETest::skip_file('needs 1100 file descriptors') if SSETest::fd_limit() < 1100;

my $redis = SSETest::Redis->new;
my $rport = $redis->port;
my $P = 'sse:z:';

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone z 32m history=500;
    sse_redis redis://127.0.0.1:$rport zone=z;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        # slow readers: what the kernel holds for them stays small
        listen 127.0.0.1:%%PORT3%% sndbuf=16k;
        location /sub { sse_subscribe \$arg_ch zone=z; }
        location /tight {
            sse_subscribe \$arg_ch zone=z;
            sse_max_pending 1k;
        }
        location = /status { sse_status; }
    }
}
EOF

sub cli { $redis->value(@_) }

sub id_of { SSETest::Redis::id_of(@_) }

# one message of a publish: [type, data] pairs from seq $first on
sub message {
    my ($epoch, $first, @events) = @_;
    my $m = sprintf "E %s %d %d %d\n", $epoch, $first, scalar @events,
        int(time * 1000);
    for my $e (@events) {
        $m .= sprintf "%d %d\n%s%s", length $e->[0], length $e->[1],
            $e->[0], $e->[1];
    }
    return $m;
}

# what a publish script leaves in Redis (the channel hash, its stream),
# and its message
sub publish {
    my ($ch, $epoch, $seq, $data) = @_;
    cli('XADD', "${P}h:$ch", "$seq-0", 't', '', 'd', $data,
        'm', int(time * 1000));
    cli('HSET', "${P}c:$ch", 'e', $epoch, 's', $seq, 't', int(time));
    return cli('PUBLISH', "${P}m:$ch", message($epoch, $seq, ['', $data]));
}

# Redis went on under a new epoch: its old stream is gone
sub renew { my ($ch) = @_; cli('DEL', "${P}h:$ch", "${P}c:$ch") }

# $n events of $size bytes (data "<n>:xxx..."), stored and published in
# one message, by a script: too big for a command line
my $BULK = <<'LUA';
local n, size = tonumber(ARGV[3]), tonumber(ARGV[4])
local m = { 'E ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. n .. ' '
            .. ARGV[5] .. '\n' }
for i = 0, n - 1 do
    local seq = tonumber(ARGV[2]) + i
    local d = seq .. ':'
    d = d .. string.rep('x', size - #d)
    redis.call('XADD', KEYS[2], seq .. '-0', 't', '', 'd', d, 'm', ARGV[5])
    m[#m + 1] = '0 ' .. #d .. '\n' .. d
end
redis.call('HSET', KEYS[3], 'e', ARGV[1], 's', tonumber(ARGV[2]) + n - 1)
return redis.call('PUBLISH', KEYS[1], table.concat(m))
LUA

sub bulk {
    my ($ch, $epoch, $first, $n, $size) = @_;
    return cli('EVAL', $BULK, 3, "${P}m:$ch", "${P}h:$ch", "${P}c:$ch",
               $epoch, $first, $n, $size, int(time * 1000));
}

sub numsub {
    my ($ch) = @_;
    my @l = split /\n/, (cli('PUBSUB', 'NUMSUB', "${P}m:$ch") // '');
    return $l[1] // 0;
}

sub subscribed {
    my ($ch) = @_;
    return SSETest::wait_until(sub { numsub($ch) >= 1 }, SSETest::tmo(5));
}

sub resets { return grep { ($_->{type} // '') eq 'reset' } @_ }

ok(SSETest::wait_until(sub {
       (($t->zone_status('z')->{redis} // {})->{state} // '') eq 'up' },
   SSETest::tmo(10), 0.05), 'redis is up');

my $E = 1_700_000_000_000_000;

# -- live streams: a reset, then the new epoch, and they stay open ----------

my @s = map { $t->subscribe('/sub?ch=a') } 1 .. 10;
ok(subscribed('a'), 'channel a subscribed');
publish('a', $E, 1, 'a1');
publish('a', $E, 2, 'a2');
ok($_->wait_events(2, SSETest::tmo(3)), 'a1, a2') for @s;

my $E2 = $E + 1000;
renew('a');
publish('a', $E2, 1, 'b1');
for my $i (0 .. $#s) {
    ok($s[$i]->wait_events(4, SSETest::tmo(3)), "stream $i: 4 events");
    my @ev = @{$s[$i]->events};
    is_deeply([map { $_->{data} } @ev[0, 1]], [qw(a1 a2)],
              "stream $i: the old epoch first");
    is($ev[2]{type}, 'reset', "stream $i: then one reset");
    is_deeply(SSETest::json_decode($ev[2]{data}),
              { reason => 'gap', channel => 'a' },
              "stream $i: reason gap, the channel, as a join's reset");
    is($ev[2]{id}, id_of($E2, 0), "stream $i: its id is at the new epoch");
    is($ev[3]{data}, 'b1', "stream $i: then the new epoch");
    is($ev[3]{id}, id_of($E2, 1), "stream $i: with its id");
}
publish('a', $E2, 2, 'b2');
for my $i (0 .. $#s) {
    ok($s[$i]->wait_events(5, SSETest::tmo(3)), "stream $i: still open");
    is($s[$i]->events->[4]{id}, id_of($E2, 2), "stream $i: live at b2");
    is(scalar(resets(@{$s[$i]->events})), 1, "stream $i: one reset only");
}

$_->close for @s;

# -- a new epoch first heard of past its first event: filled from Redis ----
# (its first messages were lost to this node, e.g. while its pub/sub
# connection was down): the streams get the reset, then every event of
# the new epoch Redis keeps, not only those from the message on

my $f = $t->subscribe('/sub?ch=f');
ok(subscribed('f'), 'channel f subscribed');
publish('f', $E, 1, 'f1');
ok($f->wait_events(1, SSETest::tmo(3)), 'f1');
renew('f');
for my $seq (1, 2) {
    cli('XADD', "${P}h:f", "$seq-0", 't', '', 'd', "g$seq",
        'm', int(time * 1000));
}
publish('f', $E2, 3, 'g3');
ok($f->wait_events(5, SSETest::tmo(3)), 'a reset and three events');
is_deeply([map { $_->{type} // $_->{data} } @{$f->events}],
          [qw(f1 reset g1 g2 g3)],
          'the new epoch from its first event, though the message began at 3');
is($f->events->[4]{id}, id_of($E2, 3), '... with their ids');
$f->close;

# -- a stream on three channels, two of which renew at once ----------------

my $m = $t->subscribe('/sub?ch=x,y,w');
ok(subscribed($_), "channel $_ subscribed") for qw(x y w);
publish('x', $E, 1, 'x1');
publish('y', $E, 1, 'y1');
publish('w', $E, 1, 'w1');
ok($m->wait_events(3, SSETest::tmo(3)), 'x1, y1, w1');
is($m->events->[2]{id}, join('.', map { id_of($E, 1) } 1 .. 3),
   'one position per channel');

renew('x');
renew('y');
cli('EVAL', "redis.call('PUBLISH', KEYS[1], ARGV[1]) "
          . "redis.call('PUBLISH', KEYS[2], ARGV[2])",
    2, "${P}m:x", "${P}m:y",
    message($E2, 1, ['', 'x-new']), message($E2, 1, ['', 'y-new']));
ok($m->wait_events(7, SSETest::tmo(3)), 'two resets, two new events');
my @mev = @{$m->events}[3 .. 6];
is_deeply([sort map { SSETest::json_decode($_->{data})->{channel} }
           resets(@mev)], [qw(x y)], 'a reset for each renewed channel');
is_deeply([sort map { $_->{data} } grep { !defined $_->{type} } @mev],
          [qw(x-new y-new)], 'and the new epochs\' events');
is($mev[-1]{id}, join('.', id_of($E2, 1), id_of($E2, 1), id_of($E, 1)),
   'the third channel\'s position is unchanged');
publish('w', $E, 2, 'w2');
ok($m->wait_events(8, SSETest::tmo(3)), 'the third channel goes on');
is($m->events->[7]{id}, join('.', id_of($E2, 1), id_of($E2, 1), id_of($E, 2)),
   '... at its epoch');
my $mid = $m->events->[7]{id};
$m->close;
my $m2 = $t->subscribe('/sub?ch=x,y,w', headers => { 'Last-Event-ID' => $mid });
publish('x', $E2, 2, 'x2');
ok($m2->wait_events(1, SSETest::tmo(3)), 'a resume with its last id');
is_deeply([map { $_->{data} } @{$m2->events}], ['x2'],
          '... goes on without a reset: the ids it got are valid');
$m2->close;

# -- a stream still replaying the old epoch: the rest of it is void --------

my $live = $t->subscribe('/sub?ch=p');
ok(subscribed('p'), 'channel p subscribed');
bulk('p', $E, 1, 300, 4000);
ok($live->wait_events(300, SSETest::tmo(10)), '300 events of 4 KB');
$live->close;

# a reader that reads nothing: its replay of 1.2 MB stops at what its
# socket takes (sse_max_pending 256k)
my $slow = $t->subscribe('/sub?ch=p', rcvbuf => 4096, port => 3,
                         headers => { 'Last-Event-ID' => id_of($E, 0) });
ok(SSETest::wait_until(sub {
       ($t->zone_status('z')->{subscribers} // 0) == 1 }, SSETest::tmo(3)),
   'the slow reader joined');
# ... and one with no room for a reset (1k, and bytes unsent)
my $tight = $t->subscribe('/tight?ch=p', rcvbuf => 4096, port => 3,
                          headers => { 'Last-Event-ID' => id_of($E, 0) });
ok(SSETest::wait_until(sub {
       ($t->zone_status('z')->{subscribers} // 0) == 2 }, SSETest::tmo(3)),
   'the tight one joined');

renew('p');
publish('p', $E2, 1, 'p-new');
ok($t->wait_log(qr/no room for the reset of a channel that went on/, 5),
   'the tight one had no room for the reset: dropped as too slow');

# the slow reader reads now
ok($slow->wait_for(sub { grep { ($_->{data} // '') eq 'p-new' }
                         @{$slow->events} }, 20),
   'the slow reader gets to the new epoch');
my @sev = @{$slow->events};
my ($ri) = grep { ($sev[$_]{type} // '') eq 'reset' } 0 .. $#sev;
ok(defined $ri, 'after a reset');
ok(defined $ri && $ri < 300,
   "the old epoch's events it had not got are dropped (it had $ri)");
is_deeply([map { (split /:/, $_->{data})[0] } @sev[0 .. ($ri // 0) - 1]],
          [1 .. ($ri // 0)], '... what it got of it is in order, from 1');
is($sev[-1]{id}, id_of($E2, 1), 'then the new epoch');
is(scalar(@sev), ($ri // 0) + 2, 'nothing else');
ok(!$slow->is_closed, 'and it stays open');
$slow->close;

ok($tight->wait_closed(SSETest::tmo(10)), 'the tight one is closed');
my @tev = @{$tight->events};
is(scalar(resets(@tev)), 0, 'without a reset');
ok(!(grep { ($_->{data} // '') eq 'p-new' } @tev), 'or the new epoch');
my $again = $t->subscribe('/sub?ch=p',
                          headers => { 'Last-Event-ID' => $tev[-1]{id} });
ok($again->wait_events(2, SSETest::tmo(3)), 'it resumes');
is($again->events->[0]{type}, 'reset', '... with a reset');
is($again->events->[1]{data}, 'p-new', '... then the new epoch');
$again->close;

# -- clients gone mid-way, HTTP/2, a thousand streams ----------------------

my @many = map { $t->subscribe('/sub?ch=g', untracked => 1) } 1 .. 1000;
my $h2 = $t->curl_subscribe($t->url('/sub?ch=g', 2), '--http2-prior-knowledge');
ok($h2->wait_headers(3), 'an HTTP/2 stream');
ok(subscribed('g'), 'channel g subscribed');
publish('g', $E, 1, 'g1');
ok($h2->wait_events(1, SSETest::tmo(3)), 'h2: g1');
ok($_->wait_events(1, SSETest::tmo(3)), 'g1') for @many[0, 499, 999];

# half the clients go away just before the renewal
$_->close for @many[500 .. 999];
splice @many, 500;
renew('g');
my $t0 = time;
publish('g', $E2, 1, 'g-new');
ok(SSETest::Stream::wait_all(\@many, sub { $_[0]->event_count >= 3 },
                             SSETest::tmo(10)),
   '500 streams got the reset and the new epoch');
diag(sprintf 'renewed under %.2f s', time - $t0);
is(scalar(grep { ($_->events->[1]{type} // '') eq 'reset'
                 && $_->events->[2]{data} eq 'g-new'
                 && !$_->is_closed } @many), 500,
   'each: a reset, then g-new, and open');
ok($h2->wait_events(3, SSETest::tmo(3)), 'h2: the same');
is($h2->events->[1]{type}, 'reset', 'h2: a reset');
is($h2->events->[2]{data}, 'g-new', 'h2: then the new epoch');
publish('g', $E2, 2, 'g2');
ok($h2->wait_events(4, SSETest::tmo(3)), 'h2: still open');
ok(SSETest::wait_until(sub {
       ($t->zone_status('z')->{subscribers} // 0) == 501 }, SSETest::tmo(5)),
   'the zone counts the 501 streams left');
$_->close for @many, $h2;

# -- "D", then a new epoch: the streams end, as on one node -----------------

my $d = $t->subscribe('/sub?ch=d');
ok(subscribed('d'), 'channel d subscribed');
publish('d', $E, 1, 'd1');
ok($d->wait_events(1, SSETest::tmo(3)), 'd1');
cli('EVAL', "redis.call('PUBLISH', KEYS[1], ARGV[1]) "
          . "redis.call('PUBLISH', KEYS[1], ARGV[2])",
    1, "${P}m:d", "D $E\n", message($E2, 1, ['', 'd-new']));
ok($d->wait_closed(SSETest::tmo(3)), 'a DELETE ends the stream');
is_deeply([map { $_->{data} } @{$d->events}], ['d1'],
          '... after what it had, without a reset');

$t->expect_log(qr/client is too slow/);
ok($t->stop, 'nginx quit gracefully');
$t->check_log;

done_testing;
