package SSETest::Follower;

# An EventSource-like client: follows a subscribe URL and, whenever the
# server ends the stream, reconnects at once with Last-Event-ID set to the
# last id it saw (as a browser does).  Its events are those of all its
# connections, in order.
#
#   my $f = SSETest::Follower->new($t, '/sub?ch=x');
#   $f->wait_events(100, 10);
#   $f->events;          # [ { data, id, type, conn }, ... ]
#   $f->connections;     # how many connections it made
#   $f->stopped;         # a 204 (or other non-200) ended it: the status

use strict;
use warnings;
use Time::HiRes qw(time);

sub new {
    my ($class, $t, $path, %opt) = @_;
    my $self = bless {
        t => $t, path => $path, opt => \%opt,
        events => [], conns => 0, last_id => $opt{last_id},
        statuses => [],
    }, $class;
    $self->_connect;
    return $self;
}

sub _connect {
    my ($self) = @_;
    my %h = %{$self->{opt}{headers} // {}};
    $h{'Last-Event-ID'} = $self->{last_id}
        if defined $self->{last_id} && length $self->{last_id};
    $self->{conns}++;
    my $s = eval {
        $self->{t}->subscribe($self->{path}, headers => \%h, wait => 0,
            keep_raw => 1);
    };
    if (!$s) {
        # the server may refuse connections for a moment (reload): retry
        $self->{s} = undef;
        $self->{retry_at} = time + 0.05;
        return;
    }
    $self->{s} = $s;
    $self->{taken} = 0;
}

sub stream { $_[0]{s} }
sub events { $_[0]{events} }
sub data { map { $_->{data} } @{$_[0]{events}} }
sub connections { $_[0]{conns} }
sub stopped { $_[0]{stopped} }
sub statuses { $_[0]{statuses} }
sub last_id { $_[0]{last_id} }

# reads what is there (waiting up to $timeout); reconnects when the server
# ended the stream.  Returns the number of new events.
sub poll {
    my ($self, $timeout) = @_;
    return 0 if $self->{stopped};
    if (!$self->{s}) {
        return 0 if time < ($self->{retry_at} // 0);
        $self->_connect;
        return 0 unless $self->{s};
    }
    my $s = $self->{s};
    $s->poll($timeout // 0);
    my $n = $self->_collect;
    if ($s->is_closed) {
        $self->_collect;
        push @{$self->{statuses}}, $s->status // 0;
        if (defined $s->status && $s->status != 200) {
            $self->{stopped} = $s->status;
            $s->close;
            return $n;
        }
        $s->close;
        $self->_connect;
    }
    return $n;
}

sub _collect {
    my ($self) = @_;
    my $s = $self->{s};
    my $n = 0;
    while ($self->{taken} < $s->event_count) {
        my $e = $s->events->[$self->{taken}++];
        push @{$self->{events}}, { %$e, conn => $self->{conns} };
        $n++;
    }
    $self->{last_id} = $s->{last_id} if length($s->{last_id} // '');
    return $n;
}

sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + SSETest::tmo($timeout // 5);
    while (1) {
        return 1 if $cond->();
        return 0 if time >= $deadline || $self->{stopped};
        $self->poll(0.05);
    }
}

sub wait_events {
    my ($self, $n, $timeout) = @_;
    return $self->wait_for(sub { @{$self->{events}} >= $n }, $timeout);
}

sub close {
    my ($self) = @_;
    $self->{s}->close if $self->{s};
    $self->{s} = undef;
    $self->{stopped} //= 'closed';
}

1;
