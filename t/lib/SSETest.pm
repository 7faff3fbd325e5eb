package SSETest;

# Test harness for ngx_http_sse_module (Perl core modules only).
#
# Every test file starts its own nginx, with the built module, on free
# 127.0.0.1 ports in a temporary directory, and fails when error.log shows
# an [alert], [crit] or [emerg] line or sanitizer output.
#
#     use FindBin; use lib "$FindBin::Bin/lib";
#     use SSETest;
#
#     my $t = SSETest->new(workers => 2)->run(<<'EOF');
#     http {
#         server {
#             listen 127.0.0.1:%%PORT%%;
#             location /sub { sse_subscribe $arg_ch; }
#             location /pub { sse_publish $arg_ch; }
#         }
#     }
#     EOF
#
#     my $s = $t->subscribe('/sub?ch=news');     # SSETest::Stream
#     my $r = $t->publish('/pub?ch=news', 'hello');
#     is($r->status, 201);
#     ok($s->wait_events(1, 2));
#     $t->done;                                  # stop, check logs, done_testing
#
# The harness prepends to the configuration: load_module (unless the text has
# %%MODULE%% or its own load_module), error_log <dir>/error.log info, pid,
# daemon off, worker_processes, user (when run as root) and, unless the text
# has its own, an events block; it puts all temp paths and the access log of
# the http block into the temp dir.  Placeholders: %%PORT%%, %%PORT2%%, ...,
# %%MODULE%%, %%TESTDIR%%.
#
# Environment:
#   TEST_NGINX_BINARY   nginx to run (default /usr/sbin/nginx)
#   TEST_NGINX_MODULE   module to load (default <repo>/build/ngx_http_sse_module.so)
#   TEST_NGINX_VERBOSE  dump error.log at the end of every test file
#   TEST_NGINX_LEAVE    keep the temp dir (its path is printed)
#   TEST_NGINX_TIMEOUT_FACTOR  multiply every timeout (default: 1, or 4 when
#                       the binary is linked with a sanitizer runtime)

use strict;
use warnings;

use Exporter 'import';
use Test::More ();
use IO::Socket::INET;
use IO::Select;
use File::Temp ();
use File::Spec;
use Cwd ();
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use JSON::PP ();
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);

use SSETest::Stream;
use SSETest::Follower;

our @EXPORT = qw(wait_until timeout_factor tmo json_decode json_encode
    free_ports repo_root fd_limit no_skip skip_file skip_tests sanitized
    rss_kb rss_settled read_response sized_data log_lines_tagged log_fields
    wait_log_line);

my $REPO = Cwd::abs_path(File::Spec->catdir(
    (File::Spec->splitpath(__FILE__))[1], '..', '..'));

my @LIVE;           # servers to clean up at exit

sub repo_root { $REPO }

sub binary { $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx' }

sub module_path {
    $ENV{TEST_NGINX_MODULE} || "$REPO/build/ngx_http_sse_module.so";
}

my $FACTOR;
sub timeout_factor {
    return $FACTOR if defined $FACTOR;
    if (defined $ENV{TEST_NGINX_TIMEOUT_FACTOR}) {
        $FACTOR = $ENV{TEST_NGINX_TIMEOUT_FACTOR};
    } else {
        $FACTOR = sanitized() ? 4 : 1;
    }
    return $FACTOR;
}

# the nginx binary is built with a sanitizer (linked to its runtime, or
# with it linked in statically): memory figures (VmRSS) say nothing there,
# freed memory sits in a quarantine
my $SANITIZED;
sub sanitized {
    return $SANITIZED if defined $SANITIZED;
    my $bin = binary();
    my $ldd = `ldd '$bin' 2>/dev/null` // '';
    $SANITIZED = ($ldd =~ /libasan|libubsan|libtsan/
                  || system("grep -q __asan_init '$bin' 2>/dev/null") == 0)
                 ? 1 : 0;
    return $SANITIZED;
}

# a process's resident memory in kB (VmRSS), or undef when it is gone
sub rss_kb {
    my ($pid) = @_;
    my $st = _slurp("/proc/$pid/status") // '';
    return $st =~ /^VmRSS:\s+(\d+)\s+kB/m ? $1 : undef;
}

# a process's RSS once it has settled: the same RSS and CPU time over
# three samples 50 ms apart (it has done what it had to do and is waiting),
# within $timeout seconds; undef if it never settles
sub rss_settled {
    my ($pid, $timeout) = @_;
    my ($last, $same) = ('', 0);
    my $rss;
    my $ok = wait_until(sub {
        $rss = rss_kb($pid);
        my $stat = _slurp("/proc/$pid/stat") // '';
        my @f = split ' ', ($stat =~ /\)\s(.*)/ ? $1 : '');
        my $now = join ':', $rss // '', $f[11] // '', $f[12] // '';
        $same = $now eq $last ? $same + 1 : 0;
        $last = $now;
        return defined $rss && $same >= 2;
    }, $timeout // 10, 0.05);
    return $ok ? $rss : undef;
}

# event data of exactly $size bytes: "$tag:", then runs of 997 letters
# a..z, so that a shifted, lost or repeated piece of a large event shows
sub sized_data {
    my ($tag, $size) = @_;
    my $d = "$tag:";
    my $i = 0;
    $d .= chr(ord('a') + $i++ % 26) x 997 while length $d < $size;
    return substr($d, 0, $size);
}

# one whole HTTP response with a Content-Length read from a raw socket
# within $timeout seconds, or undef
sub read_response {
    my ($c, $timeout) = @_;
    my $buf = '';
    my $sel = IO::Select->new($c);
    my $deadline = Time::HiRes::time() + $timeout;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        last unless $sel->can_read($left);
        my $n = sysread($c, $buf, 65536, length $buf);
        last unless $n;
        if ($buf =~ /\r\n\r\n/ && $buf =~ /Content-Length: (\d+)/i) {
            my $body = length($buf) - index($buf, "\r\n\r\n") - 4;
            return $buf if $body >= $1;
        }
    }
    return undef;
}

