# sse_redis authentication and databases: an ACL user with its password
# (percent-decoded from the URL), the default user's password alone, SELECT
# of a database, a unix socket with user=, password= and db=.  A wrong
# password: state down, the reason in the log at "error", and the password
# in no log line.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;
use SSETest::Redis;

SSETest::skip_file('redis-server or redis-cli is not installed')
    unless SSETest::Redis->available;

# Redis 7 gives a new ACL user no pub/sub channels: &* grants them
my $redis = SSETest::Redis->new(unixsocket => 1, config => <<'EOF');
user app on >s3cr3t-pw ~* &* +@all
user pc on >p@ss:w/rd% ~* &* +@all
EOF
my $rport = $redis->port;
my $sock = $redis->socket;

my $locked = SSETest::Redis->new(requirepass => 'def-pw-77',
                                 config => "requirepass def-pw-77\n");
my $lport = $locked->port;

sub nginx_clients {
    my ($r, $user) = @_;
    return grep { ($_->{user} // '') eq $user && ($_->{cmd} // '') eq 'ping' }
           $r->clients;
}

SSETest::Redis::with_nginx("sse_redis redis://app:s3cr3t-pw\@127.0.0.1:$rport/3;",
           'an ACL user, its password, database 3', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up');
    my @c;
    ok(SSETest::wait_until(sub { @c = nginx_clients($redis, 'app'); @c == 2 }),
       'two connections as user app') or diag explain [ $redis->clients ];
    is_deeply([ sort map { $_->{db} } @c ], [ 3, 3 ], 'both on database 3');
    unlike($t->error_log, qr/s3cr3t/, 'the password is in no log line');
});

SSETest::Redis::with_nginx("sse_redis redis://app:wrong-pw-XYZ\@127.0.0.1:$rport;",
           'a wrong password', sub {
    my ($t, $wait) = @_;
    ok($wait->('down'), 'down');
    my $line = $t->wait_log(qr/^.*WRONGPASS.*$/m);
    ok($line, 'the reason is logged') or diag $t->error_log;
    like($line // '', qr/\[error\]/, 'at error level');
    like($line // '', qr/redis: 127\.0\.0\.1:$rport, sse zone: sse/,
         'with the address and the zone');
    # a few retries (each refused) have run meanwhile
    ok(SSETest::wait_until(sub {
        ($t->zone_status('sse')->{redis}{reconnects} // 0) >= 1 }),
       'it retries');
    unlike($t->error_log, qr/wrong-pw|XYZ/, 'the password is in no log line');
    is(scalar nginx_clients($redis, 'app'), 0, 'no connection as app');
}, expect_log => [ qr/WRONGPASS/ ]);

SSETest::Redis::with_nginx("sse_redis redis://pc:p%40ss%3Aw%2Frd%25\@127.0.0.1:$rport;",
           'a percent-encoded password', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up with the decoded password "p\@ss:w/rd%"');
    ok(SSETest::wait_until(sub { nginx_clients($redis, 'pc') == 2 }),
       'two connections as user pc');
});

SSETest::Redis::with_nginx("sse_redis unix:$sock user=app password=s3cr3t-pw db=2;",
           'a unix socket with user=, password=, db=', sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up');
    my @c;
    ok(SSETest::wait_until(sub { @c = nginx_clients($redis, 'app'); @c == 2 }),
       'two connections as user app');
    ok(!grep({ ($_->{addr} // '') !~ /\Q$sock\E/ } @c),
       'both through the unix socket') or diag explain \@c;
    is_deeply([ sort map { $_->{db} } @c ], [ 2, 2 ], 'both on database 2');
});

SSETest::Redis::with_nginx("sse_redis redis://:def-pw-77\@127.0.0.1:$lport;",
           "the default user's password alone", sub {
    my ($t, $wait) = @_;
    ok($wait->('up'), 'up');
    ok(SSETest::wait_until(sub { nginx_clients($locked, 'default') == 2 }),
       'two connections as the default user');
});

SSETest::Redis::with_nginx("sse_redis redis://127.0.0.1:$lport;",
           'no password where Redis wants one', sub {
    my ($t, $wait) = @_;
    ok($wait->('down'), 'down');
    my $line = $t->wait_log(qr/^.*NOAUTH.*$/m);
    like($line // '', qr/\[error\].*answered PING with "NOAUTH/,
         'NOAUTH logged at error level');
}, expect_log => [ qr/NOAUTH/ ]);

done_testing();
