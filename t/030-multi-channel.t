# Several channels per connection (separated by spaces or commas), several
# channels per publish, and the rules for channel ids: 1..255 printable
# ASCII bytes other than space and comma, at most 64 per stream.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;

        # $arg_ch is taken as it is in the query; $chs is the decoded path
        location /sub { sse_subscribe $arg_ch; }
        location ~ "(?s)^/dsub/(?<chs>.*)$" { sse_subscribe $chs; }
        location /pub { sse_publish $arg_ch; }
        location ~ "(?s)^/dpub/(?<chs>.*)$" { sse_publish $chs; }

        location = /both-space { sse_subscribe "m1 m2"; }
        location = /both-comma { sse_subscribe m1,m2; }
        location = /pub-both   { sse_publish "m1 m2"; }
    }
}
EOF

my $POS = qr/[0-9a-z]+-\d+/;

# -- one stream, two channels -------------------------------------------------

for my $case (['/both-space', 'a space'], ['/both-comma', 'a comma'],
              ['/sub?ch=m1,m2', 'a comma in a variable'],
              ['/dsub/m1%20m2', 'a space in a variable'],
              ['/dsub/m1,%20,m2', 'a mix of both, repeated'])
{
    my ($path, $name) = @$case;
    my $s = $t->subscribe($path);
    is($s->status, 200, "two channels separated by $name: 200");
    ok($s->wait_comment(1), "... stream open");

    my $r1 = $t->publish('/pub?ch=m1', "one via $path");
    my $r2 = $t->publish('/pub?ch=m2', "two via $path");
    is($r1->status, 201, "... publish to m1 reaches it");
    is($r2->status, 201, "... publish to m2 reaches it");

    ok($s->wait_events(2, 2), "... events of both channels arrive");
    ok(!$s->wait_events(3, 0.2), '... and nothing else');
    # SPEC orders events within a channel, not across channels: which of
    # the two comes first is not asserted
    my @e = @{$s->events};
    is_deeply([sort map { $_->{data} } @e], ["one via $path", "two via $path"],
        '... each channel\'s event once');
    my ($e1) = grep { $_->{data} eq "one via $path" } @e;
    my ($e2) = grep { $_->{data} eq "two via $path" } @e;

    # the id carries both channels' positions, in the subscription's order
    my $id1 = $r1->json->{id} // '';
    my $id2 = $r2->json->{id} // '';
    like($_->{id}, qr/^$POS\.$POS$/, '... ids have two positions') for @e;
    my ($p1) = split /\./, ($e1 && $e1->{id}) // '';
    is($p1, $id1, '... the m1 event: first position is m1 at that event');
    my (undef, $q2) = split /\./, ($e2 && $e2->{id}) // '';
    is($q2, $id2, '... the m2 event: second position is m2 at that event');
    is($e[-1]{id}, "$id1.$id2", '... the later one carries both channels\' positions');
    $s->close;
}

# -- one publish, two channels ------------------------------------------------

my $s1 = $t->subscribe('/sub?ch=m1');
my $s2 = $t->subscribe('/sub?ch=m2');
my $s3 = $t->subscribe('/sub?ch=m2');
ok($s1->wait_comment(1) && $s2->wait_comment(1) && $s3->wait_comment(1),
    'three subscribers, one on m1 and two on m2');
