# Clients going away at every moment: before the response, right after the
# headers, in the middle of an event, with a reset instead of a close.  No
# alert, the server keeps working, and the counts go back to 0.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Socket qw(SOL_SOCKET SO_LINGER);
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe $arg_ch; sse_heartbeat 1s; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my @w0 = $t->active_workers;

sub reset_close {
    my ($fh) = @_;
    setsockopt($fh, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $fh;
}

# -- a subscriber leaves mid-stream ------------------------------------------

my $s = $t->subscribe('/sub?ch=leave');
ok($s->wait_comment(1), 'subscriber open');
$t->publish('/pub?ch=leave', 'before') for 1 .. 3;
ok($s->wait_events(3, 2), 'it got 3 events');
$s->close;

ok(wait_until(sub { (($t->channel_info('/pub?ch=leave') // {})->{subscribers} // -1) == 0 }, 3),
    'its channel notices at once that it left');
my $r = $t->publish('/pub?ch=leave', 'after');
is($r->status, 202, 'publishing after it left: 202');
my $s2 = $t->subscribe('/sub?ch=leave');
ok($s2->wait_comment(1), 'a new subscriber');
is($t->publish('/pub?ch=leave', 'new')->status, 201, 'publish to it: 201');
is($s2->next_event(2) && $s2->events->[0]{data}, 'new', 'it gets the event');
$s2->close;
$t->check_log('no alert after a subscriber left');

# -- a subscriber that vanishes with a reset while big events are queued -----

$s = $t->subscribe('/sub?ch=reset', rcvbuf => 4096);
ok($s->wait_comment(1), 'a slow subscriber');
$t->publish('/pub?ch=reset', 'r' x 50000) for 1 .. 4;
reset_close($s->fh);
$s->{fh} = undef;
ok(wait_until(sub { (($t->channel_info('/pub?ch=reset') // {})->{subscribers} // -1) == 0 }, 3),
    'a subscriber gone with RST while output was pending is removed');
is($t->publish('/pub?ch=reset', 'x')->status, 202, 'and the channel works');

# -- many connect/disconnect cycles, in every phase --------------------------

# each phase that can be observed from here counts only when it was reached
# (a subscriber that never got its headers would not test a disconnect)
my %reached;
my $t0 = time;
for my $i (1 .. 300) {
    my $ch = 'storm' . ($i % 7);
    my $mode = $i % 6;
    if ($mode == 0) {
        # gone before the request is complete
        my $sock = $t->connect;
        syswrite $sock, "GET /sub?ch=$ch HTTP/1.1\r\nHost: x\r\n";
        close $sock;
    } elsif ($mode == 1) {
        # gone right after sending the request
        my $sock = $t->connect;
        syswrite $sock, "GET /sub?ch=$ch HTTP/1.1\r\nHost: x\r\n\r\n";
        close $sock;
    } elsif ($mode == 2) {
        # gone after the headers
        my $s = $t->subscribe("/sub?ch=$ch", untracked => 1);
        $reached{$mode}++ if ($s->status // 0) == 200;
        $s->close;
    } elsif ($mode == 3) {
        # gone after the first comment, with a reset
        my $s = $t->subscribe("/sub?ch=$ch", untracked => 1);
        $reached{$mode}++ if $s->wait_comment(1);
        reset_close($s->fh);
        $s->{fh} = undef;
    } elsif ($mode == 4) {
        # gone while an event is on its way
        my $s = $t->subscribe("/sub?ch=$ch", untracked => 1);
        $s->wait_comment(1);
        # 201: the subscriber was connected when the event was published
        $reached{$mode}++
            if $t->publish("/pub?ch=$ch", "event $i " . ('p' x 2000))->status == 201;
        $s->close;
    } else {
        # a keepalive connection: a publish, then a subscribe on it, then gone
        my $sock = $t->connect;
        syswrite $sock, "POST /pub?ch=$ch HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nk"
            . "GET /sub?ch=$ch HTTP/1.1\r\nHost: x\r\n\r\n";
        my $st = SSETest::Stream->new(fh => $sock);
        $reached{$mode}++
            if $st->wait_for(sub { ($st->{after} // '') =~ /event-stream/ }, 1);
        close $sock;
    }
}
is_deeply(\%reached, { 2 => 50, 3 => 50, 4 => 50, 5 => 50 },
    '300 connect/disconnect cycles in 6 phases; each of the 200 observable ones '
    . 'reached its phase (headers, first comment, an event on its way, a '
    . 'keep-alive stream)') or diag(explain \%reached);

ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == 0 }, 5),
    'status counts 0 subscribers after the storm')
    or diag(explain $t->zone_status);
my $nonzero = grep { ($t->channel_info("/pub?ch=storm$_") // {})->{subscribers} } 0 .. 6;
is($nonzero, 0, 'every channel of the storm has 0 subscribers');

# the server keeps working
$s = $t->subscribe('/sub?ch=storm1');
ok($s->wait_comment(1), 'a subscriber after the storm');
is($t->publish('/pub?ch=storm1', 'calm')->status, 201, 'publish after the storm: 201');
my $e = $s->next_event(2);
is($e && $e->{data}, 'calm', 'the event arrives');
is(join(' ', $t->active_workers), join(' ', @w0), 'the same two workers still run (no crash)');

# heartbeats to connections that are gone do not hurt either
ok($s->wait_for(sub { @{$s->comments} >= 2 }, 3), 'heartbeats flow');

$t->done;
