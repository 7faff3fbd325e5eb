# sse_status: every zone's gauges and counters as JSON, or in the Prometheus
# text format with ?format=prometheus.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 2)->run(<<'EOF');
http {
    sse_zone one 2m;
    sse_zone two 3m history=2;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub1 { sse_subscribe $arg_ch zone=one; }
        location /pub1 { sse_publish $arg_ch zone=one; }
        location /sub2 { sse_subscribe $arg_ch zone=two; }
        location /pub2 { sse_publish $arg_ch zone=two; }
        location = /status { sse_status; }
    }
}
EOF

my @FIELDS = qw(size used channels subscribers stored_events published
    delivered evicted dropped_slow refused_full workers);

my $r = $t->get('/status');
is($r->status, 200, 'status: 200');
like($r->header('Content-Type') // '', qr{^application/json}, 'JSON');
my $st = $r->json;
is_deeply([sort keys %{$st->{zones} // {}}], [qw(one two)], 'both zones are listed');
for my $z (qw(one two)) {
    for my $f (@FIELDS) {
        like($st->{zones}{$z}{$f} // '', qr/^\d+$/, "zone $z: $f is a number");
    }
}
is($st->{zones}{one}{size}, 2 * 1024 * 1024, 'size of zone one');
is($st->{zones}{two}{size}, 3 * 1024 * 1024, 'size of zone two');
ok($st->{zones}{one}{used} > 0 && $st->{zones}{one}{used} <= $st->{zones}{one}{size},
    'used is within the size');
is($st->{zones}{one}{workers}, 2, 'workers: 2');

# -- gauges and counters move ---------------------------------------------

my @s = map { $t->subscribe('/sub1?ch=a') } 1 .. 3;
push @s, $t->subscribe('/sub1?ch=b');
$_->wait_comment(1) for @s;

$t->publish('/pub1?ch=a', "a$_") for 1 .. 5;
$t->publish('/pub1?ch=b', "b$_") for 1 .. 2;
$t->publish('/pub1?ch=c', 'c1');
ok(SSETest::Stream::wait_all(\@s, sub {
    $_[0]->event_count >= ($_[0] == $s[3] ? 2 : 5) }, 3), 'events delivered');

my $one = $t->zone_status('one');
is($one->{channels}, 3, 'channels: 3');
is($one->{subscribers}, 4, 'subscribers: 4');
is($one->{stored_events}, 8, 'stored_events: 8');
is($one->{published}, 8, 'published: 8');
ok(wait_until(sub { ($t->zone_status('one')->{delivered} // 0) == 3 * 5 + 2 }, 3),
    'delivered: 17 (one per event per subscriber)')
    or diag(explain $t->zone_status('one'));
is($one->{evicted}, 0, 'evicted: 0');
is($t->zone_status('two')->{published}, 0, 'the other zone is untouched');

# history=2 in zone two: older events are evicted
$t->publish('/pub2?ch=x', "x$_") for 1 .. 5;
my $two = $t->zone_status('two');
is($two->{stored_events}, 2, 'zone two keeps 2 events of the channel');
is($two->{published}, 5, 'published: 5');

$_->close for @s;
ok(wait_until(sub { $t->zone_status('one')->{subscribers} == 0 }, 3),
    'subscribers: 0 after they left');

# -- Prometheus ------------------------------------------------------------

$r = $t->get('/status?format=prometheus');
is($r->status, 200, 'prometheus: 200');
like($r->header('Content-Type') // '', qr{^text/plain}, 'prometheus: text/plain');
my $p = $r->body;
like($p, qr/^# TYPE sse_published_total counter$/m, 'a TYPE line for published_total');
like($p, qr/^sse_published_total\{zone="one"\} 8$/m, 'sse_published_total of zone one');
like($p, qr/^sse_published_total\{zone="two"\} 5$/m, 'sse_published_total of zone two');
like($p, qr/^sse_evicted_total\{zone="two"\} \d+$/m, 'sse_evicted_total');
like($p, qr/^sse_subscribers\{zone="one"\} 0$/m, 'gauge sse_subscribers');
like($p, qr/^sse_channels\{zone="one"\} 3$/m, 'gauge sse_channels');
like($p, qr/^sse_size\{zone="one"\} 2097152$/m, 'gauge sse_size');
like($p, qr/^# TYPE sse_subscribers gauge$/m, 'subscribers is a gauge');
my @samples = grep { !/^#/ && length } split /\n/, $p;
# histograms add an le label to their buckets (t/630)
is(scalar(grep { !/^sse_[a-z_]+\{zone="[a-z]+"(,le="([0-9.]+|\+Inf)")?\} \d+(\.\d+)?$/ } @samples), 0,
    'every sample line is well formed');
for my $f (qw(used stored_events delivered dropped_slow refused_full)) {
    like($p, qr/^sse_${f}(_total)?\{zone="one"\} \d+$/m, "prometheus has $f");
}

$t->done;
