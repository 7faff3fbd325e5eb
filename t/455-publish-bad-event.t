# An event-stream publish body with a bad event after good ones: whatever
# way TCP split the body, every complete valid event before the bad one is
# published, nothing from the bad one on, and the error reply (400 bad_utf8,
# 413 too_large) lists the ids of what was published.  The body is sent in
# one write, in two writes split at every byte, and byte by byte.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone z 4m history=100 max_message=64;
    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 0;
        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /pub  { sse_publish $arg_ch zone=z; }
    }
}
EOF

my $CT = { 'Content-Type' => 'text/event-stream' };
my %bodies = (
    bad_utf8  => [400, 'bad_utf8', "data: first\n\nevent: t\ndata: second\n\n"
                       . "data: \xff\n\ndata: after\n\n"],
    too_large => [413, 'too_large', "data: first\n\nevent: t\ndata: second\n\n"
                       . "data: " . ('x' x 80) . "\n\ndata: after\n\n"],
    bad_last  => [400, 'bad_utf8', "data: first\n\nevent: t\ndata: second\n\n"
                       . "data: \xfe no blank line"],
);

my $n = 0;

# sends the body as the given pieces; checks the reply and the channel
sub check {
    my ($kind, $how, @pieces) = @_;
    my ($status, $code) = @{$bodies{$kind}};
    my $ch = "c" . ++$n;
    my $r;
    if (@pieces == 1) {
        $r = $t->request('POST', "/pub?ch=$ch", headers => $CT,
            body => $pieces[0]);
    } else {
        # chunked, a pause between pieces so that each is read on its own
        $r = $t->request('POST', "/pub?ch=$ch", headers => $CT,
            body => \@pieces, delay => 0.01);
    }
    my $j = $r->json;
    my $info = $t->get("/pub?ch=$ch")->json;
    my $got = join ' ', $r->status, $j->{error} // '-', $j->{events} // '-',
        scalar @{$j->{ids} // []}, $info->{events} // 0,
        (($j->{id} // '') eq ($info->{last_id} // '') ? 'same' : 'other');
    return is($got, "$status $code 2 2 2 same",
        "$kind, $how: $status, the 2 events before are published and listed");
}

for my $kind (sort keys %bodies) {
    my $body = $bodies{$kind}[2];
    check($kind, 'one write', $body);
    for my $at (1 .. length($body) - 1) {
        check($kind, "split at $at", substr($body, 0, $at), substr($body, $at));
    }
    check($kind, 'byte by byte', split //, $body);
}

# a subscriber sees exactly the events before the bad one
my $s = $t->subscribe('/sub?ch=live');
ok($s->wait_comment(2), 'a subscriber');
my $r = $t->request('POST', '/pub?ch=live', headers => $CT,
    body => $bodies{bad_utf8}[2]);
is($r->status, 400, 'bad_utf8 in one write');
ok($s->wait_events(2, 3), 'the subscriber gets the two events before it');
is_deeply([map { $_->{data} } @{$s->events}], ['first', 'second'],
    'their data');
is_deeply([map { $_->{id} } @{$s->events}], $r->json->{ids},
    'with the ids the error reply listed');
is($r->json->{subscribers}, 1, 'the reply counts the subscriber');

# several channels: every channel lists its ids
$r = $t->request('POST', '/pub?ch=m1,m2', headers => $CT,
    body => $bodies{bad_utf8}[2]);
my $j = $r->json;
is($r->status . ' ' . ($j->{error} // ''), '400 bad_utf8', 'two channels: 400');
is_deeply([map { $_->{events} } @{$j->{channels} // []}], [2, 2],
    'both channels list their two events');

# nothing before the bad event: events 0, ids [], id null
$r = $t->request('POST', '/pub?ch=none', headers => $CT, body => "data: \xff\n\n");
$j = $r->json;
is(join(' ', $r->status, $j->{error} // '', $j->{events} // '-',
        scalar @{$j->{ids} // [1]}, defined $j->{id} ? 'id' : 'null'),
    '400 bad_utf8 0 0 null', 'a bad first event: nothing published, listed as such');
is($t->get('/pub?ch=none')->status, 404, 'and no channel was made');

$t->done;
