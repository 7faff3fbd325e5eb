# A zone with sse_redis publishes, deletes and describes its channels
# through Redis (one script each): ids come from Redis (c: hash, h: stream,
# one pub/sub message per channel), a multi-channel publish is all or
# none, Redis out of memory is 507, Redis stopped or stalled is 503 with
# Retry-After at once, a channel whose position went back gets a new
# epoch, DELETE leaves a tomb, channel info is Redis' (also for a channel
# this node never served), an Idempotency-Key is recorded in Redis.
# (Subscribers on other nodes, and pub/sub into the node's zone, are the
# read side's: t/73x, t/71x.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use IO::Select;
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $redis = SSETest::Redis->new;
my $rport = $redis->port;
my $P = 'sse:shared:';

my $t = SSETest->new(workers => 2)->run(<<"EOF");
http {
    sse_zone shared 8m history=5 history_ttl=30s channel_ttl=60s;
    sse_redis redis://127.0.0.1:$rport zone=shared;
    client_max_body_size 4m;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        location /sub { sse_subscribe \$arg_ch zone=shared; }
        location /pub { sse_publish \$arg_ch zone=shared; }
        location = /status { sse_status; }
    }
}
EOF

sub cli { my $o = $redis->cli('--raw', @_) // ''; chomp $o; $o }
sub raw { my $o = $redis->cli('--raw', @_) // ''; chomp $o; $o }

sub wait_state {
    my ($state) = @_;
    return SSETest::wait_until(sub {
        (($t->zone_status('shared')->{redis} // {})->{state} // '') eq $state;
    }, SSETest::tmo(5), 0.05);
}

# base36 epoch of an id -> decimal string (Perl's integers are 64-bit)
sub id_epoch {
    my ($id) = @_;
    my ($e) = $id =~ /^([0-9a-z]+)-\d+$/ or return undef;
    my $n = 0;
    $n = $n * 36 + index('0123456789abcdefghijklmnopqrstuvwxyz', $_)
        for split //, $e;
    return "$n";
}
sub id_seq { my ($id) = @_; $id =~ /-(\d+)$/ ? $1 : undef }

# a pub/sub subscriber of its own, on a plain socket (RESP by hand)
sub resp_read {
    my ($sock, $buf, $deadline) = @_;
    my $sel = IO::Select->new($sock);
    my $line = sub {
        while ($$buf !~ /\r\n/) {
            my $left = $deadline - time;
            return undef if $left <= 0 || !$sel->can_read($left);
            sysread($sock, $$buf, 65536, length $$buf) or return undef;
        }
        $$buf =~ s/^(.*?)\r\n//s;
        return $1;
    };
    my $bytes = sub {
        my ($n) = @_;
        while (length($$buf) < $n + 2) {
            my $left = $deadline - time;
            return undef if $left <= 0 || !$sel->can_read($left);
            sysread($sock, $$buf, 65536, length $$buf) or return undef;
        }
        my $s = substr($$buf, 0, $n);
        substr($$buf, 0, $n + 2) = '';
        return $s;
    };
    my $value;
    $value = sub {
        my $l = $line->() // return undef;
        my ($k, $rest) = (substr($l, 0, 1), substr($l, 1));
        return $bytes->($rest) if $k eq '$';
        return [ map { $value->() } 1 .. $rest ] if $k eq '*';
        return $rest;
    };
    return $value->();
}

sub listen_channel {
    my ($ch) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $rport,
                                  Proto => 'tcp') or die "redis: $!";
    my $name = "${P}m:$ch";
    print $s "*2\r\n\$9\r\nSUBSCRIBE\r\n\$" . length($name) . "\r\n$name\r\n";
    my $buf = '';
    my $ok = resp_read($s, \$buf, time + SSETest::tmo(3));
    die "SUBSCRIBE not confirmed" unless ref $ok && $ok->[0] eq 'subscribe';
    return { sock => $s, buf => \$buf };
}

sub next_message {
    my ($l) = @_;
    my $m = resp_read($l->{sock}, $l->{buf}, time + SSETest::tmo(3));
    return ref $m && $m->[0] eq 'message' ? $m->[2] : undef;
}

ok(wait_state('up'), 'the link is up');

# -- ids from Redis ----------------------------------------------------------

my $la = listen_channel('a');

my $r = $t->publish('/pub?ch=a', 'hello');
is($r->status, 202, 'published: 202, no subscriber anywhere')
    or diag $r->describe;
my $id1 = $r->json->{id};
my %c = split /\n/, raw('HGETALL', "${P}c:a");
like($c{e}, qr/^\d{15,16}$/, 'c:a holds a decimal epoch (microseconds)');
is(id_epoch($id1), $c{e}, 'the id carries Redis\' epoch');
is(id_seq($id1), 1, 'and seq 1');
is($c{s}, 1, 'c:a s is 1');
ok(abs($c{e} / 1e6 - time) < 60, 'the epoch is Redis\' TIME');
ok(abs($c{t} - time) < 60, 'c:a t is the publish time');
my @x = split /\n/, raw('XRANGE', "${P}h:a", '-', '+');
is_deeply([ @x[0 .. 6] ], [ '1-0', 't', '', 'd', 'hello', 'm', $x[6] ],
          'the stream entry: 1-0, fields t, d, m');
ok(abs($x[6] / 1000 - time) < 60, 'm is the publish time in ms');
my $pttl = cli('PTTL', "${P}c:a");
ok($pttl > 50000 && $pttl <= 60000, "c:a expires after channel_ttl ($pttl)");
$pttl = cli('PTTL', "${P}h:a");
ok($pttl > 20000 && $pttl <= 30000, "h:a expires after history_ttl ($pttl)");

is(next_message($la), "E $c{e} 1 1 $x[6]\n0 5\nhello",
   'one pub/sub message in the design\'s format');

$r = $t->publish_stream('/pub?ch=a',
    "event: t1\ndata: one\n\ndata: two\ndata: lines\n\nevent: t3\ndata: 3\n\n");
is($r->status, 202, 'an event stream body');
is_deeply($r->json->{ids}, [ map { "$1-$_" } 2 .. 4 ],
          'its ids follow on') if $id1 =~ /^(\w+)-/;
my $m = next_message($la);
like($m // "", qr/^E $c{e} 2 3 \d+\n2 3\nt1one0 9\ntwo\nlines2 1\nt33\z/,
     'one message for the three events, binary-safe lengths');

$r = $t->publish('/pub?ch=a', "x$_") for 1 .. 3;
is(id_seq($r->json->{id}), 7, 'seq 7');
is(cli('XLEN', "${P}h:a"), 5, 'the stream holds history=5 events');
is((split /\n/, raw('XRANGE', "${P}h:a", '-', '+', 'COUNT', 1))[0], '3-0',
   'the oldest ones trimmed');
next_message($la) for 1 .. 3;

# many events in one body (published as the body arrives: a script per
# part read, a message per script)
my $s0 = raw('HGET', "${P}c:a", 's');
$r = $t->publish_stream('/pub?ch=a', join '', map { "data: m$_\n\n" } 1 .. 5000);
is($r->status, 202, '5000 events in one body');
is($r->json->{events}, 5000, 'all published');
is(raw('HGET', "${P}c:a", 's'), $s0 + 5000, 'the seq went on by 5000');
is(cli('XLEN', "${P}h:a"), 5, 'history still 5');
my ($next, $seen, $ok) = ($s0 + 1, 0, 1);
while ($seen < 5000 && defined(my $msg = next_message($la))) {
    my ($first, $n) = $msg =~ /^E $c{e} (\d+) (\d+) \d+\n/ or do { $ok = 0; last };
    $ok &&= $first == $next;
    (my $rest = $msg) =~ s/^[^\n]*\n//;    # the events after the header
    my @data;
    while ($rest =~ s/^(\d+) (\d+)\n//) {
        push @data, substr($rest, $1, $2);
        substr($rest, 0, $1 + $2) = '';
    }
    $ok &&= $rest eq '';
    $ok &&= @data == $n && $data[0] eq 'm' . ($first - $s0)
            && $data[-1] eq 'm' . ($first - $s0 + $n - 1);
    $next += $n;
    $seen += $n;
}
ok($ok && $seen == 5000, 'messages hold every event once, in order');

# -- subscribers of live nodes -----------------------------------------------

cli('HSET', "${P}s:a", 'node-live', 3, 'node-dead', 5);
cli('SET', "${P}n:node-live", 1, 'PX', 60000);
$r = $t->publish('/pub?ch=a', 'counted');
is($r->status, 201, '201: another node has subscribers');
is($r->json->{subscribers}, 3, 'the live node\'s 3, not the dead one\'s');
is(cli('HEXISTS', "${P}s:a", 'node-dead'), '0',
   'a dead node\'s count is dropped');
next_message($la);

# -- channel info --------------------------------------------------------------

my $info = $t->channel_info('/pub?ch=a');
is($info->{events}, 5, 'info: events in history');
is($info->{subscribers}, 3, 'info: subscribers of live nodes');
is($info->{last_id}, $r->json->{id}, 'info: last id');
ok(defined $info->{last_publish_age} && $info->{last_publish_age} < 10,
   'info: last publish age');

# a channel this node never served: only in Redis
cli('HSET', "${P}c:elsewhere", 'e', '1700000000000000', 's', 41,
    't', int(time) - 7);
cli('XADD', "${P}h:elsewhere", '41-0', 't', '', 'd', 'x', 'm', 1);
$info = $t->channel_info('/pub?ch=elsewhere');
is($info->{last_id}, 'gqll7vatq8-41', 'info of a channel only Redis knows')
    or diag explain $info;
is($info->{events}, 1, 'its events');
ok($info->{last_publish_age} >= 6 && $info->{last_publish_age} <= 30,
   'its last publish age');
is($t->get('/pub?ch=nowhere')->status, 404, 'info: no such channel: 404');

# -- the position went back: a new epoch ------------------------------------

cli('HSET', "${P}c:a", 's', 2);     # as if restored from an older snapshot
$r = $t->publish('/pub?ch=a', 'after restore');
is($r->status, 201, 'published after the position went back');
my $e2 = id_epoch($r->json->{id});
ok($e2 > $c{e}, 'a new, higher epoch') or diag "$e2 vs $c{e}";
is(id_seq($r->json->{id}), 1, 'from seq 1');
is(cli('XLEN', "${P}h:a"), 1, 'the old stream is gone');
like(next_message($la), qr/^E $e2 1 1 /, 'the message names the new epoch');

# -- DELETE ------------------------------------------------------------------

$r = $t->delete('/pub?ch=a');
is($r->status, 200, 'DELETE through Redis') or diag $r->describe;
is($r->json->{subscribers}, 3, 'with the cluster\'s subscribers');
is(cli('EXISTS', "${P}c:a", "${P}h:a"), '0', 'c: and h: gone');
is(raw('GET', "${P}x:a"), $e2, 'the tomb holds the epoch');
$pttl = cli('PTTL', "${P}x:a");
ok($pttl > 20000 && $pttl <= 30000, "the tomb lasts history_ttl ($pttl)");
is(next_message($la), "D $e2\n", 'nodes hear D <epoch>');
is($t->delete('/pub?ch=a')->status, 404, 'DELETE again: 404');
is($t->get('/pub?ch=a')->status, 404, 'info of a deleted channel: 404');

$r = $t->publish('/pub?ch=a', 'revived');
my $e3 = id_epoch($r->json->{id});
ok($e3 > $e2, 'published again: a new epoch') or diag "$e3 vs $e2";
is(id_seq($r->json->{id}), 1, 'from seq 1');
is(cli('EXISTS', "${P}x:a"), '0', 'the tomb is gone');
next_message($la);

# -- all or none ---------------------------------------------------------------

# s: is read last, after the first channel's writes would have been done
cli('SET', "${P}s:wrong", 'not a hash');
$r = $t->publish('/pub?ch=fine1,wrong,fine2', 'all or none');
is($r->status, 500, 'a channel with a key of the wrong type: 500 (t/722)')
    or diag $r->describe;
is(cli('EXISTS', "${P}c:fine1", "${P}h:fine1", "${P}c:fine2",
       "${P}h:fine2"), '0', 'nothing stored on the other channels');
is(raw('GET', "${P}s:wrong"), 'not a hash', 'the odd key untouched');
is(cli('EXISTS', "${P}c:wrong"), '0', 'and the channel not made');
ok($t->wait_log(qr/redis refused the publish script "SSEWRONGTYPE/, 3),
   'the reason is logged');

my $published0 = $t->zone_status('shared')->{published};
$r = $t->publish('/pub?ch=fine1,fine2', 'both');
is($r->status, 202, 'two channels');
is($t->zone_status('shared')->{published}, $published0 + 2,
   'the zone counts the events its publish location published, per channel');
is(scalar @{ $r->json->{channels} }, 2, 'two results');
is(cli('XLEN', "${P}h:fine1") . cli('XLEN', "${P}h:fine2"), '11',
   'one event on each');

# -- Redis out of memory: 507, nothing half-written -----------------------

$r = $t->publish('/pub?ch=big', 'b' x 900_000);
is($r->status, 202, 'a big event');
cli('CONFIG', 'SET', 'maxmemory', '1mb');
$r = $t->publish('/pub?ch=fine1,oomnew', 'too much');
is($r->status, 507, 'Redis over maxmemory: 507') or diag $r->describe;
is($r->json->{error}, 'store_full', 'with the reason');
is(cli('XLEN', "${P}h:fine1"), 1, 'nothing added to the first channel');
is(cli('EXISTS', "${P}c:oomnew"), '0', 'nor the second made');
is($t->get('/pub?ch=fine1')->status, 200, 'channel info still answers');
is($t->delete('/pub?ch=fine1')->status, 507, 'DELETE under OOM: 507');
cli('CONFIG', 'SET', 'maxmemory', '0');
is($t->publish('/pub?ch=fine1,oomnew', 'room again')->status, 202,
   'with room again, it publishes');

# -- the script is sent again after Redis lost it -------------------------

cli('SCRIPT', 'FLUSH');
is($t->publish('/pub?ch=fine1', 'after flush')->status, 202,
   'NOSCRIPT: sent with EVAL');
is(cli('XLEN', "${P}h:fine1"), 3, 'once');

# -- Idempotency-Key in the script ------------------------------------------
# (the publish handler's Idempotency-Key header is t/250's; here the
# script itself, run with redis-cli as a node runs it)

my $script = do {
    open my $fh, '<', SSETest::repo_root()
        . '/src/store/ngx_http_sse_store_redis_scripts.h' or die $!;
    local $/;
    my $h = <$fh>;
    my %lit;
    while ($h =~ /#define (NGX_HTTP_SSE_LUA_\w+)\s*\\\n((?:"(?:[^"\\]|\\.)*"\s*\\\n)*"(?:[^"\\]|\\.)*"\n)/g) {
        $lit{$1} = $2;
    }
    my ($body) = $h =~ /ngx_http_sse_lua_publish\[\] =\n(.*?);\n/s;
    $body =~ s/^(NGX_HTTP_SSE_LUA_\w+)$/$lit{$1}/mg;
    my $s = '';
    $s .= $1 while $body =~ /"((?:[^"\\]|\\.)*)"/g;
    $s =~ s/\\(n|0|\\|")/$1 eq 'n' ? "\n" : $1 eq '0' ? "\\0" : $1/ge;
    $s;
};
like($script, qr/^#!lua\n.*return out\n\z/s, 'the publish script, as sent');
my @keys = map { "${P}$_:idem" } qw(c h x s);
my @eval = ('EVAL', $script, 4, @keys, $P, 1, 1, 5, 30000, 60000, 'key-1',
            'idem', '', '', '', 'once');
my $first = raw(@eval);
my $again = raw(@eval);
like($first, qr/^0\n\d+\n1\n1\n0$/, 'first: published') or diag $first;
(my $expect = $first) =~ s/^0/1/;
is($again, $expect, 'same key again: repeated, the same answer');
is(cli('XLEN', "${P}h:idem"), 1, 'one stream entry');
$eval[13] = 'key-2';
like(raw(@eval), qr/^0\n\d+\n2\n/, 'another key publishes');

# -- a publish whose client is gone before Redis answers ---------------------
# (nginx keeps the request until the store answers, bounded by the client's
# 1 s deadline: the reply finds it, and the worker goes on)

my $len0 = cli('XLEN', "${P}h:fine1");
my $reconnects0 = $t->zone_status('shared')->{redis}{reconnects};
$redis->pause;
my ($rc) = $t->curl('--http2-prior-knowledge', '-m', '0.3',
                    '--data-binary', 'orphan', $t->url('/pub?ch=fine1', 2));
isnt($rc, 0, 'the client gave up before Redis answered');
$redis->resume;
# (a machine so busy that Redis resumed after the 1 s deadline: the
# connection was dropped and the publish never ran; both are fine here)
ok(SSETest::wait_until(sub {
       cli('XLEN', "${P}h:fine1") == $len0 + 1
       || $t->zone_status('shared')->{redis}{reconnects} > $reconnects0
   }, SSETest::tmo(3), 0.02),
   'Redis ran the publish after the client was gone');
ok(wait_state('up'), 'the link is up');
is($t->publish('/pub?ch=fine1', 'next')->status, 202,
   'the worker goes on (the late reply was harmless)');

# -- Redis stalled or gone: 503 with Retry-After at once ---------------------

sub timed { my $t0 = time; my $r = $_[0]->(); return ($r, time - $t0) }

# a key of the wrong type was refused by the script: not for want of Redis
my $refused0 = $t->zone_status('shared')->{redis}{publishes_refused};
is($refused0, 0, 'no publish refused for want of Redis yet');
$redis->pause;
my ($rs, $dt) = timed(sub { $t->publish('/pub?ch=stall', 'x') });
is($rs->status, 503, 'Redis stopped (SIGSTOP): 503');
is($rs->header('Retry-After'), 1, 'Retry-After: 1');
is($rs->json->{error}, 'store_unavailable', 'a JSON reason');
ok($dt < SSETest::tmo(1.5), sprintf('within %.2f s', $dt));
# once every worker found it down (by its PINGs), at once: 'down' shows
# from the first worker on, the other may find it up to a PING later
ok(SSETest::wait_until(sub {
       ($t->zone_status('shared')->{redis}{workers_down} // 0) == 2
   }, SSETest::tmo(5), 0.05),
   'every worker sees Redis down (workers_down 2)');
($rs, $dt) = timed(sub { $t->publish('/pub?ch=stall', 'x') });
is($rs->status, 503, 'and the next one');
ok($dt < SSETest::tmo(0.5), sprintf('at once (%.2f s)', $dt));
($rs, $dt) = timed(sub { $t->delete('/pub?ch=stall') });
is($rs->status, 503, 'DELETE: 503');
is($rs->header('Retry-After'), 1, 'Retry-After');
ok($dt < SSETest::tmo(1.5), 'in time');
($rs, $dt) = timed(sub { $t->get('/pub?ch=fine1') });
is($rs->status, 503, 'channel info: 503');
is($rs->header('Retry-After'), 1, 'Retry-After');
is($t->head('/pub?ch=fine1')->status, 503, 'HEAD: 503');
is($t->zone_status('shared')->{redis}{publishes_refused}, $refused0 + 2,
   'refused publishes are counted (not DELETE, not info)');
$redis->resume;
ok(wait_state('up'), 'up again');
is($t->publish('/pub?ch=fine1', 'back')->status, 202, 'publishes again');

my $before = id_epoch($t->publish('/pub?ch=fine1', 'x')->json->{id});
$redis->kill9;
($rs, $dt) = timed(sub { $t->publish('/pub?ch=gone', 'x') });
is($rs->status, 503, 'Redis killed: 503');
is($rs->header('Retry-After'), 1, 'Retry-After: 1');
ok($dt < SSETest::tmo(1.5), sprintf('within %.2f s', $dt));
$redis->start;
ok(wait_state('up'), 'up again after a restart');
$r = $t->publish('/pub?ch=fine1', 'restarted empty');
is($r->status, 202, 'publishes to a Redis restarted empty');
my $after = id_epoch($r->json->{id});
ok($after > $before, 'a new epoch (no aliased id)');
is(id_seq($r->json->{id}), 1, 'from seq 1');

$t->done;
