# Error replies: JSON {"error","message"} with the codes of docs/protocol.md;
# 405 with Allow, 413 for bodies over client_max_body_size or max_message,
# 404 for channels that do not exist.  No error disturbs other channels.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone small 4m max_message=1k;
    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 64k;

        location /sub   { sse_subscribe $arg_ch zone=small; }
        location /pub   { sse_publish $arg_ch zone=small; }
        location /tiny  { sse_publish $arg_ch zone=small; client_max_body_size 100; }
    }
}
EOF

sub is_error {
    my ($r, $status, $code, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    is($r->status, $status, "$name: $status");
    like($r->header("Content-Type") // "", qr{^application/json}, "$name: JSON")
        if $code;
    is($r->json->{error}, $code, "$name: error $code") if $code;
    ok(defined $r->json->{message} && length $r->json->{message},
        "$name: a message") if $code;
}

my $s = $t->subscribe('/sub?ch=bystander');
ok($s->wait_comment(1), 'a subscriber on another channel watches');

# -- 405 ------------------------------------------------------------------

for my $m (qw(PATCH OPTIONS PROPFIND)) {
    my $r = $t->request($m, '/pub?ch=x', body => 'x');
    is_error($r, 405, 'method_not_allowed', "$m on a publish location");
    my $allow = $r->header('Allow') // '';
    like($allow, qr/\bPOST\b/, "$m: Allow lists POST");
    like($allow, qr/\bPUT\b/, "$m: Allow lists PUT");
    like($allow, qr/\bDELETE\b/, "$m: Allow lists DELETE");
    like($allow, qr/\bGET\b/, "$m: Allow lists GET");
}

for my $m (qw(PUT DELETE PATCH)) {
    my $r = $t->request($m, '/sub?ch=x', body => '');
    is_error($r, 405, 'method_not_allowed', "$m on a subscribe location");
    like($r->header('Allow') // '', qr/\bGET\b/, "$m on subscribe: Allow lists GET");
}

# -- 404 ------------------------------------------------------------------

is_error($t->get('/pub?ch=nope'), 404, 'not_found', 'info on an unknown channel');
is_error($t->head('/pub?ch=nope'), 404, undef, 'HEAD on an unknown channel');
is_error($t->delete('/pub?ch=nope'), 404, 'not_found', 'DELETE of an unknown channel');

# -- 413 ------------------------------------------------------------------

my $r = $t->publish('/pub?ch=big', 'x' x 1024);
is($r->status, 202, 'an event of exactly max_message (1k) is accepted');

is_error($t->publish('/pub?ch=big', 'x' x 1025), 413, 'too_large',
    'an event over max_message');
is_error($t->request('POST', '/pub?ch=big', body => ['x' x 600, 'y' x 600]),
    413, 'too_large', 'a chunked event over max_message');

$r = $t->publish('/tiny?ch=big', 'x' x 101);
is($r->status, 413, 'a body over client_max_body_size: 413');
$r = $t->request('POST', '/tiny?ch=big', body => ['x' x 60, 'y' x 60]);
is($r->status, 413, 'a chunked body over client_max_body_size: 413');

my $info = $t->channel_info('/pub?ch=big');
is($info->{events}, 1, 'refused events were not stored');

# -- 400 ------------------------------------------------------------------

is_error($t->publish('/pub?ch=' . ('z' x 300), 'x'), 400, 'bad_channel',
    'publish to a bad channel id');
is_error($t->publish('/pub?ch=u', "\xff"), 400, 'bad_utf8', 'publish invalid UTF-8');
is_error($t->get('/sub?ch=' . ('z' x 300)), 400, 'bad_channel',
    'subscribe to a bad channel id');

# -- a request that is not even complete ------------------------------------

# the body never completes: the connection is closed half way
my $req = $t->open_request('POST', '/pub?ch=half', length => 1000);
$req->send('x' x 10);
$req->close;
# a chunked body broken by junk
$r = $t->request('POST', '/pub?ch=half', raw =>
    "POST /pub?ch=half HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    . "Connection: close\r\n\r\n5\r\nabcde\r\nZZ\r\n");
is($r->status, 400, 'a broken chunked body: 400');
ok(!$t->channel_info('/pub?ch=half'), 'no event was published from incomplete bodies');

# -- the bystander never noticed --------------------------------------------

$r = $t->publish('/pub?ch=bystander', 'still here');
is($r->status, 201, 'the other channel still works');
ok($s->wait_events(1, 2), 'its subscriber gets the event');
is($s->event_count, 1, 'and nothing else');
ok(!$s->is_closed, 'its stream is still open');

$t->done;
