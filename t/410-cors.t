# sse_cors_origins: a listed origin gets Access-Control-Allow-Origin with
# that origin, Access-Control-Allow-Credentials: true and Vary: Origin on
# every answer of the location (200 streams, 201/202/204, and 400, 401,
# 403, 404, 405, 413, 507 errors); `*` is answered with `*` and never with
# credentials; an unlisted origin gets no CORS headers.  OPTIONS preflight:
# 204 with the location's methods and the request headers for a listed
# origin, 403 for an unlisted one; no token is asked for a preflight.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::JWT qw(claims refused);

my $t = SSETest->new(workers => 2);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my $tok = $jwt->mint(
    keys => [ { name => 'hs', type => 'oct', bytes => 32 } ],
    tokens => {
        news => { key => 'hs', claims => claims(subscribe => ['news'], publish => ['news']) },
        expired => { key => 'hs', claims => claims(subscribe => ['news'], exp => time - 3600) },
    },
);

my $APP = 'https://app.example';
my $DEV = 'http://127.0.0.1:8080';

$t->run(<<"EOF");
http {
    sse_zone sse 8m history=10;
    sse_zone tiny 1m max_channels=1;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_cors_origins $APP $DEV;
        client_max_body_size 64;

        location /sub  { sse_subscribe \$arg_ch; }
        location /pub  { sse_publish \$arg_ch; }
        location /tiny { sse_publish \$arg_ch zone=tiny; }
        location /auth { sse_subscribe \$arg_ch; sse_auth_jwt on;
                         sse_auth_jwt_key_secret $K/hs.secret; }
        location /auth-pub { sse_publish \$arg_ch; sse_auth_jwt on;
                             sse_auth_jwt_key_secret $K/hs.secret; }
        location /star { sse_subscribe \$arg_ch; sse_cors_origins *; }
        location /star-pub { sse_publish \$arg_ch; sse_cors_origins *; }
        location /star-auth { sse_subscribe \$arg_ch; sse_cors_origins *; sse_auth_jwt on;
                              sse_auth_jwt_key_secret $K/hs.secret; }
        location /off  { sse_subscribe \$arg_ch; sse_cors_origins off; }
    }
}
EOF

my @CORS = qw(access-control-allow-origin access-control-allow-credentials
    access-control-allow-methods access-control-allow-headers
    access-control-expose-headers access-control-max-age);

