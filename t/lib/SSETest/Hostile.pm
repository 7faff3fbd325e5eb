package SSETest::Hostile;

# The hostile tier's common ground (t/hostile/*.t): one nginx with the
# module, configured with tight but ordinary limits, and the checks every
# attack ends with.
#
#   my $t = SSETest::Hostile::start(workers => 2);     # an SSETest
#   my $base = SSETest::Hostile::baseline($t);
#   ... attack ...
#   SSETest::Hostile::healthy($t, $base, name => 'after the flood');
#
# healthy() asserts, as tests:
#   - no worker died (no "exited on signal" in error.log, the same workers
#     run, unless killed => [pids] or reloaded => 1 says otherwise);
#   - no [alert], [crit], [emerg] or sanitizer report (check_log);
#   - every zone counts 0 subscribers again (within a bounded wait), and
#     so does each channel of channels => [...];
#   - a normal publish/subscribe round trip delivers exactly what was
#     published: 3 events, in order, with the ids of the replies, nothing
#     more;
#   - every worker's resident memory (VmRSS in /proc/<pid>/status) grew by
#     at most RSS_BOUND_MB (64 MB) over the baseline, 8 times that on a
#     sanitizer build (ASan's quarantine keeps freed memory for a while).
#
# Ports: %%PORT%% plain HTTP/1.x, %%PORT2%% h2c (HTTP/2, prior knowledge).

use strict;
use warnings;
use Test::More;
use IO::Select;
use Time::HiRes qw(time);
use SSETest;

our $RSS_BOUND_MB = 64;

our $CONFIG = <<'EOF';
http {
    sse_zone z 8m history=50 max_message=64k;
    client_header_timeout 2s;
    client_body_timeout 2s;
    send_timeout 3s;
    keepalive_timeout 5s;
    lingering_timeout 1s;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        client_max_body_size 1m;
        location /sub  { sse_subscribe $arg_ch zone=z; sse_max_pending 256k;
                         sse_heartbeat 1s; }
        location /all  { sse_subscribe $arg_ch zone=z; sse_replay all;
                         sse_max_pending 256k; }
        location /pub  { sse_publish $arg_ch zone=z; client_max_body_size 0; }
        location ~ (?s)^/events/(.+)$ { sse_subscribe $1 zone=z; }
        location = /status { sse_status; }
        location / { return 404; }
    }
}
EOF

sub start {
    my (%opt) = @_;
    my $t = SSETest->new(workers => $opt{workers} // 2,
                         ports => $opt{ports} // 2)
        ->run($opt{config} // $CONFIG);
    return $t;
}

# the workers and their memory before an attack
sub baseline {
    my ($t) = @_;
    my %rss = map { my $pid = $_; ($pid => SSETest::rss_kb($pid) // 0) }
              $t->active_workers;
    return { workers => [sort keys %rss], rss => \%rss };
}

sub bound_kb { $RSS_BOUND_MB * 1024 * (SSETest::sanitized() ? 8 : 1) }

# the largest growth of a worker's RSS since the baseline, in kB
sub rss_growth {
    my ($t, $base) = @_;
    my $max = 0;
    for my $pid ($t->active_workers) {
        my $now = SSETest::rss_kb($pid) // next;
        my $was = $base->{rss}{$pid} // $now;
        $max = $now - $was if $now - $was > $max;
    }
    return $max;
}

sub zones_subscribers {
    my ($t) = @_;
    my $st = $t->status;
    my $n = 0;
    $n += $_->{subscribers} // 0 for values %{$st->{zones} // {}};
    return $n;
}

my $RT = 0;

sub round_trip {
    my ($t, $name) = @_;
    my $ch = 'rt-' . $$ . '-' . ++$RT;
    my $s = $t->subscribe("/sub?ch=$ch");
    my $ok = $s->status == 200 && $s->wait_comment(SSETest::tmo(2));
    my @ids;
    for my $i (1 .. 3) {
        my $r = $t->publish("/pub?ch=$ch", "rt$i");
        $ok &&= $r->status == 201;
        push @ids, $r->json->{id} // '';
    }
    $ok &&= $s->wait_events(3, SSETest::tmo(3));
    $ok &&= !$s->wait_events(4, 0.3);
    my @got = map { [$_->{data}, $_->{id}] } @{$s->events};
    $s->close;
    return is_deeply(\@got, [map { ["rt$_", $ids[$_ - 1]] } 1 .. 3],
        "$name: a round trip delivers exactly the 3 events published")
        && $ok;
}

sub healthy {
    my ($t, $base, %opt) = @_;
    my $name = $opt{name} // 'after the attack';
    local $Test::Builder::Level = $Test::Builder::Level + 1;

    my %killed = map { $_ => 1 } @{$opt{killed} // []};
    my @died = grep { !(/process (\d+) exited on signal 9/ && $killed{$1}) }
               grep { /exited on signal/ } split /\n/, $t->error_log;
    is_deeply(\@died, [], "$name: no worker died");
    if (!$opt{reloaded} && !%killed) {
        is_deeply([sort $t->active_workers], $base->{workers},
            "$name: the same workers run");
    }

    ok(SSETest::wait_until(sub { zones_subscribers($t) == 0 }, SSETest::tmo(5)),
        "$name: subscribers back to 0")
        or diag(explain $t->status);

    # the channels' own counts (every worker's joins), not only the streams
    if (my @chs = @{$opt{channels} // []}) {
        my @held = grep {
            my $r = $t->get("/pub?ch=$_");
            $r->status != 404 && ($r->json->{subscribers} // -1) != 0;
        } @chs;
        is_deeply(\@held, [], "$name: the attacked channels count 0 subscribers");
    }

    round_trip($t, $name);

    my $growth = rss_growth($t, $base);
    ok($growth <= bound_kb(), sprintf('%s: worker RSS grew by %d kB (bound %d kB)',
        $name, $growth, bound_kb()));

    $t->check_log("$name: no alert, crit or sanitizer report");
}

# many sockets at once, each sent $bytes (or nothing); returns them
sub sockets {
    my ($t, $n, $bytes, %opt) = @_;
    my @s;
    for (1 .. $n) {
        my $s = $opt{rcvbuf} ? $t->connect_small($opt{rcvbuf}, $opt{port})
                             : $t->connect($opt{port});
        if (defined $bytes) {
            local $SIG{PIPE} = 'IGNORE';
            syswrite($s, $bytes);
        }
        push @s, $s;
    }
    return @s;
}

# reads what a socket has within $timeout, up to $max bytes; returns it
sub drain {
    my ($sock, $timeout, $max) = @_;
    my $buf = '';
    my $sel = IO::Select->new($sock);
    my $end = time + $timeout;
    while (time < $end && length $buf < ($max // 1 << 20)) {
        last unless $sel->can_read($end - time);
        my $n = sysread($sock, $buf, 65536, length $buf);
        last unless $n;
    }
    return $buf;
}

1;