# a timeout scaled for slow (sanitizer) builds
sub tmo { my ($s) = @_; return $s * timeout_factor(); }

sub json_decode {
    my ($text) = @_;
    return undef unless defined $text;
    my $v = eval { JSON::PP->new->utf8->allow_nonref->decode($text) };
    return $v;
}

sub json_encode { JSON::PP->new->utf8->canonical->encode($_[0]) }

# wait_until(sub { condition }, $timeout [, $interval]): true as soon as the
# condition holds, false when the deadline passes.
sub wait_until {
    my ($cond, $timeout, $interval) = @_;
    $interval //= 0.01;
    my $deadline = time + tmo($timeout // 5);
    while (1) {
        my $v = $cond->();
        return $v if $v;
        return 0 if time >= $deadline;
        sleep($interval);
    }
}

# Fills a zone with channels that subscribers hold (they cannot be
# evicted): subscribers of 64 channels each ($sub_path?ch=<ids>, ids of
# 100 bytes and more from $prefix) until one is refused, then, as a
# refused subscriber gives back what it took, subscribers of one channel
# each until not even one more fits.  Returns the open streams and the
# two refusals' statuses (503 expected).
sub hold_channels_until_full {
    my ($self, $sub_path, $prefix) = @_;
    my $long = $prefix . ('x' x 100);
    my (@held, @refused);
    for my $k (1 .. 300) {
        my $multi = !@refused;
        my $ids = $multi ? join(',', map { "$long$k-$_" } 1 .. 64) : "${long}single-$k";
        my $h = $self->subscribe("$sub_path?ch=$ids", untracked => 1);
        $h->wait_headers(3);
        if ($h->status != 200) {
            push @refused, $h->status;
            $h->close;
            last if @refused == 2;
            next;
        }
        push @held, $h;
    }
    return (\@held, @refused);
}

# The whole lines of access log $file whose tag=... field is $tag (a
# line nginx is still writing is left for the next read).
sub log_lines_tagged {
    my ($file, $tag) = @_;
    open my $fh, '<', $file or return ();
    return grep { /\n\z/ && /\btag=\Q$tag\E\b/ } <$fh>;
}

# A log line's name=value fields: a value is "quoted", [bracketed] or bare.
sub log_fields {
    my ($line) = @_;
    my %f;
    while ($line =~ /(\w+)=("([^"]*)"|\[([^\]]*)\]|(\S*))/g) {
        $f{$1} = defined $3 ? $3 : defined $4 ? $4 : $5;
    }
    return \%f;
}

# The fields of the one line tagged $tag in $file, once it is written;
# undef when none comes within $timeout, or when there are several.
sub wait_log_line {
    my ($file, $tag, $timeout) = @_;
    my @l;
    wait_until(sub { @l = log_lines_tagged($file, $tag); @l > 0 },
               $timeout // 5);
    return @l == 1 ? log_fields($l[0]) : undef;
}

# the soft limit of open files of this process
sub fd_limit {
    my $n = POSIX::sysconf(POSIX::_SC_OPEN_MAX());
    return $n // 1024;
}

# Where the whole suite is meant to run (CI=true, or TEST_NGINX_NO_SKIP=1 as
# `make test`, `make test-asan` and .ci/run set it), a test that cannot run
# is a failure, never a skip: a missing curl, a low open-files limit or a
# stalled setup must not quietly leave a behaviour untested.
sub no_skip {
    return 1 if ($ENV{CI} // '') eq 'true';
    return 1 if $ENV{TEST_NGINX_NO_SKIP};
    return 0;
}

# skip_file($why): plan skip_all, or a failure where skips are not allowed
sub skip_file {
    my ($why) = @_;
    if (no_skip()) {
        Test::More::plan(tests => 1);
        Test::More::fail("this file must run here, but: $why"
            . " (CI=true or TEST_NGINX_NO_SKIP=1: a skip is a failure)");
        exit 1;
    }
    Test::More::plan(skip_all => $why);
}

# skip_tests($why, $n) inside a SKIP: block: Test::More's skip, plus a
# failure where skips are not allowed
sub skip_tests {
    my ($why, $n) = @_;
    Test::More::fail("these $n tests must run here, but: $why"
        . " (CI=true or TEST_NGINX_NO_SKIP=1: a skip is a failure)") if no_skip();
    no warnings 'exiting';
    Test::More::skip($why, $n);
}

# n distinct free TCP ports on 127.0.0.1
sub free_ports {
    my ($n) = @_;
    my (@socks, @ports);
    for (1 .. $n) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
            Proto => 'tcp', Listen => 1, ReuseAddr => 1)
            or die "cannot bind a free port: $!";
        push @socks, $s;
        push @ports, $s->sockport;
    }
    close $_ for @socks;
    return @ports;
}