# what a response or a stream looks like, for diagnostics
sub show { my ($r) = @_; return $r->can('describe') ? $r->describe : ($r->raw_head // '') }

# the answer carries exactly the CORS headers of a listed origin
sub cors_listed {
    my ($r, $origin, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @why;
    my $acao = $r->header('access-control-allow-origin');
    push @why, 'Access-Control-Allow-Origin: ' . ($acao // 'none')
        unless ($acao // '') eq $origin && $r->header_count('access-control-allow-origin') == 1;
    push @why, 'Access-Control-Allow-Credentials: '
        . ($r->header('access-control-allow-credentials') // 'none')
        unless ($r->header('access-control-allow-credentials') // '') eq 'true';
    my $vary = $r->header('vary') // '';
    push @why, "Vary: $vary" unless grep { lc eq 'origin' } split /\s*,\s*/, $vary;
    ok(!@why, "$what: CORS headers for $origin") or diag(join("\n", @why) . "\n" . show($r));
}

sub cors_star {
    my ($r, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @why;
    push @why, 'Access-Control-Allow-Origin: ' . ($r->header('access-control-allow-origin') // 'none')
        unless ($r->header('access-control-allow-origin') // '') eq '*';
    push @why, 'Access-Control-Allow-Credentials present'
        if defined $r->header('access-control-allow-credentials');
    ok(!@why, "$what: Access-Control-Allow-Origin: *, no credentials")
        or diag(join("\n", @why) . "\n" . show($r));
}

sub cors_none {
    my ($r, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @found = grep { defined $r->header($_) } @CORS;
    ok(!@found, "$what: no CORS headers") or diag("has @found\n" . show($r));
}

sub origin { return { Origin => $_[0], %{$_[1] // {}} } }

# -- a listed origin: every answer --------------------------------------------

my $s = $t->subscribe('/sub?ch=news', headers => origin($APP));
is($s->status, 200, 'a stream from a listed origin: 200');
cors_listed($s, $APP, '200 stream');
$s->close;

$s = $t->subscribe('/sub?ch=news', headers => origin($DEV));
cors_listed($s, $DEV, '200 stream, the second listed origin');
$s->close;

my $r = $t->head('/sub?ch=news', headers => origin($APP));
is($r->status, 200, 'HEAD on the stream: 200');
cors_listed($r, $APP, 'HEAD 200');

my $live = $t->subscribe('/sub?ch=news');
$r = $t->publish('/pub?ch=news', 'x', Origin => $APP);
is($r->status, 201, 'publish with a subscriber: 201');
cors_listed($r, $APP, '201');
$live->close;
$r = $t->publish('/pub?ch=quiet', 'x', Origin => $APP);
is($r->status, 202, 'publish without: 202');
cors_listed($r, $APP, '202');

$r = $t->get('/pub?ch=news', headers => origin($APP));
is($r->status, 200, 'channel info: 200');
cors_listed($r, $APP, 'channel info 200');

$r = $t->request('DELETE', '/pub?ch=quiet', headers => origin($APP));
is($r->status, 200, 'DELETE: 200');
cors_listed($r, $APP, 'DELETE 200');

$r = $t->get('/sub?ch=quiet', headers => origin($APP));
is($r->status, 204, 'subscribing to a deleted channel: 204');
cors_listed($r, $APP, '204');

$r = $t->get('/sub?ch=' . ('x' x 300), headers => origin($APP));
is($r->status, 400, 'a 300-byte channel id: 400');
cors_listed($r, $APP, '400');

$r = $t->get('/pub?ch=nothing-here', headers => origin($APP));
is($r->status, 404, 'info on an unknown channel: 404');
cors_listed($r, $APP, '404');

$r = $t->request('PATCH', '/pub?ch=news', headers => origin($APP), body => 'x');
is($r->status, 405, 'PATCH on a publish location: 405');
cors_listed($r, $APP, '405');

$r = $t->publish('/pub?ch=news', 'y' x 1000, Origin => $APP);
is($r->status, 413, 'a body over client_max_body_size: 413');
cors_listed($r, $APP, '413');

is($t->publish('/tiny?ch=one', 'x')->status, 202, 'the tiny zone holds one channel');
$r = $t->publish('/tiny?ch=two', 'x', Origin => $APP);
is($r->status, 507, 'a second channel in it: 507');
cors_listed($r, $APP, '507');

$r = $t->get('/auth?ch=news', headers => origin($APP));
refused($r, 401, undef, undef, 'no token: 401');
cors_listed($r, $APP, '401 without a token');
$r = $t->get('/auth?ch=news', headers => origin($APP, { Cookie => "sse_token=$tok->{expired}" }));
refused($r, 401, 'invalid_token', 'expired', 'an expired token: 401');
cors_listed($r, $APP, '401 invalid_token');
$r = $t->get('/auth?ch=sport', headers => origin($APP, { Cookie => "sse_token=$tok->{news}" }));
refused($r, 403, 'insufficient_scope', undef, 'another channel: 403');
cors_listed($r, $APP, '403');
$s = $t->subscribe('/auth?ch=news', headers => origin($APP, { Cookie => "sse_token=$tok->{news}" }));
is($s->status, 200, 'the right token: 200');
cors_listed($s, $APP, '200 stream with a token');
$s->close;
$r = $t->publish('/auth-pub?ch=sport', 'x', Origin => $APP,
                 Authorization => "Bearer $tok->{news}");
refused($r, 403, 'insufficient_scope', undef, 'publish to another channel: 403');
cors_listed($r, $APP, 'publish 403');

# -- unlisted origins, and no origin ---------------------------------------

for my $o ('https://evil.example', "$APP/", "$APP.evil.example",
           'https://app.exampl', "${APP}:443", 'null', 'http://app.example', '*')
{
    $s = $t->subscribe('/sub?ch=news', headers => origin($o));
    is($s->status, 200, "origin $o: the stream itself is served");
    cors_none($s, "origin $o (not listed)");
    $s->close;
}
$r = $t->get('/auth?ch=news', headers => origin('https://evil.example'));
is($r->status, 401, 'an unlisted origin without a token: 401');
cors_none($r, 'unlisted origin, 401');
$s = $t->subscribe('/sub?ch=news');
cors_none($s, 'no Origin header');
$s->close;
$s = $t->subscribe('/off?ch=news', headers => origin($APP));
cors_none($s, 'sse_cors_origins off (inherited list switched off)');
$s->close;

# -- * ------------------------------------------------------------------------

$s = $t->subscribe('/star?ch=news', headers => origin('https://anyone.example'));
is($s->status, 200, '*: a stream from any origin');
cors_star($s, '* 200 stream');
$s->close;
$r = $t->publish('/star-pub?ch=news', 'x', Origin => 'https://anyone.example');
cors_star($r, '* publish 202');
$r = $t->get('/star-auth?ch=news', headers => origin('https://anyone.example'));
is($r->status, 401, '* without a token: 401');
cors_star($r, '* 401');
$r = $t->get('/star?ch=' . ('x' x 300), headers => origin('https://anyone.example'));
is($r->status, 400, '* bad channel: 400');
cors_star($r, '* 400');

# -- preflight -------------------------------------------------------------

sub preflight {
    my ($path, $origin, $method) = @_;
    return $t->request('OPTIONS', $path, headers => {
        Origin => $origin,
        'Access-Control-Request-Method' => $method // 'GET',
        'Access-Control-Request-Headers' => 'authorization, last-event-id',
    });
}

sub set_of { my ($v) = @_; return join ',', sort map { lc } grep { length } split /\s*,\s*/, $v // '' }

my $HEADERS = set_of('Content-Type, Last-Event-ID, SSE-Event, Authorization');
# a publisher's retry carries its Idempotency-Key
my $PUB_HEADERS = set_of('Content-Type, Last-Event-ID, SSE-Event, Authorization, Idempotency-Key');

for my $case (['/sub?ch=news', 'GET, POST, HEAD', 'subscribe', $HEADERS],
              ['/auth?ch=news', 'GET, POST, HEAD', 'subscribe with sse_auth_jwt (no token asked)', $HEADERS],
              ['/pub?ch=news', 'POST, PUT, DELETE, GET, HEAD', 'publish', $PUB_HEADERS],
              ['/auth-pub?ch=news', 'POST, PUT, DELETE, GET, HEAD', 'publish with sse_auth_jwt', $PUB_HEADERS])
{
    my ($path, $methods, $what, $headers) = @$case;
    $r = preflight($path, $APP);
    is($r->status, 204, "preflight, $what, listed origin: 204") or diag(show($r));
    cors_listed($r, $APP, "preflight $what");
    is(set_of($r->header('access-control-allow-methods')), set_of($methods),
        "preflight $what: Access-Control-Allow-Methods: $methods");
    is(set_of($r->header('access-control-allow-headers')), $headers,
        "preflight $what: Access-Control-Allow-Headers: $headers");
    is($r->body, '', "preflight $what: no body");

    $r = preflight($path, 'https://evil.example');
    is($r->status, 403, "preflight, $what, unlisted origin: 403");
    cors_none($r, "preflight $what, unlisted origin");
}

$r = preflight('/star?ch=news', 'https://anyone.example');
is($r->status, 204, 'preflight with *: 204');
cors_star($r, 'preflight *');
is(set_of($r->header('access-control-allow-methods')), set_of('GET, POST, HEAD'),
    'preflight *: the subscribe methods');

$r = preflight('/star-pub?ch=news', 'https://anyone.example', 'POST');
is($r->status, 204, 'preflight with * on publish: 204');
is(set_of($r->header('access-control-allow-methods')), set_of('POST, PUT, DELETE, GET, HEAD'),
    'preflight * publish: the publish methods');

# a preflight stores nothing and makes no channel
is($t->get('/pub?ch=pre-only')->status, 404, 'no channel before');
preflight('/pub?ch=pre-only', $APP, 'POST');
preflight('/sub?ch=pre-only', $APP);
is($t->get('/pub?ch=pre-only')->status, 404, 'preflights made no channel');

$t->done;
