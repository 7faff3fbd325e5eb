package SSETest::Nodes;

# Several nginx nodes on one Redis: the multi-node tier (t/71x).
#
# One redis-server of the test's own (SSETest::Redis: a free loopback port,
# its own directory, stopped by pid) and N nginx nodes (SSETest: each its
# own prefix dir and port, 2 workers by default), all with
# `sse_redis redis://127.0.0.1:PORT prefix=<the same prefix>`.
#
#   my $c = SSETest::Nodes->new(nodes => 3);        # A, B, C
#   $c->wait_up;                                    # every node's link up
#   my $s = $c->subscribe(1, 'news');               # a stream on B
#   my $r = $c->publish(0, 'news', 'hello');        # POST on A
#   $c->expect_events($s, ['hello'], 'B gets it');
#   $c->done;                                       # stop all, check logs
#
# Nodes are numbered from 0 and named A, B, C in messages (name($i)).
# Every node has: /sub?ch=... (sse_subscribe $arg_ch), /pub?ch=...
# (sse_publish $arg_ch), /status (sse_status), /plain (return 200).
#
# Options of new():
#   nodes => 3, workers => 2
#   zone  => 'sse 8m history=100'   the sse_zone line's arguments; with
#            zone_names => [...] each node's zone has its own name (the
#            prefix is explicit, so they share channels anyway)
#   prefix => 't71x:'               the Redis key prefix of every node
#   http  => '...'                  more http-level lines (sse_heartbeat ...)
#   url   => sub { my ($redis) = @_; 'rediss://...' }  another sse_redis URL
#   redis => { persist => 'none' | 'aof', tls => {...}, config => '...' }
#
# Redis: redis_kill9, redis_pause / redis_resume (SIGSTOP / SIGCONT),
# redis_start, redis_restart_empty, snapshot($name) (SAVE, dump.rdb copied),
# restore($name) (kill -9, the snapshot as dump.rdb, start), client_kill.
# Nodes: stop_node($i) (graceful), kill_node($i) (kill -9 of the master and
# workers), start_node($i) (the same config and ports again),
# pause_node / resume_node (SIGSTOP / SIGCONT of the master and workers).
#
# TEST_NODES_SAME=1 makes every node the same nginx: a check of the tests'
# own logic on a one-node build (what needs no second node must pass).
#
# Every wait is bounded (wait_until, scaled by TEST_NGINX_TIMEOUT_FACTOR);
# no sleep stands in for a condition.  TEST_NGINX_MODULE picks the module
# (SSETest): point it at another worktree's build to run these there.

use strict;
use warnings;
use Test::More ();
use Time::HiRes qw(time sleep);
use File::Copy qw(copy);
use File::Path qw(remove_tree);
use POSIX qw(:sys_wait_h);
use SSETest;
use SSETest::Redis;

sub new {
    my ($class, %o) = @_;
    my $n = $o{nodes} // 3;
    my %ro = %{ $o{redis} // {} };
    my $persist = delete $ro{persist} // 'none';
    my $extra = delete $ro{config} // '';
    if ($persist eq 'aof') {
        # every write reaches the file before its reply: a kill -9 of the
        # process (not of the machine) loses nothing that was answered
        $extra .= "appendonly yes\nappendfsync always\n";
    } elsif ($persist ne 'none') {
        die "persist: none or aof";
    }
    my $redis = SSETest::Redis->new(%ro, config => $extra);
    my $self = bless {
        n       => $n,
        workers => $o{workers} // 2,
        zone    => $o{zone} // 'sse 8m history=100',
        zone_names => $o{zone_names} // [ ('sse') x $n ],
        prefix  => $o{prefix} // 't71x:',
        http    => $o{http} // '',
        url     => $o{url},
        redis   => $redis,
        persist => $persist,
        nodes   => [],
        seen    => {},
    }, $class;
    if ($ENV{TEST_NODES_SAME}) {
        # a check of the tests themselves: every "node" is the same nginx,
        # so what needs no second node (fan-out, resume, DELETE, info)
        # must pass on any build, the one-node shm store included
        my $one = $self->_start_node(0);
        $self->{nodes} = [ ($one) x $n ];
        $self->{zone_names} = [ ($self->{zone_names}[0]) x $n ];
    } else {
        push @{ $self->{nodes} }, $self->_start_node($_) for 0 .. $n - 1;
    }
    return $self;
}

sub redis  { $_[0]{redis} }
sub count  { $_[0]{n} }
sub node   { $_[0]{nodes}[$_[1]] }
sub nodes  { @{ $_[0]{nodes} } }
sub name   { chr(ord('A') + $_[1]) }
sub prefix { $_[0]{prefix} }
sub zone_name { $_[0]{zone_names}[$_[1]] }

sub url_of {
    my ($self) = @_;
    return $self->{url}->($self->{redis}) if $self->{url};
    return 'redis://127.0.0.1:' . $self->{redis}->port;
}

sub config {
    my ($self, $i) = @_;
    my $zone = $self->zone_name($i);
    my ($rest) = $self->{zone} =~ /^\S+\s+(.*)$/;
    my $url = $self->url_of;
    return <<"EOF";
http {
    sse_zone $zone $rest;
    sse_redis $url zone=$zone prefix=$self->{prefix};
    $self->{http}
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch zone=$zone; }
        location /pub { sse_publish \$arg_ch zone=$zone; }
        location = /status { sse_status; }
        location = /plain { return 200 "plain\\n"; }
    }
}
EOF
}

