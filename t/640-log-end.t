# A stream's access-log line is written when the stream ends (issue 12
# item 6), with its real duration ($request_time), the bytes its client got
# ($bytes_sent, $body_bytes_sent), status 200 and the $sse_* variables; one
# line per stream, never one at its start.  For a detached stream (HTTP/1.1
# chunked, HTTP/1.0 close-delimited as behind nginx's proxy, POST
# subscribes) the module rebuilds the request's line at the end from what
# it kept; a stream that stays on its request (limit_conn here, HTTP/2 in
# t/641) is logged by nginx when the request ends.  Everything the format
# reads must be there: the request line, $uri and $args, the client's
# headers ($http_user_agent, $http_referer, a custom one, a cookie), the
# client address, $time_local, $status.  access_log off writes nothing.
#
# harness: serial (durations are measured)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use POSIX qw(strftime);
use Socket ();
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF2');
http {
    limit_conn_zone $binary_remote_addr zone=perip:1m;
    log_format sse 'u=$uri a=$args st=$status rt=$request_time '
                   'bs=$bytes_sent bb=$body_bytes_sent '
                   'ch="$sse_channels" ev=$sse_events_sent '
                   'id=$sse_last_event_id why=$sse_close_reason '
                   'ua="$http_user_agent" ref="$http_referer" '
                   'tr="$http_x_trace" ck="$cookie_session" '
                   'ra=$remote_addr rq="$request" tl=[$time_local] '
                   'rl=$request_length m=$request_method p=$server_protocol '
                   'h=$host hh=$http_host sn=$server_name';
    server {
        listen 127.0.0.1:%%PORT%%;
        server_name srv.test;
        sse_heartbeat off;
        access_log %%TESTDIR%%/sse.log sse;

        location /sub { sse_subscribe $arg_ch; }
        location /multi { sse_subscribe "$arg_a,$arg_b"; }
        location /limited { sse_subscribe $arg_ch; limit_conn perip 100; }
        location /quiet { sse_subscribe $arg_ch; access_log off; }
        location /pub { sse_publish $arg_ch; access_log off; }
        location = /status { sse_status; access_log off; }

        # nginx as a reverse proxy in front talking HTTP/1.0 (its default
        # up to 1.28; 1.30 defaults to 1.1)
        location /proxied/ {
            proxy_http_version 1.0;
            proxy_pass http://127.0.0.1:%%PORT%%/;
            access_log off;
        }
    }
}
EOF2

my $log = $t->dir . '/sse.log';

sub log_lines {
    open my $fh, '<', $log or return ();
    return <$fh>;
}

sub lines_of { log_lines_tagged($log, $_[0]) }
sub wait_line { wait_log_line($log, @_) }

