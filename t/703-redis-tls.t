# rediss://: a redis-server with a TLS port and certificates made by
# openssl here (a CA, a server certificate for 127.0.0.1 and localhost, a
# client certificate).  Verification on by default: the right CA → up, by
# address and by name (SNI); a wrong CA → a clear line at "error", down,
# no crash; verification off → up; a Redis that wants a client certificate
# → up with one, down without; TLS to a port that does not speak it →
# logged at "error", never higher.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use File::Temp qw(tempdir);
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

my $certs = tempdir('sse-redis-tls-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $certs;
my $f = SSETest::Redis::make_tls_files($certs);

my $redis = SSETest::Redis->new(tls => {
    cert => $f->{'server.crt'}, key => $f->{'server.key'},
    ca => $f->{'ca.crt'}, auth_clients => 'no' });
my $tport = $redis->tls_port;
my $plain = $redis->port;

my $mutual = SSETest::Redis->new(tls => {
    cert => $f->{'server.crt'}, key => $f->{'server.key'},
    ca => $f->{'ca.crt'}, auth_clients => 'yes' });
my $mport = $mutual->tls_port;

sub tls_clients {
    my ($r) = @_;
    return grep { ($_->{cmd} // '') eq 'ping' } $r->clients;
}

my $ca = "sse_redis_ssl_trusted_certificate $f->{'ca.crt'};";

SSETest::Redis::with_nginx("sse_redis rediss://127.0.0.1:$tport; $ca",
           'the right CA, an address', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up') or diag $t->error_log;
    ok(SSETest::wait_until(sub { tls_clients($redis) == 2 }),
       'two connections on the TLS port');
});

SSETest::Redis::with_nginx("sse_redis rediss://localhost:$tport; $ca",
           'the right CA, a name (SNI)', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up') or diag $t->error_log;
});

SSETest::Redis::with_nginx("sse_redis rediss://127.0.0.1:$tport;"
           . " sse_redis_ssl_trusted_certificate $f->{'other-ca.crt'};",
           'a wrong CA', sub {
    my ($t, $wait) = @_;
    ok($wait->('down'), 'down');
    my $line = $t->wait_log(qr/^.*certificate verify error.*$/m);
    ok($line, 'a clear line') or diag $t->error_log;
    like($line // '', qr/\[error\].*redis TLS certificate verify error: \(\d+:[^)]+\)/,
         'at error level, with OpenSSL\'s reason');
    is(scalar tls_clients($redis), 0, 'no connection got as far as a PING');
    ok(SSETest::wait_until(sub {
        ($t->zone_status('sse')->{redis}{reconnects} // 0) >= 1 }),
       'it retries');
}, expect_log => [ qr/certificate verify error/ ]);

SSETest::Redis::with_nginx("sse_redis rediss://127.0.0.1:$tport;"
           . " sse_redis_ssl_trusted_certificate $f->{'other-ca.crt'};"
           . " sse_redis_ssl_verify off;",
           'a wrong CA with verification off', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up');
});

SSETest::Redis::with_nginx("sse_redis rediss://127.0.0.1:$mport; $ca",
           'Redis wants a client certificate, none given', sub {
    my ($t, $wait) = @_;
    ok($wait->('down'), 'down');
    my $line = $t->wait_log(qr/^.*(?:SSL|TLS|closed).*$/m);
    ok($line, 'the failure is logged') or diag $t->error_log;
    unlike($t->error_log, qr/\[(?:crit|alert|emerg)\]/, 'never above error') or diag $t->error_log;
}, expect_log => [ qr/SSL|TLS|redis closed the connection/ ]);

SSETest::Redis::with_nginx("sse_redis rediss://127.0.0.1:$mport; $ca"
           . " sse_redis_ssl_certificate $f->{'client.crt'};"
           . " sse_redis_ssl_certificate_key $f->{'client.key'};",
           'a client certificate', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up') or diag $t->error_log;
    ok(SSETest::wait_until(sub { tls_clients($mutual) == 2 }),
       'two connections');
});

SSETest::Redis::with_nginx("sse_redis rediss://127.0.0.1:$plain; $ca",
           'TLS to a port that does not speak it', sub {
    my ($t, $wait) = @_;
    ok($wait->('down'), 'down');
    ok($t->wait_log(qr/\[error\].*(?:SSL|handshake|closed|not ready)/),
       'logged at error') or diag $t->error_log;
    unlike($t->error_log, qr/\[(?:crit|alert|emerg)\]/, 'never above error') or diag $t->error_log;
}, expect_log => [ qr/SSL|handshake|redis closed the connection|not ready/ ]);

done_testing();
