# DELETE followed at once by a publish to the same channel (pipelined on one
# connection, so the other worker has not yet seen the DELETE): subscribers
# on every worker still get what was published before the DELETE, then their
# streams end; the new publish starts a new epoch that new subscribers get,
# and the old channel's memory is given back once its streams are gone.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use IO::Select;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 8m history=100;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch zone=z; sse_replay all; }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

for my $round (1 .. 5) {
    my $ch = "d$round";

    # subscribers on several connections: both workers have some
    my @subs = map { $t->subscribe("/sub?ch=$ch") } 1 .. 8;
    ok(wait_until(sub {
            (($t->channel_info("/pub?ch=$ch") // {})->{subscribers} // 0) == 8
        }, 5), "round $round: 8 subscribers");

    is($t->publish("/pub?ch=$ch", 'before')->status, 201,
        "round $round: an event before the DELETE");

    # DELETE and a new publish, back to back on one connection
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1:' . $t->port,
        Timeout => 5) or die "connect: $!";
    print $s "DELETE /pub?ch=$ch HTTP/1.1\r\nHost: x\r\n\r\n"
        . "POST /pub?ch=$ch HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        . "Connection: close\r\n\r\nafter";
    # both replies, until nginx closes the connection (bounded)
    my $replies = '';
    my $sel = IO::Select->new($s);
    my $deadline = time + tmo(5);
    while (time < $deadline && $sel->can_read($deadline - time)) {
        sysread($s, $replies, 65536, length $replies) or last;
    }
    close $s;
    my @codes = $replies =~ m{^HTTP/1\.1 (\d+)}mg;
    is("@codes", '200 202', "round $round: DELETE 200, then the publish 202");

    ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->complete }, 5),
        "round $round: every old stream ended");
    my $bad = grep { join(',', $_->data) ne 'before' } @subs;
    is($bad, 0, "round $round: each got the event published before the DELETE,"
        . " and nothing of the new epoch");
    $_->close for @subs;

    my $new = $t->subscribe("/sub?ch=$ch");
    is($new->status, 200, "round $round: the channel lives again");
    ok($new->wait_events(1, 3), "round $round: a new subscriber gets the new epoch");
    is(join(',', $new->data), 'after', "round $round: ... only its event");
    $new->close;
}

# the old nodes went as soon as their subscribers did
ok(wait_until(sub { ($t->zone_status('z')->{channels} // -1) == 5 }, 5),
    'the zone holds the 5 live channels, no leftover old ones');

$t->done;
