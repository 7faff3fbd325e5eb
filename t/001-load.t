# The module loads into the stock nginx binary, with and without any sse_
# directive, and the embedded default zone exists without any setup.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

# -- the module loads into a configuration that does not use it -----------

{
    my $t = SSETest->new(workers => 1);
    my ($rc, $out) = $t->test_config(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 200 "plain\n"; }
    }
}
EOF
    is($rc, 0, 'nginx -t accepts load_module of the module') or diag($out);
    like($out, qr/test is successful/, 'nginx -t reports success');

    $t->run;
    my $r = $t->get('/');
    is($r->status, 200, 'nginx with the module serves a plain location');
    is($r->body, "plain\n", '... with the right body');
    $t->stop;
    $t->check_log('no alert in a config without sse_ directives');
}

# -- the embedded default: sse_ locations without any sse_zone -------------

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe $arg_ch; }
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

is(scalar($t->active_workers), 2, 'two workers run');

my $st = $t->status;
ok($st && ref $st->{zones} eq 'HASH', 'sse_status returns JSON with zones')
    or diag(explain $st);
ok($st->{zones}{sse}, 'a zone named "sse" was created without any sse_zone');
is($st->{zones}{sse}{size}, 32 * 1024 * 1024, 'the default zone is 32m');
is($st->{zones}{sse}{channels}, 0, 'it starts with no channels');
is($st->{zones}{sse}{subscribers}, 0, 'and no subscribers');

# a round trip works in the default zone
my $s = $t->subscribe('/sub?ch=hello');
is($s->status, 200, 'subscribe in the default zone');
my $r = $t->publish('/pub?ch=hello', 'world');
is($r->status, 201, 'publish in the default zone reaches the subscriber');
my $e = $s->next_event(2);
is($e && $e->{data}, 'world', 'the subscriber got the event');

# -- a declared zone with every parameter ----------------------------------

my $t2 = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_zone events 4m history=10 history_ttl=10m channel_ttl=5m
             max_channels=100 max_subscribers=1000 max_message=64k;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe $arg_ch zone=events; }
        location /pub { sse_publish $arg_ch zone=events; }
        location = /status { sse_status; }
    }
}
EOF

$st = $t2->status;
ok($st->{zones}{events}, 'the declared zone is listed by sse_status')
    or diag(explain $st);
is($st->{zones}{events}{size}, 4 * 1024 * 1024, 'with its declared size');
ok(!$st->{zones}{sse}, 'no default zone when a zone is declared and used');

$r = $t2->publish('/pub?ch=x', 'y');
is($r->status, 202, 'publish to the declared zone (no subscriber: 202)');
is($t2->status->{zones}{events}{published}, 1, 'counted in that zone');

$t2->stop;
$t2->check_log('no alert with a declared zone');

# -- without zone=, a location uses the first declared zone -------------------

my $t3 = SSETest->new(workers => 1)->run(<<'EOF');
http {
    sse_zone first 1m;
    sse_zone second 1m;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /pub { sse_publish $arg_ch; }
        location = /status { sse_status; }
    }
}
EOF
is($t3->publish('/pub?ch=x', 'y')->status, 202, 'publish without zone=');
is($t3->zone_status('first')->{published}, 1, '... goes to the first declared zone');
is($t3->zone_status('second')->{published}, 0, '... not to the second');
$t3->stop;
$t3->check_log('no alert with two zones');

$t->done;
