# sse_status?format=html: a small self-contained page that shows the JSON
# status live (t/browser/status-page.test.mjs runs it in Chromium).
#
# The page is static bytes: nothing of the configuration (zone names) or of
# the request is in it, so there is nothing to escape on the server; the
# script shows names with textContent.  Its Content-Security-Policy allows
# exactly its own inline style and script, by their SHA-256, and requests
# to its own origin.  No external resources, no eval, no inline handlers.
#
# And what the status costs does not grow with what clients create: the
# JSON lists zones, not channels.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Digest::SHA qw(sha256_base64);
use SSETest;

my $EVIL = q{<img src=x onerror="alert(1)">&'};
(my $QUOTED = $EVIL) =~ s/"/\\"/g;     # in an nginx "..." token

my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    sse_zone "$QUOTED" 1m;
    sse_zone plain 4m max_channels=5000;
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch "zone=$QUOTED"; }
        location /pub { sse_publish \$arg_ch zone=plain; }
        location = /status { sse_status; }
    }
}
EOF

# -- the page -----------------------------------------------------------------

my $r = $t->get('/status?format=html');
is($r->status, 200, 'format=html: 200');
is($r->header('Content-Type'), 'text/html; charset=utf-8', 'text/html; charset=utf-8');
is($r->header('X-Content-Type-Options'), 'nosniff', 'nosniff');
is($r->header('Cache-Control'), 'no-store', 'no-store');
my $page = $r->body;
is(length $page, $r->header('Content-Length'), 'Content-Length is the page\'s');
cmp_ok(length $page, '<', 16384, 'a small page: ' . length($page) . ' bytes');
like($page, qr/^<!DOCTYPE html>/, 'an HTML document');

my @scripts = $page =~ m{<script>(.*?)</script>}gs;
my @styles = $page =~ m{<style>(.*?)</style>}gs;
is(scalar @scripts, 1, 'one inline script');
is(scalar @styles, 1, 'one inline style');
is(scalar(() = $page =~ /<script/g), 1, 'no other script element');

my $csp = $r->header('Content-Security-Policy') // '';
my %csp = map { my ($k, @v) = split ' '; ($k => "@v") } split /;\s*/, $csp;
is($csp{'default-src'}, "'none'", "CSP: default-src 'none'");
is($csp{'script-src'}, "'sha256-" . sha256_base64($scripts[0] // '') . "='",
    'CSP: script-src is the hash of the inline script, nothing else');
is($csp{'style-src'}, "'sha256-" . sha256_base64($styles[0] // '') . "='",
    'CSP: style-src is the hash of the inline style, nothing else');
is($csp{'connect-src'}, "'self'", "CSP: connect-src 'self' (the JSON)");
is($csp{'frame-ancestors'}, "'none'", "CSP: frame-ancestors 'none'");
unlike($csp, qr/unsafe/, 'CSP: nothing unsafe allowed');

# no external resources, nothing evaluated from strings, no inline handlers
unlike($page, qr{\b(?:src|href|action)\s*=}i, 'no src, href or action attribute');
unlike($page, qr{https?://|\@import|url\(}i, 'no URL of anything else');
unlike($page, qr{\beval\s*\(|new\s+Function|innerHTML|outerHTML|insertAdjacentHTML|document\.write}i,
    'no eval, no HTML parsing of data');
unlike($page, qr{setTimeout\(\s*["']|setInterval\(\s*["']}, 'no timers with strings');
unlike($page, qr{<[^>]+\son\w+\s*=}i, 'no inline event handlers');
like($scripts[0] // '', qr/textContent/, 'text is shown with textContent');

# the fields it shows of each zone (t/browser/status-page.test.mjs sees
# their values follow the server's)
for my $f (qw(channels subscribers stored_events workers published
              delivered evicted dropped_slow refused_full wakeups woken
              idempotency_records idempotent_replays idempotency_dropped
              publish_flush_seconds stream_duration_seconds)) {
    like($scripts[0] // '', qr/\[\s*"\Q$f\E"\s*,/, "the page shows the zone's $f");
}

# and, for a zone with sse_redis, its redis object (the browser test sees
# it follow a link that is down, and absent from the other zones)
like($scripts[0] // '', qr/\.redis\b/, 'the page reads the zone\'s redis object');
for my $f (qw(reconnects publishes_refused errors)) {
    like($scripts[0] // '', qr/\[\s*"\Q$f\E"\s*,/, "the page shows redis $f");
}
for my $f (qw(state workers_down last_reply_ms)) {
    like($scripts[0] // '', qr/\.\Q$f\E\b/, "the page shows redis $f");
}

# nothing of the configuration is in it: zone names arrive as JSON data
unlike($page, qr/onerror|alert|<img/, 'the hostile zone name is not in the page');
unlike($page, qr/plain/, 'nor the other zone\'s name');
is($t->get('/status?format=html')->body, $page, 'the same bytes for every request');
is($t->get('/status?format=html&zone=%3Cb%3E')->body, $page,
    'query arguments change nothing in it');

my $h = $t->head('/status?format=html');
is($h->status, 200, 'HEAD: 200');
is($h->body, '', 'HEAD: no body');
is($h->header('Content-Type'), 'text/html; charset=utf-8', 'HEAD: text/html');

is($t->request('POST', '/status?format=html', body => 'x')->status, 405,
    'POST: 405, as for the other formats');

# -- the data it shows: the name, escaped for each format ---------------------

my $st = $t->status;
ok(exists $st->{zones}{$EVIL}, 'JSON: the zone name, exactly, once decoded');
my $raw = $t->get('/status')->body;
like($raw, qr/"<img src=x onerror=\\"alert\(1\)\\">&'"/, 'JSON: its quotes escaped');
my $prom = $t->get('/status?format=prometheus')->body;
like($prom, qr/^sse_channels\{zone="<img src=x onerror=\\"alert\(1\)\\">&'"\} 0$/m,
    'Prometheus: its quotes escaped');

# -- a client cannot make the status expensive --------------------------------

my $before = length $t->get('/status')->body;
my $N = 2000;
my $made = 0;
for my $i (1 .. $N) {
    my $s = $t->publish("/pub?ch=c$i", 'x')->status;
    $made++ if $s == 201 || $s == 202;
}
is($made, $N, "$N channels made");
is($t->zone_status('plain')->{channels}, $N, "the status counts them");
my $after = length $t->get('/status')->body;
cmp_ok($after - $before, '<', 64,
    "the JSON did not grow with them ($before -> $after bytes): no channel list");

$t->done;
