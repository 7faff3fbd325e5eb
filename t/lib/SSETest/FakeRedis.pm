package SSETest::FakeRedis;

# A server at the Redis address that the test scripts (t/705, t/706,
# t/721): it accepts connections, and for each chunk a connection sends,
# asks the test what to write back.
#
#   my $fake = SSETest::FakeRedis->new(sub {
#       my ($bytes) = @_;        # what one read() of the connection got
#       return "+PONG\r\n";      # write this, go on reading
#       return '';               # write nothing, go on reading
#       return undef;            # close the connection
#       return [ $first, $again ];  # write $first, then $again for as
#                                   # long as the connection is open
#   });
#   $fake->port;                 # its loopback port (or unix socket path)
#   $fake->stop;                 # stops it and its connections (also when
#                                # the object goes)
#
# Options after the handler: unix => $path listens on a unix socket whose
# connections may queue 64 MB to send (a writer that outpaces any reader).
#
# Every connection is served by a process of its own, forked from the
# server: a handler that keeps state in its closure (a buffer of what
# came, what it answered already) keeps it per connection.  The server
# runs in its own process group, so that stop() ends it and every
# connection's process together.

use strict;
use warnings;
use IO::Socket::INET;
use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_SNDBUF);
use POSIX ();

# SO_SNDBUFFORCE (Linux, as root): SO_SNDBUF past net.core.wmem_max
use constant SO_SNDBUFFORCE => 32;

sub new {
    my ($class, $handler, %o) = @_;
    my ($srv, $port);
    if (my $unix = $o{unix}) {
        unlink $unix;
        $srv = IO::Socket::UNIX->new(Local => $unix, Listen => 32)
            or die "listen on $unix: $!";
        chmod 0777, $unix;
        $port = $unix;
    } else {
        $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
            LocalPort => 0, Proto => 'tcp', Listen => 32, ReuseAddr => 1)
            or die "listen: $!";
        $port = $srv->sockport;
    }
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        setpgrp(0, 0);
        $SIG{CHLD} = 'IGNORE';
        while (1) {
            my $c = $srv->accept or next;
            my $k = fork;
            next unless defined $k;
            if ($k == 0) {
                close $srv;
                if ($o{unix}) {
                    setsockopt($c, SOL_SOCKET, SO_SNDBUFFORCE, 64 << 20)
                        or setsockopt($c, SOL_SOCKET, SO_SNDBUF, 64 << 20);
                }
                _serve($c, $handler);
                POSIX::_exit(0);
            }
            close $c;
        }
    }
    close $srv;
    return bless { port => $port, pid => $pid }, $class;
}

sub _serve {
    my ($c, $handler) = @_;
    while (sysread($c, my $buf, 65536)) {
        my $out = $handler->($buf);
        return unless defined $out;
        if (ref $out) {
            syswrite($c, $out->[0]);
            1 while defined syswrite($c, $out->[1]);
            return;
        }
        syswrite($c, $out) if length $out;
    }
}

sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', -$pid;
    waitpid($pid, 0);
}

sub DESTROY { $_[0]->stop }

1;
