# docs/directives.md against the module (issue 12 item 9).
#
#  - Names: every directive the module registers (the ngx_command_t arrays
#    of src/*/*.cpp) has a "Syntax: / Default: / Context:" block under a
#    heading of its own name, and the page documents no directive the
#    module does not have.  The same for the embedded variables (the
#    ngx_http_variable_t arrays) and the page's "Embedded variables".
#  - Contexts: the page's Context line is the command's flags
#    (NGX_HTTP_MAIN_CONF: http, _SRV_CONF: server, _LOC_CONF: location).
#  - An example: each directive's section shows it in use.
#  - Defaults: each "Default: name value;" is what the module does without
#    the directive, checked by a probe below fed the documented value, next
#    to a location that sets another value (so that the probe can tell the
#    two apart).  sse_heartbeat's default is checked by
#    t/550-spec-defaults.t (a 15 s wait): here, that t/550 checks the value
#    the page gives.  A documented default without a probe fails.
#
# Nothing here names a directive: new ones are found in src/ and on the page.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use SSETest;
use SSETest::JWT qw(claims);

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    local $/;
    return <$fh>;
}

my $root = repo_root();

# -- what the module registers ---------------------------------------------------

my %CONTEXT = (NGX_HTTP_MAIN_CONF => 'http', NGX_HTTP_SRV_CONF => 'server',
    NGX_HTTP_LOC_CONF => 'location', NGX_HTTP_SIF_CONF => 'if in server',
    NGX_HTTP_LIF_CONF => 'if in location', NGX_HTTP_LMT_CONF => 'limit_except');

my (%command, %variable);
for my $file (sort glob "$root/src/*/*.cpp") {
    my $src = slurp($file);
    my %define;
    while ($src =~ /^#define[ \t]+(\w+)[ \t]+((?:[^\n\\]|\\\n)*)/mg) {
        my ($name, $value) = ($1, $2);
        $value =~ s/\\\n/ /g;
        $define{$name} = $value;
    }
    my $expand = sub {
        my ($text) = @_;
        # macros of macros: a few rounds are plenty
        for (1 .. 5) {
            $text =~ s/\b([A-Za-z_]\w*)\b/exists $define{$1} ? "($define{$1})" : $1/ge;
        }
        return $text;
    };
    my $short = $file =~ s{.*/}{}r;
    while ($src =~ /ngx_command_t\s+\w+\[\]\s*=\s*\{(.*?)ngx_null_command/sg) {
        my $array = $1;
        while ($array =~ /\{\s*ngx_string\("([^"]+)"\)\s*,\s*([^,]+),/g) {
            my ($name, $flags) = ($1, $expand->($2));
            my @ctx = map { $CONTEXT{$_} } grep { $CONTEXT{$_} } $flags =~ /(\w+)/g;
            $command{$name} = { contexts => [sort @ctx], file => $short };
        }
    }
    while ($src =~ /ngx_http_variable_t\s+\w+\[\]\s*=\s*\{(.*?)ngx_http_null_variable/sg) {
        my $array = $1;
        while ($array =~ /\{\s*ngx_string\(([^)]+)\)\s*,([^}]*)\}/g) {
            my ($raw, $rest) = ($1, $2);
            my $name = $expand->($raw);
            ($name) = $name =~ /"([^"]+)"/ or next;
            $variable{$name} = $rest =~ /NGX_HTTP_VAR_PREFIX/ ? 'prefix' : 'exact';
        }
    }
}
cmp_ok(scalar keys %command, '>=', 18, 'the module\'s directives are found in src/ ('
    . join(' ', sort keys %command) . ')');
ok(scalar keys %variable, 'its variables too (' . join(' ', sort keys %variable) . ')');

# -- what the page documents ----------------------------------------------------------

my $page = slurp("$root/docs/directives.md");

# each "### name" section up to the next heading
my %section;
while ($page =~ /^### (\S+)\n(.*?)(?=^#{1,3} |\z)/msg) {
    $section{$1} = $2;
}

