# What a detached stream keeps for its access-log line, against a client
# with 50 KB of request headers (issue 12 item 6, docs/architecture.md).
# The request itself is bounded by large_client_header_buffers; once the
# stream detaches it keeps only the request line and the headers some
# variable of the configuration reads ($http_user_agent, $http_x_trace
# here), never more than the request had.  So 200 idle streams each sent
# with 50 KB of other headers cost about what any detached stream costs
# (at most 4 KB each, as t/600), not 50 KB each; a header the log does
# read is logged whole, however long the request let it be.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $N = 200;
skip_file("needs " . (2 * $N + 100) . " open files") if fd_limit() < 2 * $N + 100;

my $t = SSETest->new(workers => 1)->run(<<'EOF2');
http {
    large_client_header_buffers 8 16k;
    log_format sse 'a=$args ua="$http_user_agent" tr="$http_x_trace" '
                   'ev=$sse_events_sent why=$sse_close_reason';
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;
        access_log %%TESTDIR%%/sse.log sse;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; access_log off; }
        location = /status { sse_status; access_log off; }
    }
}
EOF2

my ($worker) = $t->wait_workers(1);
ok($worker, 'one worker');

sub subscribers { $t->zone_status->{subscribers} // -1 }

# whole lines only: a long one may be read while nginx still writes it
sub lines_of { log_lines_tagged($t->dir . '/sse.log', $_[0]) }

# 50 headers of 1000 bytes the log does not read, and two it does
my %junk = map { sprintf('X-Junk-%02d', $_) => ('j' x 1000) } 1 .. 50;
my %heavy = (%junk, 'User-Agent' => 'hostile/1.0', 'X-Trace' => 't-1');

# warm-up: the worker's buffers for such requests exist before measuring
my @w = map { $t->subscribe("/sub?ch=warm&tag=warm$_", headers => \%heavy, keep_raw => 0) } 1 .. 5;
$t->publish('/pub?ch=warm', 'w');
ok(SSETest::Stream::wait_all(\@w, sub { $_[0]->event_count >= 1 }, tmo(5)), 'warm-up streams with 50 KB of headers');
$_->close for @w;
ok(wait_until(sub { subscribers() == 0 }, tmo(5)), '... gone');

my $base = rss_kb($worker) // 0;
my @s = map { $t->subscribe("/sub?ch=h$_&tag=heavy$_", headers => \%heavy, keep_raw => 0) } 1 .. $N;
is(scalar(grep { ($_->status // 0) == 200 } @s), $N, "$N streams, each with 50 KB of request headers: 200");
ok(wait_until(sub { subscribers() == $N }, tmo(10)), '... all subscribed');
my $grew = ((rss_kb($worker) // 0) - $base) * 1024;
SKIP: {
    skip 'worker memory is not measurable under a sanitizer', 1 if sanitized();
    cmp_ok($grew / $N, '<=', 4096,
        sprintf('... each costs the worker at most 4 KB (%.0f bytes): the headers no variable reads are not kept', $grew / $N));
}
$t->publish("/pub?ch=h$_", "to $_") for (1, $N);
ok($s[-1]->wait_events(1, tmo(2)), '... and they stream');
$_->close for @s;
ok(wait_until(sub { subscribers() == 0 }, tmo(10)), '... all gone');
my @l;
ok(wait_until(sub { @l = lines_of("heavy$N"); @l == 1 }, tmo(5)), '... logged at their end');
like($l[0] // '', qr/ua="hostile\/1.0" tr="t-1" ev=1 why=client/, '... with the headers the log reads');
unlike($l[0] // '', qr/jjjj/, '... and none of the others');

# a header the log reads is logged whole, as long as the request let it be
my $long = 'L' x 15000;
my $s = $t->subscribe('/sub?ch=long&tag=long', headers => { 'X-Trace' => $long, %junk });
is($s->status, 200, 'a 15 KB X-Trace with the 50 KB of other headers');
$s->close;
ok(wait_until(sub { @l = lines_of('long'); @l == 1 }, tmo(5)), '... one line at its end');
like($l[0] // '', qr/tr="$long"/, '... with all of it');

# beyond large_client_header_buffers nginx refuses the request: nothing kept
my $c = $t->request('GET', '/sub?ch=toolong&tag=toolong', headers => { 'X-Trace' => 'T' x 17000 });
is($c->status, 400, 'a header line longer than a large header buffer: 400 from nginx');

$t->done;
