# A refusal (401 without a token, 401 with a bad token, 403) is logged in
# one line at info, never higher, saying why and never holding the token;
# a refused publish stores nothing and counts as no publish.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use SSETest;
use SSETest::JWT qw(claims refused);

my $t = SSETest->new(workers => 1);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

my $tok = $jwt->mint(
    keys => [ { name => 'hs', type => 'oct', bytes => 32 }, { name => 'other', type => 'oct' } ],
    tokens => {
        news    => { key => 'hs', claims => claims(subscribe => ['news'], publish => ['news']) },
        expired => { key => 'hs', claims => claims(subscribe => ['news'], exp => time - 3600) },
        forged  => { key => 'other', claims => claims(subscribe => ['*'], publish => ['*']) },
    },
);

$t->run(<<"EOF");
http {
    sse_zone sse 8m history=10;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch; sse_auth_jwt on;
                        sse_auth_jwt_key_secret $K/hs.secret; }
        location /pub { sse_publish \$arg_ch; sse_auth_jwt on;
                        sse_auth_jwt_key_secret $K/hs.secret; }
        location /info { sse_publish \$arg_ch; }
        location = /status { sse_status; }
    }
}
EOF

# the error.log lines a request adds (waits until at least one came, then
# a moment for any other); the harness's own readiness probes (a connect
# and a close, logged whenever the worker gets to them) are not the
# request's
sub lines_of {
    my ($do) = @_;
    my $before = length $t->error_log;
    my $r = $do->();
    my $new = sub {
        grep { length && !/client closed connection while waiting for request/ }
            split /\n/, substr($t->error_log, $before);
    };
    my @new;
    wait_until(sub { @new = $new->(); @new > 0 }, 2);
    sleep 0.2;
    @new = $new->();
    return ($r, @new);
}

my @cases = (
    [ 'no token', sub { $t->get('/sub?ch=news') }, 401 ],
    [ 'an expired token', sub { $t->get('/sub?ch=news',
          headers => { Authorization => "Bearer $tok->{expired}" }) }, 401, 'expired' ],
    [ 'a forged token', sub { $t->get('/sub?ch=news',
          headers => { Authorization => "Bearer $tok->{forged}" }) }, 401, 'bad_signature' ],
    [ 'another channel', sub { $t->get('/sub?ch=sport',
          headers => { Authorization => "Bearer $tok->{news}" }) }, 403 ],
    [ 'a forged publish', sub { $t->publish('/pub?ch=news', 'forged',
          Authorization => "Bearer $tok->{forged}") }, 401, 'bad_signature' ],
    [ 'a publish to another channel', sub { $t->publish('/pub?ch=sport', 'no',
          Authorization => "Bearer $tok->{news}") }, 403 ],
);

for my $c (@cases) {
    my ($what, $do, $status, $reason) = @$c;
    my ($r, @lines) = lines_of($do);
    is($r->status, $status, "$what: $status");
    is(scalar(@lines), 1, "$what: one log line") or diag(join "\n", @lines);
    like($lines[0] // '', qr/\[info\]/, "$what: at info");
    like($lines[0] // '', qr/\Q$reason\E/, "$what: saying why ($reason)") if $reason;
    for my $name (qw(news expired forged)) {
        my $sig = (split /\./, $tok->{$name})[2];
        unlike($lines[0] // '', qr/\Q$sig\E/, "$what: the $name token's signature is not logged");
    }
}

# refused publishes stored nothing
is($t->get('/info?ch=news')->status, 404, 'news: no channel (the forged publish stored nothing)');
is($t->get('/info?ch=sport')->status, 404, 'sport: no channel');
my $st = $t->zone_status('sse');
is($st->{published} // -1, 0, 'status: nothing published');
is($st->{channels} // -1, 0, 'status: no channel');

my $r = $t->publish('/pub?ch=news', 'ok', Authorization => "Bearer $tok->{news}");
is($r->status, 202, 'the right token publishes');
is($t->zone_status('sse')->{published}, 1, 'status: one publish');

my @high = grep { /\[(warn|error|crit|alert|emerg)\]/ } split /\n/, $t->error_log;
ok(!@high, 'no line above info') or diag(join "\n", @high);

$t->done;
