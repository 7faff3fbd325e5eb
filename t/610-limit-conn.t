# limit_conn counts a stream for its whole life (issue 12 item 6).
# limit_conn gives its count back from a cleanup of the request's pool; a
# stream that let its request go early (detached) stopped being counted
# right after it started, so "limit_conn perip 1" let any number of
# streams in.  Now a stream limit_conn counts keeps its request, and the
# count, until it ends: a second stream from the same address is refused
# (503) while the first lives, over HTTP/1.1 and HTTP/1.0 (a proxy in
# front), and let in once the first is gone.  A location without
# limit_conn is not affected.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF2');
http {
    limit_conn_zone $binary_remote_addr zone=perip:1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;
        location /sub { sse_subscribe $arg_ch; }
        location /limited { sse_subscribe $arg_ch; limit_conn perip 1; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF2

sub subscribers { $t->zone_status->{subscribers} // -1 }

for my $proto ('HTTP/1.1', 'HTTP/1.0') {
    my $a = $t->subscribe('/limited?ch=a', proto => $proto);
    is($a->status, 200, "$proto: a first stream under limit_conn 1: 200");
    $t->publish('/pub?ch=a', 'one');
    ok($a->wait_events(1, 2), '... streams (its start is long done)');

    my $b = $t->subscribe('/limited?ch=b', proto => $proto);
    is($b->status, 503, '... a second one from the same address while it lives: 503');

    $t->publish('/pub?ch=a', 'two');
    ok($a->wait_events(2, 2), '... the first one still streams');
    is(join(',', $a->data), 'one,two', '... all of it');

    $a->close;
    ok(wait_until(sub { subscribers() == 0 }, 5), '... the first one ends with its client');
    my $c = $t->subscribe('/limited?ch=c', proto => $proto);
    is($c->status, 200, '... then a new one is let in');
    $c->close;
    ok(wait_until(sub { subscribers() == 0 }, 5), '... and leaves');
}

# without limit_conn, many streams from one address are fine
my @s = map { $t->subscribe("/sub?ch=free$_") } 1 .. 5;
is(scalar(grep { $_->status == 200 } @s), 5, 'without limit_conn: five streams from one address');
$_->close for @s;

$t->done;
