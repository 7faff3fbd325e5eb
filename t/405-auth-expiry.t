# A subscriber's stream ends when its token expires (exp + leeway, found by
# the per-worker sweep), not before; the expired token cannot reconnect; a
# fresh token with the Last-Event-ID resumes with what was published in
# between: every event exactly once, in order.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;
use SSETest::JWT qw(claims refused);

# the sweep's slack: a stream ends at most this long after exp + leeway
my $SWEEP = 2;
# what a busy test client may add to its measurement (reading the close)
my $CLIENT = 0.3 * timeout_factor();

my $t = SSETest->new(workers => 2);
my $jwt = SSETest::JWT->new($t);
my $K = $jwt->dir;

# exp of the short tokens: far enough ahead for nginx to start first, also
# on a slow (sanitizer) build
my $E = int(time) + 5 + 3 * timeout_factor();
my $tok = $jwt->mint(
    keys => [ { name => 'hs', type => 'oct', bytes => 32 } ],
    tokens => {
        short  => { key => 'hs', claims => claims(subscribe => ['news'], exp => $E) },
        short3 => { key => 'hs', claims => claims(subscribe => ['news'], exp => $E) },
        short_h2 => { key => 'hs', claims => claims(subscribe => ['news'], exp => $E) },
        fresh  => { key => 'hs', claims => claims(subscribe => ['news']) },
    },
);

$t->run(<<"EOF");
http {
    sse_zone sse 8m history=100;
    server {
        listen 127.0.0.1:%%PORT%%;
        listen 127.0.0.1:%%PORT2%% http2;
        sse_auth_jwt on;
        sse_auth_jwt_key_secret $K/hs.secret;
        sse_heartbeat 1s;
        location /l0 { sse_subscribe \$arg_ch; sse_auth_jwt_leeway 0s; }
        location /l3 { sse_subscribe \$arg_ch; sse_auth_jwt_leeway 3s; }
        location /pub { sse_auth_jwt off; sse_publish \$arg_ch; }
    }
}
EOF

my $bearer = sub { { Authorization => "Bearer $tok->{$_[0]}" } };

skip_file('the machine is too slow: the short token expired before the test began')
    if time > $E - 3;

my $s0 = $t->subscribe('/l0?ch=news', headers => $bearer->('short'));
my $s3 = $t->subscribe('/l3?ch=news', headers => $bearer->('short3'));
my $h2 = $t->curl_subscribe($t->url('/l0?ch=news', 2), '--http2-prior-knowledge',
    '-H', "Authorization: Bearer $tok->{short_h2}");
is($s0->status, 200, 'a token expiring in a few seconds subscribes (leeway 0)');
is($s3->status, 200, '... and with leeway 3 s');
ok($h2->wait_headers(5), '... and over HTTP/2 (h2c)');
is($h2->status, 200, '... 200');

my @ids;
my $r = $t->publish('/pub?ch=news', 'e1');
is($r->status, 201, 'e1 published to them');
push @ids, $r->json->{id};
ok($s0->wait_events(1, 2) && $s3->wait_events(1, 2) && $h2->wait_events(1, 2),
    'all three get e1');

# watch both streams until each ends (bounded: well past exp + leeway + sweep)
my %closed;
my $deadline = $E + 3 + $SWEEP + 5;
while (time < $deadline && keys %closed < 3) {
    SSETest::Stream::poll_many([$s0, $s3, $h2], 0.02);
    for ([l0 => $s0], [l3 => $s3], [h2 => $h2]) {
        my ($k, $s) = @$_;
        $closed{$k} //= time if $s->{eof} || $s->{complete};
    }
}
ok(defined $closed{l0}, 'leeway 0: the stream ended');
ok(defined $closed{l3}, 'leeway 3 s: the stream ended');
ok(defined $closed{h2}, 'HTTP/2, leeway 0: the stream ended');
my $d0 = ($closed{l0} // 1e9) - $E;
my $d3 = ($closed{l3} // 1e9) - $E;
my $dh = ($closed{h2} // 1e9) - $E;
diag(sprintf 'ended at exp%+.2f s (leeway 0) and exp%+.2f s (leeway 3 s)', $d0, $d3);
ok($d0 >= -1, 'leeway 0: not before exp (within the second exp names)');
ok($d0 <= 0 + $SWEEP + $CLIENT, "leeway 0: by exp + $SWEEP s");
diag(sprintf 'HTTP/2 stream ended at exp%+.2f s', $dh);
ok($dh >= -1, 'HTTP/2: not before exp');
ok($dh <= 0 + $SWEEP + $CLIENT, "HTTP/2: by exp + $SWEEP s");
ok($d3 >= 3 - 1, 'leeway 3 s: not before exp + 3 s');
ok($d3 <= 3 + $SWEEP + $CLIENT, "leeway 3 s: by exp + 3 s + $SWEEP s");
is_deeply([$s0->data], ['e1'], 'the l0 stream got e1 and nothing else');

# what is published while the client is away
for my $n (2 .. 4) {
    $r = $t->publish('/pub?ch=news', "e$n");
    is($r->status, 202, "e$n published while nobody is subscribed");
    push @ids, $r->json->{id};
}

# the expired token cannot come back
refused($t->get('/l0?ch=news', headers => { %{$bearer->('short')},
                                            'Last-Event-ID' => $ids[0] }),
    401, 'invalid_token', 'expired', 'reconnecting with the expired token: 401');
# (the edge second itself is t/402's; here the clock is past it)
wait_until(sub { time >= $E + 4 }, 10, 0.05);
refused($t->get('/l3?ch=news', headers => { %{$bearer->('short3')},
                                            'Last-Event-ID' => $ids[0] }),
    401, 'invalid_token', 'expired', 'also where the leeway is 3 s (now past it)');

# a fresh token and the last id it saw: e2..e4 replayed, then live
my $s = $t->subscribe('/l0?ch=news', headers => { %{$bearer->('fresh')},
                                                  'Last-Event-ID' => $s0->events->[-1]{id} });
is($s->status, 200, 'a fresh token with Last-Event-ID: 200');
ok($s->wait_events(3, 3), 'the three events published in between are replayed');
$r = $t->publish('/pub?ch=news', 'e5');
is($r->status, 201, 'e5 published live');
push @ids, $r->json->{id};
ok($s->wait_events(4, 3), 'and arrives');
ok(!$s->wait_events(5, 0.3), 'nothing more');
is_deeply([$s0->data, $s->data], [qw(e1 e2 e3 e4 e5)], 'every event exactly once, in order');
is_deeply([map { $_->{id} } @{$s0->events}, @{$s->events}], \@ids, 'with the ids publishing gave');
ok(!grep({ ($_->{type} // '') eq 'reset' } @{$s->events}), 'no reset');
$s->close;

$t->done;
