# The exact bytes on the wire (docs/protocol.md): the stream's first comment,
# the id/event/data lines of an event, data split on CR, LF and CRLF, empty
# data, UTF-8 checks.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
    }
}
EOF

my $s = $t->subscribe('/sub?ch=wire');
ok($s->wait_comment(1), 'first comment');
like($s->raw, qr/\A:ok\n/, 'the stream starts with the comment line ":ok"');
is(scalar(grep { $_->{kind} eq 'retry' } @{$s->items}), 0,
    'no retry: field without sse_retry');

sub jid { my ($r) = @_; my $j = $r->json; return $j && $j->{id} // "none" }

# publish $body (with headers), return the bytes the subscriber got for it
# and the parsed event
sub roundtrip {
    my ($body, %h) = @_;
    my $before = length $s->raw;
    my $n = $s->event_count;
    my $r = $t->publish('/pub?ch=wire', $body, %h);
    return (undef, undef, $r) unless $r->status == 201;
    $s->wait_events($n + 1, 2) or return (undef, undef, $r);
    return (substr($s->raw, $before), $s->events->[$n], $r);
}

# -- one event ------------------------------------------------------------

my ($wire, $e, $r) = roundtrip('hello');
my $id = jid($r);
is($wire, "id: $id\ndata: hello\n\n", 'an event: "id: <id>\\ndata: hello\\n\\n"');

($wire, $e, $r) = roundtrip("first line\nsecond line", 'SSE-Event' => 'chunk');
$id = jid($r);
is($wire, "id: $id\nevent: chunk\ndata: first line\ndata: second line\n\n",
    'with a type: id, event, then one data: line per line');

# -- CR, LF and CRLF all end a line --------------------------------------

my @cases = (
    [ "a\nb",          "data: a\ndata: b\n",                  "a\nb",       'LF' ],
    [ "a\rb",          "data: a\ndata: b\n",                  "a\nb",       'CR' ],
    [ "a\r\nb",        "data: a\ndata: b\n",                  "a\nb",       'CRLF is one line break' ],
    [ "a\r\n\r\nb",    "data: a\ndata: \ndata: b\n",          "a\n\nb",     'CRLF CRLF: an empty line between' ],
    [ "a\n\nb",        "data: a\ndata: \ndata: b\n",          "a\n\nb",     'LF LF: an empty line between' ],
    [ "a\r\rb",        "data: a\ndata: \ndata: b\n",          "a\n\nb",     'CR CR: an empty line between' ],
    [ "a\n\rb",        "data: a\ndata: \ndata: b\n",          "a\n\nb",     'LF CR is two line breaks' ],
    [ "1\r2\n3\r\n4",  "data: 1\ndata: 2\ndata: 3\ndata: 4\n", "1\n2\n3\n4", 'mixed line ends' ],
    [ ":not a comment\n data: x",
                       "data: :not a comment\ndata:  data: x\n", ":not a comment\n data: x",
                                                                             'lines that look like fields stay data' ],
);
for my $c (@cases) {
    my ($body, $lines, $data, $name) = @$c;
    ($wire, $e, $r) = roundtrip($body);
    $id = jid($r);
    is($wire, "id: $id\n$lines\n", "wire bytes: $name");
    is($e && $e->{data}, $data, "EventSource sees the lines: $name");
}

# an empty body is an event with empty data
($wire, $e, $r) = roundtrip('');
is($r->status, 201, 'an empty body publishes');
$id = jid($r);
is($wire, "id: $id\ndata: \n\n", 'empty body: one "data: " line');
is($e && $e->{data}, '', 'EventSource sees an empty data string');

# a line break at the end of the body is kept as a line break
($wire, $e, $r) = roundtrip("tail\n");
$id = jid($r);
is($e && $e->{data}, "tail\n", 'a trailing LF survives the round trip');
is($wire, "id: $id\ndata: tail\ndata: \n\n", '... as an empty last data: line');

# -- UTF-8 ------------------------------------------------------------------

my $utf8 = "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xb8\xad";
($wire, $e, $r) = roundtrip($utf8, 'SSE-Event' => "t\xc3\xa9st");
is($r->status, 201, 'valid UTF-8 (2, 3 and 4 byte sequences) publishes');
is($e && $e->{data}, $utf8, 'UTF-8 data arrives byte for byte');
is($e && $e->{type}, "t\xc3\xa9st", 'a UTF-8 event type arrives byte for byte');

my $count = $s->event_count;
for my $bad (
    [ "\xff",                 'a 0xFF byte' ],
    [ "ok \xc3",              'a truncated 2-byte sequence at the end' ],
    [ "\xe2\x82 x",           'a truncated 3-byte sequence' ],
    [ "\xc0\xaf",             'an overlong encoding' ],
    [ "\xed\xa0\x80",         'a UTF-16 surrogate' ],
    [ "\xf4\x90\x80\x80",     'a code point above U+10FFFF' ],
    [ "\x80abc",              'a stray continuation byte' ],
    [ ("x" x 5000) . "\xfe",  'a bad byte after 5000 good ones' ],
) {
    my ($body, $name) = @$bad;
    my $r = $t->publish('/pub?ch=wire', $body);
    is($r->status, 400, "invalid UTF-8 -> 400: $name");
    is($r->json && $r->json->{error}, 'bad_utf8', "error code bad_utf8: $name");
    ok($r->json && defined $r->json->{message}, "error has a message: $name");
}
$r = $t->publish('/pub?ch=wire', 'ok', 'SSE-Event' => "bad\xff");
is($r->status, 400, 'an SSE-Event header that is not UTF-8 -> 400');

# nothing of the refused publishes reached the subscriber
$r = $t->publish('/pub?ch=wire', 'after the errors');
is($r->status, 201, 'the channel works after the refused publishes');
ok($s->wait_events($count + 1, 2), 'the next event arrives');
is($s->event_count, $count + 1, 'no refused event was delivered');
is($s->events->[-1]{data}, 'after the errors', 'the good event is the next one');

# -- a large event ----------------------------------------------------------

my $big = join "\n", map { sprintf "line %05d %s", $_, 'x' x 90 } 1 .. 1000;
($wire, $e, $r) = roundtrip($big);
is($r->status, 201, 'a 100 KB event publishes');
is($e && $e->{data}, $big, 'a 100 KB, 1000-line event arrives intact');

ok(!$s->error, 'chunked framing stayed valid') or diag($s->error);
ok(!$s->{unknown_fields}, 'no unknown fields on the wire')
    or diag(explain $s->{unknown_fields});

$t->done;
