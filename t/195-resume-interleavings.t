# Resume is exact under concurrent publishing: clients that disconnect at
# random moments and reconnect with their Last-Event-ID, while a publisher
# keeps publishing, end with every event exactly once, in order.  Many
# random interleavings: each round uses a new seed (printed, so that a
# failure can be replayed with SSE_TEST_SEED=<seed>).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use SSETest;

my $EVENTS  = 400;      # per round
my $CLIENTS = 8;
my $ROUNDS  = 3;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 16m history=5000;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        location /sub { sse_subscribe $arg_ch zone=z; sse_replay all;
                        sse_heartbeat off; }
        location /pub { sse_publish $arg_ch zone=z; }
    }
}
EOF

for my $round (1 .. $ROUNDS) {
    my $seed = $ENV{SSE_TEST_SEED} // int(rand(1 << 30));
    srand($seed);
    my $ch = "r$round";
    note("round $round: seed $seed");

    # a publisher in its own process, with small random gaps
    my $pid = $t->publisher("/pub?ch=$ch", $EVENTS, prefix => '',
        interval => 0.002);

    my @clients = map { { seen => [], stream => undef, last_id => undef,
                          resets => 0, reconnects => 0 } } 1 .. $CLIENTS;

    my $deadline = time + tmo(40);
    my $publisher_done = 0;

    while (time < $deadline) {
        for my $c (@clients) {
            my $s = $c->{stream};

            if ($s) {
                # take what arrived, then maybe vanish mid-stream
                for my $e ($s->take_events) {
                    if (($e->{type} // '') eq 'reset') {
                        $c->{resets}++;
                        next;
                    }
                    push @{$c->{seen}}, $e->{data};
                    $c->{last_id} = $e->{id};
                }

                if (rand() < 0.08 || $s->is_closed) {
                    $s->close;
                    $c->{stream} = undef;
                }

            } elsif (rand() < 0.5) {
                my %h;
                $h{'Last-Event-ID'} = $c->{last_id} if defined $c->{last_id};
                $c->{stream} = $t->subscribe("/sub?ch=$ch", headers => \%h,
                    untracked => 1);
                $c->{reconnects}++;
            }
        }

        SSETest::Stream::poll_many([grep { $_ } map { $_->{stream} } @clients],
            0.01 + rand(0.02));

        if (!$publisher_done && waitpid($pid, POSIX::WNOHANG()) == $pid) {
            $publisher_done = 1;
            is($? >> 8, 0, "round $round: every publish was accepted");
        }

        last if $publisher_done
            && !grep { @{$_->{seen}} < $EVENTS } @clients;
    }

    ok($publisher_done, "round $round: the publisher finished");

    my $expected = join ',', 1 .. $EVENTS;
    my $i = 0;
    for my $c (@clients) {
        $i++;
        $c->{stream}->close if $c->{stream};
        is(join(',', @{$c->{seen}}), $expected,
            "round $round, client $i: all $EVENTS events exactly once, in order"
            . " ($c->{reconnects} connections)")
            or diag("seed $seed: got " . scalar(@{$c->{seen}}) . " events");
        is($c->{resets}, 0, "round $round, client $i: no reset");
    }
}

$t->done;
