# A reload ends the old worker's streams; the node's subscriber count of
# their channels in Redis (P s:{id}) must follow.  The old worker wrote
# counts only from its 1-second tick, which stops at shutdown, and the new
# workers write only the channels their own streams change: the count
# stayed in Redis for good, and channel info and publish replies counted
# subscribers that were gone.

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
my $P = 'sse:q:';

my $t = SSETest->new(workers => 1)->run(<<"EOF2");
http {
    sse_zone q 8m;
    sse_redis redis://127.0.0.1:$rport zone=q;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=q; }
        location /pub { sse_publish \$arg_ch zone=q; }
        location = /status { sse_status; }
    }
}
EOF2

sub state { (($t->zone_status('q')->{redis} // {})->{state} // '') }

sub subs {
    my ($ch) = @_;
    my $r = $t->get("/pub?ch=$ch");
    return $r->status == 200 ? $r->json->{subscribers} : 'status ' . $r->status;
}

ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10), 0.05), 'up');

is($t->publish('/pub?ch=x', 'x1')->status, 202, 'x published (no subscriber)');
my @s = map { $t->subscribe("/sub?ch=$_") } qw(x y y);
ok(SSETest::wait_until(sub { (subs('x') // '') eq '1' && (subs('y') // '') eq '2' },
                       SSETest::tmo(5), 0.05),
   'the streams are counted in Redis') or diag(subs('x') . ' ' . subs('y'));

$t->reload;
for my $s (@s) {
    ok($s->wait_closed(SSETest::tmo(10)), 'the reload ends the stream');
}
ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10), 0.05),
   'the new worker is up');

ok(SSETest::wait_until(sub { (subs('x') // '') eq '0' }, SSETest::tmo(5), 0.05),
   'x: no subscriber counted after the reload') or diag(subs('x'));
is(subs('y'), 'status 404',
   'y (never published): unknown again, no subscriber left');
is($redis->cli('EXISTS', "${P}s:x") =~ s/\s+//gr, '0', 'no count of x left in Redis');
is($redis->cli('EXISTS', "${P}s:y") =~ s/\s+//gr, '0', 'no count of y left in Redis');

my $r = $t->publish('/pub?ch=x', 'x2');
is($r->status, 202, 'a publish to x: 202 (nobody subscribed)');

$t->done;
