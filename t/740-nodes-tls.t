# Several nodes on a Redis reached over TLS (rediss://), with
# certificates made by openssl in the test (issue 13, item 4):
# - the right CA: events published on A reach B;
# - a wrong CA: a clear line at `error` in each node's log, never higher,
#   the link never up, publishes, DELETE and channel info get 503 with
#   Retry-After at once, subscribers still get 200; no crash.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time);
use File::Temp qw(tempdir);
use SSETest;
use SSETest::Nodes;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $certs = tempdir('sse-nodes-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $certs;
my $f = SSETest::Redis::make_tls_files($certs);
my %tls = (cert => $f->{'server.crt'}, key => $f->{'server.key'},
           ca => $f->{'ca.crt'}, auth_clients => 'no');
my $url = sub { 'rediss://127.0.0.1:' . $_[0]->tls_port };

# -- the right CA -------------------------------------------------------------------

{
    my $c = SSETest::Nodes->new(nodes => 2, redis => { tls => \%tls }, url => $url,
        http => "sse_redis_ssl_trusted_certificate $f->{'ca.crt'};");
    ok($c->wait_up(10), 'the right CA: both nodes up over TLS')
        or diag explain [ map { $c->redis_status($_) } 0, 1 ];
    my $s = $c->subscribe(1, 'tls');
    ok($c->wait_subscribers('tls', 1), 'counted');
    my $r = $c->publish(0, 'tls', 'over tls');
    is($r->status, 201, 'a publish on A: 201 (the subscriber on B counted)');
    $c->expect_events($s, ['over tls'], 'B got the event over TLS');
    $c->done_nodes;
}

# -- a wrong CA ------------------------------------------------------------------------

{
    my $c = SSETest::Nodes->new(nodes => 2, redis => { tls => \%tls }, url => $url,
        http => "sse_redis_ssl_trusted_certificate $f->{'other-ca.crt'};");
    for my $i (0, 1) {
        my $n = $c->name($i);
        ok($c->node($i)->wait_log(qr/\[error\][^\n]*redis TLS certificate verify error/, 5),
           "$n: the verify error at error level");
        isnt($c->state_of($i), 'up', "$n: the link is not up (" . $c->state_of($i) . ')');
        my $t0 = time;
        my $r = $c->publish($i, 'tls', 'refused');
        is($r->status, 503, "$n: a publish gets 503") or diag $r->describe;
        cmp_ok(time - $t0, '<', SSETest::tmo(1.5), '... at once');
        like($r->header('Retry-After') // '', qr/^\d+$/, '... with Retry-After');
        ok(length($r->json->{error} // ''), '... and a JSON reason');
        is($c->info($i, 'tls')->status, 503, "$n: channel info gets 503");
        is($c->delete($i, 'tls')->status, 503, "$n: DELETE gets 503");
        my $s = $c->subscribe($i, 'tls');
        is($s->status, 200, "$n: a subscriber still gets 200 and a stream");
        $s->close;
    }
    $c->expect_log(qr/\[error\][^\n]*redis TLS|certificate verify/);
    $c->done_nodes;
}

done_testing;
