# The publish, DELETE and channel info scripts' replies come from a server
# the module does not trust: a fake Redis (SSETest::FakeRedis) that answers the
# handshake, then answers the scripts with replies of the wrong type, the
# wrong count, numbers out of range, ids that cannot be.  Each time: 503
# with Retry-After and a line at error, never a crash, nothing of it in
# the answer; a well-formed reply between them is answered as Redis says.
# An error reply (not LOADING, BUSY, OOM...) is 500: a retry will not help.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use feature 'state';
use File::Temp ();
use SSETest;
use SSETest::FakeRedis;

my $dir = File::Temp::tempdir('sse-fake-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $reply_file = "$dir/reply";

sub set_reply {
    open my $fh, '>', "$reply_file.new" or die $!;
    print $fh $_[0];
    close $fh;
    rename "$reply_file.new", $reply_file or die $!;
}

# answers PING with PONG and every script (EVALSHA or EVAL) with the
# reply of the file, in the order the commands came
set_reply("+OK\r\n");
my $fake = SSETest::FakeRedis->new(sub {
    state $buf = '';
    $buf .= $_[0];
    my $out = '';
    while ($buf =~ s/^.*?\$(4\r\nPING|7\r\nEVALSHA|4\r\nEVAL)\r\n//s) {
        if ($1 =~ /PING/) {
            $out .= "+PONG\r\n";
        } else {
            open my $fh, '<', $reply_file or die $!;
            local $/;
            $out .= <$fh>;
        }
    }
    return $out;
});
my $port = $fake->port;

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone z 4m;
    sse_redis redis://127.0.0.1:$port zone=z;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /pub { sse_publish \$arg_ch zone=z; }
        location = /status { sse_status; }
    }
}
EOF

