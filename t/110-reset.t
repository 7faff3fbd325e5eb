# A Last-Event-ID that cannot be resumed exactly: the stream starts with a
# `reset` event (sse_reset_event) whose data is {"reason":"gap"|"unknown",
# "channel":...} and whose id is the position before the oldest stored
# event; the stored history follows, then live events.  A client is never
# silently behind.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $conf = <<'EOF';
http {
    sse_zone z 4m history=5;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub    { sse_subscribe $arg_ch zone=z; }
        location /resync { sse_subscribe $arg_ch zone=z; sse_reset_event resync; }
        location /noreset { sse_subscribe $arg_ch zone=z; sse_reset_event off; }
        location /pub    { sse_publish $arg_ch zone=z; }
    }
}
EOF
my $t = SSETest->new(workers => 2)->run($conf);

my @ids = map { $t->publish('/pub?ch=g', "g$_")->json->{id} } 1 .. 10;
my ($epoch) = ($ids[0] // '') =~ /^([0-9a-z]+)-1$/;
ok($epoch, '10 events published, only the last 5 are kept (history=5)');

# subscribe with a Last-Event-ID; returns the stream once the history is in
sub resume {
    my ($id, $n, $loc) = @_;
    my $s = $t->subscribe('/' . ($loc // 'sub') . '?ch=g',
        headers => { 'Last-Event-ID' => $id });
    $s->wait_events($n, 2);
    $s->wait_events($n + 1, 0.2);   # anything extra would show now
    return $s;
}

sub check_reset {
    my ($s, $reason, $name, $type) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $e = $s->events->[0];
    is($e && $e->{type}, $type // 'reset', "$name: the first event is a reset");
    my $j = json_decode($e && $e->{data}) // {};
    is($j->{reason}, $reason, "$name: reason $reason");
    is($j->{channel}, 'g', "$name: it names the channel");
    is($e && $e->{id}, "$epoch-5", "$name: its id is the position before the oldest stored event");
    is_deeply([map { $_->{data} } @{$s->events}[1 .. $#{$s->events}]],
        [map { "g$_" } 6 .. 10], "$name: then the stored history, in order");
}

# -- gap: the id is of this epoch but its successors were evicted ------------

my $s = resume($ids[1], 6);
check_reset($s, 'gap', 'Last-Event-ID of an evicted event');
$t->publish('/pub?ch=g', 'g11');
ok($s->wait_events(7, 2), 'gap: then live events');
is($s->events->[6]{data}, 'g11', '... g11');
push @ids, $s->events->[6]{id};
$s->close;

# the event before the oldest stored one is exactly resumable: no reset
$s = resume($ids[5], 6);
is($s->events->[0]{type}, undef, 'Last-Event-ID just before the history: no reset');
is_deeply([$s->data], [map { "g$_" } 7 .. 11], '... the history after it');
$s->close;

# the reset's own id resumes without another reset (EventSource sends it
# back when it reconnects right after the reset)
$t->publish('/pub?ch=g', 'g12');
push @ids, undef;
$s = resume($ids[1], 6);
my $reset_id = $s->events->[0]{id};
$s->close;
$s = resume($reset_id, 5);
isnt($s->events->[0]{type}, 'reset', 'resuming from the reset id: no second reset');
is_deeply([$s->data], [map { "g$_" } 8 .. 12], '... the history after it');
$s->close;

# -- unknown: an id the channel never issued --------------------------------

my $other_epoch = $epoch eq 'zzzz' ? 'yyyy' : 'zzzz';
for my $case (
    [ 'garbage',              'an unparsable id' ],
    [ '',                     'an empty id', 'none' ],
    [ "$other_epoch-3",       'an id of another epoch' ],
    [ "$epoch-999",           'a seq beyond the last event' ],
    [ "$epoch-3.$epoch-1",    'two positions on a one-channel stream' ],
    [ "$epoch-x",             'a malformed seq' ],
    [ "0-3",                  'epoch 0' ],
) {
    my ($id, $name, $none) = @$case;
    $s = resume($id, $none ? 0 : 6);
    if ($none) {
        # an empty Last-Event-ID is no Last-Event-ID: sse_replay none
        is($s->event_count, 0, "$name: like no id, nothing is replayed");
        next;
    }
    my $e = $s->events->[0];
    is($e && $e->{type}, 'reset', "$name: a reset event");
    is((json_decode($e && $e->{data}) // {})->{reason}, 'unknown', "$name: reason unknown");
    is_deeply([map { $_->{data} } @{$s->events}[1 .. $#{$s->events}]],
        [map { "g$_" } 8 .. 12], "$name: then the stored history");
    $s->close;
}

# -- sse_reset_event ------------------------------------------------------

$s = resume($ids[1], 6, 'resync');
is($s->events->[0]{type}, 'resync', 'sse_reset_event resync names the event');
is((json_decode($s->events->[0]{data}) // {})->{reason}, 'gap', '... same data');
$s->close;

$s = resume($ids[1], 5, 'noreset');
is_deeply([$s->data], [map { "g$_" } 8 .. 12],
    'sse_reset_event off: no reset event, the stored history');
$s->close;

# -- a multi-channel stream: the reset names the channel with the gap ---------

$t->publish('/pub?ch=h', 'h1');
my $hid = $t->publish('/pub?ch=h', 'h2')->json->{id};
my $s2 = $t->subscribe('/sub?ch=h,g',
    headers => { 'Last-Event-ID' => "$hid.$ids[1]" });
ok($s2->wait_events(6, 2), 'two channels, one with a gap');
my ($reset) = grep { ($_->{type} // '') eq 'reset' } @{$s2->events};
ok($reset, 'a reset event');
is((json_decode($reset && $reset->{data}) // {})->{channel}, 'g',
    'it names the channel with the gap');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$s2->events}), 1,
    'only one reset (the other channel resumes exactly)');
is_deeply([grep { /^g/ } $s2->data], [map { "g$_" } 8 .. 12],
    'the history of the channel with the gap');
is(scalar(grep { /^h/ } $s2->data), 0, 'nothing of the other channel was missed');
$s2->close;

# -- a restarted nginx: the zone is new, every old id is unknown ------------

my $old = $ids[-2];
$t->stop;
$t->start;
$t->publish('/pub?ch=g', 'fresh');
$s = resume($old, 2);
my $e = $s->events->[0];
is($e && $e->{type}, 'reset', 'after a restart an old id gets a reset');
is((json_decode($e && $e->{data}) // {})->{reason}, 'unknown', '... unknown (new epoch)');
is($s->events->[1] && $s->events->[1]{data}, 'fresh', '... then the new history');
my ($new_epoch) = ($s->events->[1] && $s->events->[1]{id} // '') =~ /^([0-9a-z]+)-/;
ok(defined $new_epoch && $new_epoch ne $epoch,
    'the channel has a new epoch (' . ($new_epoch // 'none') . " after $epoch)");

$t->done;
