# Where the token comes from (Authorization: Bearer, else the cookie
# sse_token; or token=<value> alone, e.g. $cookie_x or $arg_access_token),
# and the variables $sse_jwt_sub and $sse_jwt_claim_NAME: per-user channels
# with no application in the path, and no way for a sub to reach another
# user's channel.

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
    keys => [ { name => 'ec', type => 'EC', crv => 'P-256' } ],
    tokens => {
        any     => { key => 'ec', claims => claims(subscribe => ['*']) },
        expired => { key => 'ec', claims => claims(subscribe => ['*'], exp => time - 3600) },
        u42     => { key => 'ec', claims => claims(sub => '42', subscribe => ['user:42'],
                                                   team => 'red', level => 3,
                                                   perms => { a => [1, 2] }) },
        u7      => { key => 'ec', claims => claims(sub => '7', subscribe => ['user:*'],
                                                   team => 'blue') },
        u42_not_own => { key => 'ec', claims => claims(sub => '42', subscribe => ['user:7']) },
        u_comma => { key => 'ec', claims => claims(sub => '42,admin', subscribe => ['user:*']) },
        u_space => { key => 'ec', claims => claims(sub => '42 admin', subscribe => ['user:*']) },
        teamred => { key => 'ec', claims => claims(team => 'red', subscribe => ['team:red']) },
    },
);

$t->run(<<"EOF");
http {
    sse_zone sse 8m history=10;
    sse_auth_jwt_key_file $K/ec.pem;
    server {
        listen 127.0.0.1:%%PORT%%;

        location /default { sse_auth_jwt on; sse_subscribe \$arg_ch; }
        location /cookie-x { sse_auth_jwt on token=\$cookie_x; sse_subscribe \$arg_ch; }
        location /arg { sse_auth_jwt on token=\$arg_access_token; sse_subscribe \$arg_ch; }

        location /me { sse_auth_jwt on; sse_subscribe user:\$sse_jwt_sub;
                       add_header X-Sub "\$sse_jwt_sub" always;
                       add_header X-Team "\$sse_jwt_claim_team" always;
                       add_header X-Level "\$sse_jwt_claim_level" always;
                       add_header X-Perms "\$sse_jwt_claim_perms" always;
                       add_header X-None "[\$sse_jwt_claim_nothing]" always; }
        location /team { sse_auth_jwt on; sse_subscribe team:\$sse_jwt_claim_team;
                         sse_auth_jwt_key_file $K/ec.pem; }

        location /pub { sse_publish \$arg_ch; }
    }
}
EOF

sub ok200 {
    my ($path, $headers, $what) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $r = $t->head($path, headers => $headers);
    is($r->status, 200, "$what: 200") or diag($r->describe);
    return $r;
}

# -- default sources: Authorization: Bearer, else the cookie sse_token ------

ok200('/default?ch=a', { Authorization => "Bearer $tok->{any}" }, 'Authorization: Bearer');
ok200('/default?ch=a', { Authorization => "bearer $tok->{any}" },
    'the auth-scheme is case-insensitive (RFC 7235): bearer');
ok200('/default?ch=a', { Cookie => "sse_token=$tok->{any}" }, 'cookie sse_token');
ok200('/default?ch=a', { Cookie => "a=1; sse_token=$tok->{any}; b=2" },
    'cookie sse_token among others');
ok200('/default?ch=a', { Authorization => "Bearer $tok->{any}",
                         Cookie => "sse_token=$tok->{expired}" },
    'a valid header and an expired cookie: the header is used');
refused($t->get('/default?ch=a', headers => { Authorization => "Bearer $tok->{expired}",
                                              Cookie => "sse_token=$tok->{any}" }),
    401, 'invalid_token', 'expired', 'an expired header and a valid cookie: the header is used');
refused($t->get('/default?ch=a', headers => { Cookie => "x=$tok->{any}" }),
    401, undef, undef, 'a token in another cookie is no token');
refused($t->get("/default?ch=a&access_token=$tok->{any}"),
    401, undef, undef, 'a token in the query is no token by default');
refused($t->get('/default?ch=a', headers => { Cookie => "my_sse_token=$tok->{any}" }),
    401, undef, undef, 'a cookie whose name ends in sse_token is not sse_token');

# -- token=$cookie_x: that alone ------------------------------------------

