package SSETest::Stream;

# One HTTP response read incrementally from a socket (or a pipe from curl),
# parsed as it arrives: status line and headers, chunked or plain body, and
# (unless sse => 0) the body as a WHATWG event stream.
#
#   $s->status, $s->header('content-type')
#   $s->wait_events($n, $timeout)   at least $n events received in total
#   $s->next_event($timeout)        the next event not yet taken, or undef
#   $s->wait_comment($timeout)      the next comment not yet taken, or undef
#   $s->events, $s->comments        all of them so far (array refs)
#   $s->same_data(\@want)           the events' data are @want, in order
#   $s->data_prefix_of(\@want)      ... are the first ones of @want
#   $s->wait_closed($timeout), $s->is_closed
#   $s->raw                         the body bytes (chunk coding removed)
#   $s->error                       a framing error (bad chunk, junk)
#
# An event is a hash: { data, type (undef unless an event: field came),
# id (undef unless an id: field came in this event), last_id (the stream's
# last event id, as EventSource keeps it), time, retry }.  Comments are
# { text, time }.  items() lists events, comments and retry fields in the
# order they came.  Waits are bounded and never sleep blindly.

use strict;
use warnings;
use IO::Select;
use Time::HiRes qw(time);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);

sub new {
    my ($class, %opt) = @_;
    my $self = bless {
        fh        => $opt{fh},
        method    => $opt{method} // 'GET',
        sse       => $opt{sse} // 1,
        keep_raw  => $opt{keep_raw} // 1,
        decoded   => $opt{decoded} // 0,   # body arrives without HTTP framing (curl)
        state     => 'head',
        buf       => '',
        head      => '',
        body      => '',
        events    => [],
        comments  => [],
        items     => [],
        ev_taken  => 0,
        cm_taken  => 0,
        nevents   => 0,
        sse_buf   => '',
        sse_started => 0,
        cur_data  => undef,
        cur_type  => undef,
        cur_id    => undef,
        last_id   => '',
        eof       => 0,
        complete  => 0,
        bytes     => 0,
    }, $class;
    if ($self->{fh}) {
        $self->{fh}->blocking(0);
        $self->{t0} = time;
    }
    return $self;
}

sub fh { $_[0]{fh} }
sub status { $_[0]{status} }
sub headers { $_[0]{headers} }
sub raw { $_[0]{body} }
sub raw_head { $_[0]{raw_head} }
sub error { $_[0]{error} }
sub events { $_[0]{events} }
sub comments { $_[0]{comments} }
sub items { $_[0]{items} }
sub event_count { $_[0]{nevents} }
sub retry { $_[0]{retry} }
sub is_chunked { $_[0]{chunked} }
sub headers_time { $_[0]{headers_time} }

sub header {
    my ($self, $name) = @_;
    my $v = $self->{headers} && $self->{headers}{lc $name};
    return defined $v ? join(', ', @$v) : undef;
}

sub header_count { my $v = $_[0]{headers}{lc $_[1]}; $v ? scalar @$v : 0 }

# the server closed the connection, or ended the response (last chunk)
sub is_closed {
    my ($self) = @_;
    $self->poll(0);
    return $self->{eof} || $self->{complete};
}

sub eof { $_[0]{eof} }
sub complete { $_[0]{complete} }

sub close {
    my ($self) = @_;
    # a pipe from curl: end curl first (closing the pipe waits for it)
    if ($self->{pid}) {
        kill 'TERM', $self->{pid};
    }
    if ($self->{fh}) {
        CORE::close($self->{fh});
        $self->{fh} = undef;
    }
    if ($self->{pid}) {
        waitpid($self->{pid}, 0);
        $self->{pid} = 0;
    }
}

