# sse_auth_jwt claims: exp, nbf and iat with the leeway; iss and aud when
# configured; the "sse" claim's channel patterns (exact, prefix*, *), every
# channel of a multi-channel request checked; a refused publish stores
# nothing.

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

# Times are set 15 s or more away from every edge, so that a slow machine
# between minting and asking does not move a token across one.
my $now = time;
my %spec;
sub tk { my ($name, %c) = @_; $spec{$name} = { key => 'hs', claims => claims(%c) } }

my @all = (subscribe => ['*'], publish => ['*']);

# leeway 60 s (/l60)
tk('exp_past_in_leeway',  @all, exp => $now - 30);
tk('exp_past_beyond',     @all, exp => $now - 90);
tk('nbf_future_in_leeway', @all, nbf => $now + 30);
tk('nbf_future_beyond',   @all, nbf => $now + 90);
tk('nbf_past',            @all, nbf => $now - 1000);
tk('iat_future_in_leeway', @all, iat => $now + 30);
tk('iat_future_beyond',   @all, iat => $now + 90);
tk('iat_past',            @all, iat => $now - 100000);
# the edges: exp + leeway is now or already past (RFC 7519: the time must
# be before exp), nbf - leeway is now or already past (on or after nbf)
# (one token per second of the next 20: the test takes the one whose edge
# is the current second)
for my $k (0 .. 20) {
    tk("exp_edge_$k", @all, exp => $now + $k - 60);
    tk("nbf_edge_$k", @all, nbf => $now + $k + 60);
    tk("iat_edge_$k", @all, iat => $now + $k + 60);
}
# default leeway 30 s (/sub)
tk('exp_past_15',         @all, exp => $now - 15);
tk('exp_past_60',         @all, exp => $now - 60);
tk('exp_future',          @all, exp => $now + 3600);
# leeway 0 (/l0)
tk('exp_past_2',          @all, exp => $now - 2);
tk('nbf_future_30',       @all, nbf => $now + 30);
tk('iat_future_30',       @all, iat => $now + 30);
# iss and aud (/issaud: issuer https://issuer.example, audience sse-hub)
tk('ia_ok',               @all, iss => 'https://issuer.example', aud => 'sse-hub');
tk('ia_aud_array',        @all, iss => 'https://issuer.example', aud => ['other', 'sse-hub']);
tk('ia_aud_array_no',     @all, iss => 'https://issuer.example', aud => ['other', 'sse-hub2']);
tk('ia_aud_wrong',        @all, iss => 'https://issuer.example', aud => 'sse-hub2');
tk('ia_aud_prefix',       @all, iss => 'https://issuer.example', aud => 'sse-hu');
tk('ia_aud_missing',      @all, iss => 'https://issuer.example');
tk('ia_iss_wrong',        @all, iss => 'https://evil.example', aud => 'sse-hub');
tk('ia_iss_case',         @all, iss => 'https://Issuer.example', aud => 'sse-hub');
tk('ia_iss_slash',        @all, iss => 'https://issuer.example/', aud => 'sse-hub');
tk('ia_iss_missing',      @all, aud => 'sse-hub');
tk('ia_iss_number',       @all, iss => 1, aud => 'sse-hub');
# patterns
tk('p_news',              subscribe => ['news']);
tk('p_user42',            subscribe => ['user:42:*']);
tk('p_star',              subscribe => ['*']);
tk('p_inner_star',        subscribe => ['a*b']);
tk('p_other',             subscribe => ['user:1']);
tk('p_empty',             subscribe => []);
tk('p_publish_only',      publish => ['*']);
tk('p_no_sse',            foo => 'bar');
tk('p_ab',                subscribe => ['a', 'b']);
tk('p_prefix_empty',      subscribe => ['x:*', 'news']);
tk('p_many',              subscribe => [map { "m$_" } 1 .. 63]);
tk('pub_news',            publish => ['news'], subscribe => ['news', 'sport']);
tk('pub_user42',          publish => ['user:42:*']);

