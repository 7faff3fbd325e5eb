# Verified signatures are shared by the workers and survive a reload: a
# reconnect storm with one token costs one signature check, whatever
# worker each connection lands on; a reload with the same key files keeps
# that; a reload with other keys never takes a token verified with the old
# ones as verified (the keys are part of every cached entry).  The
# counters are sse_status's "tokens" object.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use File::Copy qw(copy);
use Test::More;
use SSETest;
use SSETest::JWT qw(claims refused);

my $WORKERS = 4;
my $CONNS = 40;

my $t = SSETest->new(workers => $WORKERS);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my $tok = $jwt->mint(
    keys => [ { name => 'ec', type => 'EC', crv => 'P-256' },
              { name => 'ec2', type => 'EC', crv => 'P-256' } ],
    tokens => {
        a => { key => 'ec', claims => claims(subscribe => ['news']) },
        b => { key => 'ec', claims => claims(subscribe => ['news']) },
        c => { key => 'ec2', claims => claims(subscribe => ['news']) },
    },
);

copy("$K/ec.pem", "$K/live.pem") or die "copy: $!";

my $conf = <<"EOF";
http {
    sse_zone sse 8m;
    server {
        # reuseport: the kernel spreads the connections over the workers
        listen 127.0.0.1:%%PORT%% reuseport;
        location /sub {
            sse_auth_jwt on;
            sse_auth_jwt_key_file $K/live.pem;
            sse_subscribe \$arg_ch;
        }
        location /status { sse_status; }
    }
}
EOF

$t->run($conf);

sub tokens { $t->status->{tokens} // {} }

sub storm {
    my ($token, $n) = @_;
    my $ok = 0;
    for (1 .. $n) {
        # HEAD: the whole check, no stream to hold open
        my $r = $t->request('HEAD', '/sub?ch=news',
            headers => { Authorization => "Bearer $token" });
        $ok++ if $r->status == 200;
    }
    return $ok;
}

is(storm($tok->{a}, $CONNS), $CONNS, "$CONNS connections with one token: all 200");

my $c = tokens();
is($c->{signatures}, 1, 'one signature check for all of them');
is(($c->{shared_hits} // 0) + ($c->{worker_hits} // 0), $CONNS - 1,
   'the others were cache hits');
cmp_ok($c->{shared_hits} // 0, '>', 0,
   'some landed on another worker and used its check (shared_hits > 0)');
is($c->{refused}, 0, 'nothing refused');

# -- a reload with the same key file keeps what was verified -----------------

ok($t->reload, 'reload with the same key file');
is(storm($tok->{a}, 10), 10, 'the token still works on the new workers');
$c = tokens();
is($c->{signatures}, 1, 'and costs no new signature check');

is(storm($tok->{b}, 1), 1, 'another token');
is(tokens()->{signatures}, 2, 'is checked once');

# -- a reload with another key: old tokens are checked again, and refused ----

copy("$K/ec2.pem", "$K/live.pem.tmp") or die "copy: $!";
rename "$K/live.pem.tmp", "$K/live.pem" or die "rename: $!";
ok($t->reload, 'reload with another key in the file');

my $r = $t->request('GET', '/sub?ch=news',
    headers => { Authorization => "Bearer $tok->{a}" });
refused($r, 401, 'invalid_token', 'bad_signature',
    'a token verified with the old key, after the key changed');
is(tokens()->{signatures}, 3, 'it was checked in full, not taken from the cache');
is(tokens()->{refused}, 1, 'and counted as refused');
is(storm($tok->{c}, 3), 3, 'a token of the new key works');

# -- Prometheus --------------------------------------------------------------

my $p = $t->get('/status?format=prometheus')->body;
like($p, qr/^sse_tokens_signatures_total 4$/m, 'Prometheus: sse_tokens_signatures_total');
like($p, qr/^sse_tokens_refused_total 1$/m, 'Prometheus: sse_tokens_refused_total');

$t->stop;
done_testing;
