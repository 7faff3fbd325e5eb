# A publish to several channels refused on one of them (507: max_channels
# reached, or no room in the zone) says exactly what was published on each
# channel, with its ids, so that a publisher retrying only what was not
# published never duplicates an event.  Checked against what subscribers
# and channel info see.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new->run(<<'EOF');
http {
    sse_zone z 4m history=100 max_channels=2;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub  { sse_subscribe $arg_ch zone=z; }
        location /pub  { sse_publish $arg_ch zone=z; }
        location /status { sse_status; }
    }
}
EOF

my $CT = { 'Content-Type' => 'text/event-stream' };

# channel "a" exists and has a subscriber; "b" will be the second and last
my $s = $t->subscribe('/sub?ch=a');
is($s->status, 200, 'a subscriber of a');

my $r = $t->request('POST', '/pub?ch=a,b,c', headers => $CT,
    body => "data: one\n\ndata: two\n\n");
my $j = $r->json;

is($r->status, 507, 'a publish to a, b and c with room for two channels: 507');
is($j->{error}, 'too_many_channels', '... too_many_channels');

my %by = map { $_->{channel} => $_ } @{$j->{channels} // []};
is_deeply([sort keys %by], [qw(a b c)], 'the reply lists every channel');
is($by{a}{events}, 2, 'a: both events published');
is($by{b}{events}, 2, 'b: both events published');
is($by{c}{events}, 0, 'c: nothing published');
is_deeply($by{c}{ids}, [], 'c: no ids');
is(scalar @{$by{a}{ids} // []}, 2, 'a: two ids');

# what the reply says is what happened
ok($s->wait_events(2, 3), 'the subscriber of a got two events');
is_deeply([map { $_->{id} } @{$s->events}], $by{a}{ids},
    'with exactly the ids the reply listed for a');
is($t->channel_info('/pub?ch=b')->{events}, 2, 'b holds two events');
is($t->get('/pub?ch=c')->status, 404, 'c was not made');

# a publisher that retries only what the reply says is missing never
# duplicates: here c still has no room, and a and b stay as they were
$r = $t->request('POST', '/pub?ch=c', headers => $CT,
    body => "data: one\n\ndata: two\n\n");
is($r->status, 507, 'the retry of c alone: 507 again');
is($t->channel_info('/pub?ch=a')->{events}, 2, 'a still holds two events');
is($t->channel_info('/pub?ch=b')->{events}, 2, 'b still holds two events');
is($t->zone_status('z')->{refused_full}, 2, 'both refusals counted');

$s->close;
$t->done;
