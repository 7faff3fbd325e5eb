# Findings of a security review of tokens and CORS, each a regression test:
#  - $sse_jwt_sub in a location that inherits "sse_auth_jwt on" but neither
#    subscribes nor publishes (a static file, a 404, logged with the token's
#    cookie) is empty, and never takes the worker down;
#  - a request that moves to another location (rewrite ... last keeps module
#    contexts) is verified again with that location's keys and audience;
#  - a claim with a control byte is not given to a variable (no header or
#    upstream request splitting through add_header / proxy_set_header);
#  - CORS: an origin listed by name gets credentials even when "*" is in the
#    list too; "Vary: Origin" on every answer that depends on the Origin;
#  - sse_auth_jwt_leeway is at most a day.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::JWT qw(claims refused);

my $t = SSETest->new;
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my $tok = $jwt->mint(
    keys => [ { name => 'a', type => 'oct', bytes => 32 },
              { name => 'b', type => 'oct', bytes => 32 } ],
    tokens => {
        a     => { key => 'a', claims => claims(sub => '42', subscribe => ['*']) },
        a_crlf => { key => 'a', claims => claims(sub => "42\r\nX-Injected: 1",
                                               name => "x\ny", subscribe => ['*']) },
        b_pro => { key => 'b', claims => claims(sub => '7', aud => 'pro', subscribe => ['*']) },
    },
);

my $dir = $t->dir;
$t->run(<<"EOF");
http {
    log_format withsub '\$request_uri sub=[\$sse_jwt_sub] name=[\$sse_jwt_claim_name]';
    server {
        listen 127.0.0.1:%%PORT%%;

        sse_auth_jwt on;
        sse_auth_jwt_key_secret $K/a.secret;
        access_log $dir/sub.log withsub;

        # neither subscribes nor publishes: the variables are simply empty
        location /static {
            add_header X-Sub "[\$sse_jwt_sub]";
            return 200 "static\\n";
        }

        location /sub {
            add_header X-Sub "[\$sse_jwt_sub]";
            add_header X-Name "[\$sse_jwt_claim_name]";
            sse_subscribe \$arg_ch;
        }

        # evaluates the token with key a, then moves on to /strict
        location /hop {
            set \$seen \$sse_jwt_sub;
            rewrite ^ /strict last;
        }

        location /strict {
            sse_auth_jwt_key_secret $K/b.secret;
            sse_auth_jwt_audience pro;
            sse_subscribe news;
        }

        location /cors {
            sse_auth_jwt off;
            sse_cors_origins * https://app.example;
            sse_subscribe \$arg_ch;
        }

        location /cors-list {
            sse_auth_jwt off;
            sse_cors_origins https://app.example;
            sse_subscribe \$arg_ch;
        }
    }
}
EOF

my $bearer = sub { { Authorization => "Bearer $_[0]" } };
my $cookie = sub { { Cookie => "sse_token=$_[0]" } };

# -- variables outside sse locations -----------------------------------------

for my $path ('/static', '/missing-file-404') {
    my $r = $t->get($path, headers => $cookie->($tok->{a}));
    ok($r->status == 200 || $r->status == 404, "$path with a token cookie answers");
}
my $r = $t->get('/static', headers => $cookie->($tok->{a}));
is($r->header('X-Sub'), '[]', '$sse_jwt_sub is empty where tokens are not checked');
my @before = $t->workers;
$t->get('/static', headers => $cookie->($tok->{a_crlf}));
is_deeply([sort $t->workers], [sort @before], 'the workers are still the same processes');

# -- a request that changes location is verified there -----------------------

my $s = $t->subscribe('/hop', headers => $bearer->($tok->{a}), wait => 0);
$s->wait_headers(3);
is($s->status, 401, 'verified with key a in /hop, then refused in /strict (key b)');
$s->close;
$s = $t->subscribe('/hop', headers => $bearer->($tok->{b_pro}));
is($s->status, 200, 'a token of key b with aud "pro" passes /strict after the hop');
$s->close;

# -- control bytes in claims -------------------------------------------------

$s = $t->subscribe('/sub?ch=x', headers => $bearer->($tok->{a_crlf}));
is($s->status, 200, 'a token whose sub holds CR LF subscribes');
is($s->header('X-Sub'), '[]', '... but $sse_jwt_sub is empty');
is($s->header('X-Name'), '[]', '... and so is a claim with LF');
ok(!defined $s->header('X-Injected'), '... and no header was injected');
$s->close;
$s = $t->subscribe('/sub?ch=x', headers => $bearer->($tok->{a}));
is($s->header('X-Sub'), '[42]', 'a plain sub is given');
$s->close;

# -- CORS --------------------------------------------------------------------

$s = $t->subscribe('/cors?ch=c', headers => { Origin => 'https://app.example' });
is($s->header('Access-Control-Allow-Origin'), 'https://app.example',
   'listed by name next to "*": its own origin');
is($s->header('Access-Control-Allow-Credentials'), 'true', '... with credentials');
$s->close;
$s = $t->subscribe('/cors?ch=c', headers => { Origin => 'https://other.example' });
is($s->header('Access-Control-Allow-Origin'), '*', 'another origin: "*"');
ok(!defined $s->header('Access-Control-Allow-Credentials'), '... without credentials');
$s->close;

$s = $t->subscribe('/cors-list?ch=c', headers => { Origin => 'https://other.example' });
ok(!defined $s->header('Access-Control-Allow-Origin'), 'an unlisted origin: no CORS headers');
like($s->header('Vary') // '', qr/\bOrigin\b/, '... but Vary: Origin');
$s->close;
$s = $t->subscribe('/cors-list?ch=c');
like($s->header('Vary') // '', qr/\bOrigin\b/, 'no Origin at all: Vary: Origin too');
$s->close;

# -- the log line: written, with the variables empty where they must be ------

ok(wait_until(sub { (-s "$dir/sub.log" // 0) > 0 }, 3), 'the access log was written');
my $log = do { local (@ARGV, $/) = "$dir/sub.log"; <> } // '';
# (nginx writes "-" for a variable that was not found)
like($log, qr{^/static sub=\[-\] name=\[-\]$}m, 'logged with empty variables in /static');
unlike($log, qr/X-Injected: 1\n/, 'no raw CR LF from a claim in the log');

# -- leeway bound ------------------------------------------------------------

my ($rc, $out) = $t->test_config(<<"EOF");
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /s {
            sse_auth_jwt on;
            sse_auth_jwt_key_secret $K/a.secret;
            sse_auth_jwt_leeway 2d;
            sse_subscribe x;
        }
    }
}
EOF
isnt($rc, 0, 'nginx -t refuses a leeway of two days');
like($out, qr/\[emerg\][^\n]*sse_auth_jwt_leeway/, '... naming sse_auth_jwt_leeway');

$t->done;
