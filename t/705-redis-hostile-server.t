# A server at the Redis address that does not behave like Redis (a fake
# one, scripted here): a huge array header, a reply to no command, bytes
# that are not RESP, a connection closed at once.  Each time: a clear line
# at "error", the link down and retried, the worker unharmed (it answers,
# it holds no memory for what was announced).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use SSETest;

# a listening fake Redis; $reply->($bytes) gives what to write back for
# what a connection sent (undef: close it).  Its own process group, so that
# it and the children serving connections are stopped together.
sub fake_redis {
    my ($reply) = @_;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Proto => 'tcp', Listen => 32, ReuseAddr => 1) or die "listen: $!";
    my $port = $srv->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        $SIG{CHLD} = 'IGNORE';
        while (1) {
            my $c = $srv->accept or next;
            my $k = fork;
            next unless defined $k;
            if ($k == 0) {
                close $srv;
                while (sysread($c, my $buf, 65536)) {
                    my $out = $reply->($buf);
                    last unless defined $out;
                    syswrite($c, $out) if length $out;
                }
                exit 0;
            }
            close $c;
        }
    }
    close $srv;
    return ($port, $pid);
}

sub stop_fake {
    my ($pid) = @_;
    kill 'TERM', -$pid;
    waitpid($pid, 0);
}

sub with_fake {
    my ($name, $reply, $log_re) = @_;
    my ($port, $fake) = fake_redis($reply);
    my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_redis redis://127.0.0.1:$port;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch; }
        location = /status { sse_status; }
        location = /plain { return 200 "plain\\n"; }
    }
}
EOF
    subtest $name => sub {
        my $line = $t->wait_log($log_re);
        ok($line, 'a clear line') or diag $t->error_log;
        like($t->error_log, qr/\[error\][^\n]*$log_re/, 'at error level');
        ok(SSETest::wait_until(sub {
            my $r = $t->zone_status('sse')->{redis} // {};
            ($r->{state} // '') eq 'down' && ($r->{reconnects} // 0) >= 1;
        }, 5), 'down, and retried');
        is($t->get('/plain')->status, 200, 'the worker answers');
        my ($w) = $t->workers;
        my ($rss) = (`cat /proc/$w/status` =~ /^VmRSS:\s+(\d+)/m);
        my ($vm) = (`cat /proc/$w/status` =~ /^VmSize:\s+(\d+)/m);
        note("worker VmRSS $rss kB, VmSize $vm kB");
        # what was announced is never allocated (ASan's shadow memory
        # makes VmSize meaningless on the sanitizer build)
        cmp_ok($vm, '<', 512 * 1024, 'no allocation for what was announced')
            unless SSETest::sanitized();
        $t->expect_log($log_re);
        ok($t->stop, 'nginx quit gracefully');
        $t->check_log;
    };
    stop_fake($fake);
}

# an array of 100 million elements announced: hiredis would allocate its
# table of 800 MB at once, then wait for the elements
with_fake('a huge array header',
          sub { "*100000000\r\n" },
          qr/redis sent an array of 100000000 elements \(more than 1048576\)/);

with_fake('a reply to no command',
          sub { "+PONG\r\n+PONG\r\n" },
          qr/redis sent a reply to no command/);

with_fake('bytes that are not RESP',
          sub { "?what\r\n" },
          qr/redis protocol error: Protocol error/);

with_fake('a connection closed at once',
          sub { undef },
          qr/redis closed the connection/);

done_testing();