ok200('/cookie-x?ch=a', { Cookie => "x=$tok->{any}" }, 'token=$cookie_x, cookie x');
refused($t->get('/cookie-x?ch=a', headers => { Authorization => "Bearer $tok->{any}" }),
    401, undef, undef, 'token=$cookie_x: the Authorization header is not looked at');
refused($t->get('/cookie-x?ch=a', headers => { Cookie => "sse_token=$tok->{any}" }),
    401, undef, undef, 'token=$cookie_x: nor the cookie sse_token');
refused($t->get('/cookie-x?ch=a', headers => { Cookie => "x=$tok->{expired}" }),
    401, 'invalid_token', 'expired', 'token=$cookie_x: an expired token');

# -- token=$arg_access_token -------------------------------------------------

ok200("/arg?ch=a&access_token=$tok->{any}", {}, 'token=$arg_access_token');
refused($t->get('/arg?ch=a', headers => { Authorization => "Bearer $tok->{any}" }),
    401, undef, undef, 'token=$arg_access_token: not the header');
refused($t->get("/arg?ch=a&access_token=$tok->{expired}"),
    401, 'invalid_token', 'expired', 'token=$arg_access_token: an expired token');

# -- $sse_jwt_sub: every user their own channel ------------------------------

my $s42 = $t->subscribe('/me', headers => { Cookie => "sse_token=$tok->{u42}" });
is($s42->status, 200, 'sse_subscribe user:$sse_jwt_sub, sub 42');
my $s7 = $t->subscribe('/me', headers => { Cookie => "sse_token=$tok->{u7}" });
is($s7->status, 200, '... and sub 7 (allowed user:*)');

is($t->publish('/pub?ch=user:42', 'for 42')->status, 201, 'publish to user:42: a subscriber');
is($t->publish('/pub?ch=user:7', 'for 7')->status, 201, 'publish to user:7: a subscriber');
is($t->publish('/pub?ch=user:420', 'for 420')->status, 202, 'publish to user:420: none');
ok($s42->wait_events(1, 3) && $s7->wait_events(1, 3), 'each gets an event');
ok(!$s42->wait_events(2, 0.3), 'and only one');
is_deeply([$s42->data], ['for 42'], 'sub 42 gets user:42');
is_deeply([$s7->data], ['for 7'], 'sub 7 gets user:7');

is($s42->header('x-sub'), '42', '$sse_jwt_sub in add_header: 42');
is($s42->header('x-team'), 'red', '$sse_jwt_claim_team: a string claim as its text');
is($s42->header('x-level'), '3', '$sse_jwt_claim_level: a number as its JSON text');
is($s42->header('x-perms'), '{"a":[1,2]}', '$sse_jwt_claim_perms: an object as its JSON text');
is($s42->header('x-none'), '[]', '$sse_jwt_claim_nothing: empty when absent');
$s42->close;
$s7->close;

refused($t->get('/me', headers => { Cookie => "sse_token=$tok->{u42_not_own}" }),
    403, 'insufficient_scope', undef, 'sub 42 whose token allows only user:7: 403');
refused($t->get('/me', headers => { Cookie => "sse_token=$tok->{u_comma}" }),
    403, 'insufficient_scope', undef,
    'sub "42,admin" makes channels user:42 and admin: admin is not allowed');
refused($t->get('/me', headers => { Cookie => "sse_token=$tok->{u_space}" }),
    403, 'insufficient_scope', undef,
    'sub "42 admin": the same with a space');
refused($t->get('/me'), 401, undef, undef, 'no token at /me: 401');

# -- $sse_jwt_claim_NAME in sse_subscribe -----------------------------------

my $team = $t->subscribe('/team', headers => { Authorization => "Bearer $tok->{teamred}" });
is($team->status, 200, 'sse_subscribe team:$sse_jwt_claim_team, team red');
is($t->publish('/pub?ch=team:red', 'red news')->status, 201, 'publish to team:red');
ok($team->wait_events(1, 3), '... arrives');
is_deeply([$team->data], ['red news'], '... on the team:red stream');
$team->close;

refused($t->get('/team', headers => { Authorization => "Bearer $tok->{u7}" }),
    403, 'insufficient_scope', undef, 'team:blue is not in user:*: 403');

$t->done;
