package SSETest::Redis;

# A redis-server of the test's own: a free loopback port (and, if asked, a
# unix socket or a TLS port), its own config and directory, started and
# stopped by pid.  Never touches a Redis it did not start.
#
#   my $r = SSETest::Redis->new(config => "user app on >pw ~* +@all\n",
#                               unixsocket => 1, tls => {...});
#   $r->port, $r->socket, $r->tls_port, $r->dir
#   $r->cli('CLIENT', 'LIST')     # redis-cli's output (plain port)
#   $r->clients                   # CLIENT LIST as hashes
#   $r->kill9; $r->start;         # crash, then the same server again
#   $r->pause; $r->resume;        # SIGSTOP, SIGCONT
#   $r->stop;                     # SIGTERM, waits; also at exit

use strict;
use warnings;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);
use File::Temp qw(tempdir);
use SSETest;

my @all;

# runs nginx (one worker) with the given http-level lines (an sse_redis
# line and its settings) and a subscribe and a status location, then
# $test->($t, $wait) in a subtest named $name, where $wait->($state,
# $timeout) waits until the zone's redis state is $state; then a graceful
# stop and a clean log (but for the lines of expect_log)
sub with_nginx {
    my ($http, $name, $test, %o) = @_;
    my $t = SSETest->new(workers => 1)->run(<<"EOF");
http {
    $http
    server {
        listen 127.0.0.1:%%PORT%%;
        location /sub { sse_subscribe \$arg_ch; }
        location = /status { sse_status; }
    }
}
EOF
    my $wait = sub {
        my ($state, $timeout) = @_;
        SSETest::wait_until(sub {
            (($t->zone_status('sse')->{redis} // {})->{state} // '') eq $state;
        }, $timeout // 5, 0.05);
    };
    Test::More::subtest($name => sub {
        $test->($t, $wait);
        $t->expect_log(@{ $o{expect_log} // [] });
        Test::More::ok($t->stop, 'nginx quit gracefully');
        $t->check_log;
    });
}

sub binary { $ENV{TEST_REDIS_BINARY} || '/usr/bin/redis-server' }
sub cli_binary { '/usr/bin/redis-cli' }
sub available { -x binary() && -x cli_binary() }

# tls => { cert => file, key => file, ca => file, auth_clients => 'no' }
sub new {
    my ($class, %o) = @_;
    my $dir = $o{dir} // tempdir('sse-redis-XXXXXX', TMPDIR => 1,
                                 CLEANUP => !$ENV{TEST_NGINX_LEAVE});
    # nginx's workers (user nobody) reach a unix socket in here
    chmod 0755, $dir;
    my ($port, $tls_port) = SSETest::free_ports(2);
    my $self = bless {
        dir      => $dir,
        port     => $port,
        tls_port => $o{tls} ? $tls_port : undef,
        tls      => $o{tls},
        unix     => $o{unixsocket} ? "$dir/redis.sock" : undef,
        extra    => $o{config} // '',
        requirepass => $o{requirepass},
    }, $class;
    push @all, $self;
    $self->_write_config;
    $self->start;
    return $self;
}

sub dir      { $_[0]{dir} }
sub port     { $_[0]{port} }
sub tls_port { $_[0]{tls_port} }
sub socket   { $_[0]{unix} }
sub pid      { $_[0]{pid} }

sub log_text {
    my ($self) = @_;
    open my $fh, '<', "$self->{dir}/redis.log" or return '';
    local $/;
    return <$fh>;
}

sub _write_config {
    my ($self) = @_;
    my $d = $self->{dir};
    my $c = join '', map { "$_\n" } (
        'bind 127.0.0.1',
        "port $self->{port}",
        "dir $d",
        "logfile $d/redis.log",
        'daemonize no',
        'save ""',
        'appendonly no',
        'protected-mode no',
    );
    if ($self->{unix}) {
        $c .= "unixsocket $self->{unix}\nunixsocketperm 777\n";
    }
    if (my $t = $self->{tls}) {
        $c .= "tls-port $self->{tls_port}\n"
            . "tls-cert-file $t->{cert}\ntls-key-file $t->{key}\n"
            . "tls-ca-cert-file $t->{ca}\n"
            . "tls-auth-clients " . ($t->{auth_clients} // 'no') . "\n";
    }
    $c .= $self->{extra};
    open my $fh, '>', "$d/redis.conf" or die "$d/redis.conf: $!";
    print $fh $c;
    close $fh;
}

# starts the server and waits until it answers on its plain port
sub start {
    my ($self) = @_;
    die "redis-server already runs" if $self->{pid};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/redis.stdout";
        open STDERR, '>&', \*STDOUT;
        exec binary(), "$self->{dir}/redis.conf";
        exit 127;
    }
    $self->{pid} = $pid;
    my $ok = SSETest::wait_until(sub {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{pid};
            die "redis-server exited at start:\n" . $self->log_text;
        }
        my $out = $self->cli('PING');
        return defined $out && $out =~ /PONG|NOAUTH/;
    }, 10, 0.02);
    die "redis-server did not start:\n" . $self->log_text unless $ok;
    return $self;
}

# redis-cli on the plain port; a password the test set goes in
# REDISCLI_AUTH, never on a command line
sub cli {
    my ($self, @args) = @_;
    local $ENV{REDISCLI_AUTH} = $self->{requirepass} if $self->{requirepass};
    my $pid = open(my $fh, '-|');
    die "fork: $!" unless defined $pid;
    if ($pid == 0) {
        open STDERR, '>&', \*STDOUT;
        exec cli_binary(), '-h', '127.0.0.1', '-p', $self->{port}, @args;
        exit 127;
    }
    local $/;
    my $out = <$fh>;
    close $fh;
    return $out;
}

# the clients Redis sees, as hashes (CLIENT LIST), redis-cli itself left out
sub clients {
    my ($self) = @_;
    my $out = $self->cli('CLIENT', 'LIST') // '';
    my @c;
    for my $line (split /\n/, $out) {
        my %h = map { /^([^=]+)=(.*)$/ ? ($1, $2) : () } split / /, $line;
        next unless %h;
        next if ($h{cmd} // '') eq 'client|list';
        push @c, \%h;
    }
    return @c;
}

sub _signal {
    my ($self, $sig) = @_;
    die "redis-server is not running" unless $self->{pid};
    kill $sig, $self->{pid};
}

sub kill9 {
    my ($self) = @_;
    $self->_signal('KILL');
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

sub pause  { $_[0]->_signal('STOP') }
sub resume { $_[0]->_signal('CONT') }

sub stop {
    my ($self) = @_;
    return unless $self->{pid};
    kill 'CONT', $self->{pid};
    kill 'TERM', $self->{pid};
    my $deadline = time + 10;
    while (time < $deadline) {
        if (waitpid($self->{pid}, WNOHANG) != 0) {
            delete $self->{pid};
            return;
        }
        sleep 0.02;
    }
    kill 'KILL', $self->{pid};
    waitpid($self->{pid}, 0);
    delete $self->{pid};
}

END {
    local $?;
    $_->stop for @all;
}

# A CA, a server certificate from it for 127.0.0.1 and localhost, a client
# certificate from it, and a second CA that signed nothing, made by openssl
# in $dir.  Returns a hash of file names.
sub make_tls_files {
    my ($dir) = @_;
    my %f = map { $_ => "$dir/$_" } qw(ca.key ca.crt other-ca.key other-ca.crt
        server.key server.csr server.crt client.key client.csr client.crt
        ext);
    my $run = sub {
        my ($cmd) = @_;
        my $out = `$cmd 2>&1`;
        die "openssl failed: $cmd\n$out" if $?;
    };
    for my $ca (qw(ca other-ca)) {
        $run->("openssl req -x509 -newkey rsa:2048 -nodes -days 2"
            . " -subj /CN=test-$ca -keyout $f{\"$ca.key\"}"
            . " -out $f{\"$ca.crt\"}");
    }
    open my $fh, '>', $f{ext} or die "$f{ext}: $!";
    print $fh "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    close $fh;
    for my $who (qw(server client)) {
        $run->("openssl req -newkey rsa:2048 -nodes -subj /CN=$who"
            . " -keyout $f{\"$who.key\"} -out $f{\"$who.csr\"}");
        $run->("openssl x509 -req -in $f{\"$who.csr\"} -CA $f{'ca.crt'}"
            . " -CAkey $f{'ca.key'} -CAcreateserial -days 2"
            . ($who eq 'server' ? " -extfile $f{ext}" : '')
            . " -out $f{\"$who.crt\"}");
    }
    chmod 0644, grep { -f } values %f;
    return \%f;
}

# redis-cli's answer, without its final newline ('' for none)
sub value {
    my ($self, @args) = @_;
    my $o = $self->cli(@args) // '';
    chomp $o;
    return $o;
}

# the text of an event id: base36 epoch, '-', seq (docs/protocol.md)
sub id_of {
    my ($epoch, $seq) = @_;
    my @d = (0 .. 9, 'a' .. 'z');
    my $s = '';
    do { $s = $d[$epoch % 36] . $s; $epoch = int($epoch / 36) } while $epoch > 0;
    return "$s-$seq";
}

1;
