# A reconnect storm with sse_replay all: 200 clients join a channel whose
# history holds 1000 events of 4 KB (4 MB), each asking for all of it.
# Before lazy replay each connection copied the whole history into its
# buffer (200 x 4 MB of worker memory, under the zone lock).  Now each
# holds at most sse_max_pending (64k here) and pulls the rest as its socket
# drains: the worker grows by at most clients x sse_max_pending plus a
# constant (8 MB), both while the clients do not read and while they do.
# Every client gets all 1000 events, in order, each once, then a live one.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use SSETest;

my $CLIENTS = 200;
my $EVENTS = 1000;
my $SIZE = 4096;
my $MAX_PENDING = 64 * 1024;
my $CONSTANT = 8 * 1024 * 1024;

if (fd_limit() < $CLIENTS + 100) {
    plan skip_all => "needs " . ($CLIENTS + 100) . " open files";
}

my $t = SSETest->new(workers => 1)->run(<<'EOF');
events { worker_connections 1024; }
http {
    sse_zone sse 32m history=1000;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=16k backlog=1024;
        sse_heartbeat off;
        sse_max_pending 64k;
        location /sub { sse_subscribe $arg_ch; sse_replay all; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my ($worker) = $t->wait_workers(1);

# Under a sanitizer, freed memory sits in a quarantine: RSS says nothing
# there, and the memory bounds are skipped (delivery is still checked).
sub within {
    my ($grew, $bound, $name) = @_;
    SKIP: {
        skip 'worker memory is not measurable under a sanitizer', 1 if sanitized();
        cmp_ok($grew, '<=', $bound, $name);
    }
}

my $bad = 0;
for my $n (1 .. $EVENTS) {
    my $r = $t->publish('/pub?ch=storm', sprintf('%04d', $n) . ('y' x ($SIZE - 4)));
    $bad++ unless $r->status == 202;
}
is($bad, 0, "$EVENTS events of 4 KB published");

# one client first, reading: the worker's own buffers are warm
my $warm = $t->subscribe('/sub?ch=storm', keep_raw => 0);
ok($warm->wait_events($EVENTS, 20), 'one client replays all of it');
$warm->close;
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == 0 }, 5), 'and is gone');
my $base = (rss_kb($worker) // 0);

# -- the storm: nobody reads yet ---------------------------------------------

my @c;
for my $i (1 .. $CLIENTS) {
    my $s = $t->connect_small(65536, $t->port(2));
    print $s "GET /sub?ch=storm HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    push @c, { s => $s, buf => '', seq => 0, ok => 1, events => 0 };
}
ok(wait_until(sub { ($t->zone_status->{subscribers} // -1) == $CLIENTS }, 20),
    "$CLIENTS clients joined with sse_replay all");
my $settled = rss_settled($worker, 10);
ok(defined $settled, 'the worker settles with nobody reading');
my $grew = (($settled // 0) - $base) * 1024;
my $bound = $CLIENTS * $MAX_PENDING + $CONSTANT;
within($grew, $bound, sprintf('not reading, they cost the worker %.1f MB, at most %d x 64k + 8 MB (%.1f MB)',
    $grew / 1048576, $CLIENTS, $bound / 1048576));

# -- they read: each checks its ids and data as they come ----------------------

sub consume {
    my ($c) = @_;
    while ($c->{buf} =~ s/^(.*?)\n\n//s) {
        my $ev = $1;
        next unless $ev =~ /(?:^|\n)data: /;       # comments, retry
        my ($seq) = $ev =~ /(?:^|\n)id: [0-9a-z]+-(\d+)/;
        my ($data) = $ev =~ /(?:^|\n)data: ([^\n]*)/;
        $c->{events}++;
        $c->{ok} = 0 unless defined $seq && $seq == $c->{seq} + 1
            && ($seq > $EVENTS || $data eq sprintf('%04d', $seq) . ('y' x ($SIZE - 4)));
        $c->{seq} = $seq // -1;
    }
}

# the response head, then chunked coding, decoded as it comes
sub feed {
    my ($c, $chunk) = @_;
    $c->{raw} .= $chunk;
    if (!$c->{head}) {
        return unless $c->{raw} =~ s/^.*?\r\n\r\n//s;
        $c->{head} = 1;
    }
    while (1) {
        if ($c->{want}) {
            my $n = length($c->{raw}) < $c->{want} ? length($c->{raw}) : $c->{want};
            $c->{buf} .= substr($c->{raw}, 0, $n, '');
            $c->{want} -= $n;
            last if $c->{want};
            $c->{crlf} = 1;
        }
        if ($c->{crlf}) {
            last if length($c->{raw}) < 2;
            substr($c->{raw}, 0, 2, '');
            $c->{crlf} = 0;
        }
        last unless $c->{raw} =~ s/^([0-9a-f]+)\r\n//;
        $c->{want} = hex $1;
        last if $c->{want} == 0;
    }
    consume($c);
}

sub read_all {
    my ($sel, $by, $timeout, $done) = @_;
    my $deadline = time + tmo($timeout);
    my $max = 0;
    while (!$done->() && time < $deadline) {
        for my $fh ($sel->can_read(0.5)) {
            my $n = sysread($fh, my $chunk, 262144);
            if (!$n) { $sel->remove($fh); next; }
            feed($by->{fileno $fh}, $chunk);
        }
        my $r = (rss_kb($worker) // 0);
        $max = $r if $r > $max;
    }
    return $max;
}

my $sel = IO::Select->new(map { $_->{s} } @c);
my %by = map { fileno($_->{s}) => $_ } @c;
my $max = read_all($sel, \%by, 120, sub { !grep { $_->{seq} < $EVENTS } @c });
my $left = grep { $_->{seq} != $EVENTS } @c;
is($left, 0, "all $CLIENTS clients got all $EVENTS events");
is(scalar(grep { $_->{ok} && $_->{events} == $EVENTS } @c), $CLIENTS, '... in order, each once, each whole');
$grew = ($max - $base) * 1024;
within($grew, $bound, sprintf('while they read, the worker grew by at most %.1f MB', $grew / 1048576));
is($t->zone_status->{dropped_slow}, 0, 'nobody dropped as too slow');

# live after the replay
$t->publish('/pub?ch=storm', 'live');
read_all($sel, \%by, 5, sub { !grep { $_->{seq} < $EVENTS + 1 } @c });
is(scalar(grep { $_->{seq} == $EVENTS + 1 && $_->{ok} } @c), $CLIENTS, 'then the live event, right after');
close $_->{s} for @c;

$t->done;