# reads what is available, waiting up to $timeout seconds for the first
# bytes; returns the number of bytes read (0 on timeout or EOF)
sub poll {
    my ($self, $timeout) = @_;
    return 0 unless $self->{fh} && !$self->{eof};
    my $sel = IO::Select->new($self->{fh});
    return 0 unless $sel->can_read($timeout // 0);
    return $self->_read_some;
}

sub _read_some {
    my ($self) = @_;
    my $total = 0;
    while (1) {
        my $n = sysread($self->{fh}, my $data, 262144);
        if (!defined $n) {
            next if $! == EINTR;
            last if $! == EAGAIN || $! == EWOULDBLOCK;
            $self->{eof} = 1;          # ECONNRESET etc.
            $self->{reset} = "$!";
            $self->{eof_time} = time;
            $self->_feed('');
            last;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            $self->{eof_time} = time;
            $self->_feed('');
            last;
        }
        $total += $n;
        $self->{bytes} += $n;
        $self->_feed($data);
        last if $n < 262144;
    }
    return $total;
}

# poll until cond() is true or the deadline passes
sub wait_for {
    my ($self, $cond, $timeout) = @_;
    my $deadline = time + SSETest::tmo($timeout // 5);
    while (1) {
        return 1 if $cond->();
        my $left = $deadline - time;
        return 0 if $left <= 0;
        return ($cond->() ? 1 : 0) if $self->{eof} || !$self->{fh};
        $self->poll($left > 0.2 ? 0.2 : $left);
    }
}

sub wait_headers {
    my ($self, $timeout) = @_;
    return $self->wait_for(sub { defined $self->{status} }, $timeout);
}

# the whole response arrived (or the connection closed)
sub wait_complete {
    my ($self, $timeout) = @_;
    return $self->wait_for(sub { $self->{complete} || $self->{eof} }, $timeout);
}

sub wait_closed {
    my ($self, $timeout) = @_;
    return $self->wait_for(sub { $self->{complete} || $self->{eof} }, $timeout);
}

# at least $n events received since the stream started
sub wait_events {
    my ($self, $n, $timeout) = @_;
    return $self->wait_for(sub { $self->{nevents} >= $n }, $timeout);
}

# the next event not yet taken (waits up to $timeout), or undef
sub next_event {
    my ($self, $timeout) = @_;
    $self->wait_for(sub { $self->{nevents} > $self->{ev_taken} }, $timeout // 5)
        or return undef;
    return $self->{events}[$self->{ev_taken}++];
}

# all events not yet taken, without waiting
sub take_events {
    my ($self) = @_;
    $self->poll(0);
    my @e = @{$self->{events}}[$self->{ev_taken} .. $#{$self->{events}}];
    $self->{ev_taken} = @{$self->{events}};
    return @e;
}

# the next comment not yet taken (waits up to $timeout), or undef
sub wait_comment {
    my ($self, $timeout) = @_;
    $self->wait_for(sub { @{$self->{comments}} > $self->{cm_taken} },
        $timeout // 5) or return undef;
    return $self->{comments}[$self->{cm_taken}++];
}

sub take_comments {
    my ($self) = @_;
    $self->poll(0);
    my @c = @{$self->{comments}}[$self->{cm_taken} .. $#{$self->{comments}}];
    $self->{cm_taken} = @{$self->{comments}};
    return @c;
}

# data of all events so far (array)
sub data { map { $_->{data} } @{$_[0]{events}} }

# the data of the events so far are exactly @$want, byte for byte, in order
sub same_data {
    my ($self, $want) = @_;
    return @{$self->{events}} == @$want && $self->data_prefix_of($want);
}

# the data of the events so far are the first ones of @$want
sub data_prefix_of {
    my ($self, $want) = @_;
    my @got = $self->data;
    return 0 if @got > @$want;
    for my $i (0 .. $#got) {
        return 0 if $got[$i] ne $want->[$i];
    }
    return 1;
}

# forget stored events and comments (for long runs); counts stay
sub forget {
    my ($self) = @_;
    $self->{events} = [];
    $self->{comments} = [];
    $self->{items} = [];
    $self->{ev_taken} = 0;
    $self->{cm_taken} = 0;
    $self->{body} = '' ;
}


# ---------------------------------------------------------------------------
# parsing

sub _feed {
    my ($self, $data) = @_;
    $self->{buf} .= $data;

    if ($self->{state} eq 'head') {
        my $i = index($self->{buf}, "\r\n\r\n");
        my $sep = 4;
        if ($i < 0) {
            $i = index($self->{buf}, "\n\n");
            $sep = 2;
        }
        if ($i < 0) {
            if ($self->{eof} && length $self->{buf}) {
                $self->{error} //= 'connection closed inside the response head';
            }
            return;
        }
        my $head = substr($self->{buf}, 0, $i + $sep, '');
        $self->_parse_head($head) or return;
    }

    if ($self->{state} =~ /^(?:chunk-size|chunk-data|chunk-crlf|trailer)$/) {
        # a chunk may arrive in any number of reads
        $self->_dechunk;
    } elsif ($self->{state} eq 'length') {
        my $want = $self->{remaining};
        my $piece = substr($self->{buf}, 0, $want, '');
        $self->{remaining} -= length $piece;
        $self->_body($piece);
        if ($self->{remaining} == 0) {
            $self->_done;
        }
    } elsif ($self->{state} eq 'eof-body') {
        my $piece = $self->{buf};
        $self->{buf} = '';
        $self->_body($piece) if length $piece;
        $self->_done if $self->{eof};
    } elsif ($self->{state} eq 'done') {
        if (length $self->{buf}) {
            $self->{after} .= $self->{buf};
            $self->{buf} = '';
        }
    }

    if ($self->{state} eq 'done' && length $self->{buf}) {
        # bytes after the response (a pipelined response, or junk)
        $self->{after} .= $self->{buf};
        $self->{buf} = '';
    }

    if ($self->{eof} && !$self->{complete} && $self->{state} ne 'done'
        && $self->{state} ne 'eof-body')
    {
        $self->{truncated} = 1;
    }
}

sub _parse_head {
    my ($self, $head) = @_;
    $self->{raw_head} = $head;
    my @lines = split /\r?\n/, $head;
    my $sl = shift @lines // '';
    if ($sl !~ m{^HTTP/(\d(?:\.\d)?)\s+(\d{3})\b\s*(.*)$}) {
        $self->{error} = "bad status line: $sl";
        $self->{state} = 'done';
        return 0;
    }
    my ($ver, $code) = ($1, $2);
    if ($code =~ /^1/ && $code != 101) {
        # 100 Continue: the real head follows
        $self->{state} = 'head';
        $self->_feed('');
        return 0;
    }
    $self->{http_version} = $ver;
    $self->{status} = $code + 0;
    $self->{headers_time} = time;
    my (%h, @list);
    for my $l (@lines) {
        next unless length $l;
        if ($l =~ /^([^:\s]+):\s*(.*?)\s*$/) {
            push @{$h{lc $1}}, $2;
            push @list, [$1, $2];
        } else {
            $self->{error} //= "bad header line: $l";
        }
    }
    $self->{headers} = \%h;
    $self->{header_list} = \@list;

    my $te = join ',', @{$h{'transfer-encoding'} // []};
    if ($self->{method} eq 'HEAD' || $code == 204 || $code == 304) {
        $self->{state} = 'done';
        $self->_done;
    } elsif ($self->{decoded}) {
        $self->{state} = 'eof-body';
    } elsif ($te =~ /chunked/i) {
        $self->{chunked} = 1;
        $self->{chunks} = [];
        $self->{state} = 'chunk-size';
    } elsif (defined $h{'content-length'}) {
        $self->{remaining} = $h{'content-length'}[0] + 0;
        $self->{state} = 'length';
        if ($self->{remaining} == 0) {
            $self->{state} = 'done';
            $self->_done;
        }
    } else {
        $self->{state} = 'eof-body';
    }
    return 1;
}

sub _dechunk {
    my ($self) = @_;
    while (1) {
        my $st = $self->{state};
        if ($st eq 'chunk-size') {
            my $i = index($self->{buf}, "\r\n");
            if ($i < 0) {
                $self->{error} //= 'junk instead of a chunk size'
                    if length $self->{buf} > 64;
                return;
            }
            my $line = substr($self->{buf}, 0, $i + 2, '');
            if ($line !~ /^([0-9a-fA-F]+)(;[^\r\n]*)?\r\n$/) {
                $self->{error} //= "bad chunk size line: " . substr($line, 0, 40);
                $self->{state} = 'done';
                return;
            }
            my $size = hex $1;
            push @{$self->{chunks}}, $size if $self->{keep_raw};
            if ($size == 0) {
                $self->{state} = 'trailer';
            } else {
                $self->{remaining} = $size;
                $self->{state} = 'chunk-data';
            }
        } elsif ($st eq 'chunk-data') {
            return unless length $self->{buf};
            my $piece = substr($self->{buf}, 0, $self->{remaining}, '');
            $self->{remaining} -= length $piece;
            $self->_body($piece);
            $self->{state} = 'chunk-crlf' if $self->{remaining} == 0;
        } elsif ($st eq 'chunk-crlf') {
            return if length $self->{buf} < 2;
            if (substr($self->{buf}, 0, 2, '') ne "\r\n") {
                $self->{error} //= 'chunk data not followed by CRLF';
                $self->{state} = 'done';
                return;
            }
            $self->{state} = 'chunk-size';
        } elsif ($st eq 'trailer') {
            my $i = index($self->{buf}, "\r\n");
            return if $i < 0;
            my $line = substr($self->{buf}, 0, $i + 2, '');
            if ($line eq "\r\n") {
                $self->{state} = 'done';
                $self->_done;
                $self->{after} .= $self->{buf};
                $self->{buf} = '';
                return;
            }
        } else {
            return;
        }
    }
}

sub _done {
    my ($self) = @_;
    $self->{state} = 'done';
    return if $self->{complete};
    $self->{complete} = 1;
    $self->{complete_time} = time;
    $self->_sse_finish if $self->{sse};
}

sub _body {
    my ($self, $piece) = @_;
    return unless length $piece;
    $self->{body} .= $piece if $self->{keep_raw} || !$self->{sse};
    $self->_sse($piece) if $self->{sse};
}

# WHATWG event stream interpretation
sub _sse {
    my ($self, $piece) = @_;
    my $buf = $self->{sse_buf} . $piece;
    if (!$self->{sse_started}) {
        return $self->{sse_buf} = $buf if length $buf < 3 && "\xEF\xBB\xBF" =~ /^\Q$buf\E/;
        $buf =~ s/^\xEF\xBB\xBF//;
        $self->{sse_started} = 1;
    }
    if ($self->{skip_lf} && length $buf) {
        # the previous piece ended with CR: a LF now completes that CRLF
        $buf =~ s/^\n//;
        $self->{skip_lf} = 0;
    }
    if (index($buf, "\r") < 0) {
        # the usual case: LF only; split off the complete lines at once
        my $last = rindex($buf, "\n");
        if ($last < 0) {
            $self->{sse_buf} = $buf;
            return;
        }
        $self->{sse_buf} = substr($buf, $last + 1);
        $self->_line($_) for $last == 0 ? ('') : split /\n/, substr($buf, 0, $last), -1;
        return;
    }
    my $pos = 0;
    while ($buf =~ /\G([^\r\n]*)(\r\n|\n|\r)/gc) {
        my ($line, $end) = ($1, $2);
        $pos = pos($buf);
        if ($end eq "\r" && $pos == length $buf) {
            # maybe the first half of a CRLF: a following LF is skipped
            $self->{skip_lf} = 1;
        }
        $self->_line($line);
    }
    $self->{sse_buf} = substr($buf, $pos);
}

sub _line {
    my ($self, $line) = @_;
    if ($line eq '') {
        # dispatch
        my $data = $self->{cur_data};
        if (defined $data) {
            chop $data;     # the last LF
            my $ev = $self->{keep_raw}
                ? { data => $data, type => $self->{cur_type},
                    id => $self->{cur_id}, last_id => $self->{last_id},
                    time => time, n => $self->{nevents} }
                : { data => $data, type => $self->{cur_type}, id => $self->{cur_id} };
            $self->{nevents}++;
            push @{$self->{events}}, $ev;
            push @{$self->{items}}, { kind => 'event', %$ev } if $self->{keep_raw};
            $self->{cur_data} = undef;
            $self->{cur_type} = undef;
        } elsif (defined $self->{cur_id} && $self->{keep_raw}) {
            push @{$self->{items}}, { kind => 'id-only', id => $self->{cur_id},
                time => time };
        }
        $self->{cur_type} = undef;
        $self->{cur_id} = undef;
        return;
    }
    my $i = index($line, ':');
    if ($i == 0) {
        my $c = { text => substr($line, 1), time => time };
        push @{$self->{comments}}, $c;
        push @{$self->{items}}, { kind => 'comment', %$c } if $self->{keep_raw};
        return;
    }
    my ($name, $value);
    if ($i < 0) {
        ($name, $value) = ($line, '');
    } else {
        $name = substr($line, 0, $i);
        $value = substr($line, $i + 1);
        $value = substr($value, 1) if substr($value, 0, 1) eq ' ';
    }
    if ($name eq 'data') {
        if (defined $self->{cur_data}) {
            $self->{cur_data} .= "$value\n";
        } else {
            $self->{cur_data} = "$value\n";
        }
    } elsif ($name eq 'event') {
        $self->{cur_type} = $value;
    } elsif ($name eq 'id') {
        if (index($value, "\0") < 0) {
            $self->{cur_id} = $value;
            $self->{last_id} = $value;
        }
    } elsif ($name eq 'retry') {
        if ($value =~ /^\d+$/) {
            $self->{retry} = $value + 0;
            push @{$self->{items}}, { kind => 'retry', value => $value + 0,
                time => time } if $self->{keep_raw};
        }
    } else {
        push @{$self->{unknown_fields}}, $line;
    }
}

sub _sse_finish {
    my ($self) = @_;
    # an incomplete event at the end of the stream is dropped (WHATWG)
}


# ---------------------------------------------------------------------------
# many streams at once

# poll_many(\@streams, $timeout): reads from whichever streams are readable,
# waiting up to $timeout for the first one; returns how many had data
sub poll_many {
    my ($streams, $timeout) = @_;
    # select(2) with a bit vector: IO::Select is slow with thousands of fds
    my (%by_fd, $rin);
    $rin = '';
    for my $s (@$streams) {
        next unless $s->{fh} && !$s->{eof};
        my $fd = fileno $s->{fh};
        next unless defined $fd;
        $by_fd{$fd} = $s;
        vec($rin, $fd, 1) = 1;
    }
    return 0 unless %by_fd;
    my $n = select(my $rout = $rin, undef, undef, $timeout);
    return 0 unless $n && $n > 0;
    my $ready = 0;
    for my $fd (keys %by_fd) {
        next unless vec($rout, $fd, 1);
        $by_fd{$fd}->_read_some;
        $ready++;
    }
    return $ready;
}

# wait_all(\@streams, sub { my $s = shift; cond }, $timeout): true when the
# condition holds for every stream
sub wait_all {
    my ($streams, $cond, $timeout) = @_;
    my $deadline = time + SSETest::tmo($timeout // 5);
    my @pending = @$streams;
    while (1) {
        @pending = grep { !$cond->($_) } @pending;
        return 1 unless @pending;
        my $left = $deadline - time;
        return 0 if $left <= 0;
        # streams that can no longer change will never satisfy the condition
        my @live = grep { $_->{fh} && !$_->{eof} } @pending;
        return 0 unless @live;
        poll_many(\@live, $left > 0.2 ? 0.2 : $left);
    }
}

1;
