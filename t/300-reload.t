# nginx -s reload: the zone and its history survive (same name and size),
# old workers end their streams at once and exit, clients resume on the new
# workers from Last-Event-ID without losing or repeating anything, and the
# status counters carry on.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use SSETest;

my $conf = <<'EOF';
http {
    sse_zone z %%SIZE%% history=1000;
    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        sse_heartbeat 1s;
        location /sub { sse_subscribe $arg_ch zone=z; }
        location /pub { sse_publish $arg_ch zone=z; }
        location = /status { sse_status; }
        %%EXTRA%%
    }
}
EOF
sub conf {
    my ($size, $extra) = @_;
    (my $c = $conf) =~ s/%%SIZE%%/$size/;
    $c =~ s/%%EXTRA%%/$extra \/\/ ''/e;
    return $c;
}

my $t = SSETest->new(workers => 2)->run(conf('8m'));

my @ids = map { $t->publish('/pub?ch=keep', "k$_")->json->{id} } 1 .. 5;
my @subs = map { $t->subscribe('/sub?ch=live') } 1 .. 6;
ok(SSETest::Stream::wait_all(\@subs, sub { @{$_[0]->comments} }, 2),
    '6 subscribers before the reload');
my $before = $t->zone_status('z');
my @old_workers = $t->active_workers;

# -- the reload ------------------------------------------------------------

my $t0 = time;
ok($t->reload(wait_old => 0), 'SIGHUP: new workers run');
ok(SSETest::Stream::wait_all(\@subs, sub { $_[0]->is_closed }, 3),
    'the old workers end their streams at once');
my $took = time - $t0;
ok($took < tmo(3), sprintf('... all 6 within %.2fs', $took));
ok(wait_until(sub { my %w = map { $_ => 1 } $t->workers;
                    !grep { $w{$_} } @old_workers }, 5),
    'the old workers exit');

my $after = $t->zone_status('z');
is($after->{published}, $before->{published}, 'published counter survives');
is($after->{stored_events}, $before->{stored_events}, 'stored events survive');
is($after->{channels}, $before->{channels}, 'channels survive');
is($after->{workers}, 2, 'status counts the 2 new workers only');
ok(wait_until(sub { $t->zone_status('z')->{subscribers} == 0 }, 3),
    'no subscriber of the old workers is counted');

