package SSETest::H2;

# A minimal, deliberately misbehaving HTTP/2 client (h2c, prior knowledge),
# Perl core only: enough to open streams with a chosen initial window and
# then never grant more (no WINDOW_UPDATE), or to send raw frames.
#
#   my $h2 = SSETest::H2->new($port, window => 1024);
#   my $id = $h2->request('GET', '/sub?ch=x');      # stream id (1, 3, ...)
#   $h2->request('POST', '/pub?ch=x', body => 'hi');
#   $h2->read_frames($timeout)   # reads what came: [ { type, flags,
#                                #   stream, payload } ], no WINDOW_UPDATE
#   $h2->status($id)             # the :status of a stream's HEADERS (a
#                                #   static-table index or literal, or undef)
#   $h2->data($id)               # DATA bytes received on a stream
#   $h2->send_frame($type, $flags, $stream, $payload)
#   $h2->close
#
# HPACK: requests are sent as literal fields without indexing (no Huffman);
# responses are decoded only as far as :status needs (nginx sends it as an
# indexed field of the static table, or a literal with an indexed name).

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);
use Errno qw(EAGAIN EWOULDBLOCK EINTR);

use constant {
    DATA => 0, HEADERS => 1, RST_STREAM => 3, SETTINGS => 4, PING => 6,
    GOAWAY => 7, WINDOW_UPDATE => 8,
    END_STREAM => 1, ACK => 1, END_HEADERS => 4,
    SETTINGS_INITIAL_WINDOW_SIZE => 4,
};

my %STATIC_STATUS = (8 => 200, 9 => 204, 10 => 206, 11 => 304, 12 => 400,
                     13 => 404, 14 => 500);

sub new {
    my ($class, $port, %opt) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
        PeerPort => $port, Proto => 'tcp', Timeout => 5)
        or die "h2 connect to $port: $!";
    if ($opt{rcvbuf}) {
        require Socket;
        setsockopt($sock, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(),
            $opt{rcvbuf});
    }
    $sock->autoflush(1);
    my $self = bless { sock => $sock, next_id => 1, buf => '', streams => {},
                       frames => [], eof => 0 }, $class;
    my $settings = '';
    $settings .= pack('nN', SETTINGS_INITIAL_WINDOW_SIZE, $opt{window})
        if defined $opt{window};
    $self->send_raw("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    $self->send_frame(SETTINGS, 0, 0, $settings);
    return $self;
}

sub socket { $_[0]{sock} }

sub send_raw {
    my ($self, $bytes) = @_;
    local $SIG{PIPE} = 'IGNORE';
    my $off = 0;
    my $deadline = time + 5;
    while ($off < length $bytes) {
        my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
        if (!defined $n) {
            return 0 unless $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            return 0 if time > $deadline;
            IO::Select->new($self->{sock})->can_write(0.1);
            next;
        }
        $off += $n;
    }
    return 1;
}

sub send_frame {
    my ($self, $type, $flags, $stream, $payload) = @_;
    $payload //= '';
    my $len = length $payload;
    return $self->send_raw(pack('CnCCN', $len >> 16, $len & 0xffff, $type,
        $flags, $stream & 0x7fffffff) . $payload);
}

sub _int {
    my ($prefix_bits, $first, $v) = @_;
    my $max = (1 << $prefix_bits) - 1;
    return chr($first | $v) if $v < $max;
    my $out = chr($first | $max);
    $v -= $max;
    while ($v >= 128) {
        $out .= chr(($v & 0x7f) | 0x80);
        $v >>= 7;
    }
    return $out . chr($v);
}

# a header block of literal fields without indexing, new names
sub header_block {
    my (@fields) = @_;
    my $b = '';
    while (my ($k, $v) = splice @fields, 0, 2) {
        $b .= "\x00" . _int(7, 0, length $k) . $k . _int(7, 0, length $v) . $v;
    }
    return $b;
}