sub subscribers { $t->zone_status->{subscribers} // -1 }

my %browser = (
    'User-Agent' => 'Mozilla/5.0 (test; "quoted")',
    'Referer'    => 'https://app.example/page',
    'X-Trace'    => 'trace-42',
    'Cookie'     => 'a=1; session=s3cr3t; b=2',
    'Host'       => 'Example.TEST:' . $t->port,
);

# -- a detached HTTP/1.1 stream the client closes after 2 s -------------------

my $s = $t->subscribe('/sub?ch=one&tag=h11', headers => \%browser);
my $t0 = time;
is($s->status, 200, 'HTTP/1.1 stream');
ok($s->is_chunked, '... chunked (it detaches)');
my @ids;
for my $n (1 .. 3) {
    push @ids, $t->publish('/pub?ch=one', "event $n")->json->{id};
}
ok($s->wait_events(3, 2), '... gets three events');
is(scalar(lines_of('h11')), 0, '... no log line while it streams (none at its start)');

# the stream stays 2 s, then its client goes
wait_until(sub { time - $t0 >= 2.1 }, 3, 0.05);
$s->poll(0.2);
my $got = $s->{bytes};
$s->close;
my $l = wait_line('h11');
ok($l, 'one log line when the client closed the stream');
if ($l) {
    is($l->{st}, 200, '... status 200');
    cmp_ok($l->{rt}, '>=', 1.9, "... request_time is the stream's life ($l->{rt} s)");
    cmp_ok($l->{rt}, '<', tmo(5), '... not more');
    is($l->{bs}, $got, "... bytes_sent is what the client got ($got)");
    cmp_ok($l->{bb}, '>', 0, '... body_bytes_sent');
    cmp_ok($l->{bb}, '<', $l->{bs}, '... less than bytes_sent (the header)');
    is($l->{bs} - $l->{bb}, length($s->raw_head), '... the header is the bytes before the body');
    is($l->{ch}, 'one', '... $sse_channels');
    is($l->{ev}, 3, '... $sse_events_sent: 3');
    is($l->{id}, $ids[-1], '... $sse_last_event_id: the last id sent');
    is($l->{why}, 'client', '... $sse_close_reason: client');
    is($l->{u}, '/sub', '... $uri');
    is($l->{a}, 'ch=one&tag=h11', '... $args');
    is($l->{rq}, 'GET /sub?ch=one&tag=h11 HTTP/1.1', '... $request');
    is($l->{m}, 'GET', '... $request_method');
    is($l->{p}, 'HTTP/1.1', '... $server_protocol');
    is($l->{ua}, 'Mozilla/5.0 (test; \x22quoted\x22)', '... $http_user_agent (escaped as nginx does)');
    is($l->{ref}, 'https://app.example/page', '... $http_referer');
    is($l->{tr}, 'trace-42', '... a custom $http_x_trace');
    is($l->{ck}, 's3cr3t', '... $cookie_session');
    is($l->{ra}, '127.0.0.1', '... $remote_addr');
    is($l->{h}, 'example.test', '... $host (from the Host header)');
    is($l->{hh}, 'Example.TEST:' . $t->port, '... $http_host');
    is($l->{sn}, 'srv.test', '... $server_name');
    cmp_ok($l->{rl}, '>', 100, '... $request_length');
    my $now = strftime('%d/%b/%Y:%H:%M', localtime);
    like($l->{tl}, qr/^\Q$now\E|^\d\d\/\w+\/\d{4}:/, '... $time_local at the end');
}

# -- a multi-channel stream ending with its lifetime is in t/641; here the
#    id of a multi-channel stream ----------------------------------------------

$s = $t->subscribe('/multi?a=m1&b=m2&tag=multi');
is($s->status, 200, 'a multi-channel stream');
$t->publish('/pub?ch=m1', 'x');
$t->publish('/pub?ch=m2', 'y');
ok($s->wait_events(2, 2), '... gets both events');
my $last = $s->events->[-1]{id};
$s->close;
$l = wait_line('multi');
ok($l, '... one line at its end');
is($l && $l->{ch}, 'm1,m2', '... $sse_channels as the list');
is($l && $l->{id}, $last, "... \$sse_last_event_id is the stream's last id ($last)");
is($l && $l->{ev}, 2, '... two events');

# -- a client that resets its connection (SO_LINGER 0) while events flow -----

$s = $t->subscribe('/sub?ch=rst&tag=reset');
$t->publish('/pub?ch=rst', 'before');
ok($s->wait_events(1, 2), 'a stream whose client will reset the connection');
setsockopt($s->fh, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
$s->close;
$t->publish('/pub?ch=rst', "after $_") for 1 .. 3;
$l = wait_line('reset');
ok($l, '... one line');
is($l && $l->{why}, 'client', '... client');

# -- a stream that got nothing ------------------------------------------------

$s = $t->subscribe('/sub?ch=none&tag=none');
$s->poll(0.2);
$got = $s->{bytes};
$s->close;
$l = wait_line('none');
ok($l, 'a stream that got no event: one line');
is($l && $l->{ev}, 0, '... $sse_events_sent 0');
is($l && $l->{id}, '-', '... $sse_last_event_id empty');
is($l && $l->{bs}, $got, '... bytes_sent what it got');

# -- HTTP/1.0 behind nginx's proxy: close-delimited, detached ----------------

$s = $t->subscribe('/proxied/sub?ch=p&tag=proxied', headers => \%browser);
is($s->status, 200, 'through nginx\'s proxy (HTTP/1.0 to the module)');
$t->publish('/pub?ch=p', 'via proxy');
ok($s->wait_events(1, 2), '... the event');
$s->close;
$l = wait_line('proxied');
ok($l, '... one line at its end');
is($l && $l->{p}, 'HTTP/1.0', '... of the HTTP/1.0 request');
is($l && $l->{why}, 'client', '... closed by the client (the proxy)');
is($l && $l->{ev}, 1, '... one event');
is($l && $l->{ua}, 'Mozilla/5.0 (test; \x22quoted\x22)', '... the headers the proxy passed');

# -- POST subscribe (detaches too) --------------------------------------------

$s = $t->subscribe('/sub?ch=post&tag=post', method => 'POST', body => 'x' x 100);
is($s->status, 200, 'a POST subscribe');
$t->publish('/pub?ch=post', 'p');
ok($s->wait_events(1, 2), '... its event');
$s->close;
$l = wait_line('post');
ok($l, '... one line at its end');
is($l && $l->{m}, 'POST', '... method POST');
is($l && $l->{ev}, 1, '... one event');

# -- a stream that stays on its request (limit_conn): nginx logs it ----------

$s = $t->subscribe('/limited?ch=lim&tag=lim', headers => \%browser);
$t0 = time;
$t->publish('/pub?ch=lim', 'l1');
$t->publish('/pub?ch=lim', 'l2');
ok($s->wait_events(2, 2), 'a limit_conn stream (stays on its request) gets its events');
is(scalar(lines_of('lim')), 0, '... no line while it streams');
wait_until(sub { time - $t0 >= 2.1 }, 3, 0.05);
$s->poll(0.2);
$got = $s->{bytes};
my $lim_last = $s->events->[-1]{id};
$s->close;
$l = wait_line('lim');
ok($l, '... one line at its end');
if ($l) {
    is($l->{st}, 200, '... status 200');
    cmp_ok($l->{rt}, '>=', 1.9, "... request_time ($l->{rt} s)");
    is($l->{bs}, $got, '... bytes_sent what the client got');
    is($l->{ev}, 2, '... $sse_events_sent');
    is($l->{id}, $lim_last, '... $sse_last_event_id');
    is($l->{why}, 'client', '... $sse_close_reason client');
    is($l->{ua}, 'Mozilla/5.0 (test; \x22quoted\x22)', '... $http_user_agent');
}

# -- access_log off: no line, start or end ------------------------------------

$s = $t->subscribe('/quiet?ch=q&tag=quiet');
$t->publish('/pub?ch=q', 'q');
ok($s->wait_events(1, 2), 'a stream of a location with access_log off');
$s->close;
ok(wait_until(sub { subscribers() == 0 }, 5), '... ends');
# a later stream's line proves the log was written after it
$s = $t->subscribe('/sub?ch=after&tag=after');
$s->close;
ok(wait_line('after'), '... (a later stream is logged)');
is(scalar(lines_of('quiet')), 0, '... it wrote no line');

# -- no line twice, and nothing in the default access log ---------------------

my %count;
for (log_lines()) { $count{$1}++ if /\btag=(\w+)/ }
is(scalar(grep { $count{$_} != 1 } keys %count), 0, 'every stream logged exactly once')
    or diag explain \%count;
my $default = do { local $/; open my $fh, '<', $t->dir . '/access.log'; <$fh> // '' };
unlike($default, qr/tag=/, 'nothing in the http-level access log');

$t->done;
