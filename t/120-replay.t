# sse_replay: what a subscriber without Last-Event-ID gets from the history
# before the live events: none (default), all, or the last N.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 4m history=20;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /none  { sse_subscribe $arg_ch zone=z; }
        location /all   { sse_subscribe $arg_ch zone=z; sse_replay all; }
        location /three { sse_subscribe $arg_ch zone=z; sse_replay 3; }
        location /fifty { sse_subscribe $arg_ch zone=z; sse_replay 50; }
        location /pub   { sse_publish $arg_ch zone=z; }
    }
}
EOF

my @ids = map { $t->publish('/pub?ch=r', "r$_")->json->{id} } 1 .. 8;

sub sub_and_settle {
    my ($path, $n, %opt) = @_;
    my $s = $t->subscribe($path, %opt);
    $s->wait_events($n, 2);
    $s->wait_events($n + 1, 0.3);
    return $s;
}

my $s = sub_and_settle('/none?ch=r', 0);
ok($s->wait_comment(1), 'sse_replay none (default): stream open');
is($s->event_count, 0, '... no history');
$t->publish('/pub?ch=r', 'r9');
push @ids, $s->next_event(2) && $s->events->[0]{id};
is_deeply([$s->data], ['r9'], '... only live events');

$s = sub_and_settle('/all?ch=r', 9);
is_deeply([$s->data], [map { "r$_" } 1 .. 9], 'sse_replay all: the whole history, in order');
is_deeply([map { $_->{id} } @{$s->events}], \@ids, '... with the original ids');
$t->publish('/pub?ch=r', 'r10');
ok($s->wait_events(10, 2), '... then live events');
is($s->events->[9]{data}, 'r10', '... r10');

$s = sub_and_settle('/three?ch=r', 3);
is_deeply([$s->data], [qw(r8 r9 r10)], 'sse_replay 3: the last three');

$s = sub_and_settle('/fifty?ch=r', 10);
is_deeply([$s->data], [map { "r$_" } 1 .. 10],
    'sse_replay 50 with 10 stored: all 10');

# Last-Event-ID wins over sse_replay
$s = sub_and_settle('/all?ch=r', 2, headers => { 'Last-Event-ID' => $ids[7] });
is_deeply([$s->data], [qw(r9 r10)], 'with a Last-Event-ID, sse_replay does not apply');

$s = sub_and_settle('/three?ch=empty', 0);
is($s->event_count, 0, 'sse_replay on an empty channel: nothing');
is($t->publish('/pub?ch=empty', 'first')->status, 201, '... the subscriber is there');
ok($s->wait_events(1, 2), '... and gets live events');

# replay on a multi-channel stream takes each channel's history
$t->publish('/pub?ch=ra', "ra$_") for 1 .. 4;
$t->publish('/pub?ch=rb', "rb$_") for 1 .. 4;
$s = sub_and_settle('/all?ch=ra,rb', 8);
my @d = $s->data;
is(scalar @d, 8, 'two channels, replay all: 8 events');
is_deeply([grep { /^ra/ } @d], [qw(ra1 ra2 ra3 ra4)], '... all of ra, in order');
is_deeply([grep { /^rb/ } @d], [qw(rb1 rb2 rb3 rb4)], '... all of rb, in order');
like($s->events->[-1]{id} // '', qr/^[0-9a-z]+-4\.[0-9a-z]+-4$/,
    '... the last replayed id has both channels at their newest event');

# a number is per channel (docs/directives.md)
$s = sub_and_settle('/three?ch=ra,rb', 6);
@d = $s->data;
is_deeply([grep { /^ra/ } @d], [qw(ra2 ra3 ra4)], 'two channels, replay 3: the last 3 of ra');
is_deeply([grep { /^rb/ } @d], [qw(rb2 rb3 rb4)], '... and the last 3 of rb');

$t->done;