my $r = $t->publish('/pub-both', 'to both channels');
is($r->status, 201, 'sse_publish with two channels: 201');
my $j = $r->json;
is(ref $j->{channels}, 'ARRAY', 'reply lists the channels');
is(scalar @{$j->{channels} // []}, 2, '... both');
is_deeply([map { $_->{channel} } @{$j->{channels} // []}], ['m1', 'm2'],
    '... in order');
is_deeply([map { $_->{subscribers} } @{$j->{channels} // []}], [1, 2],
    '... each with its subscribers');
like($j->{channels}[0]{id} // '', qr/^$POS$/, '... each with its id');
is($j->{subscribers}, 3, 'subscribers is the sum');

for my $s ($s1, $s2, $s3) {
    my $e = $s->next_event(2);
    is($e && $e->{data}, 'to both channels', 'each subscriber gets the event');
}
is($s1->events->[0]{id}, $j->{channels}[0]{id}, 'm1 subscriber sees the m1 id');
is($s2->events->[0]{id}, $j->{channels}[1]{id}, 'm2 subscriber sees the m2 id');
$_->close for $s1, $s2, $s3;

# -- channel ids: what is valid ---------------------------------------------

my $id255 = 'a' x 255;
my $s = $t->subscribe("/sub?ch=$id255");
is($s->status, 200, 'a 255-byte channel id is valid');
$r = $t->publish("/pub?ch=$id255", 'long');
is($r->status, 201, 'publish to a 255-byte channel id');
is($s->next_event(2) && $s->events->[0]{data}, 'long', '... arrives');
$s->close;

my $printable = join '', grep { $_ ne ',' } map { chr } 0x21 .. 0x7e;
# %, ? and # would be taken apart by the URL; use the decoded location
(my $enc = $printable) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
$s = $t->subscribe("/dsub/$enc");
is($s->status, 200, 'every printable byte except space and comma is valid');
$r = $t->publish("/dpub/$enc", 'all bytes');
is($r->status, 201, '... for publishing too');
is($r->json->{channel}, $printable, '... and the reply names it exactly');
$s->close;

my @ids64 = map { "c$_" } 1 .. 64;
$s = $t->subscribe('/sub?ch=' . join(',', @ids64));
is($s->status, 200, '64 channels on one stream are allowed');
$r = $t->publish('/pub?ch=c64', 'the 64th');
is($r->status, 201, 'publish to the 64th channel');
my $e = $s->next_event(2);
is($e && $e->{data}, 'the 64th', 'an event of the 64th channel arrives');
is(scalar(split /\./, ($e && $e->{id}) // ''), 64, 'its id has 64 positions');
$s->close;

# duplicates are one channel
$s = $t->subscribe('/sub?ch=dup,dup');
is($s->status, 200, 'a channel listed twice');
$r = $t->publish('/pub?ch=dup', 'once');
ok($s->wait_events(1, 2), '... gets the event');
ok(!$s->wait_events(2, 0.3), '... once');
$s->close;

# -- channel ids: what is refused, subscribing and publishing --------------------

my @bad = (
    [ '/sub?ch=' . ('a' x 256),              'a 256-byte channel id' ],
    [ '/sub?ch=' . join(',', map { "c$_" } 1 .. 65), '65 channels' ],
    [ "/sub?ch=caf\xc3\xa9",                  'a non-ASCII id (raw bytes)' ],
    [ '/dsub/caf%C3%A9',                      'a non-ASCII id (decoded)' ],
    [ '/dsub/tab%09inside',                   'a tab inside an id' ],
    [ '/dsub/del%7Finside',                   'a DEL byte inside an id' ],
    [ '/dsub/nl%0Ainside',                    'a newline inside an id' ],
    [ '/sub?ch=',                             'an empty channel list' ],
    [ '/sub',                                 'no channel at all' ],
    [ '/sub?ch=,,,',                          'only separators' ],
);
for my $b (@bad) {
    my ($path, $name) = @$b;
    my $r = $t->get($path);
    is($r->status, 400, "subscribe: $name -> 400");
    is($r->json->{error}, 'bad_channel', "... error bad_channel")
        or diag($r->describe);
    (my $ppath = $path) =~ s{^/(d?)sub}{/$1pub};
    next if $name eq '65 channels';   # the 64 limit is for streams
    $r = $t->publish($ppath, 'x');
    is($r->status, 400, "publish: $name -> 400");
    is($r->json->{error}, 'bad_channel', "... error bad_channel");
}

# a space is a separator, also inside a variable
$s = $t->subscribe('/dsub/sp1%20sp2');
is($s->status, 200, 'a space from a variable separates two channels');
$r = $t->publish('/pub?ch=sp2', 'second');
ok($s->wait_events(1, 2), '... the second channel is followed');

$t->done;
