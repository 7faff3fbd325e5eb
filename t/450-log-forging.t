# Log forging: what clients send reaches error.log only escaped.  A channel
# list with CR, LF, ESC, a quote and non-ASCII bytes is logged as \xHH, on
# one line, cut to a bounded length; every line of error.log still starts
# with nginx's own timestamp.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $t = SSETest->new(workers => 1)->run(<<'EOF');
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location ~ (?s)^/events/(.+)$  { sse_subscribe $1; }
        location ~ (?s)^/publish/(.+)$ { sse_publish $1; }
    }
}
EOF

# the module's own line is expected; a forged one would be a line of its own
$t->expect_log(qr/sse: invalid channel list/);

my $forged = '2026/01/01 00:00:00 [emerg] 1#1: FORGED';
(my $path = "x\r$forged\n\e[31mred,\"q\"\xff") =~
    s/([^A-Za-z0-9\/_.~-])/sprintf('%%%02X', ord $1)/ge;

is($t->get("/events/$path")->status, 400, 'subscribe: a bad list is a 400');
is($t->publish("/publish/$path", 'x')->status, 400,
    'publish: a bad list is a 400');

# a huge one: the logged value is bounded
my $huge = join ',', map { "c$_\n" } 1 .. 500;
(my $hpath = $huge) =~ s/\n/%0A/g;
is($t->get("/events/$hpath")->status, 400, 'a 4 KB bad list is a 400');

ok($t->wait_log(qr/invalid channel list "c1\\x0a/, 5),
    'the three requests are logged');

my @lines = split /\n/, $t->error_log;
my @foreign = grep { !m{^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[} } @lines;
is_deeply(\@foreign, [], 'every error.log line starts with a timestamp');

my $esc = qr/sse: invalid channel list "x\\x0d\Q$forged\E\\x0a\\x1b\[31mred,\\x22q\\x22\\xff"/;
is(scalar(grep { $_ =~ $esc } @lines), 2,
    'CR, LF, ESC, quotes and 0xff are logged as \xHH (subscribe and publish)');
ok(!grep({ /[\x00-\x08\x0b-\x1f\x7f-\xff]/ } @lines),
    'no control or non-ASCII byte in error.log');

my ($cut) = map { /invalid channel list "([^"]*)"/ ? $1 : () }
            grep { /"c1\\x0a/ } @lines;
ok(defined $cut && length($cut) <= 256 && $cut =~ /\.\.\.$/,
    'a long value is cut to 256 bytes, ending in "..."')
    or diag(length($cut // ''));

$t->done;
