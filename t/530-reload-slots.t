# Worker slots are not used up by repeated reloads while old workers still
# hold connections: 16 workers, 10 reloads one after the other, and before
# each, long-lived streams on every worker that cannot take their last
# bytes (HTTP/1.0 clients that never read, with an event of 256 KB
# pending), so that old workers linger on them for send_timeout.  That is
# 176 worker processes alive at once for 128 slots.  A worker that shuts
# down has ended its streams and gives its slot back at once: every new
# worker gets a slot (no "slots are taken" alert, no 503), sse_status
# counts 16 workers, and a publish reaches subscribers of the new workers.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $WORKERS = 16;
my $RELOADS = 10;
my $PER_ROUND = 48;

if (fd_limit() < $PER_ROUND * ($RELOADS + 1) + 200) {
    plan skip_all => 'needs more open files';
}

my $conf = <<'EOF';
events { worker_connections 1024; }
http {
    sse_zone sse 16m;
    send_timeout 30s;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        listen 127.0.0.1:%%PORT2%% reuseport sndbuf=16k;
        sse_heartbeat off;
        sse_max_pending 1m;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

my $t = SSETest->new(workers => $WORKERS)->run($conf);
ok(scalar($t->wait_workers($WORKERS, 20)) == $WORKERS, "$WORKERS workers");

my @stuck;
my $big = 'z' x (256 * 1024);
my %old;
for my $round (1 .. $RELOADS) {
    # streams that will not let their worker go
    my @b;
    for (1 .. $PER_ROUND) {
        push @b, $t->subscribe('/sub?ch=hold', port => 2, rcvbuf => 4096,
            proto => 'HTTP/1.0', wait => 0, keep_raw => 0, untracked => 1);
    }
    SSETest::Stream::wait_all(\@b, sub { $_[0]->status }, 10);
    push @stuck, @b;
    $t->publish('/pub?ch=hold', $big);
    $old{$_} = 1 for $t->workers;
    ok($t->reload(wait_old => 0, timeout => 30), "reload $round");
}

my @new = $t->wait_workers($WORKERS, 20);
is(scalar @new, $WORKERS, "$WORKERS new workers");
my $alive = grep { $old{$_} } $t->workers;
diag("old workers still alive: $alive") if $ENV{TEST_NGINX_VERBOSE};

my $st = $t->zone_status;
is($st->{workers}, $WORKERS, "status: $WORKERS workers hold slots ($alive old ones linger)")
    or diag(explain $st);

# subscribers on (most of) the new workers, then one publish
my @subs;
for (1 .. 48) {
    push @subs, $t->subscribe('/sub?ch=after', wait => 0, keep_raw => 0);
}
ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->status }, 10), 'new subscribers answered');
is(scalar(grep { ($_->status // 0) == 200 } @subs), scalar @subs, '... all with 200, none refused for want of a slot');
ok(SSETest::Stream::wait_all(\@subs, sub { @{$_[0]->comments} >= 1 }, 5), '... streams open');
$t->publish('/pub?ch=after', 'hi');
ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->event_count >= 1 }, 5), 'a publish reaches all of them');
unlike($t->error_log, qr/worker slots are taken/, 'no worker went without a slot');

$_->close for @subs, @stuck;
$t->done;