ok(SSETest::wait_until(sub {
    (($t->zone_status('z')->{redis} // {})->{state} // '') eq 'up';
}, SSETest::tmo(5), 0.05), 'the fake Redis is up');

sub bulk { '$' . length($_[0]) . "\r\n$_[0]\r\n" }
sub arr { '*' . scalar(@_) . "\r\n" . join '', @_ }
sub int_ { ":$_[0]\r\n" }

# a well-formed answer first: what the module makes of it
set_reply(arr(int_(0), bulk('1700000000000000'), int_(42), int_(1), int_(2)));
my $r = $t->publish('/pub?ch=a', 'x');
is($r->status, 201, 'a well-formed reply: published') or diag $r->describe;
is($r->json->{id}, 'gqll7vatq8-42', 'the id Redis gave');
is($r->json->{subscribers}, 2, 'its subscribers');

my @bad = (
    [ 'a status instead of an array', "+OK\r\n" ],
    [ 'an integer', int_(5) ],
    [ 'too few elements', arr(int_(0), bulk('1700000000000000'), int_(42)) ],
    [ 'too many elements', arr(int_(0), bulk('1700000000000000'), int_(42),
                               int_(1), int_(0), int_(0)) ],
    [ 'repeated not 0 or 1', arr(int_(7), bulk('1700000000000000'),
                                 int_(42), int_(1), int_(0)) ],
    [ 'an epoch that is not decimal', arr(int_(0), bulk('17x0'), int_(42),
                                          int_(1), int_(0)) ],
    [ 'an epoch of 0', arr(int_(0), bulk('0'), int_(42), int_(1), int_(0)) ],
    [ 'an epoch past 2^53', arr(int_(0), bulk('9999999999999999'), int_(42),
                                int_(1), int_(0)) ],
    [ 'an epoch of 30 digits', arr(int_(0), bulk('1' x 30), int_(42),
                                   int_(1), int_(0)) ],
    [ 'an epoch as an integer', arr(int_(0), int_(1700000000000000),
                                    int_(42), int_(1), int_(0)) ],
    [ 'a seq past 2^53', arr(int_(0), bulk('1700000000000000'),
                             int_('99999999999999999'), int_(1), int_(0)) ],
    [ 'a negative seq', arr(int_(0), bulk('1700000000000000'), int_(-1),
                            int_(1), int_(0)) ],
    [ 'more published than the seq', arr(int_(0), bulk('1700000000000000'),
                                         int_(0), int_(1), int_(0)) ],
    [ 'another count of events', arr(int_(0), bulk('1700000000000000'),
                                     int_(42), int_(1000), int_(0)) ],
    [ 'negative subscribers', arr(int_(0), bulk('1700000000000000'),
                                  int_(42), int_(1), int_(-3)) ],
    [ 'subscribers past 2^32', arr(int_(0), bulk('1700000000000000'),
                                   int_(42), int_(1), int_(1 << 40)) ],
    [ 'a nested array', arr(int_(0), arr(bulk('1')), int_(42), int_(1),
                            int_(0)) ],
    [ 'a nil', arr(int_(0), "\$-1\r\n", int_(42), int_(1), int_(0)) ],
    [ 'a repeated answer whose count exceeds its seq',
      arr(int_(1), bulk('1700000000000000'), int_(3), int_(4), int_(0)) ],
);

for my $case (@bad) {
    my ($name, $bytes) = @$case;
    set_reply($bytes);
    my $r = $t->publish('/pub?ch=a', 'x');
    is($r->status, 503, "publish, $name: 503") or diag $r->describe;
    is($r->header('Retry-After'), 1, '  with Retry-After');
    ok(!defined $r->json->{id} && !@{ $r->json->{ids} // [] },
       '  and no id');
}
ok($t->wait_log(qr/\[error\].*redis sent a reply to the publish script that is not one of its replies/, 3),
   'logged at error');

# an error reply names itself, escaped
set_reply("-ERR odd\nline\r\n");
is($t->publish('/pub?ch=a', 'x')->status, 500,
   'an error reply: 500 (a retry will not help; t/722)');
ok($t->wait_log(qr/redis refused the publish script "ERR odd\\x0aline"/i, 3),
   'its text logged, escaped');

# DELETE and info
set_reply(arr(int_(1), int_(4), int_(2), bulk('1700000000000000'), int_(42),
              int_(time() - 5)));
$r = $t->get('/pub?ch=a');
is($r->status, 200, 'info: a well-formed reply') or diag $r->describe;
is($r->json->{last_id}, 'gqll7vatq8-42', 'its last id');
is($r->json->{subscribers}, 4, 'its subscribers');
is($r->json->{events}, 2, 'its events');
is($t->delete('/pub?ch=a')->status, 200, 'DELETE: a well-formed reply');

for my $case (
    [ 'state 3', arr(int_(3), int_(0), int_(0), bulk(''), int_(0), int_(0)) ],
    [ 'five elements', arr(int_(1), int_(0), int_(0), bulk(''), int_(0)) ],
    [ 'a last seq without an epoch',
      arr(int_(1), int_(0), int_(0), bulk(''), int_(5), int_(0)) ],
    [ 'a huge last publish',
      arr(int_(1), int_(0), int_(0), bulk('1700000000000000'), int_(5),
          int_('99999999999999')) ],
    [ 'an integer epoch',
      arr(int_(1), int_(0), int_(0), int_(7), int_(5), int_(0)) ],
) {
    my ($name, $bytes) = @$case;
    set_reply($bytes);
    is($t->get('/pub?ch=a')->status, 503, "info, $name: 503");
    is($t->delete('/pub?ch=a')->status, 503, "DELETE, $name: 503");
}

# a many-channel reply that claims fewer channels than asked
set_reply(arr(int_(0), bulk('1700000000000000'), int_(42), int_(1), int_(0)));
is($t->publish('/pub?ch=a,b,c', 'x')->status, 503,
   'three channels, one answer: 503');

set_reply(arr(int_(0), bulk('1700000000000000'), int_(43), int_(1), int_(0)));
is($t->publish('/pub?ch=a', 'x')->json->{id}, 'gqll7vatq8-43',
   'still answering after all of it');

$t->expect_log(qr/redis refused the publish script/,
               qr/redis sent a reply to the/);
ok($t->stop, 'nginx quit gracefully');
$t->check_log;
$fake->stop;
done_testing;
