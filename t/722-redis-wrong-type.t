# A key of another type where the module keeps its own, or a corrupt
# record, makes Redis refuse the scripts every time until someone mends
# Redis: publish, DELETE and channel info answer 500 without Retry-After
# (a retry will not help), with an error code that names the case; the
# error log says it once per cause (with the key and the channel), however
# often the publisher retries; sse_status counts every such refusal in
# redis.errors (not in publishes_refused: Redis was there); other channels
# are not affected.  Redis busy (a transient case) still answers 503.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $redis = SSETest::Redis->new;
my $rport = $redis->port;
my $P = 'sse:shared:';

# one worker: "once per cause" is per worker
my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone shared 8m history=5 history_ttl=30s;
    sse_redis redis://127.0.0.1:$rport zone=shared;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=shared; }
        location /pub { sse_publish \$arg_ch zone=shared; }
        location = /status { sse_status; }
    }
}
EOF

sub cli { my $o = $redis->cli('--raw', @_) // ''; chomp $o; $o }
sub redis_figures { $t->zone_status('shared')->{redis} // {} }

ok(SSETest::wait_until(sub { (redis_figures()->{state} // '') eq 'up' },
                       SSETest::tmo(5), 0.05), 'Redis is up');
is(redis_figures()->{errors}, 0, 'no Redis error counted yet');

# a subscriber of a healthy channel, before anything goes wrong
my $s = $t->subscribe('/sub?ch=good');
is($s->status, 200, 'a stream of another channel');
ok(SSETest::wait_until(sub {
       my $r = $t->get('/pub?ch=good');
       $r->status == 200 && $r->json->{subscribers} == 1 }, SSETest::tmo(5), 0.05),
   'its subscriber is counted in Redis');
is($t->publish('/pub?ch=good', 'before')->status, 201, 'published to it');
ok($s->wait_events(1, SSETest::tmo(5)), 'its stream has the event');

# -- a key of the wrong type ----------------------------------------------------

cli('SET', "${P}c:bad", 'a string, not a hash');

my $r = $t->publish('/pub?ch=bad', 'x');
is($r->status, 500, 'publish to a channel whose c: key is a string: 500')
    or diag $r->describe;
is($r->header('Retry-After'), undef, 'no Retry-After: a retry will not help');
is($r->json->{error}, 'store_wrong_type', 'the error code names the case');

$r = $t->delete('/pub?ch=bad');
is($r->status, 500, 'DELETE: 500') or diag $r->describe;
is($r->header('Retry-After'), undef, 'no Retry-After');
is($r->json->{error}, 'store_wrong_type', 'store_wrong_type');

$r = $t->get('/pub?ch=bad');
is($r->status, 500, 'channel info: 500') or diag $r->describe;
is($r->header('Retry-After'), undef, 'no Retry-After');
is($r->json->{error}, 'store_wrong_type', 'store_wrong_type');
is($t->head('/pub?ch=bad')->status, 500, 'HEAD: 500');

my $line = qr/\[error\] [^\n]*redis refused the publish script "SSEWRONGTYPE \Q${P}c:bad\E is a string, not a hash" \(channel "bad"\): a retry will not help[^\n]*/;
ok($t->wait_log($line, SSETest::tmo(3)), 'the error log names the key and the channel');

# the publisher retries in a loop: the log does not grow with it
is($t->publish('/pub?ch=bad', 'again')->status, 500, 'a retry: 500 again')
    for 1 .. 5;
my @lines = $t->error_log =~ /(SSEWRONGTYPE \Q${P}c:bad\E)/g;
is(scalar @lines, 1, 'logged once for this cause, not once per request');

is(redis_figures()->{errors}, 9, 'every refusal counted in redis.errors');
is(redis_figures()->{publishes_refused}, 0,
   'not in publishes_refused: Redis was there');
my $prom = $t->get('/status?format=prometheus')->body;
like($prom, qr/^sse_redis_errors_total\{zone="shared"\} 9$/m,
     'and in Prometheus');

is(cli('GET', "${P}c:bad"), 'a string, not a hash', 'the odd key untouched');

# a multi-channel publish that names it is refused as a whole
$r = $t->publish('/pub?ch=good,bad', 'all or none');
is($r->status, 500, 'a multi-channel publish naming it: 500');
is(cli('XLEN', "${P}h:good"), '1', 'nothing added to the other channel');

# -- other channels are not affected -------------------------------------------

$r = $t->publish('/pub?ch=good', 'after');
is($r->status, 201, 'another channel publishes') or diag $r->describe;
ok($s->wait_events(2, SSETest::tmo(5)), 'and its stream gets the event');
is($s->events->[1]{data}, 'after', 'that one');
is($t->get('/pub?ch=good')->status, 200, 'its channel info answers');

# -- another cause: logged too, once --------------------------------------------

cli('HSET', "${P}c:corrupt", 'e', 'not a number', 's', '1');
$r = $t->publish('/pub?ch=corrupt', 'x');
is($r->status, 500, 'a corrupt channel record: 500') or diag $r->describe;
is($r->header('Retry-After'), undef, 'no Retry-After');
is($r->json->{error}, 'store_error', 'store_error');
is($t->publish('/pub?ch=corrupt', 'x')->status, 500, 'again');
ok($t->wait_log(qr/redis refused the publish script "SSECORRUPT \Q${P}c:corrupt\E" \(channel "corrupt"\)/,
                SSETest::tmo(3)), 'a second cause is logged');
@lines = $t->error_log =~ /(SSECORRUPT \Q${P}c:corrupt\E)/g;
is(scalar @lines, 1, 'once');

# -- a transient refusal keeps its 503 ------------------------------------------

# a script that runs past busy-reply-threshold makes Redis answer BUSY
cli('CONFIG', 'SET', 'busy-reply-threshold', '100');
my $busy = $t->spawn(SSETest::Redis::cli_binary(), '-p', $rport, 'EVAL',
                     'local i = 0 while true do i = i + 1 end', '0');
ok(SSETest::wait_until(sub {
       ($redis->cli('PING') // '') =~ /BUSY/ }, SSETest::tmo(5), 0.05),
   'Redis runs a long script');
$r = $t->publish('/pub?ch=good', 'busy');
is($r->status, 503, 'Redis BUSY: 503') or diag $r->describe;
is($r->header('Retry-After'), 1, 'with Retry-After');
cli('SCRIPT', 'KILL');
$t->wait_proc($busy, SSETest::tmo(5));
ok(SSETest::wait_until(sub { (redis_figures()->{state} // '') eq 'up' },
                       SSETest::tmo(5), 0.05), 'Redis is up again');
is($t->publish('/pub?ch=good', 'back')->status, 201, 'publishes again');
is(redis_figures()->{errors}, 12, 'BUSY is not counted as an error');

$s->close;
$t->done;