# ---------------------------------------------------------------------------
# the server

sub new {
    my ($class, %opt) = @_;
    my $self = bless {
        workers     => $opt{workers} // 2,
        nports      => $opt{ports} // 3,
        module      => $opt{module} // 1,
        expect_log  => [],
        streams     => [],
        procs       => [],
        owner       => $$,
        %opt,
    }, $class;

    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    $self->{dir} = File::Temp::tempdir('sse-test-XXXXXX', DIR => $base,
        CLEANUP => $ENV{TEST_NGINX_LEAVE} ? 0 : 1);
    Test::More::diag("test dir: $self->{dir}") if $ENV{TEST_NGINX_LEAVE};
    # workers (run as nobody when the tests run as root) must reach the dir
    chmod 0755, $self->{dir};

    $self->{ports} = [free_ports($self->{nports})];

    if ($self->{module} && !-f module_path()) {
        Test::More::BAIL_OUT("module not found at " . module_path()
            . ": run 'make' (or set TEST_NGINX_MODULE)");
    }

    push @LIVE, $self;
    return $self;
}

sub dir { $_[0]{dir} }

# port(1) is %%PORT%%, port(2) is %%PORT2%%, ...
sub port {
    my ($self, $i) = @_;
    $i //= 1;
    return $self->{ports}[$i - 1] // die "no port $i (ask for ports => N)";
}

sub url {
    my ($self, $path, $i) = @_;
    return 'http://127.0.0.1:' . $self->port($i) . $path;
}

sub expect_log {
    my ($self, @re) = @_;
    push @{$self->{expect_log}}, @re;
    return $self;
}

sub _user_line {
    return '' if $> != 0;
    my @pw = getpwnam('nobody');
    return "user root;\n" unless @pw;
    my $group = getgrgid($pw[3]) // 'nogroup';
    return "user nobody $group;\n";
}