my $tok = $jwt->mint(
    keys => [ { name => 'hs', type => 'oct', bytes => 32 } ],
    tokens => \%spec,
);

$t->run(<<"EOF");
http {
    sse_zone sse 8m history=10;
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_auth_jwt on;
        sse_auth_jwt_key_secret $K/hs.secret;

        location /sub { sse_subscribe \$arg_ch; }
        location ~ "^/dsub/(?<chs>.*)\$" { sse_subscribe \$chs; }
        location /l60 { sse_subscribe \$arg_ch; sse_auth_jwt_leeway 60s; }
        location /l0  { sse_subscribe \$arg_ch; sse_auth_jwt_leeway 0s; }
        location /issaud { sse_subscribe \$arg_ch;
                           sse_auth_jwt_issuer https://issuer.example;
                           sse_auth_jwt_audience sse-hub; }
        location /pub { sse_publish \$arg_ch; }
        location /info { sse_auth_jwt off; sse_publish \$arg_ch; }
    }
}
EOF

sub bearer { return { Authorization => "Bearer $_[0]" } }

sub ok200 {
    my ($path, $name, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->head($path, headers => bearer($tok->{$name}));
    is($r->status, 200, "$what: 200") or diag($r->describe);
}

sub no401 {
    my ($path, $name, $reason, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    refused($t->get($path, headers => bearer($tok->{$name})), 401, 'invalid_token',
        $reason, "$what: 401");
}

sub no403 {
    my ($path, $name, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    refused($t->get($path, headers => bearer($tok->{$name})), 403, 'insufficient_scope',
        undef, "$what: 403");
}

# -- exp, nbf, iat and the leeway -----------------------------------------------

ok200('/l60?ch=a', 'exp_past_in_leeway', 'leeway 60 s, exp 30 s ago');
no401('/l60?ch=a', 'exp_past_beyond', 'expired', 'leeway 60 s, exp 90 s ago');
ok200('/l60?ch=a', 'nbf_future_in_leeway', 'leeway 60 s, nbf in 30 s');
no401('/l60?ch=a', 'nbf_future_beyond', 'not_yet_valid', 'leeway 60 s, nbf in 90 s');
ok200('/l60?ch=a', 'nbf_past', 'nbf long past');
ok200('/l60?ch=a', 'iat_future_in_leeway', 'leeway 60 s, iat in 30 s');
no401('/l60?ch=a', 'iat_future_beyond', 'not_yet_valid', 'leeway 60 s, iat in 90 s');
ok200('/l60?ch=a', 'iat_past', 'iat long past');
for my $c (['exp', sub { no401('/l60?ch=a', $_[0], 'expired',
                 'leeway 60 s, exp + leeway is this second (or just past)') }],
           ['nbf', sub { ok200('/l60?ch=a', $_[0],
                 'leeway 60 s, nbf - leeway is this second (or just past)') }],
           ['iat', sub { ok200('/l60?ch=a', $_[0],
                 'leeway 60 s, iat - leeway is this second (or just past)') }])
{
    my ($claim, $check) = @$c;
    my $k = int(time) - $now;
    if ($k > 20) { fail("$claim edge: more than 20 s since minting"); next }
    $check->("${claim}_edge_$k");
}

ok200('/sub?ch=a', 'exp_past_15', 'default leeway (30 s), exp 15 s ago');
no401('/sub?ch=a', 'exp_past_60', 'expired', 'default leeway (30 s), exp 60 s ago');
ok200('/sub?ch=a', 'exp_future', 'exp in an hour');

no401('/l0?ch=a', 'exp_past_2', 'expired', 'leeway 0, exp 2 s ago');
ok200('/l0?ch=a', 'exp_future', 'leeway 0, exp in an hour');
no401('/l0?ch=a', 'nbf_future_30', 'not_yet_valid', 'leeway 0, nbf in 30 s');
no401('/l0?ch=a', 'iat_future_30', 'not_yet_valid', 'leeway 0, iat in 30 s');

# -- iss and aud -------------------------------------------------------------

ok200('/issaud?ch=a', 'ia_ok', 'iss and aud as configured');
ok200('/issaud?ch=a', 'ia_aud_array', 'aud an array holding the audience');
no401('/issaud?ch=a', 'ia_aud_array_no', 'bad_audience', 'aud an array without it');
no401('/issaud?ch=a', 'ia_aud_wrong', 'bad_audience', 'another aud');
no401('/issaud?ch=a', 'ia_aud_prefix', 'bad_audience', 'aud a prefix of the audience');
no401('/issaud?ch=a', 'ia_aud_missing', 'bad_audience', 'no aud');
no401('/issaud?ch=a', 'ia_iss_wrong', 'bad_issuer', 'another iss');
no401('/issaud?ch=a', 'ia_iss_case', 'bad_issuer', 'iss differing in case');
no401('/issaud?ch=a', 'ia_iss_slash', 'bad_issuer', 'iss with a trailing slash');
no401('/issaud?ch=a', 'ia_iss_missing', 'bad_issuer', 'no iss');
no401('/issaud?ch=a', 'ia_iss_number', undef, 'iss a number');
ok200('/sub?ch=a', 'ia_iss_wrong', 'iss and aud are not checked where not configured');

# -- channel patterns ----------------------------------------------------------

ok200('/sub?ch=news', 'p_news', 'exact pattern news, channel news');
no403('/sub?ch=news2', 'p_news', 'exact pattern news, channel news2');
no403('/sub?ch=new', 'p_news', 'exact pattern news, channel new');
no403('/sub?ch=sport', 'p_news', 'exact pattern news, channel sport');

ok200('/sub?ch=user:42:a', 'p_user42', 'user:42:* matches user:42:a');
ok200('/sub?ch=user:42:', 'p_user42', 'user:42:* matches user:42: (zero bytes)');
ok200('/sub?ch=user:42:a:b:*', 'p_user42', 'user:42:* matches user:42:a:b:*');
no403('/sub?ch=user:42', 'p_user42', 'user:42:* does not match user:42');
no403('/sub?ch=user:420:a', 'p_user42', 'user:42:* does not match user:420:a');
no403('/sub?ch=user:4', 'p_user42', 'user:42:* does not match user:4');
no403('/sub?ch=user:43:a', 'p_user42', 'user:42:* does not match user:43:a');
no403('/sub?ch=xuser:42:a', 'p_user42', 'user:42:* does not match xuser:42:a');

ok200('/sub?ch=anything', 'p_star', '* matches anything');
ok200('/sub?ch=a,b,user:1', 'p_star', '* matches several channels');

ok200('/sub?ch=a*b', 'p_inner_star', 'a*b matches the channel a*b itself');
no403('/sub?ch=axb', 'p_inner_star', 'a*b is no wildcard: not axb');
no403('/sub?ch=ab', 'p_inner_star', 'a*b is no wildcard: not ab');

no403('/sub?ch=user:2', 'p_other', 'a token for user:1 cannot read user:2');
no403('/sub?ch=a', 'p_empty', 'an empty subscribe list allows nothing');
no403('/sub?ch=a', 'p_publish_only', 'a publish-only token cannot subscribe');
no403('/sub?ch=a', 'p_no_sse', 'no sse claim allows nothing');

ok200('/sub?ch=x:', 'p_prefix_empty', 'x:* matches x:');
no403('/sub?ch=x', 'p_prefix_empty', 'x:* does not match x');

# -- multi-channel: every channel must be allowed ----------------------------

ok200('/sub?ch=a,b', 'p_ab', 'channels a,b with [a, b]');
ok200('/dsub/b%20a', 'p_ab', 'channels "b a" (a space) with [a, b]');
no403('/dsub/a%20c', 'p_ab', 'channels "a c" (a space) with [a, b]');
no403('/sub?ch=a,c', 'p_ab', 'a,c with [a, b] (the second not allowed)');
no403('/sub?ch=c,a', 'p_ab', 'c,a with [a, b] (the first not allowed)');
no403('/sub?ch=a,b,c', 'p_ab', 'a,b,c with [a, b] (the last not allowed)');
ok200('/sub?ch=' . join(',', map { "m$_" } 1 .. 63), 'p_many', '63 channels, all allowed');
no403('/sub?ch=' . join(',', map { "m$_" } 1 .. 63) . ',m64', 'p_many',
    '64 channels, the 64th not allowed');
no403('/sub?ch=' . join(',', 'm64', map { "m$_" } 1 .. 63), 'p_many',
    '64 channels, the first not allowed');

# -- publish: refused publishes store nothing ------------------------------

my $r = $t->publish('/pub?ch=news', 'ok', %{bearer($tok->{pub_news})});
is($r->status, 202, 'publish: [news] publishes to news: 202');
is(($t->channel_info('/info?ch=news') // {})->{events}, 1, '... one event stored');

refused($t->publish('/pub?ch=sport', 'no', %{bearer($tok->{pub_news})}),
    403, 'insufficient_scope', undef, 'publish: [news] cannot publish to sport');
refused($t->publish('/pub?ch=news,sport', 'no', %{bearer($tok->{pub_news})}),
    403, 'insufficient_scope', undef, 'nor to news and sport at once');
refused($t->publish('/pub?ch=sport,news', 'no', %{bearer($tok->{pub_news})}),
    403, 'insufficient_scope', undef, 'nor to sport and news');
refused($t->publish_stream('/pub?ch=news,sport', "data: one\n\ndata: two\n\n",
        %{bearer($tok->{pub_news})}),
    403, 'insufficient_scope', undef, 'nor an event-stream body to news and sport');
refused($t->publish('/pub?ch=news', 'no', %{bearer($tok->{p_news})}),
    403, 'insufficient_scope', undef, 'a subscribe-only token cannot publish');
refused($t->publish('/pub?ch=news', 'no', %{bearer($tok->{exp_past_60})}),
    401, 'invalid_token', 'expired', 'an expired token cannot publish');
refused($t->publish('/pub?ch=news', 'no'), 401, undef, undef, 'no token cannot publish');
refused($t->request('DELETE', '/pub?ch=news', headers => bearer($tok->{p_news})),
    403, 'insufficient_scope', undef, 'a subscribe-only token cannot DELETE');
refused($t->request('DELETE', '/pub?ch=news'), 401, undef, undef, 'nor no token');

is(($t->channel_info('/info?ch=news') // {})->{events}, 1, 'news still holds one event');
is($t->channel_info('/info?ch=sport'), undef, 'sport does not exist (404)');

$r = $t->publish('/pub?ch=user:42:inbox', 'hi', %{bearer($tok->{pub_user42})});
is($r->status, 202, 'publish: [user:42:*] publishes to user:42:inbox');
refused($t->publish('/pub?ch=user:420:inbox', 'no', %{bearer($tok->{pub_user42})}),
    403, 'insufficient_scope', undef, '... not to user:420:inbox');
refused($t->publish('/pub?ch=user:42', 'no', %{bearer($tok->{pub_user42})}),
    403, 'insufficient_scope', undef, '... nor to user:42');
is($t->channel_info('/info?ch=user:420:inbox'), undef, 'user:420:inbox does not exist');
is($t->channel_info('/info?ch=user:42'), undef, 'user:42 does not exist');

# every refusal: one line at info, none higher
my @lines = split /\n/, $t->error_log;
my @high = grep { /\[(warn|error|crit|alert|emerg)\]/ } @lines;
ok(!@high, 'no log line above info') or diag(join "\n", @high[0 .. ($#high < 9 ? $#high : 9)]);

$t->done;
