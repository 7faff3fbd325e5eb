# What a detached stream keeps for its access-log line depends on the
# configuration (docs/operations.md, "Access log"): where access_log is off
# and no other module logs requests it keeps nothing (an idle subscriber's
# memory), and it keeps the ids it sent only when $sse_last_event_id is
# read somewhere.  What can be seen from outside, and is checked here: the
# decision follows the location, not the http block (access_log off at
# the http level and on again in one location still writes that
# location's lines, whole, at the stream's end and not at its detach), and
# without $sse_last_event_id in any format, $sse_events_sent and
# $sse_channels still count what was sent.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF2');
http {
    access_log off;
    log_format sse 'tag=$arg_tag st=$status ch="$sse_channels" '
                   'ev=$sse_events_sent why=$sse_close_reason '
                   'rq="$request" ua="$http_user_agent"';
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;

        location /quiet { sse_subscribe $arg_ch; }
        location /logged {
            sse_subscribe "$arg_a,$arg_b";
            access_log %%TESTDIR%%/sse.log sse;
        }
        location /pub { sse_publish $arg_ch; }
    }
}
EOF2

my $log = $t->dir . '/sse.log';

sub lines_of { log_lines_tagged($log, $_[0]) }
sub wait_line { wait_log_line($log, $_[0]) }

# a stream where access_log is off: it detaches, streams and ends as any
my $q = $t->subscribe('/quiet?ch=q&tag=quiet');
is($q->status, 200, 'a stream where access_log is off');
ok($q->is_chunked, '... chunked (it detaches)');
$t->publish('/pub?ch=q', "event $_") for 1 .. 3;
ok($q->wait_events(3, 2), '... gets its events');
is_deeply([map { $_->{data} } @{ $q->events }], ['event 1', 'event 2', 'event 3'],
          '... all of them, in order');
$q->close;

# a multi-channel stream in the location that logs, after it
my $s = $t->subscribe('/logged?a=l1&b=l2&tag=logged',
                      headers => { 'User-Agent' => 'agent/1.0' });
is($s->status, 200, 'a stream where access_log is on again');
ok($s->is_chunked, '... chunked (it detaches)');
$t->publish('/pub?ch=l1', 'x');
$t->publish('/pub?ch=l2', 'y');
$t->publish('/pub?ch=l1', 'z');
ok($s->wait_events(3, 2), '... gets three events');
is(scalar(lines_of('logged')), 0, '... no line while it streams');
$s->close;

my $l = wait_line('logged');
ok($l, 'one line at its end');
is($l && $l->{st}, 200, '... status 200');
is($l && $l->{ch}, 'l1,l2', '... $sse_channels');
is($l && $l->{ev}, 3, '... $sse_events_sent 3 (no $sse_last_event_id anywhere)');
is($l && $l->{why}, 'client', '... $sse_close_reason client');
is($l && $l->{rq}, 'GET /logged?a=l1&b=l2&tag=logged HTTP/1.1',
   '... $request, kept from the request');
is($l && $l->{ua}, 'agent/1.0', '... $http_user_agent, kept from the request');

# Not checked here: that the stream where access_log is off kept no
# record.  Nothing outside shows it (no line is written with or without
# one); make bench's idle memory row measures what it saves.

done_testing();
