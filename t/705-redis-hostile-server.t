# A server at the Redis address that does not behave like Redis (a fake
# one, scripted here): a huge array header, a reply to no command, bytes
# that are not RESP, a connection closed at once, nested arrays over the
# bound together.  Each time: a clear line at "error", the link down and
# retried, the worker unharmed (it answers, it holds no memory for what was
# announced).  Then floods of pub/sub messages, one of them faster than
# the worker can read: other requests answered meanwhile, timers run.
# (The fake server: t/lib/SSETest/FakeRedis.pm.)

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes ();
use File::Temp ();
use SSETest;
use SSETest::FakeRedis;

sub with_fake {
    my ($name, $reply, $log_re) = @_;
    my $fake = SSETest::FakeRedis->new($reply);
    my $port = $fake->port;
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
    $fake->stop;
}

# an array of 100 million elements announced: hiredis would allocate its
# table of 800 MB at once, then wait for the elements
with_fake('a huge array header',
          sub { "*100000000\r\n" },
          qr/redis sent an array of 100000000 elements \(more than 1048576\)/);

# arrays each under the bound, together over it: every element the reader
# builds for one reply counts (an endless reply of nested arrays would
# otherwise cost the worker about 18 bytes of memory per byte received)
with_fake('nested arrays over the bound together',
          sub { "*2\r\n*1000000\r\n" . (":1\r\n" x 1000000)
                . "*1000000\r\n:1\r\n" },
          qr/redis sent a reply of more than 1048576 elements/);

with_fake('a reply to no command',
          sub { "+PONG\r\n+PONG\r\n" },
          qr/redis sent a reply to no command/);

with_fake('bytes that are not RESP',
          sub { "?what\r\n" },
          qr/redis protocol error: Protocol error/);

with_fake('a connection closed at once',
          sub { undef },
          qr/redis closed the connection/);

# a server that answers the handshake, then never stops sending pub/sub
# messages: the worker reads in bounded turns and goes on serving others
{
    my $msg = "*3\r\n\$7\r\nmessage\r\n\$2\r\nch\r\n\$1\r\nx\r\n" x 2000;
    my $fake = SSETest::FakeRedis->new(sub {
        my ($got) = @_;
        return [ "+PONG\r\n", $msg ] if $got =~ /PING/;
        return '';
    });
    my $port = $fake->port;
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
    subtest 'a flood of pub/sub messages' => sub {
        my $slowest = 0;
        for (1 .. 30) {
            my $s = Time::HiRes::time();
            is($t->get('/plain')->status, 200, 'answered') or last;
            my $d = Time::HiRes::time() - $s;
            $slowest = $d if $d > $slowest;
        }
        cmp_ok($slowest, '<', SSETest::tmo(0.1),
               sprintf('the slowest answer took %.0f ms', $slowest * 1000));
        $t->expect_log(qr/redis sent a reply to no command|redis closed|not ready|did not answer/);
        ok($t->stop, 'nginx quit gracefully');
        $t->check_log;
    };
    $fake->stop;
}

# the same from a writer that outpaces the reader (a unix socket with a
# send buffer of 64 MB): the worker reads at most 1 MB per turn of its
# event loop, then serves the others and runs its timers (the pub/sub
# connection's PING is due, never answered: the deadline must fire).
# Before the reads were handed to the next turn (ngx_posted_next_events), a
# request waited here for seconds and the deadline never fired while the
# flood lasted.
{
    my $dir = File::Temp::tempdir('sse-fake-XXXXXX', TMPDIR => 1,
                                  CLEANUP => 1);
    chmod 0755, $dir;
    my $msg = "*3\r\n\$7\r\nmessage\r\n\$0\r\n\r\n\$0\r\n\r\n" x 100000;
    my $fake = SSETest::FakeRedis->new(sub {
        my ($got) = @_;
        return [ "+PONG\r\n", $msg ] if $got =~ /PING/;
        return '';
    }, unix => "$dir/redis.sock");
    my $sock = $fake->port;
    my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_redis unix:$sock;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /status { sse_status; }
        location = /plain { return 200 "plain\\n"; }
    }
}
EOF
    subtest 'a flood faster than the reader' => sub {
        my $slowest = 0;
        for (1 .. 30) {
            my $s = Time::HiRes::time();
            is($t->get('/plain')->status, 200, 'answered') or last;
            my $d = Time::HiRes::time() - $s;
            $slowest = $d if $d > $slowest;
        }
        # one turn parses at most 64 reads of 16 KB (tens of ms measured
        # on a busy 2-core machine); a starved worker took 3.9 s here
        cmp_ok($slowest, '<', SSETest::tmo(0.5),
               sprintf('the slowest answer took %.0f ms', $slowest * 1000));
        ok($t->wait_log(qr/redis did not answer within 1000 ms[^\n]*pubsub/,
                        5), 'timers run: the unanswered PING is found');
        $t->expect_log(qr/redis sent a reply to no command|redis closed|not ready|did not answer/);
        ok($t->stop, 'nginx quit gracefully');
        $t->check_log;
    };
    $fake->stop;
}

done_testing();
