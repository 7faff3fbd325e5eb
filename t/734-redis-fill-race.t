# A message that arrives while a fill of its channel is in flight is never
# dropped.  The fill's read ran in Redis before the publish, so its answer
# brings nothing new; the message, held back while the fill ran, must then
# be fetched by another fill.  (It was lost, until the channel's next
# publish: the fill was repeated only when it had made progress.)
#
# The order is made, not waited for by luck: the node talks to Redis
# through a proxy that holds back Redis' replies on the commands
# connection (the one that sends EVAL) by 400 ms while asked to, and
# tells when it forwarded a read script; the pub/sub connection is not
# delayed, so the message injected meanwhile with redis-cli reaches the
# worker before the fill's answer.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use IO::Select;
use POSIX ();
use File::Temp ();
use Time::HiRes qw(time sleep);
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $redis = SSETest::Redis->new;
my $rport = $redis->port;
my $P = 'sse:f:';

# -- the proxy ---------------------------------------------------------------

my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 16, ReuseAddr => 1)
    or die "proxy: $!";
my $pport = $listen->sockport;
my $flags = File::Temp::tempdir('sse-734-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $slow_file = "$flags/proxy-slow";
my $seen_file = "$flags/proxy-fill-seen";

sub proxy_loop {
    my $sel = IO::Select->new($listen);
    my %peer;       # fileno -> the other socket
    my %cmd;        # fileno of a client socket -> it sent EVAL
    my %is_server;  # fileno -> 1 for sockets to Redis
    my %client_of;  # fileno of a server socket -> its client socket
    my @queue;      # [due, client socket, bytes] replies held back

    for (;;) {
        my $now = time;
        while (@queue && $queue[0][0] <= $now) {
            my $q = shift @queue;
            syswrite($q->[1], $q->[2]) if $q->[1]->opened;
        }
        my $wait = @queue ? ($queue[0][0] - $now) : 0.05;
        $wait = 0 if $wait < 0;
        for my $fh ($sel->can_read($wait)) {
            if ($fh == $listen) {
                my $c = $listen->accept or next;
                my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $rport)
                    or do { close $c; next };
                $peer{fileno $c} = $s;
                $peer{fileno $s} = $c;
                $is_server{fileno $s} = 1;
                $client_of{fileno $s} = $c;
                $sel->add($c, $s);
                next;
            }
            my $other = $peer{fileno $fh};
            my $n = sysread($fh, my $buf, 65536);
            if (!$n) {
                $sel->remove($fh, $other);
                delete $peer{fileno $fh};
                delete $peer{fileno $other};
                @queue = grep { $_->[1] != $fh && $_->[1] != $other } @queue;
                close $fh;
                close $other;
                next;
            }
            if ($is_server{fileno $fh}) {
                my $c = $client_of{fileno $fh};
                if ($cmd{fileno $c} && -e $slow_file) {
                    push @queue, [time + 0.4, $c, $buf];
                } elsif (my @held = grep { $_->[1] == $c } @queue) {
                    push @queue, [$held[-1][0], $c, $buf];  # after those
                } else {
                    syswrite($c, $buf);
                }
            } else {
                $cmd{fileno $fh} = 1 if $buf =~ /EVAL/;
                if (-e $slow_file && $buf =~ /local hist = tonumber/) {
                    open my $f, '>', $seen_file; close $f;
                }
                syswrite($other, $buf);
            }
        }
    }
}

my $proxy = fork // die "fork: $!";
if ($proxy == 0) {
    proxy_loop();
    POSIX::_exit(0);
}
close $listen;
END { local $?; if ($proxy) { kill 'KILL', $proxy; waitpid $proxy, 0 } }

# -- the node --------------------------------------------------------------

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone f 8m history=50;
    sse_redis redis://127.0.0.1:$pport zone=f;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=f; }
        location = /status { sse_status; }
    }
}
EOF

sub cli { $redis->value(@_) }

sub state { (($t->zone_status('f')->{redis} // {})->{state} // '') }

sub numsub {
    my @l = split /\n/, (cli('PUBSUB', 'NUMSUB', "${P}m:$_[0]") // '');
    return $l[1] // 0;
}

sub message {
    my ($epoch, $seq, $data) = @_;
    return sprintf "E %s %d 1 %d\n0 %d\n%s", $epoch, $seq,
        int(time * 1000), length $data, $data;
}

# what another node's publish leaves in Redis, and its message
sub publish_elsewhere {
    my ($ch, $epoch, $seq, $data) = @_;
    cli('XADD', "${P}h:$ch", "$seq-0", 't', '', 'd', $data,
        'm', int(time * 1000));
    cli('HSET', "${P}c:$ch", 'e', $epoch, 's', $seq, 't', int(time));
    cli('PUBLISH', "${P}m:$ch", message($epoch, $seq, $data));
}

my $E = 1_700_000_000_000_000;

ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(10), 0.05),
   'up through the proxy');

my $s = $t->subscribe('/sub?ch=race');
ok(SSETest::wait_until(sub { numsub('race') >= 1 }, SSETest::tmo(5)),
   'the channel is subscribed');

publish_elsewhere('race', $E, 1, 'r1');
ok($s->wait_events(1, SSETest::tmo(3)), 'the first event');

for my $round (2 .. 4) {
    # a reconnect of the pub/sub connection fills every channel; its read
    # answers 400 ms late, and a publish comes in between
    unlink $seen_file;
    open my $f, '>', $slow_file; close $f;

    cli('CLIENT', 'KILL', 'TYPE', 'pubsub');

    ok(SSETest::wait_until(sub { -e $seen_file }, SSETest::tmo(5), 0.01),
       "round $round: the reconnect's fill is on its way");
    publish_elsewhere('race', $E, $round, "r$round");
    unlink $slow_file;

    ok($s->wait_events($round, SSETest::tmo(3)),
       "round $round: the event published during the fill arrives");
    is_deeply([$s->data], [map { "r$_" } 1 .. $round],
              "round $round: in order, once");
    ok(SSETest::wait_until(sub { state() eq 'up' }, SSETest::tmo(5), 0.05),
       "round $round: up again");
}

$s->close;
$t->done;
