# Resuming with Last-Event-ID: the stream replays every stored event after
# the id, in order, then continues live; nothing in between is lost or
# repeated.  The id comes from the Last-Event-ID header, else the
# last_event_id query argument, or from sse_last_event_id.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 8m history=1000;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /from { sse_subscribe $arg_ch zone=z; sse_last_event_id $arg_from; }
        location /pub  { sse_publish $arg_ch zone=z; }
    }
}
EOF

my @ids;
for my $i (1 .. 5) {
    my $r = $t->publish('/pub?ch=r', "e$i");
    push @ids, $r->json->{id};
}
like($ids[0] // '', qr/^[0-9a-z]+-1$/, 'five events stored, ids from seq 1');

# -- resume from the header -------------------------------------------------

my $s = $t->subscribe('/sub?ch=r', headers => { 'Last-Event-ID' => $ids[1] });
ok($s->wait_events(3, 2), 'Last-Event-ID of the 2nd event: 3 events replayed');
is_deeply([$s->data], [qw(e3 e4 e5)], 'exactly the events after it, in order');
is_deeply([map { $_->{id} } @{$s->events}], [@ids[2 .. 4]], 'with their ids');
ok(!$s->wait_events(4, 0.3), 'nothing more');
is(scalar(grep { ($_->{type} // '') eq 'reset' } @{$s->events}), 0, 'no reset');
$t->publish('/pub?ch=r', 'e6');
ok($s->wait_events(4, 2), 'then it continues live');
is($s->events->[3]{data}, 'e6', 'with the next event');
push @ids, $s->events->[3]{id};
$s->close;

# the replayed events come after the first comment
my @kinds = map { $_->{kind} } @{$s->items};
is($kinds[0], 'comment', 'the first comment comes before the replay');

# -- resume from the last event: nothing to replay -----------------------------

$s = $t->subscribe('/sub?ch=r', headers => { 'Last-Event-ID' => $ids[5] });
ok($s->wait_comment(1), 'resume from the newest id');
ok(!$s->wait_events(1, 0.3), 'nothing is replayed');
$t->publish('/pub?ch=r', 'e7');
ok($s->wait_events(1, 2), 'the next live event arrives');
is($s->events->[0]{data}, 'e7', '... e7');
push @ids, $s->events->[0]{id};
$s->close;

# -- the query argument ------------------------------------------------------

$s = $t->subscribe("/sub?ch=r&last_event_id=$ids[4]");
ok($s->wait_events(2, 2), 'last_event_id query argument resumes');
is_deeply([$s->data], [qw(e6 e7)], '... after that id');
$s->close;

$s = $t->subscribe("/sub?ch=r&last_event_id=$ids[0]",
    headers => { 'Last-Event-ID' => $ids[5] });
ok($s->wait_events(1, 2), 'with both the header and the argument');
ok(!$s->wait_events(2, 0.3), '... ');
is_deeply([$s->data], [qw(e7)], '... the header wins');
$s->close;

# -- sse_last_event_id ------------------------------------------------------

$s = $t->subscribe("/from?ch=r&from=$ids[4]");
ok($s->wait_events(2, 2), 'sse_last_event_id $arg_from resumes');
is_deeply([$s->data], [qw(e6 e7)], '... after that id');
$s->close;

# with sse_last_event_id the header is not used (docs/directives.md)
$s = $t->subscribe("/from?ch=r", headers => { 'Last-Event-ID' => $ids[4] });
ok($s->wait_comment(1), 'sse_last_event_id with an empty value');
ok(!$s->wait_events(1, 0.3), '... means no id: the header is not used');
$s->close;

# -- nothing lost or repeated while events keep coming --------------------------

# a publisher publishes 300 events while a subscriber drops its connection
# and resumes with its last id, again and again
# the subscriber is connected (its first comment came) before the first
# publish: every one of the 300 events must reach it, the first ones too
my $f = SSETest::Follower->new($t, '/sub?ch=flow');
ok(wait_until(sub { $f->poll(0.01); $f->stream && @{$f->stream->comments} }, 2),
    'the resuming subscriber is connected before the first publish');
my $pid = $t->publisher('/pub?ch=flow', 300, prefix => 'f', interval => 0.003);
my $drops = 0;
my $deadline = time + tmo(30);
while (@{$f->events} < 300 && time < $deadline) {
    $f->poll(0.05);
    # drop the connection after every ~25 events, without reading the rest
    if (@{$f->events} >= 25 * ($drops + 1) && $f->stream) {
        $f->stream->close;
        $f->{s}{eof} = 1;
        $drops++;
    }
}
is($t->wait_proc($pid, 30), 0, 'the publisher published 300 events');
$f->wait_events(300, 5);
ok($drops >= 5, "the subscriber dropped and resumed $drops times");
my @got = $f->data;
my @want = map { "f$_" } 1 .. 300;
is_deeply(\@got, \@want, 'every event f1 .. f300 arrived exactly once, in order')
    or diag("got " . scalar(@got) . " events: @got[0 .. ($#got < 40 ? $#got : 40)]");
ok(!grep({ ($_->{type} // '') eq 'reset' } @{$f->events}), 'no reset was needed');

# -- several channels resume with one id ------------------------------------

$t->publish('/pub?ch=ma', 'ma1');
$t->publish('/pub?ch=mb', 'mb1');
$s = $t->subscribe('/sub?ch=ma,mb');
ok($s->wait_comment(1), 'a two-channel stream');
$t->publish('/pub?ch=ma', 'ma2');
$t->publish('/pub?ch=mb', 'mb2');
ok($s->wait_events(2, 2), 'gets both channels');
my $last = $s->events->[-1]{id};
$s->close;
$t->publish('/pub?ch=mb', 'mb3');
$t->publish('/pub?ch=ma', 'ma3');
$t->publish('/pub?ch=mb', 'mb4');
$s = $t->subscribe('/sub?ch=ma,mb', headers => { 'Last-Event-ID' => $last });
ok($s->wait_events(3, 2), 'resume with the two-position id');
ok(!$s->wait_events(4, 0.3), '... no more than the 3 missed events');
my @d = $s->data;
is_deeply([sort @d], [qw(ma3 mb3 mb4)], 'exactly the missed events of both channels');
is_deeply([grep { /^mb/ } @d], [qw(mb3 mb4)], 'each channel in order');
# the id of the last replayed event resumes both channels from there
my $last2 = $s->events->[-1]{id};
$s->close;
$t->publish('/pub?ch=ma', 'ma4');
$s = $t->subscribe('/sub?ch=ma,mb', headers => { 'Last-Event-ID' => $last2 });
ok($s->wait_events(1, 2), 'resume again from the last replayed id');
ok(!$s->wait_events(2, 0.3), '...');
is_deeply([$s->data], ['ma4'], 'only the new event');

$t->done;