# the history survived: a resume is exact
my $s = $t->subscribe('/sub?ch=keep', headers => { 'Last-Event-ID' => $ids[1] });
ok($s->wait_events(3, 2), 'after the reload a resume replays from history');
is_deeply([$s->data], [qw(k3 k4 k5)], '... exactly the events after the id');
is($s->events->[0]{type}, undef, '... without a reset');
my $r = $t->publish('/pub?ch=keep', 'k6');
like($r->json->{id} // '', qr/-6$/, 'seq numbering continues');
is((split /-/, $r->json->{id} // '')[0], (split /-/, $ids[0])[0], '... in the same epoch');
ok($s->wait_events(4, 2), 'live events flow on the new workers');
$s->close;

# -- clients resume across reloads while events keep coming --------------------

my @f = map { SSETest::Follower->new($t, '/sub?ch=flow') } 1 .. 4;
$_->wait_for(sub { $_->stream && @{$_->stream->comments} }, 2) for @f;
my $pid = $t->publisher('/pub?ch=flow', 400, prefix => 'f', interval => 0.004);

my $reloads = 0;
my $deadline = time + tmo(40);
my $next_reload = 60;
while (time < $deadline) {
    $_->poll(0.01) for @f;
    my $min = (sort { $a <=> $b } map { scalar @{$_->events} } @f)[0];
    if ($reloads < 3 && $min >= $next_reload) {
        $reloads++ if $t->reload(wait_old => 0);
        $next_reload += 100;
    }
    last if $min >= 400 || !grep { !$_->stopped } @f;
}
is($reloads, 3, 'three reloads while publishing');
is($t->wait_proc($pid, 30), 0, 'every publish succeeded during the reloads');
for my $i (0 .. $#f) {
    my $f = $f[$i];
    $f->wait_events(400, 5);
    my @got = $f->data;
    is_deeply(\@got, [map { "f$_" } 1 .. 400],
        "follower $i: all 400 events, once each, in order")
        or diag(scalar(@got) . " events, " . $f->connections . " connections: "
            . join(' ', @got[0 .. ($#got < 30 ? $#got : 30)]));
    ok($f->connections >= 3, "follower $i reconnected (" . $f->connections . " connections)");
    ok(!grep({ ($_->{type} // '') eq 'reset' } @{$f->events}), "follower $i: no reset");
}
$_->close for @f;

# -- a streaming POST on an old worker keeps publishing to the new ones --------

my $req = $t->open_request('POST', '/pub?ch=gen', chunked => 1,
    headers => { 'Content-Type' => 'text/event-stream' });
$req->send_chunk("data: before reload\n\n");
my $g = $t->subscribe('/sub?ch=gen');
ok($g->wait_comment(1), 'a subscriber, and a streaming POST in progress');
ok($t->reload(wait_old => 0), 'reload while the POST is open');
ok($g->wait_closed(3), 'the subscriber of the old generation is ended');
# it reconnects like an EventSource: right after the SIGHUP a connection may
# still land on an old worker, which ends the stream at once; the client
# then reconnects again, until a new worker counts it as a subscriber.  It
# resumes from the channel's last id, as an EventSource that had the first
# event would: an event published while it is between two connections is
# then replayed, not missed (a busy machine makes that window wide)
my $gen_last = ($t->channel_info('/pub?ch=gen') // {})->{last_id};
ok(defined $gen_last, 'the channel has its first event');
my $gf = SSETest::Follower->new($t, '/sub?ch=gen', last_id => $gen_last);
ok($gf->wait_for(sub { ($t->channel_info('/pub?ch=gen') // {})->{subscribers} }, 3),
    'it reconnects to a new worker');
my @old_gen = grep { my $p = $_; !grep { $_ == $p } $t->active_workers } $t->workers;
ok(@old_gen >= 1, 'an old worker is still there, finishing the POST');
$req->send_chunk("data: from the old generation $_\n\n") for 1 .. 3;
ok($gf->wait_events(3, 2), 'events streamed into the old worker reach the new one');
is_deeply([$gf->data], [map { "from the old generation $_" } 1 .. 3], '... in order');
$gf->close;
$req->finish;
my $gr = $req->response(3);
is($gr->status, 201, 'the POST ends with 201');
is($gr->json->{events}, 4, '... all 4 events');
ok(wait_until(sub { !grep { my $p = $_; grep { $_ == $p } @old_gen } $t->workers }, 5),
    'then the old worker exits');

# -- a reload with a broken config keeps everything running ------------------

$s = $t->subscribe('/sub?ch=stay');
ok($s->wait_comment(1), 'a subscriber');
my @w = $t->active_workers;
$t->expect_log(qr/\[emerg\].*sse_bogus/);
$t->write_config(conf('8m', 'sse_bogus on;'));
kill 'HUP', $t->master_pid;
ok($t->wait_log(qr/\[emerg\].*sse_bogus/, 3), 'the broken config is refused');
is(join(' ', $t->active_workers), join(' ', @w), 'the workers stay');
ok(!$s->is_closed, 'the stream stays open');
is($t->publish('/pub?ch=stay', 'still')->status, 201, 'and gets events');
ok($s->wait_events(1, 2), '...');
$s->close;

# -- a reload that changes the zone size is refused (docs/directives.md) ------

@w = $t->active_workers;
$t->expect_log(qr/\[emerg\].*sse_zone "z".*8388608.*16777216/);
$t->write_config(conf('16m'));
kill 'HUP', $t->master_pid;
ok($t->wait_log(qr/\[emerg\].*sse_zone "z".*8388608.*16777216/, 3),
    'a reload that resizes the zone is refused, naming the zone and both sizes');
is(join(' ', $t->active_workers), join(' ', @w), 'the workers stay');
is($t->zone_status('z')->{size}, 8 * 1024 * 1024, 'the zone keeps its size');
$s = $t->subscribe('/sub?ch=keep', headers => { 'Last-Event-ID' => $ids[3] });
ok($s->wait_events(2, 2), 'and its history');
is_deeply([$s->data], [qw(k5 k6)], '... resumes exactly');

$t->done;