sub _start_node {
    my ($self, $i) = @_;
    return SSETest->new(workers => $self->{workers}, ports => 2)
        ->run($self->config($i));
}

# ---------------------------------------------------------------------------
# the link

# the zone's redis object in node $i's sse_status ({} when none)
sub redis_status {
    my ($self, $i) = @_;
    my $n = $self->node($i);
    return {} unless $n->{running};
    return $n->zone_status($self->zone_name($i))->{redis} // {};
}

sub state_of { $_[0]->redis_status($_[1])->{state} // '' }

# waits until every running node (or those of @which) has its link in
# $state (default up); true on success
sub wait_state {
    my ($self, $state, $timeout, @which) = @_;
    @which = grep { $self->node($_)->{running} } 0 .. $self->{n} - 1
        unless @which;
    return wait_until(sub {
        !grep { $self->state_of($_) ne $state } @which;
    }, $timeout // 10, 0.05);
}

sub wait_up { my ($self, $timeout, @w) = @_; $self->wait_state('up', $timeout, @w) }

# ---------------------------------------------------------------------------
# HTTP on a node

sub _q {
    my ($ch) = @_;
    $ch =~ s/([^A-Za-z0-9_.:,~-])/sprintf('%%%02X', ord $1)/ge;
    return $ch;
}

# POST on node $i: (response); %h are request headers
sub publish {
    my ($self, $i, $ch, $data, %h) = @_;
    return $self->node($i)->publish('/pub?ch=' . _q($ch), $data, %h);
}

# POST with an Idempotency-Key until it is answered 201 or 202 (a 503 is
# retried with the same key at once; the module's own answer is the pace):
# (the final response, the number of 503s before it, the slowest 503 in s)
sub publish_until_done {
    my ($self, $i, $ch, $data, $key, $timeout) = @_;
    my ($r, $refused, $slowest) = (undef, 0, 0);
    wait_until(sub {
        my $t0 = time;
        $r = $self->publish($i, $ch, $data, 'Idempotency-Key' => $key);
        my $d = time - $t0;
        return 1 if $r->status == 201 || $r->status == 202;
        if ($r->status == 503) {
            $refused++;
            $slowest = $d if $d > $slowest;
        }
        return 0;
    }, $timeout // 15, 0.05);
    return ($r, $refused, $slowest);
}

# waits until node $i's channel info counts $n subscribers of $ch (all
# nodes': SPEC.md gives 2 s; t/719 holds that bound, the other files wait
# up to $timeout, default 5 s, before a publish whose 201 they assert)
sub wait_subscribers {
    my ($self, $ch, $n, $timeout, $i) = @_;
    return wait_until(sub {
        my $r = $self->info($i // 0, $ch);
        $r->status == 200 && ($r->json->{subscribers} // -1) == $n;
    }, $timeout // 5, 0.05);
}

sub info {
    my ($self, $i, $ch) = @_;
    return $self->node($i)->get('/pub?ch=' . _q($ch));
}

sub delete {
    my ($self, $i, $ch) = @_;
    return $self->node($i)->delete('/pub?ch=' . _q($ch));
}

# a stream on node $i (SSETest::Stream, headers read):
# last_id => a Last-Event-ID, wait => 0, headers => {...}
sub subscribe {
    my ($self, $i, $ch, %o) = @_;
    my %h = %{ $o{headers} // {} };
    $h{'Last-Event-ID'} = $o{last_id} if defined $o{last_id};
    return $self->node($i)->subscribe('/sub?ch=' . _q($ch),
        headers => \%h, wait => $o{wait} // 1);
}

# the ids a publish reply gave, per channel: { channel => [ids] }
sub reply_ids {
    my ($r) = @_;
    my $j = $r->json;
    my @c = ref $j->{channels} eq 'ARRAY' ? @{ $j->{channels} } : ($j);
    return { map { ($_->{channel} // '') => ($_->{ids} // []) } @c };
}

# ---------------------------------------------------------------------------
# what streams got

# the data of a stream's events that are not resets
sub plain_data {
    my ($s) = @_;
    return map { $_->{data} } grep { ($_->{type} // '') ne 'reset' }
        @{ $s->events };
}

# the id of a stream's last event, or undef
sub last_id {
    my ($s) = @_;
    my $ev = $s->events;
    return @$ev ? $ev->[-1]{id} : undef;
}

sub resets {
    my ($s) = @_;
    return grep { ($_->{type} // '') eq 'reset' } @{ $s->events };
}

# waits until each stream has @$want as its (non-reset) data, in order,
# then is_deeply: every event once, in order, nothing else
sub expect_events {
    my ($self, $streams, $want, $name, $timeout) = @_;
    $streams = [$streams] if ref $streams ne 'ARRAY';
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $n = @$want;
    SSETest::Stream::wait_all($streams, sub {
        my ($s) = @_;
        # as many as wanted, or a closed stream (it will not get more)
        (grep { ($_->{type} // '') ne 'reset' } @{ $s->events }) >= $n
            || $s->{eof} || $s->{complete};
    }, $timeout // 10);
    # a few more that should not come: they would show as extra ones
    SSETest::Stream::poll_many($streams, 0.05);
    my $ok = 1;
    for my $k (0 .. $#$streams) {
        my @got = plain_data($streams->[$k]);
        Test::More::is_deeply(\@got, $want,
            @$streams > 1 ? "$name (stream " . ($k + 1) . ")" : $name)
            or do { $ok = 0; Test::More::diag(_diff(\@got, $want)) };
        $self->note_ids($streams->[$k]);
    }
    return $ok;
}

# missing / repeated / out of order, for a failure message
sub _diff {
    my ($got, $want) = @_;
    my (%g, %w);
    $g{$_}++ for @$got;
    $w{$_}++ for @$want;
    my @missing = grep { !$g{$_} } @$want;
    my @repeated = grep { $g{$_} > 1 } sort keys %g;
    my @extra = grep { !$w{$_} } @$got;
    return sprintf("got %d, want %d; missing: %s; repeated: %s; extra: %s",
        scalar @$got, scalar @$want,
        join(',', @missing[0 .. ($#missing > 9 ? 9 : $#missing)]) || '-',
        join(',', @repeated) || '-', join(',', @extra) || '-');
}

# records every (id, data) of the stream's events but resets (a reset's
# id is the position before the oldest stored event, that of another
# event): an id must always mean the same data, on every node, before and
# after any Redis restart.  Returns the ids seen with two data.
sub note_ids {
    my ($self, $s, $ch) = @_;
    my @bad;
    for my $e (@{ $s->events }) {
        next if ($e->{type} // '') eq 'reset' || !defined $e->{id};
        my $k = ($ch // '') . "\0$e->{id}";
        my $prev = $self->{seen}{$k};
        if (defined $prev && $prev ne $e->{data}) {
            push @bad, "$e->{id}: '$prev' and '$e->{data}'";
        }
        $self->{seen}{$k} //= $e->{data};
    }
    push @{ $self->{aliased} }, @bad;
    return @bad;
}

# the same for a publish reply: its ids with the data published
sub note_reply {
    my ($self, $r, @data) = @_;
    my $ids = reply_ids($r);
    for my $ch (keys %$ids) {
        my @ids = @{ $ids->{$ch} };
        for my $k (0 .. $#ids) {
            my $key = "\0$ids[$k]";
            my $d = $data[$k] // next;
            my $prev = $self->{seen}{$key};
            push @{ $self->{aliased} }, "$ids[$k]: '$prev' and '$d'"
                if defined $prev && $prev ne $d;
            $self->{seen}{$key} //= $d;
        }
    }
}

# a test: no id was ever seen with two different data
sub check_no_alias {
    my ($self, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @bad = @{ $self->{aliased} // [] };
    Test::More::ok(!@bad, $name // 'never an id issued twice (an id always means the same data)')
        or Test::More::diag(join "\n", @bad[0 .. ($#bad > 19 ? 19 : $#bad)]);
    return !@bad;
}

# an id's epoch and seq ("<epoch>-<seq>"); for a multi-channel id, the
# position of channel $k (0-based)
sub position {
    my ($id, $k) = @_;
    return () unless defined $id;
    my @p = split /\./, $id;
    my $p = $p[$k // 0] // return ();
    return $p =~ /^([0-9a-z]+)-(\d+)$/ ? ($1, $2) : ();
}

# ---------------------------------------------------------------------------
# Redis

sub redis_kill9  { $_[0]{redis}->kill9 }
sub redis_pause  { $_[0]{redis}->pause }
sub redis_resume { $_[0]{redis}->resume }
sub redis_start  { $_[0]{redis}->start }
sub rcli         { my ($self, @a) = @_; $self->{redis}->cli(@a) }

# kill -9, then a Redis with nothing on disk (no dump.rdb, no AOF)
sub redis_restart_empty {
    my ($self) = @_;
    $self->{redis}->kill9 if $self->{redis}->pid;
    my $d = $self->{redis}->dir;
    unlink "$d/dump.rdb";
    remove_tree("$d/appendonlydir");
    $self->{redis}->start;
}

# SAVE (synchronous), the dump.rdb copied aside as snapshot $name
sub snapshot {
    my ($self, $name) = @_;
    my $out = $self->rcli('SAVE') // '';
    die "SAVE failed: $out" unless $out =~ /OK/;
    my $d = $self->{redis}->dir;
    copy("$d/dump.rdb", "$d/snap-$name.rdb") or die "copy dump.rdb: $!";
    return "$d/snap-$name.rdb";
}

# kill -9, then Redis started from snapshot $name (whatever it wrote after)
sub restore {
    my ($self, $name) = @_;
    $self->{redis}->kill9 if $self->{redis}->pid;
    my $d = $self->{redis}->dir;
    remove_tree("$d/appendonlydir");
    copy("$d/snap-$name.rdb", "$d/dump.rdb") or die "copy snapshot: $!";
    $self->{redis}->start;
}

# CLIENT KILL of every connection but redis-cli's: (how many)
sub client_kill {
    my ($self) = @_;
    my @ids = map { $_->{id} } $self->{redis}->clients;
    $self->rcli('CLIENT', 'KILL', 'ID', $_) for @ids;
    return scalar @ids;
}

# ---------------------------------------------------------------------------
# nodes

# graceful stop (SIGQUIT), leaving the test's streams open on our side so
# that the test sees the node end them
sub stop_node {
    my ($self, $i) = @_;
    my $n = $self->node($i);
    local $n->{streams} = [];
    return $n->stop;
}

# kill -9 of the master and its workers
sub kill_node {
    my ($self, $i) = @_;
    my $n = $self->node($i);
    my @w = $n->workers;
    kill 'KILL', $n->master_pid, @w;
    wait_until(sub { $n->_reap }, 5, 0.02);
    wait_until(sub { !grep { kill 0, $_ } @w }, 5, 0.02);
}

# the node again: same directory, configuration and ports
sub start_node {
    my ($self, $i) = @_;
    $self->node($i)->start;
}

sub _node_pids {
    my ($self, $i) = @_;
    my $n = $self->node($i);
    return ($n->master_pid, $n->workers);
}

sub pause_node  { my ($s, $i) = @_; kill 'STOP', $s->_node_pids($i) }
sub resume_node { my ($s, $i) = @_; kill 'CONT', $s->_node_pids($i) }

# the time a GET takes on node $i (seconds) and its status
sub timed_get {
    my ($self, $i, $path) = @_;
    my $t0 = time;
    my $r = $self->node($i)->get($path, timeout => 5);
    return (time - $t0, $r->status);
}

sub expect_log {
    my ($self, @re) = @_;
    $_->expect_log(@re) for $self->nodes;
}

# stops every node (graceful), checks every log, done_testing
sub done {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    $self->done_nodes;
    Test::More::done_testing();
}

# the same without done_testing: for a file with several clusters
sub done_nodes {
    my ($self) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    for my $i (0 .. $self->{n} - 1) {
        my $n = $self->node($i);
        $n->{running} && !$n->_reap
            ? Test::More::ok($n->stop, 'node ' . $self->name($i) . ' quit gracefully')
            : Test::More::pass('node ' . $self->name($i) . ' already stopped');
        $n->check_log('node ' . $self->name($i)
            . ': no alert, crit, emerg or sanitizer report');
        $n->dump_log if $ENV{TEST_NGINX_VERBOSE};
    }
    $self->{redis}->stop;
}

1;