# the full configuration text for a test's config
sub make_config {
    my ($self, $conf) = @_;
    my $dir = $self->{dir};
    my $mod = module_path();

    $conf =~ s/%%PORT(\d*)%%/$self->port($1 || 1)/ge;
    $conf =~ s/%%TESTDIR%%/$dir/g;

    my $head = '';
    if ($conf =~ /%%MODULE%%/) {
        $conf =~ s/%%MODULE%%/$mod/g;
    } elsif ($self->{module} && $conf !~ /^\s*load_module\b/m) {
        $head .= "load_module $mod;\n";
    }
    # load_module must come first
    $head .= "$1\n" while $conf =~ s/^\s*(load_module\s[^;]*;)[^\n]*\n//m;
    $head .= "error_log $dir/error.log info;\n"
        unless $conf =~ /^\s*error_log\b/m;
    $head .= "pid $dir/nginx.pid;\n" unless $conf =~ /^\s*pid\b/m;
    $head .= "daemon off;\n" unless $conf =~ /^\s*daemon\b/m;
    $head .= "master_process on;\n" unless $conf =~ /^\s*master_process\b/m;
    $head .= "worker_processes $self->{workers};\n"
        unless $conf =~ /^\s*worker_processes\b/m;
    $head .= _user_line() unless $conf =~ /^\s*user\b/m;
    $head .= "events { worker_connections 4096; }\n"
        unless $conf =~ /^\s*events\b/m;

    my $paths = join '', map { "    $_\n" } (
        "client_body_temp_path $dir/client_body_temp;",
        "proxy_temp_path $dir/proxy_temp;",
        "fastcgi_temp_path $dir/fastcgi_temp;",
        "uwsgi_temp_path $dir/uwsgi_temp;",
        "scgi_temp_path $dir/scgi_temp;",
        "access_log $dir/access.log;",
    );
    $conf =~ s/^(\s*http\s*\{)/$1\n$paths/m;

    return $head . $conf;
}

sub write_config {
    my ($self, $conf) = @_;
    $self->{config_text} = $conf;
    my $full = $self->make_config($conf);
    open my $fh, '>', "$self->{dir}/nginx.conf" or die "nginx.conf: $!";
    print $fh $full;
    close $fh;
    return $full;
}

# nginx -t on the current config: (exit code, output of nginx and error.log)
sub test_config {
    my ($self, $conf) = @_;
    $self->write_config($conf) if defined $conf;
    my $dir = $self->{dir};
    truncate "$dir/error.log", 0 if -f "$dir/error.log";
    my $bin = binary();
    my $out = `'$bin' -t -p '$dir/' -c '$dir/nginx.conf' -e '$dir/error.log' 2>&1`;
    my $rc = $? >> 8;
    my $log = _slurp("$dir/error.log") // '';
    # what nginx -t wrote is for the caller, not for the log checks
    truncate "$dir/error.log", 0 if -f "$dir/error.log";
    return ($rc, $out . $log);
}

# write the config and start nginx; waits until it accepts connections and
# all workers run.  Returns $self.
sub run {
    my ($self, $conf) = @_;
    $self->write_config($conf) if defined $conf;
    $self->start;
    return $self;
}

sub start {
    my ($self) = @_;
    my $dir = $self->{dir};
    my $bin = binary();

    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _child_signals();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/stderr.log";
        open STDERR, '>>', "$dir/stderr.log";
        { exec $bin, '-p', "$dir/", '-c', "$dir/nginx.conf",
            '-e', "$dir/error.log"; }
        POSIX::_exit(127);
    }
    $self->{master} = $pid;
    $self->{running} = 1;
    $self->_watchdog;

    my $ok = wait_until(sub {
        return -1 if $self->_reap;
        return 0 unless _can_connect($self->port(1));
        return scalar($self->workers) >= $self->{workers};
    }, 10);

    if (!$ok || $ok == -1 || !$self->{running}) {
        my $log = $self->error_log . (_slurp("$dir/stderr.log") // '');
        $self->_kill_all;
        # another test (prove -j) took one of our free ports in the meantime:
        # take new ones and try again
        if ($log =~ /Address already in use/ && ($self->{port_retries} // 0) < 3
            && defined $self->{config_text})
        {
            $self->{port_retries}++;
            $self->{ports} = [free_ports($self->{nports})];
            truncate "$dir/error.log", 0;
            truncate "$dir/stderr.log", 0;
            $self->write_config($self->{config_text});
            return $self->start;
        }
        die "nginx did not start:\n$log\n";
    }
    return $self;
}

# a small process that stops nginx if this test process disappears without
# running END (SIGKILL, a prove timeout): no nginx is ever left behind
sub _watchdog {
    my ($self) = @_;
    my ($owner, $master) = ($$, $self->{master});
    my $pid = fork;
    return unless defined $pid;
    if ($pid == 0) {
        $SIG{$_} = 'DEFAULT' for qw(INT PIPE);
        $SIG{TERM} = sub { POSIX::_exit(0) };
        close STDIN;
        while (1) {
            sleep 0.5;
            POSIX::_exit(0) unless kill 0, $master;
            next if kill 0, $owner;
            my @w = _children_of($master);
            kill 'TERM', $master;
            for (1 .. 40) { last unless kill 0, $master; sleep 0.05 }
            kill 'KILL', $master, @w;
            POSIX::_exit(0);
        }
    }
    $self->{watchdog} = $pid;
}

sub _stop_watchdog {
    my ($self) = @_;
    my $pid = delete $self->{watchdog} or return;
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

# true when the master has exited (and reaps it)
sub _reap {
    my ($self) = @_;
    return 1 unless $self->{running};
    my $r = waitpid($self->{master}, WNOHANG);
    if ($r == $self->{master} || $r == -1) {
        $self->{running} = 0;
        $self->{master_status} = $?;
        $self->_stop_watchdog;
        return 1;
    }
    return 0;
}

sub _can_connect {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
        Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub master_pid { $_[0]{master} }

sub _children_of {
    my ($ppid) = @_;
    my @pids;
    opendir my $d, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $d) {
        my $stat = _slurp("/proc/$p/stat") // next;
        # pid (comm) state ppid ...; comm may contain spaces and parens
        $stat =~ /\)\s+(\S)\s+(\d+)/ or next;
        next if $1 eq 'Z';
        push @pids, $p + 0 if $2 == $ppid;
    }
    closedir $d;
    return sort { $a <=> $b } @pids;
}

# pids of the worker processes (all of them, old generations included)
sub workers {
    my ($self) = @_;
    return () unless $self->{running};
    return grep {
        (_slurp("/proc/$_/cmdline") // '') =~ /worker process/
    } _children_of($self->{master});
}

# workers that are not shutting down
sub active_workers {
    my ($self) = @_;
    return grep {
        my $c = _slurp("/proc/$_/cmdline") // '';
        $c =~ /worker process/ && $c !~ /shutting down/;
    } $self->workers;
}

# waits until exactly $n active workers exist; returns their pids or ()
sub wait_workers {
    my ($self, $n, $timeout) = @_;
    my @w;
    wait_until(sub { @w = $self->active_workers; @w == $n }, $timeout // 10)
        or return ();
    return @w;
}

# SIGHUP to the master (optionally with a new config); waits until a full set
# of new workers runs and, unless wait_old => 0, the old ones have exited.
# Returns true on success.
sub reload {
    my ($self, %opt) = @_;
    $self->write_config($opt{config}) if defined $opt{config};
    my %old = map { $_ => 1 } $self->workers;
    kill 'HUP', $self->{master} or return 0;
    my $timeout = $opt{timeout} // 10;
    my $ok = wait_until(sub {
        my @new = grep { !$old{$_} } $self->active_workers;
        return 0 unless @new >= $self->{workers};
        return 1 if defined $opt{wait_old} && !$opt{wait_old};
        my %now = map { $_ => 1 } $self->workers;
        return !grep { $now{$_} } keys %old;
    }, $timeout, 0.02);
    return $ok;
}

# kill -9 one worker; waits for the master to start its replacement.
# Returns the new worker's pid (or undef).
sub kill_worker {
    my ($self, $pid) = @_;
    my %before = map { $_ => 1 } $self->active_workers;
    kill 'KILL', $pid;
    my $new;
    wait_until(sub {
        my @w = $self->active_workers;
        return 0 if grep { $_ == $pid } @w;
        ($new) = grep { !$before{$_} } @w;
        return defined $new;
    }, 10, 0.02);
    return $new;
}

# the number of TCP sockets a process holds (from /proc/<pid>/fd)
sub socket_count {
    my ($self, $pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return 0;
    my $n = grep { (readlink("/proc/$pid/fd/$_") // '') =~ /^socket:/ }
        readdir $d;
    closedir $d;
    return $n;
}

# stops nginx (SIGQUIT, then SIGTERM, then SIGKILL).  Returns true when it
# quit gracefully within the timeout.
sub stop {
    my ($self, %opt) = @_;
    $_->close for @{$self->{streams}};
    $self->{streams} = [];
    $self->_stop_procs;
    return 1 unless $self->{running};

    my @w = $self->workers;
    kill($opt{signal} // 'QUIT', $self->{master});
    my $graceful = wait_until(sub { $self->_reap }, $opt{timeout} // 10, 0.02);
    $self->_kill_all(@w) unless $graceful;
    # workers exit before the master; make sure none is left behind
    for my $p (@w) {
        kill('KILL', $p) if kill(0, $p);
    }
    return $graceful;
}

sub _kill_all {
    my ($self, @w) = @_;
    return unless $self->{master};
    push @w, $self->workers;
    if ($self->{running}) {
        kill 'TERM', $self->{master};
        wait_until(sub { $self->_reap }, 5, 0.02);
    }
    if ($self->{running}) {
        kill 'KILL', $self->{master};
        waitpid($self->{master}, 0);
        $self->{running} = 0;
    }
    $self->_stop_watchdog;
    for my $p (@w) { kill('KILL', $p) if kill(0, $p); }
}

sub _stop_procs {
    my ($self) = @_;
    for my $p (@{$self->{procs}}) {
        next unless $p->{pid};
        kill 'TERM', $p->{pid};
        my $dl = time + 2;
        while (waitpid($p->{pid}, WNOHANG) == 0 && time < $dl) { sleep 0.01 }
        if (waitpid($p->{pid}, WNOHANG) == 0) {
            kill 'KILL', $p->{pid};
            waitpid($p->{pid}, 0);
        }
        $p->{pid} = 0;
    }
    $self->{procs} = [];
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return undef;
    local $/;
    my $d = <$fh>;
    close $fh;
    return $d // '';
}

sub error_log {
    my ($self) = @_;
    return _slurp("$self->{dir}/error.log") // '';
}

# the lines of error.log (and nginx's stderr, where sanitizers write) that
# signal a bug, minus those the test declared with expect_log
sub bad_log_lines {
    my ($self) = @_;
    my $text = $self->error_log . "\n" . (_slurp("$self->{dir}/stderr.log") // '');
    # sanitizer reports written with log_path into the test dir
    if (opendir my $d, $self->{dir}) {
        for my $f (grep { /^(asan|ubsan|lsan)/i } readdir $d) {
            $text .= "\n" . (_slurp("$self->{dir}/$f") // '');
        }
        closedir $d;
    }
    # ... or where ASAN_OPTIONS/UBSAN_OPTIONS log_path points: <path>.<pid>
    # for the pids of our nginx (master, and every worker it logged)
    my %paths;
    for my $v (@ENV{qw(ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS)}) {
        $paths{$1} = 1 if defined $v && $v =~ /(?:^|:)log_path=([^:]+)/;
    }
    if (%paths && $self->{master}) {
        my %pids = ($self->{master} => 1);
        $pids{$_} = 1 for $self->error_log =~ /start (?:worker|cache \w+) process (\d+)/g;
        $pids{$_} = 1 for @{$self->{seen_pids} // []};
        # <path>.<pid>, and <path>.<tool>.<pid> (UBSan next to ASan)
        for my $p (keys %paths) {
            for my $f (glob("$p.*")) {
                my ($pid) = $f =~ /\.(\d+)$/ or next;
                next unless $pids{$pid};
                $text .= "\n" . (_slurp($f) // '');
            }
        }
    }
    my @bad;
    for my $line (split /\n/, $text) {
        next unless $line =~ /\[(alert|crit|emerg)\]|AddressSanitizer|
            LeakSanitizer|UndefinedBehaviorSanitizer|runtime\ error:|
            ThreadSanitizer/x;
        next if grep { $line =~ $_ } @{$self->{expect_log}};
        push @bad, $line;
    }
    return @bad;
}

# a test: no alert/crit/emerg/sanitizer line in the logs so far
sub check_log {
    my ($self, $name) = @_;
    my @bad = $self->bad_log_lines;
    my $tb = Test::More->builder;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $ok = $tb->ok(!@bad, $name // 'no alert, crit, emerg or sanitizer report in error.log');
    if (!$ok) {
        my @show = @bad > 20 ? (@bad[0 .. 19], '...') : @bad;
        $tb->diag(join "\n", @show);
    }
    return $ok;
}

# waits until error.log matches; returns the match or false
sub wait_log {
    my ($self, $re, $timeout) = @_;
    my $m;
    wait_until(sub { my $l = $self->error_log; ($m) = $l =~ /($re)/; defined $m },
        $timeout // 5, 0.02);
    return $m;
}

# stop nginx, check it quit gracefully and the logs are clean, done_testing
sub done {
    my ($self, %opt) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my $graceful = $self->stop;
    Test::More::ok($graceful, 'nginx quit gracefully (SIGQUIT)');
    $self->check_log;
    $self->dump_log if $ENV{TEST_NGINX_VERBOSE};
    Test::More::done_testing();
}

sub dump_log {
    my ($self) = @_;
    Test::More::diag("---- error.log ----\n" . $self->error_log);
    my $err = _slurp("$self->{dir}/stderr.log") // '';
    Test::More::diag("---- stderr ----\n$err") if length $err;
}

END {
    my $rc = $?;
    for my $t (@LIVE) {
        next unless $t->{master};
        next unless $t->{owner} == $$;      # not in a forked helper
        if ($t->{running}) {
            $t->dump_log if $ENV{TEST_NGINX_VERBOSE};
            $t->stop(timeout => 5);
        }
        $t->_stop_procs;
    }
    $? = $rc;
}

# on Ctrl-C, a kill, or a reader of our output that went away (prove
# killed, `| head`), still run END: stop nginx and what we started
for my $sig (qw(INT TERM)) {
    $SIG{$sig} = sub { exit 1 };
}
$SIG{PIPE} = 'IGNORE';

# in a child about to exec: default signal dispositions
sub _child_signals {
    $SIG{$_} = 'DEFAULT' for qw(INT TERM PIPE);
}


# ---------------------------------------------------------------------------
# HTTP

# a connected socket to the server
sub connect {
    my ($self, $port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port // $self->port(1), Proto => 'tcp',
        Timeout => tmo(5))
        or die "connect to 127.0.0.1:" . ($port // $self->port(1)) . ": $!";
    $s->autoflush(1);
    return $s;
}

# a connected socket with a small receive buffer (set before connecting, so
# the TCP window stays small): for slow-reader tests
sub connect_small {
    my ($self, $rcvbuf, $port) = @_;
    require Socket;
    my $s = IO::Socket::INET->new(Proto => 'tcp') or die "socket: $!";
    setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), $rcvbuf)
        or die "SO_RCVBUF: $!";
    $s->connect(Socket::pack_sockaddr_in($port // $self->port(1),
        Socket::inet_aton('127.0.0.1'))) or die "connect: $!";
    $s->autoflush(1);
    return $s;
}

sub _request_head {
    my ($method, $path, $headers, $opt) = @_;
    my $head = "$method $path " . ($opt->{proto} // 'HTTP/1.1') . "\r\n";
    my %seen;
    my @h = ref $headers eq 'HASH' ? map { [$_, $headers->{$_}] } sort keys %$headers
          : ref $headers eq 'ARRAY' ? map { [$headers->[2*$_], $headers->[2*$_+1]] } 0 .. $#$headers/2
          : ();
    for (@h) {
        my ($k, $v) = @$_;
        $seen{lc $k} = 1;
        next unless defined $v;     # undef: suppress a default header
        $head .= "$k: $v\r\n";
    }
    $head .= "Host: localhost\r\n" unless $seen{host};
    return ($head, \%seen);
}

# request(METHOD, path, %opt) -> SSETest::Response
#   headers => { name => value } or [ name => value, ... ] (undef suppresses
#              a default header)
#   body    => string (sent with Content-Length), or an array ref of pieces
#              sent with chunked coding, delay => seconds between pieces
#   raw     => the complete request bytes, sent as they are
#   keepalive => 1 (no Connection: close), timeout => seconds, port => n
sub request {
    my ($self, $method, $path, %opt) = @_;
    my $req = $self->open_request($method, $path, %opt);
    if (ref $opt{body} eq 'ARRAY') {
        my $first = 1;
        for my $piece (@{$opt{body}}) {
            sleep($opt{delay}) if $opt{delay} && !$first;
            $first = 0;
            $req->send_chunk($piece);
        }
        $req->finish;
    }
    my $r = $req->response($opt{timeout} // 10);
    $self->crash_check if !$r->status;
    return $r;
}

# dies (ending the test quickly) when a worker crashed and the test did not
# expect it: a crashed worker would otherwise cost a timeout per request
sub crash_check {
    my ($self) = @_;
    return unless $self->{running};
    my @crash = grep { /exited on signal|Sanitizer/ } $self->bad_log_lines;
    return unless @crash;
    my $n = @crash;
    @crash = @crash[0 .. 4] if @crash > 5;
    die "nginx worker crashed ($n times):\n" . join("\n", @crash) . "\n";
}

# open_request(METHOD, path, %opt) -> SSETest::Request, to send a body piece
# by piece and read the response later.  With body => string the whole
# request is sent; with chunked => 1 (or body => [...]) the head announces
# chunked coding and the caller sends pieces (send_chunk) and finish().
sub open_request {
    my ($self, $method, $path, %opt) = @_;
    my $sock = $self->connect($opt{port} ? $self->port($opt{port}) : undef);
    my $req = SSETest::Request->new($sock, $method);
    if (defined $opt{raw}) {
        $req->send($opt{raw});
        return $req;
    }
    my ($head, $seen) = _request_head($method, $path, $opt{headers}, \%opt);
    $head .= "Connection: close\r\n" unless $seen->{connection} || $opt{keepalive};
    my $chunked = $opt{chunked} || ref $opt{body} eq 'ARRAY';
    if ($chunked) {
        $head .= "Transfer-Encoding: chunked\r\n" unless $seen->{'transfer-encoding'};
    } elsif (defined $opt{body}) {
        $head .= "Content-Length: " . length($opt{body}) . "\r\n"
            unless $seen->{'content-length'};
    } elsif (defined $opt{length}) {
        $head .= "Content-Length: $opt{length}\r\n";
    }
    $req->send("$head\r\n");
    $req->send($opt{body}) if defined $opt{body} && !ref $opt{body};
    return $req;
}

sub get     { my ($s, $p, %o) = @_; $s->request('GET', $p, %o) }
sub head    { my ($s, $p, %o) = @_; $s->request('HEAD', $p, %o) }
sub delete  { my ($s, $p, %o) = @_; $s->request('DELETE', $p, %o) }

# publish(path, body, %headers) -> response; a POST of a raw body
sub publish {
    my ($self, $path, $body, %headers) = @_;
    return $self->request('POST', $path, body => $body // '',
        headers => \%headers);
}

# publish_stream(path, text/event-stream text, %headers)
sub publish_stream {
    my ($self, $path, $body, %headers) = @_;
    return $self->request('POST', $path, body => $body,
        headers => { 'Content-Type' => 'text/event-stream', %headers });
}

# the JSON of an sse_status location (default /status)
sub status {
    my ($self, $path) = @_;
    my $r = $self->get($path // '/status');
    return $r->json;
}

# one zone of sse_status (default: zone "sse", location /status); {} if absent
sub zone_status {
    my ($self, $zone, $path) = @_;
    my $st = $self->status($path);
    return (ref $st eq 'HASH' && $st->{zones} && $st->{zones}{$zone // 'sse'}) || {};
}

# channel info JSON (GET on a publish location), or undef on 404
sub channel_info {
    my ($self, $path) = @_;
    my $r = $self->get($path);
    return $r->status == 200 ? $r->json : undef;
}

# subscribe(path, %opt) -> SSETest::Stream, with response headers read
#   headers => {...}, method => 'GET', body => ..., wait => 0 (don't wait
#   for the response headers), port => n, proto => 'HTTP/1.0', keep_raw => 0
sub subscribe {
    my ($self, $path, %opt) = @_;
    my $method = $opt{method} // 'GET';
    my $sock = $opt{rcvbuf}
        ? $self->connect_small($opt{rcvbuf}, $opt{port} ? $self->port($opt{port}) : undef)
        : $self->connect($opt{port} ? $self->port($opt{port}) : undef);
    my %h = (Accept => 'text/event-stream', %{$opt{headers} // {}});
    my ($head, $seen) = _request_head($method, $path, \%h, \%opt);
    if (defined $opt{body}) {
        $head .= "Content-Length: " . length($opt{body}) . "\r\n";
    }
    $head .= "\r\n" . ($opt{body} // '');
    _write_all($sock, $head);
    my $s = SSETest::Stream->new(fh => $sock, method => $method,
        keep_raw => $opt{keep_raw} // 1);
    push @{$self->{streams}}, $s unless $opt{untracked};
    if ($opt{wait} // 1) {
        $s->wait_headers($opt{timeout} // 5) or do {
            $self->crash_check;
            die "no response headers for $method $path within timeout";
        };
    }
    return $s;
}

# a subscriber that is curl (HTTP/2 etc.): curl_subscribe(url, @curl_args).
# curl runs with -sS -N -i; its stdout is parsed like a socket.
sub curl_subscribe {
    my ($self, $url, @args) = @_;
    my $err = "$self->{dir}/curl-" . (scalar(@{$self->{procs}}) + 1) . ".err";
    my @cmd = ('curl', '-sS', '-N', '-i', '-H', 'Accept: text/event-stream',
        @args, $url);
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _child_signals();
        open STDERR, '>', $err;
        { exec @cmd; }
        POSIX::_exit(127);
    }
    my $s = SSETest::Stream->new(fh => $fh, method => 'GET', decoded => 1);
    $s->{pid} = $pid;
    $s->{errfile} = $err;
    push @{$self->{procs}}, $s;
    return $s;
}

# a background process (killed at the end); returns its pid
sub spawn {
    my ($self, @cmd) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _child_signals();
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$self->{dir}/spawn.log";
        open STDERR, '>>', "$self->{dir}/spawn.log";
        { exec @cmd; }
        POSIX::_exit(127);
    }
    push @{$self->{procs}}, { pid => $pid };
    return $pid;
}

sub kill_proc {
    my ($self, $pid) = @_;
    for my $p (@{$self->{procs}}) {
        next unless $p->{pid} && $p->{pid} == $pid;
        kill 'TERM', $pid;
        waitpid($pid, 0);
        $p->{pid} = 0;
    }
}

# publisher(path, count, %opt): a child process that publishes count events
# "<prefix><n>" (n = 1..count) one after another, interval seconds apart.
# Returns its pid; wait_proc gives its exit code: the number of publishes
# that did not get 201 or 202 (capped at 250).
sub publisher {
    my ($self, $path, $count, %opt) = @_;
    my $prefix = $opt{prefix} // 'e';
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _child_signals();
        my $fail = 0;
        for my $n (1 .. $count) {
            my $r = eval { $self->publish($path, "$prefix$n") };
            $fail++ unless $r && ($r->status == 201 || $r->status == 202);
            sleep($opt{interval}) if $opt{interval};
        }
        POSIX::_exit($fail > 250 ? 250 : $fail);
    }
    push @{$self->{procs}}, { pid => $pid, publisher => 1 };
    return $pid;
}

# waits for a child started by publisher/spawn; its exit code, or undef on
# timeout
sub wait_proc {
    my ($self, $pid, $timeout) = @_;
    my $code;
    wait_until(sub {
        my $r = waitpid($pid, WNOHANG);
        return 0 if $r == 0;
        $code = $r == $pid ? $? >> 8 : -1;
        return 1;
    }, $timeout // 30, 0.01) or return undef;
    $_->{pid} = 0 for grep { ($_->{pid} // 0) == $pid } @{$self->{procs}};
    return $code;
}

# run curl to completion: (exit code, stdout, stderr)
sub curl {
    my ($self, @args) = @_;
    my $err = "$self->{dir}/curl.err";
    my $out = '';
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        _child_signals();
        open STDERR, '>', $err;
        { exec 'curl', '-sS', '--max-time', tmo(20), @args; }
        POSIX::_exit(127);
    }
    local $/;
    $out = <$fh> // '';
    close $fh;
    my $rc = $? >> 8;
    return ($rc, $out, _slurp($err) // '');
}

# a self-signed certificate for localhost in the test dir: (cert, key)
sub make_cert {
    my ($self) = @_;
    my ($crt, $key) = ("$self->{dir}/localhost.crt", "$self->{dir}/localhost.key");
    return ($crt, $key) if -f $crt && -f $key;
    system("openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost "
        . "-days 1 -keyout '$key' -out '$crt' 2>/dev/null") == 0
        or die "openssl req failed";
    return ($crt, $key);
}

sub _write_all {
    my ($sock, $data) = @_;
    my $off = 0;
    my $deadline = time + tmo(10);
    while ($off < length $data) {
        my $n = syswrite($sock, $data, length($data) - $off, $off);
        if (!defined $n) {
            if ($! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR) {
                die "write timed out" if time > $deadline;
                IO::Select->new($sock)->can_write(0.1);
                next;
            }
            return 0;
        }
        $off += $n;
    }
    return 1;
}


# ---------------------------------------------------------------------------

package SSETest::Request;

use strict;
use warnings;
use Time::HiRes qw(time sleep);

sub new {
    my ($class, $sock, $method) = @_;
    return bless { sock => $sock, method => $method }, $class;
}

sub socket { $_[0]{sock} }

# raw bytes; false when the server already closed the connection
sub send {
    my ($self, $data) = @_;
    local $SIG{PIPE} = 'IGNORE';
    return SSETest::_write_all($self->{sock}, $data);
}

sub send_chunk {
    my ($self, $data) = @_;
    return 1 unless length $data;
    return $self->send(sprintf("%x\r\n%s\r\n", length $data, $data));
}

sub finish { $_[0]->send("0\r\n\r\n") }

# the response, read until complete or EOF: SSETest::Response (status 0 on
# timeout or when no response came)
sub response {
    my ($self, $timeout) = @_;
    my $s = $self->{stream} // SSETest::Stream->new(fh => $self->{sock},
        method => $self->{method}, sse => 0);
    $s->wait_complete($timeout // 10);
    my $r = SSETest::Response->from_stream($s);
    $s->close;
    return $r;
}

# the response headers (and whatever body came) as soon as they arrived;
# the request stays open
sub response_headers {
    my ($self, $timeout) = @_;
    $self->{stream} //= SSETest::Stream->new(fh => $self->{sock},
        method => $self->{method}, sse => 0);
    $self->{stream}->wait_headers($timeout // 5);
    return SSETest::Response->from_stream($self->{stream});
}

sub close { CORE::close($_[0]{sock}) if $_[0]{sock} }


package SSETest::Response;

use strict;
use warnings;

sub from_stream {
    my ($class, $s) = @_;
    return bless {
        status   => $s->{status} // 0,
        headers  => $s->{headers} // {},
        header_list => $s->{header_list} // [],
        body     => $s->{body} // '',
        complete => $s->{complete},
        raw_head => $s->{raw_head} // '',
        chunked  => $s->{chunked},
        error    => $s->{error},
    }, $class;
}

sub status { $_[0]{status} }
sub body { $_[0]{body} }
sub complete { $_[0]{complete} }

# one header's value (several joined with ", "); undef when absent
sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers}{lc $name};
    return defined $v ? join(', ', @$v) : undef;
}

sub header_count { my $v = $_[0]{headers}{lc $_[1]}; $v ? scalar @$v : 0 }

# the body as JSON; {} when it is not JSON (see is_json), so that
# $r->json->{field} never dies
sub json {
    my ($self) = @_;
    $self->{json} //= SSETest::json_decode($self->{body});
    return $self->{json} // {};
}

sub is_json {
    my ($self) = @_;
    $self->json;
    return ref $self->{json} eq 'HASH' || ref $self->{json} eq 'ARRAY';
}

sub describe {
    my ($self) = @_;
    return "$self->{raw_head}$self->{body}";
}

1;
