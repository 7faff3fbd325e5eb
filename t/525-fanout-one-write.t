# One write per stream per fan-out round, whatever number of its channels
# changed: a stream on three channels, and one publish to all three (one
# store operation, so one round), gets the three events in one write.  On
# an HTTP/1.1 stream a write is one chunk, so the chunk framing on the
# wire shows how many writes there were (one chunk per channel before).
# Also: several such streams, and a stream on one of the channels only,
# each get everything once.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use IO::Select;
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;
        location = /three { sse_subscribe "f1 f2 f3"; }
        location /sub { sse_subscribe $arg_ch; }
        location = /pub-three { sse_publish "f1 f2 f3"; }
    }
}
EOF

# a raw HTTP/1.1 subscriber: its chunks, as they came on the wire
sub open_raw {
    my ($path) = @_;
    my $c = $t->connect;
    print $c "GET $path HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    return { sock => $c, buf => '', head => undef, chunks => [] };
}

# reads until cond(chunks) holds or the time is up; parses chunk framing
sub read_until {
    my ($r, $cond, $secs) = @_;
    my $sel = IO::Select->new($r->{sock});
    my $deadline = time + SSETest::tmo($secs);
    while (1) {
        if (!defined $r->{head} && $r->{buf} =~ s/\A(.*?\r\n\r\n)//s) {
            $r->{head} = $1;
        }
        while (defined $r->{head}
               && $r->{buf} =~ /\A([0-9a-fA-F]+)\r\n/
               && length($r->{buf}) >= length($1) + 2 + hex($1) + 2)
        {
            my $hex = $1;
            my $len = hex $hex;
            push @{$r->{chunks}}, substr($r->{buf}, length($hex) + 2, $len);
            substr($r->{buf}, 0, length($hex) + 2 + $len + 2, '');
        }
        return 1 if $cond->($r->{chunks});
        my $left = $deadline - time;
        return 0 if $left <= 0 || !$sel->can_read($left);
        sysread($r->{sock}, $r->{buf}, 65536, length $r->{buf}) or return 0;
    }
}

sub with_data { [grep { /^data:/m } @{$_[0]}] }
sub data_lines { my $n = () = join('', @{$_[0]}) =~ /^data:/mg; $n }

my @three = map { open_raw('/three') } 1 .. 3;
my $one = open_raw('/sub?ch=f2');

for my $r (@three, $one) {
    ok(read_until($r, sub { join('', @{$_[0]}) =~ /^:/m }, 5),
        'a stream is open (its first comment came)');
    like($r->{head} // '', qr/Transfer-Encoding: chunked/i, '... chunked');
}

my $res = $t->publish('/pub-three', 'to all three');
is($res->status, 201, 'one publish to three channels: 201');

for my $i (0 .. $#three) {
    my $r = $three[$i];
    ok(read_until($r, sub { data_lines($_[0]) >= 3 }, 5),
        "stream $i on three channels: the three events came");
    my $written = with_data($r->{chunks});
    is(scalar @$written, 1,
        "... in one write (one chunk), not one per channel")
        or diag explain $r->{chunks};
    my @ids = join('', @$written) =~ /^id: (.*)$/mg;
    is(scalar @ids, 3, '... three events, each with its id');
    like($ids[-1] // '', qr/^[0-9a-z]+-1\.[0-9a-z]+-1\.[0-9a-z]+-1$/,
        '... the last id has every channel at its event');
}

ok(read_until($one, sub { data_lines($_[0]) >= 1 }, 5),
    'the stream on one of the channels got its event');
ok(!read_until($one, sub { data_lines($_[0]) >= 2 }, 0.3),
    '... and only that one');

# a second round: again one write each
is($t->publish('/pub-three', 'again')->status, 201, 'a second publish: 201');
for my $i (0 .. $#three) {
    ok(read_until($three[$i], sub { data_lines($_[0]) >= 6 }, 5),
        "stream $i: the second round's three events came");
    is(scalar @{with_data($three[$i]{chunks})}, 2, '... in one more write');
}

close $_->{sock} for @three, $one;
$t->done;
