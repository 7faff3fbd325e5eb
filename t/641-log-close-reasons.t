# $sse_close_reason in a stream's access-log line, one test per reason
# (docs/operations.md, "Logging"): client, lifetime, token, deleted, slow,
# timeout, shutdown (a reload, and a stop).  Each line is written when the
# stream ends, once, with its duration, the events its client got and the
# id it resumes from; detached streams (HTTP/1.1 here) and streams that
# stay on their request (HTTP/2, limit_conn) alike.
#
# harness: serial (durations and send_timeout are measured)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;
use SSETest::JWT qw(claims);

my $t = SSETest->new(workers => 1);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

# exp of the short token: far enough ahead for nginx to start first
my $E = int(time) + 4 + 3 * timeout_factor();
my $tok = $jwt->mint(
    keys => [ { name => 'hs', type => 'oct', bytes => 32 } ],
    tokens => {
        short => { key => 'hs', claims => claims(subscribe => ['tok'], exp => $E) },
    },
);

$t->run(<<"EOF");
http {
    limit_conn_zone \$binary_remote_addr zone=perip:1m;
    sse_zone sse 16m history=1000;
    log_format sse 'a=\$args st=\$status rt=\$request_time bs=\$bytes_sent '
                   'p=\$server_protocol ev=\$sse_events_sent '
                   'id=\$sse_last_event_id why=\$sse_close_reason';
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k;
        listen 127.0.0.1:%%PORT3%% http2;
        sse_heartbeat off;
        access_log %%TESTDIR%%/sse.log sse;

        location /sub { sse_subscribe \$arg_ch; }
        location /life { sse_subscribe \$arg_ch; sse_lifetime 2s; }
        location /life-lim { sse_subscribe \$arg_ch; sse_lifetime 2s;
                             limit_conn perip 100; }
        location /slow { sse_subscribe \$arg_ch; sse_max_pending 32k; }
        location /stall { sse_subscribe \$arg_ch; sse_max_pending 8m;
                          send_timeout 2s; }
        location /tok { sse_subscribe \$arg_ch; sse_auth_jwt on;
                        sse_auth_jwt_key_secret $K/hs.secret;
                        sse_auth_jwt_leeway 0s; }
        location /pub { sse_publish \$arg_ch; access_log off; }
        location = /status { sse_status; access_log off; }
    }
}
EOF

my $log = $t->dir . '/sse.log';

sub lines_of { log_lines_tagged($log, $_[0]) }
sub wait_line { wait_log_line($log, @_) }

# reads a stalled stream to its end: its events and their ids
sub drain {
    my ($s) = @_;
    $s->wait_closed(tmo(10));
    return map { $_->{id} } @{$s->events};
}

my $big = 'x' x 8000;

# -- lifetime: detached and on its request --------------------------------

my $s = $t->subscribe('/life?ch=l&tag=life');
my $sl = $t->subscribe('/life-lim?ch=l&tag=lifelim');
my $id = $t->publish('/pub?ch=l', 'one')->json->{id};
ok($s->wait_closed(tmo(5)), 'sse_lifetime 2s: the stream ends');
ok($sl->wait_closed(tmo(5)), '... and the one limit_conn keeps on its request');
for my $c ([life => $s], [lifelim => $sl]) {
    my ($tag, $st) = @$c;
    my $l = wait_line($tag);
    ok($l, "$tag: one line");
    is($l && $l->{why}, 'lifetime', "... \$sse_close_reason lifetime");
    cmp_ok($l && $l->{rt}, '>=', 1, "... request_time over a second ($l->{rt})");
    cmp_ok($l && $l->{rt}, '<', tmo(4), '... and near 2 s');
    is($l && $l->{ev}, 1, '... one event');
    is($l && $l->{id}, $id, '... its id');
    is($l && $l->{bs}, $st->{bytes}, '... bytes_sent: all the client got');
}

# -- HTTP/2: the client goes, and a lifetime -------------------------------

my $h2 = $t->curl_subscribe($t->url('/sub?ch=h&tag=h2client', 3), '--http2-prior-knowledge');
my $h2l = $t->curl_subscribe($t->url('/life?ch=h&tag=h2life', 3), '--http2-prior-knowledge');
ok($h2->wait_headers(5) && $h2l->wait_headers(5), 'two HTTP/2 streams');
my $t0 = time;
$id = $t->publish('/pub?ch=h', 'h2')->json->{id};
ok($h2->wait_events(1, 2), '... get the event');
ok($h2l->wait_closed(tmo(5)), '... the one with a lifetime ends');
wait_until(sub { time - $t0 >= 2.1 }, 3, 0.05);
$h2->close;
my $l = wait_line('h2client');
ok($l, 'HTTP/2 stream closed by its client: one line');
is($l && $l->{p}, 'HTTP/2.0', '... HTTP/2.0');
is($l && $l->{why}, 'client', '... client');
cmp_ok($l && $l->{rt}, '>=', 1.9, "... request_time ($l->{rt})");
is($l && $l->{ev}, 1, '... one event');
is($l && $l->{id}, $id, '... its id');
$l = wait_line('h2life');
ok($l, 'HTTP/2 stream ended by its lifetime: one line');
is($l && $l->{why}, 'lifetime', '... lifetime');
is($l && $l->{ev}, 1, '... one event');

