# Resume at the edges: 64 channels resumed by one id, a channel of a
# multi-channel id from another epoch, absurd Last-Event-ID values, a
# replay bigger than sse_max_pending while events keep coming.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 32m history=3000;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_max_pending 64k;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /all { sse_subscribe $arg_ch zone=z; sse_replay all; }
        location /pub { sse_publish $arg_ch zone=z; }
    }
}
EOF

# -- 64 channels, one id --------------------------------------------------

my @ch = map { "k$_" } 1 .. 64;
my $list = join ',', @ch;
$t->publish("/pub?ch=$_", "$_-a") for @ch;
my $s = $t->subscribe("/sub?ch=$list");
ok($s->wait_comment(1), 'a stream of 64 channels');
$t->publish("/pub?ch=$_", "$_-b") for @ch;
ok($s->wait_events(64, 3), 'gets an event of each');
my $id = $s->events->[-1]{id};
is(scalar(split /\./, $id // ''), 64, 'its last id has 64 positions');
$s->close;
$t->publish("/pub?ch=$_", "$_-c") for @ch[10 .. 19];
$s = $t->subscribe("/sub?ch=$list", headers => { 'Last-Event-ID' => $id });
ok($s->wait_events(10, 3), 'resuming the 64 channels with that id');
ok(!$s->wait_events(11, 0.3), '... replays exactly the 10 missed events');
is_deeply([sort $s->data], [sort map { "$_-c" } @ch[10 .. 19]], '... of the right channels');
$s->close;

# -- one position from another epoch -------------------------------------

$t->publish('/pub?ch=ea', "ea$_") for 1 .. 3;
$t->publish('/pub?ch=eb', "eb$_") for 1 .. 3;
$s = $t->subscribe('/sub?ch=ea,eb');
ok($s->wait_comment(1), 'a two-channel stream');
$t->publish('/pub?ch=ea', 'ea4');
ok($s->wait_events(1, 2), 'gets ea4');
my ($pa, $pb) = split /\./, $s->events->[0]{id} // '';
$s->close;
$t->publish('/pub?ch=eb', 'eb4');
(my $bad_b = $pb) =~ s/^[0-9a-z]+-/zzzzzzzz-/;
$s = $t->subscribe('/sub?ch=ea,eb', headers => { 'Last-Event-ID' => "$pa.$bad_b" });
ok($s->wait_events(5, 2), 'the second position is of another epoch');
my @resets = grep { ($_->{type} // '') eq 'reset' } @{$s->events};
is(scalar @resets, 1, '... one reset');
my $rj = json_decode($resets[0] && $resets[0]{data}) // {};
is($rj->{reason}, 'unknown', '... unknown');
is($rj->{channel}, 'eb', '... for that channel');
is_deeply([grep { /^eb/ } $s->data], [qw(eb1 eb2 eb3 eb4)], '... whose history follows');
is(scalar(grep { /^ea/ } $s->data), 0, 'the other channel resumes exactly (nothing missed)');
$s->close;

# -- absurd ids -----------------------------------------------------------

for my $case (
    [ 'x' x 8000,                        'an 8000-byte id' ],
    [ join('.', ('1-1') x 200),          '200 positions' ],
    [ '-',                               'a lone dash' ],
    [ "ea\x01-1",                        'a control byte' ],
    [ '99999999999999999999999-1',       'an epoch that overflows' ],
    [ 'abc-99999999999999999999999',     'a seq that overflows' ],
    [ '...',                             'only dots' ],
) {
    my ($bad, $name) = @$case;
    my $s = $t->subscribe('/sub?ch=ea', headers => { 'Last-Event-ID' => $bad });
    is($s->status, 200, "Last-Event-ID $name: 200");
    ok($s->wait_events(1, 2), "... an event");
    is($s->events->[0] && $s->events->[0]{type}, 'reset', "... a reset");
    is((json_decode($s->events->[0] && $s->events->[0]{data}) // {})->{reason}, 'unknown',
        "... unknown");
    $s->close;
}

# -- a replay bigger than sse_max_pending, while events keep coming ---------

my $payload = 'r' x 1000;
$t->publish('/pub?ch=big', "big$_ $payload") for 1 .. 1000;   # ~1 MB
my $pid = $t->publisher('/pub?ch=big', 200, prefix => 'live');
$s = $t->subscribe('/all?ch=big', keep_raw => 0);
ok($s->wait_events(1000, 20), 'a replay of 1 MB (sse_max_pending 64k) arrives');
is($t->wait_proc($pid, 30), 0, '200 more events published meanwhile');
my $total = 1200;
ok($s->wait_events($total, 10), 'then every live event');
ok(!$s->is_closed, 'the subscriber was not dropped for the replay');
my @d = map { /^(big|live)(\d+)/ ? "$1$2" : '?' } $s->data;
is_deeply([grep { /^big/ } @d], [map { "big$_" } 1 .. 1000], 'history in order');
my @live = grep { /^live/ } @d;
# the subscriber may have started after the first live events: those are
# in history then, and arrive in the replay, in order
is_deeply(\@live, [map { "live$_" } 1 .. 200], 'every live event once, in order');

$t->done;