# opens a stream; returns its id.  body => bytes sends one DATA frame (and
# END_STREAM) unless open_body => 1 keeps the request body open.
sub request {
    my ($self, $method, $path, %opt) = @_;
    my $id = $self->{next_id};
    $self->{next_id} += 2;
    my @h = (':method' => $method, ':scheme' => 'http', ':path' => $path,
             ':authority' => 'localhost', @{$opt{headers} // []});
    my $has_body = defined $opt{body} || $opt{open_body};
    $self->send_frame(HEADERS, END_HEADERS | ($has_body ? 0 : END_STREAM),
        $id, header_block(@h));
    if (defined $opt{body}) {
        $self->send_frame(DATA, $opt{open_body} ? 0 : END_STREAM, $id,
            $opt{body});
    }
    $self->{streams}{$id} = { data => '', status => undef };
    return $id;
}

# reads for up to $timeout seconds (until nothing more comes for a moment
# once something came); keeps the frames; answers SETTINGS and PING as the
# protocol requires, never with WINDOW_UPDATE.  Returns the new frames.
sub read_frames {
    my ($self, $timeout, %opt) = @_;
    my $deadline = time + ($timeout // 1);
    my @new;
    my $sel = IO::Select->new($self->{sock});
    while (!$self->{eof}) {
        my $left = $deadline - time;
        last if $left <= 0;
        last unless $sel->can_read(@new && !$opt{all} ? ($left < 0.1 ? $left : 0.1) : $left);
        my $n = sysread($self->{sock}, my $chunk, 65536);
        if (!defined $n) {
            next if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            $self->{eof} = 1;
            last;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            last;
        }
        $self->{buf} .= $chunk;
        while (length $self->{buf} >= 9) {
            my ($l1, $l2, $type, $flags, $stream) = unpack('CnCCN', $self->{buf});
            my $len = ($l1 << 16) | $l2;
            last if length $self->{buf} < 9 + $len;
            my $payload = substr($self->{buf}, 9, $len);
            substr($self->{buf}, 0, 9 + $len) = '';
            $stream &= 0x7fffffff;
            my $f = { type => $type, flags => $flags, stream => $stream,
                      payload => $payload };
            push @new, $f;
            push @{$self->{frames}}, $f;
            $self->_frame($f);
        }
    }
    return \@new;
}

sub _frame {
    my ($self, $f) = @_;
    my $st = $self->{streams}{$f->{stream}} //= { data => '' };
    if ($f->{type} == SETTINGS && !($f->{flags} & ACK)) {
        $self->send_frame(SETTINGS, ACK, 0, '');
    } elsif ($f->{type} == PING && !($f->{flags} & ACK)) {
        $self->send_frame(PING, ACK, 0, $f->{payload});
    } elsif ($f->{type} == DATA) {
        $st->{data} .= $f->{payload};
        $st->{ended} = 1 if $f->{flags} & END_STREAM;
    } elsif ($f->{type} == HEADERS) {
        my $b = $f->{payload};
        my $c = ord $b;
        if ($c & 0x80) {
            $st->{status} = $STATIC_STATUS{$c & 0x7f};
        } elsif (($c & 0xf0) == 0 || ($c & 0xc0) == 0x40) {
            # literal with an indexed name (:status is index 8): the value
            my $vl = ord substr($b, 1, 1);
            $st->{status} = substr($b, 2, $vl & 0x7f) unless $vl & 0x80;
        }
        $st->{ended} = 1 if $f->{flags} & END_STREAM;
    } elsif ($f->{type} == RST_STREAM) {
        $st->{reset} = unpack('N', $f->{payload});
    } elsif ($f->{type} == GOAWAY) {
        $self->{goaway} = 1;
    }
}

sub status { $_[0]{streams}{$_[1]}{status} }
sub data { $_[0]{streams}{$_[1]}{data} // '' }
sub ended { $_[0]{streams}{$_[1]}{ended} }
sub reset { $_[0]{streams}{$_[1]}{reset} }
sub goaway { $_[0]{goaway} }
sub eof { $_[0]{eof} }
sub frames { $_[0]{frames} }

sub close {
    my ($self) = @_;
    CORE::close($self->{sock}) if $self->{sock};
    $self->{sock} = undef;
}

1;
