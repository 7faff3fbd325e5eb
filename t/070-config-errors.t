# Configuration errors are refused by `nginx -t` with an [emerg] line that
# names the directive and the bad value; every documented form is accepted.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

sub conf {
    my ($http, $loc) = @_;
    $loc //= '';
    return <<"EOF";
http {
$http
    server {
        listen 127.0.0.1:%%PORT%%;
$loc
    }
}
EOF
}

my $t = SSETest->new(workers => 1);

# -- every documented form passes -------------------------------------------

my ($rc, $out) = $t->test_config(conf(<<'H', <<'L'));
    sse_zone all 8m history=10 history_ttl=10m channel_ttl=5m max_channels=100
                    max_subscribers=1000 max_message=64k;
    sse_zone plain 1m;
    sse_heartbeat 10s;
    sse_retry 2s;
    sse_replay all;
    sse_reset_event resync;
    sse_max_pending 64k;
    sse_lifetime 1h;
H
        sse_heartbeat off;
        sse_retry off;
        location /a { sse_subscribe $arg_ch zone=all; sse_replay none; }
        location /b { sse_subscribe "x y,z" zone=plain; sse_replay 10; }
        location /c { sse_subscribe $arg_ch; sse_last_event_id $arg_from;
                      sse_reset_event off; sse_lifetime off; sse_heartbeat 30s; }
        location /p { sse_publish $arg_ch zone=all; }
        location /q { sse_publish "a b"; }
        location /s { sse_status; }
L
is($rc, 0, 'every documented directive and parameter is accepted') or diag($out);

# -- refused configurations --------------------------------------------------

# each: [ http part, location part, what the message must mention, name ]
my @bad = (
    [ 'sse_zone z 10x;', '', [qw(sse_zone 10x)], 'an unparsable zone size' ],
    [ 'sse_zone z 0;', '', [qw(sse_zone 0)], 'a zone size of 0' ],
    [ 'sse_zone z 1k;', '', [qw(sse_zone 1k)], 'a zone too small' ],
    [ 'sse_zone z 4m colour=blue;', '', [qw(sse_zone colour=blue)],
      'an unknown sse_zone parameter' ],
    [ 'sse_zone z 4m history=many;', '', [qw(sse_zone history=many)],
      'a bad history= value' ],
    [ 'sse_zone z 4m history_ttl=soon;', '', [qw(sse_zone history_ttl=soon)],
      'a bad history_ttl= value' ],
    [ 'sse_zone z 4m max_message=big;', '', [qw(sse_zone max_message=big)],
      'a bad max_message= value' ],
    [ 'sse_zone z 4m; sse_zone z 4m;', '', [qw(sse_zone z)],
      'the same zone declared twice' ],
    [ 'sse_zone z;', '', [qw(sse_zone)], 'sse_zone without a size' ],
    [ '', 'location /s { sse_subscribe $arg_ch zone=nope; }', [qw(nope)],
      'zone= naming an unknown zone (subscribe)' ],
    [ '', 'location /p { sse_publish $arg_ch zone=nope; }', [qw(nope)],
      'zone= naming an unknown zone (publish)' ],
    # several channels are one argument ("a b" or a,b), as docs/publishing.md
    # and docs/protocol.md show; a second bare word is not a channel
    [ '', 'location /p { sse_publish a b; }', [qw(sse_publish invalid "b")],
      'two channel arguments instead of one list (publish)' ],
    [ '', 'location /s { sse_subscribe a b; }', [qw(sse_subscribe invalid "b")],
      'two channel arguments instead of one list (subscribe)' ],
    [ 'sse_heartbeat fast;', '', [qw(sse_heartbeat fast)], 'a bad sse_heartbeat value' ],
    [ '', 'location /s { sse_subscribe a; sse_heartbeat -1s; }',
      [qw(sse_heartbeat -1s)], 'a negative sse_heartbeat' ],
    [ 'sse_retry soon;', '', [qw(sse_retry soon)], 'a bad sse_retry value' ],
    [ 'sse_replay some;', '', [qw(sse_replay some)], 'a bad sse_replay value' ],
    [ "sse_reset_event 'a b';", '', [qw(sse_reset_event invalid)],
      'an sse_reset_event name with a space' ],
    [ 'sse_reset_event ' . ('r' x 65) . ';', '', [qw(sse_reset_event 64)],
      'an sse_reset_event name longer than 64 bytes' ],
    [ 'sse_reset_event one; sse_reset_event two;', '',
      [qw(sse_reset_event duplicate)], 'sse_reset_event given twice' ],
    [ 'sse_max_pending lots;', '', [qw(sse_max_pending lots)],
      'a bad sse_max_pending value' ],
    [ 'sse_lifetime forever;', '', [qw(sse_lifetime forever)],
      'a bad sse_lifetime value' ],
    [ '', 'location /s { sse_subscribe; }', [qw(sse_subscribe)],
      'sse_subscribe without channels' ],
    [ '', 'location /s { sse_subscribe a zone=; }', [qw(sse_subscribe)],
      'an empty zone=' ],
    [ '', 'location /s { sse_subscribe a b=c; }', [qw(sse_subscribe b=c)],
      'an unknown sse_subscribe parameter' ],
    [ 'sse_subscribe a;', '', [qw(sse_subscribe)], 'sse_subscribe in http{}' ],
    [ '', 'location /s { sse_status on; }', [qw(sse_status)],
      'sse_status with an argument' ],
);

for my $b (@bad) {
    my ($http, $loc, $words, $name) = @$b;
    my ($rc, $out) = $t->test_config(conf("    $http", "        $loc"));
    isnt($rc, 0, "nginx -t refuses $name");
    my ($line) = grep { /\[emerg\]/ } split /\n/, $out;
    ok($line, "$name: an [emerg] line") or diag($out);
    $line //= '';
    for my $w (@$words) {
        like($line, qr/\Q$w\E/, "$name: the message mentions '$w'");
    }
    unlike($out, qr/\[alert\]|\[crit\]|Sanitizer|runtime error/,
        "$name: nothing worse than [emerg]");
}

# a valid config still starts after all that
$t->write_config(conf('    sse_zone ok 1m;',
    '        location /s { sse_subscribe $arg_ch zone=ok; }'));
$t->start;
my $ok = $t->subscribe('/s?ch=fine');
is($ok->status, 200, 'a good configuration runs: its subscribe location answers 200');
like($ok->header('content-type') // '', qr{^text/event-stream}, '... with an event stream');
ok($ok->wait_comment(2), '... that opens with its first comment');
$ok->close;

$t->done;