my %doc;
while ($page =~ /^ {4}Syntax:\s+(\w+)[^\n]*\n((?: {4}\s[^\n]*\n)*?) {4}Default:[ \t]*([^\n]*)\n {4}Context:[ \t]*([^\n]*)\n/mg) {
    my ($name, $default, $context) = ($1, $3, $4);
    ok(!exists $doc{$name}, "$name has one Syntax block");
    $doc{$name} = { default => $default, contexts => [sort split /,\s*/, $context] };
}

is_deeply([sort grep { !$doc{$_} } keys %command], [],
    'every directive of the module has a Syntax / Default / Context block in docs/directives.md');
is_deeply([sort grep { !$command{$_} } keys %doc], [],
    'docs/directives.md documents no directive the module does not have');

for my $name (sort grep { $command{$_} } keys %doc) {
    is_deeply($doc{$name}{contexts}, $command{$name}{contexts},
        "$name: Context is " . join(', ', @{$command{$name}{contexts}}));
    my $text = $section{$name};
    ok(defined $text && $text =~ /Syntax:\s+\Q$name\E\b/,
        "$name: its block is under a heading of its own name");
    my $after = defined $text ? ($text =~ s/.*?\n {4}Context:[^\n]*\n//sr) : '';
    like($after, qr/^ {4,}\s*\Q$name\E(?:\s|;)/m, "$name: prose, then an example using it");
    like($doc{$name}{default}, qr/^(?:—|\Q$name\E \S.*;)$/,
        "$name: Default is '—' or '$name <value>;'");
}

# embedded variables: the terms of the page's "Embedded variables" section
my ($vars) = $page =~ /^## Embedded variables\n(.*?)(?=^## |\z)/ms;
my %doc_var;
$doc_var{$1} = 1 while ($vars // '') =~ /^`\$(\w+)`/mg;
is_deeply([sort keys %doc_var], [sort keys %variable],
    'the "Embedded variables" section lists exactly the module\'s variables');
for my $v (sort grep { $variable{$_} eq 'prefix' } keys %variable) {
    like($vars // '', qr/^`\$\Q$v\E`\*\w+\*/m, "\$$v is shown as a prefix (\$$v*name*)");
}

# -- the documented defaults, run --------------------------------------------------------

my %probe;       # directive => sub ($t, $value), filled below

my $t = SSETest->new(workers => 1);
my $jwt = SSETest::JWT->new($t);
my ($leeway) = ($doc{sse_auth_jwt_leeway}{default} // '') =~ /^\S+ (\d+)s;/;
$leeway //= 30;
my $tok = $jwt->mint(
    keys   => [ { name => 'hs', type => 'oct', bytes => 32 },
                # for the examples' key files (nginx -t below)
                { name => 'ec', type => 'EC', crv => 'P-256' },
                { name => 'rsa', type => 'RSA' } ],
    jwks   => [ { file => 'set.jwks', keys => [ { key => 'ec', kid => 'e1' } ] } ],
    tokens => {
        within => { key => 'hs', claims => claims(exp => int(time) - ($leeway - 10),
                                                  subscribe => ['*']) },
        beyond => { key => 'hs', claims => claims(exp => int(time) - ($leeway + 10),
                                                  subscribe => ['*']) },
    },
);

$t->run(<<'EOF');
http {
    sse_zone sse 16m;
    sse_auth_jwt_key_secret %%TESTDIR%%/keys/hs.secret;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% sndbuf=4k;

        # every directive at its default
        location /sub  { sse_subscribe $arg_ch; }
        location /pub  { sse_publish $arg_ch; client_max_body_size 1m; }
        location = /status { sse_status; }

        # each with another value: the probes can tell them apart
        location /retry    { sse_subscribe $arg_ch; sse_retry 2s; }
        location /replay   { sse_subscribe $arg_ch; sse_replay all; }
        location /reset    { sse_subscribe $arg_ch; sse_reset_event other; }
        location /life     { sse_subscribe $arg_ch; sse_lifetime 1s; }
        location /auth     { sse_subscribe $arg_ch; sse_auth_jwt on; }
        location /cors     { sse_subscribe $arg_ch; sse_cors_origins https://a.example; }
    }
}
EOF

sub ms_of {
    my ($v) = @_;
    my %unit = (ms => 1, s => 1000, m => 60000, h => 3600000);
    my ($n, $u) = $v =~ /^(\d+)(ms|s|m|h)?$/ or return undef;
    return $n * $unit{$u // 's'};
}

sub bytes_of {
    my ($v) = @_;
    my ($n, $u) = $v =~ /^(\d+)([kKmM])?$/ or return undef;
    return $n * ({ k => 1024, m => 1024 * 1024 }->{lc($u // '')} // 1);
}

$probe{sse_heartbeat} = sub {
    my ($value) = @_;
    my $t550 = slurp("$root/t/550-spec-defaults.t");
    my ($checked) = $t550 =~ /sse_heartbeat (\S+) by default/;
    is($checked, $value, "sse_heartbeat: t/550-spec-defaults.t checks the default $value");
    my $bound = ms_of($value) / 1000 - 0.5;
    like($t550, qr/cmp_ok\(\$gap, '>', \Q$bound\E,/,
        '... by the gap between two heartbeats');
};

# a TLS Redis is t/703's: its "a wrong CA" case leaves sse_redis_ssl_verify
# unset and expects the link down with a verify error
$probe{sse_redis_ssl_verify} = sub {
    my ($value) = @_;
    my $t703 = slurp("$root/t/703-redis-tls.t");
    my ($case) = $t703 =~ /(with_nginx\("[^;]*;"\s*\.\s*"[^"]*other-ca[^"]*",\s*'a wrong CA', sub \{.*?\n\}, expect_log)/s;
    ok($case, "sse_redis_ssl_verify: t/703-redis-tls.t has a wrong-CA case");
    is($value, 'on', '... the documented default is on');
    unlike($case // 'sse_redis_ssl_verify', qr/sse_redis_ssl_verify/, '... which leaves the directive unset');
    like($case // '', qr/\$wait->\('down'\).*certificate verify error/s,
         '... and expects the link down for a certificate that does not verify');
};

$probe{sse_retry} = sub {
    my ($value) = @_;
    my $s = $t->subscribe('/sub?ch=r');
    ok($s->wait_comment(tmo(2)), 'sse_retry: a stream at the default');
    is($s->retry, $value eq 'off' ? undef : ms_of($value), "... retry field as for '$value'");
    my $c = $t->subscribe('/retry?ch=r');
    ok($c->wait_comment(tmo(2)) && ($c->retry // 0) == 2000, '... (sse_retry 2s gives retry: 2000)');
    $_->close for $s, $c;
};

$probe{sse_replay} = sub {
    my ($value) = @_;
    $t->publish('/pub?ch=rp', "old$_") for 1 .. 3;
    my $s = $t->subscribe('/sub?ch=rp');
    my $c = $t->subscribe('/replay?ch=rp');
    ok($c->wait_events(3, tmo(2)), 'sse_replay: sse_replay all replays the 3 stored events');
    my $n = $value eq 'none' ? 0 : $value eq 'all' ? 3 : ($value > 3 ? 3 : $value);
    $t->publish('/pub?ch=rp', 'live');
    ok($s->wait_events($n + 1, tmo(2)), "... at the default '$value'");
    my @old = map { "old$_" } 1 .. 3;
    is_deeply([$s->data], [@old[3 - $n .. 2], 'live'],
        "... $n replayed, then the live one");
    $_->close for $s, $c;
};

$probe{sse_reset_event} = sub {
    my ($value) = @_;
    $t->publish('/pub?ch=re', 'x');
    my %type;
    for my $loc (qw(sub reset)) {
        my $s = $t->subscribe("/$loc?ch=re", headers => { 'Last-Event-ID' => 'garbage' });
        my $e = $s->next_event(tmo(2));
        $type{$loc} = $e && $e->{type};
        $s->close;
    }
    is($type{reset}, 'other', 'sse_reset_event: sse_reset_event other names the reset "other"');
    if ($value eq 'off') {
        isnt($type{sub}, 'reset', '... at the default off, no reset event');
    } else {
        is($type{sub}, $value, "... at the default, \"$value\"");
    }
};

$probe{sse_max_pending} = sub {
    my ($value) = @_;
    my $limit = bytes_of($value);
    # a subscriber that never reads, on a socket with small buffers on both
    # sides (sndbuf=4k, rcvbuf 4k: well under 64 KB in the kernel)
    my $s = $t->subscribe('/sub?ch=mp', rcvbuf => 4096, port => 2, keep_raw => 0);
    my $ev = 'p' x 8192;
    my $dropped = sub { $t->zone_status->{dropped_slow} // -1 };
    my $before = $dropped->();
    my $sent = 0;
    while ($sent + 8192 <= $limit - 65536) { $t->publish('/pub?ch=mp', $ev); $sent += 8192 }
    ok(!wait_until(sub { $dropped->() > $before }, 0.5),
        sprintf('sse_max_pending: %d KB behind is within the default %s', $sent / 1024, $value));
    while ($sent <= $limit + 65536) { $t->publish('/pub?ch=mp', $ev); $sent += 8192 }
    ok(wait_until(sub { $dropped->() > $before }, tmo(3)),
        sprintf('... %d KB behind is beyond it: dropped as too slow', $sent / 1024));
    $s->close;
};

$probe{sse_lifetime} = sub {
    my ($value) = @_;
    my $s = $t->subscribe('/sub?ch=lt');
    my $c = $t->subscribe('/life?ch=lt');
    ok($c->wait_closed(tmo(4)), 'sse_lifetime: sse_lifetime 1s ends its stream');
    if ($value eq 'off') {
        ok(!$s->is_closed, '... the default (off) keeps the other open past it');
    } else {
        ok($s->wait_closed(ms_of($value) / 1000 + tmo(2)), "... the default $value ends it");
    }
    $_->close for $s, $c;
};

$probe{sse_auth_jwt} = sub {
    my ($value) = @_;
    is($t->head('/auth?ch=a')->status, 401, 'sse_auth_jwt: on, without a token: 401');
    is($t->head('/sub?ch=a')->status, $value eq 'off' ? 200 : 401,
        "... at the default ($value), with keys configured: "
        . ($value eq 'off' ? 200 : 401));
};

$probe{sse_auth_jwt_leeway} = sub {
    my ($value) = @_;
    is($t->head('/auth?ch=a', headers => { Authorization => "Bearer $tok->{within}" })->status,
        200, "sse_auth_jwt_leeway: a token expired 10 s within the default $value: 200");
    is($t->head('/auth?ch=a', headers => { Authorization => "Bearer $tok->{beyond}" })->status,
        401, "... one expired 10 s beyond it: 401");
};

$probe{sse_cors_origins} = sub {
    my ($value) = @_;
    my %h = (Origin => 'https://a.example');
    is($t->head('/cors?ch=c', headers => \%h)->header('access-control-allow-origin'),
        'https://a.example', 'sse_cors_origins: a listed origin gets Access-Control-Allow-Origin');
    my $r = $t->head('/sub?ch=c', headers => \%h);
    is($r->status, 200, "... at the default ($value)");
    if ($value eq 'off') {
        is($r->header('access-control-allow-origin'), undef, '... no CORS header for any origin');
    } else {
        fail("no probe for a default of '$value'");
    }
};

for my $name (sort keys %doc) {
    my ($value) = $doc{$name}{default} =~ /^\Q$name\E (.*);$/ or next;
    if (!$probe{$name}) {
        fail("$name: the documented default '$value' is checked nowhere: add a probe to t/621");
        next;
    }
    $probe{$name}->($value);
}

# -- every example is a valid configuration -----------------------------------------------

# The example configuration, and each directive's examples at the level
# their context allows, pass `nginx -t` (the key files they name replaced
# by ones made above: .jwks a JWKS, .pem an RSA key, .secret a secret).
# What an example takes from elsewhere is declared at the http level first:
# a zone "ops", and a key (sse_auth_jwt on needs one).
my $check = SSETest->new(workers => 1);
my $keys = $jwt->dir;
sub runnable {
    my ($text) = @_;
    $text =~ s{/etc/nginx/\S+\.jwks}{$keys/set.jwks}g;
    $text =~ s{/etc/nginx/\S+\.pem}{$keys/rsa.pem}g;
    $text =~ s{/etc/nginx/\S+\.secret}{$keys/hs.secret}g;
    $text =~ s{^(\s*load_module\s+)\S+;}{$1%%MODULE%%;}m;
    $text =~ s{^(\s*listen\s+)\d+;}{${1}127.0.0.1:%%PORT%%;}mg;
    return $text;
}
sub nginx_t {
    my ($conf, $name) = @_;
    $conf =~ s/^http \{\n/http {\n sse_zone ops 8m;\n sse_auth_jwt_key_secret $keys\/hs.secret;\n/
        or $conf =~ s/^(\s*)http \{\n/$1http {\n$1    sse_zone ops 8m;\n/m;
    my ($rc, $out) = $check->test_config(runnable($conf));
    is($rc, 0, "nginx -t: $name") or diag("$out\n$conf");
}

my ($example) = $page =~ /^## Example configuration\n\n((?: {4}[^\n]*\n|\n)+)/m;
ok($example && $example =~ /^\s*http \{/m, 'the page has an example configuration');
nginx_t($example =~ s/^ {4}//mgr, 'the example configuration');

sub examples {          # the indented blocks of a text, unindented
    my ($text) = @_;
    my @blocks;
    for my $para (split /\n\s*\n/, $text) {
        next unless $para =~ /\S/ && $para !~ /^(?! {4}|\s*$)/m;
        my ($indent) = $para =~ /^( +)/;
        push @blocks, $para =~ s/^$indent//mgr;
    }
    return @blocks;
}

my $server = "listen 127.0.0.1:%%PORT%%;";
for my $name (sort grep { $command{$_} } keys %section) {
    my $after = $section{$name} =~ s/.*?\n {4}Context:[^\n]*\n//sr;
    my @ctx = @{$command{$name}{contexts}};
    my $n = 0;
    for my $ex (examples($after)) {
        $n++;
        my $conf = $ex =~ /^\s*location\b/m
            ? "http {\n server {\n $server\n$ex\n }\n}\n"
            : (grep { $_ eq 'location' } @ctx)
            ? "http {\n server {\n $server\n location /probe {\n$ex\n }\n }\n}\n"
            : "http {\n$ex\n server {\n $server\n location /probe { sse_subscribe probe; }\n }\n}\n";
        nginx_t($conf, "$name, example $n");
    }
}
for my $ex (examples(($page =~ /^## ngx_http_sse_access_module\n(.*?)(?=^### )/ms)[0] // ''),
            examples($vars // ''))
{
    my $conf = $ex =~ /^\s*location\b/m
        ? "http {\n server {\n $server\n$ex\n }\n}\n"
        : "http {\n server {\n $server\n location /probe {\n$ex\n }\n }\n}\n";
    # http-level lines before a location (the module's introduction) go
    # to the http block
    nginx_t($conf =~ s/^(http \{\n)( server \{\n \Q$server\E\n)((?:(?!\s*location)[^\n]*\n)+)(?=\s*location)/$1$3$2/r,
        'an example of ngx_http_sse_access_module or its variables');
}

$t->done;