# -- token: the stream ends when its token expires ------------------------

# minted here, with the key made at the start: its few seconds of life
# start now, however long the cases above took
$E = int(time) + 3 + timeout_factor();
my $short = $jwt->mint(tokens => {
    short => { key => 'hs', claims => claims(subscribe => ['tok'], exp => $E) },
})->{short};
$s = $t->subscribe('/tok?ch=tok&tag=token',
    headers => { Authorization => "Bearer $short" });
is($s->status, 200, 'a stream with a token that expires soon');
$t0 = time;
ok($s->wait_closed(tmo(10)), '... ends when it expires');
$l = wait_line('token');
ok($l, '... one line');
is($l && $l->{why}, 'token', '... token');
cmp_ok($l && $l->{rt}, '>=', $E - $t0 - 1.1, "... after its life ($l->{rt} s)");

# -- deleted ---------------------------------------------------------------

$s = $t->subscribe('/sub?ch=del&tag=deleted');
$id = $t->publish('/pub?ch=del', 'last')->json->{id};
ok($s->wait_events(1, 2), 'a stream of a channel about to be deleted');
is($t->delete('/pub?ch=del')->status, 200, '... DELETE');
ok($s->wait_closed(tmo(5)), '... the stream ends');
$l = wait_line('deleted');
ok($l, '... one line');
is($l && $l->{why}, 'deleted', '... deleted');
is($l && $l->{id}, $id, '... its last id');

# -- slow: more than sse_max_pending behind --------------------------------

$s = $t->subscribe('/slow?ch=slow&tag=slow', port => 2, rcvbuf => 4096);
for my $n (1 .. 60) {
    $t->publish('/pub?ch=slow', "$n-$big");
    last if lines_of('slow');
}
$l = wait_line('slow');
ok($l, 'a reader that does not read, 32k behind: one line');
is($l && $l->{why}, 'slow', '... slow');
my @got = drain($s);
cmp_ok(scalar(@got), '>=', $l->{ev}, "... it got at least the events counted sent ($l->{ev})");
ok($l->{ev} == 0 || grep({ $_ eq $l->{id} } @got), '... and the last id logged is one it got')
    if $l;

# -- timeout: stalled past send_timeout, within sse_max_pending -------------

$s = $t->subscribe('/stall?ch=stall&tag=timeout', port => 2, rcvbuf => 4096);
$t0 = time;
$t->publish('/pub?ch=stall', "$_-$big") for 1 .. 40;
$l = wait_line('timeout', tmo(8));
ok($l, 'a reader stalled past send_timeout 2s: one line');
is($l && $l->{why}, 'timeout', '... timeout');
cmp_ok($l && $l->{rt}, '>=', 1.9, "... after send_timeout ($l->{rt} s)");
@got = drain($s);
cmp_ok(scalar(@got), '>=', $l->{ev}, "... it got at least the events counted sent ($l->{ev})")
    if $l;

# -- shutdown: a reload ends the old worker's streams ----------------------

$s = $t->subscribe('/sub?ch=r&tag=reload');
my $s2 = $t->subscribe('/life-lim?ch=r&tag=reloadlim');
$id = $t->publish('/pub?ch=r', 'before reload')->json->{id};
ok($s->wait_events(1, 2) && $s2->wait_events(1, 2), 'two streams before a reload');
ok($t->reload, 'reload');
ok($s->wait_closed(tmo(5)) && $s2->wait_closed(tmo(5)), '... ends them');
for my $tag (qw(reload reloadlim)) {
    $l = wait_line($tag);
    ok($l, "$tag: one line");
    is($l && $l->{why}, 'shutdown', '... shutdown');
    is($l && $l->{id}, $id, '... its last id');
}

# -- shutdown: a stop writes the lines of the streams it ends ----------------

$s = $t->subscribe('/sub?ch=q&tag=stop', untracked => 1);
$t->publish('/pub?ch=q', 'before stop');
ok($s->wait_events(1, 2), 'a stream, then nginx stops');
ok($t->stop, '... gracefully');
$l = wait_line('stop');
ok($l, '... its line was written');
is($l && $l->{why}, 'shutdown', '... shutdown');
is($l && $l->{ev}, 1, '... one event');
$s->close;

# -- nothing twice ---------------------------------------------------------

my %count;
open my $fh, '<', $log;
while (<$fh>) { $count{$1}++ if /\btag=(\w+)/ }
is(scalar(grep { $count{$_} != 1 } keys %count), 0, 'every stream logged once')
    or diag explain \%count;

$t->done;
