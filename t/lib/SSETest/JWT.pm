package SSETest::JWT;

# Keys and tokens for the sse_auth_jwt tests, minted by an independent
# library (npm `jose`, through t/tools/jwt-mint.mjs), and the checks of a
# refusal (RFC 6750).
#
#     use SSETest::JWT qw(refused flip_bit b64url);
#     my $jwt = SSETest::JWT->new($t);          # key files in <testdir>/keys
#     my $tok = $jwt->mint(
#         keys   => [ { name => 'rsa', type => 'RSA' } ],
#         jwks   => [ { file => 'set.jwks', keys => [ { key => 'rsa', kid => 'r1' } ] } ],
#         tokens => { ok => { key => 'rsa', kid => 'r1',
#                             claims => claims(subscribe => ['news']) } },
#     );
#     $t->get('/sub?ch=news', headers => { Authorization => "Bearer $tok->{ok}" });
#
# One node process per mint() call: a test file makes all its keys and
# tokens in one call (a few at most), never one per token.  See
# t/tools/jwt-mint.mjs for the key and token specs.

use strict;
use warnings;

use Exporter 'import';
use Test::More ();
use MIME::Base64 ();
use IPC::Open3 ();
use Symbol ();
use SSETest qw(json_decode json_encode repo_root);

our @EXPORT_OK = qw(b64url unb64url flip_bit claims refused www_authenticate
    node_binary);

sub node_binary { $ENV{TEST_NODE} || 'node' }

sub new {
    my ($class, $t, %opt) = @_;
    my $dir = $opt{dir} // $t->dir . '/keys';
    mkdir $dir unless -d $dir;
    chmod 0755, $dir;
    return bless { t => $t, dir => $dir }, $class;
}

sub dir { $_[0]{dir} }

# the absolute path of a file in the key directory
sub path { "$_[0]{dir}/$_[1]" }

# mint(keys => [...], jwks => [...], tokens => {name => spec}) -> {name => token}
# Dies with node's message when it fails.
sub mint {
    my ($self, %req) = @_;
    my $script = repo_root() . '/t/tools/jwt-mint.mjs';
    my $input = json_encode({ dir => $self->{dir}, %req });

    my $err = Symbol::gensym();
    my $pid = IPC::Open3::open3(my $in, my $out, $err, node_binary(), $script);
    print $in $input;
    close $in;
    my $answer = do { local $/; <$out> } // '';
    my $errtext = do { local $/; <$err> } // '';
    waitpid($pid, 0);
    my $rc = $? >> 8;
    die "jwt-mint failed (exit $rc): $errtext\n" if $rc;
    my $v = json_decode($answer)
        or die "jwt-mint: not JSON: $answer\n$errtext\n";
    return $v->{tokens};
}

# the claims of a token: exp an hour ahead unless given, and the sse claim
# from subscribe => [...], publish => [...]; other keys are copied
sub claims {
    my (%c) = @_;
    my %sse;
    $sse{subscribe} = delete $c{subscribe} if exists $c{subscribe};
    $sse{publish} = delete $c{publish} if exists $c{publish};
    $c{sse} = \%sse if %sse && !exists $c{sse};
    $c{exp} = time() + 3600 unless exists $c{exp};
    delete $c{exp} unless defined $c{exp};
    return \%c;
}

sub b64url {
    my ($bytes) = @_;
    my $s = MIME::Base64::encode_base64($bytes, '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

sub unb64url {
    my ($s) = @_;
    $s =~ tr{-_}{+/};
    $s .= '=' x ((4 - length($s) % 4) % 4);
    return MIME::Base64::decode_base64($s);
}

# the token with one bit of its decoded part $part (0 header, 1 payload,
# 2 signature) flipped: bit $bit of byte $byte (negative: from the end)
sub flip_bit {
    my ($token, $part, $byte, $bit) = @_;
    my @p = split /\./, $token, -1;
    my $bytes = unb64url($p[$part]);
    $byte += length $bytes if $byte < 0;
    substr($bytes, $byte, 1) = chr(ord(substr($bytes, $byte, 1)) ^ (1 << ($bit // 0)));
    $p[$part] = b64url($bytes);
    return join '.', @p;
}

# the WWW-Authenticate header a refusal must carry
#   401 without a token:        Bearer (no error=)
#   401 with a bad token:       Bearer ... error="invalid_token"
#   403 channel not allowed:    Bearer ... error="insufficient_scope"
sub www_authenticate {
    my ($r) = @_;
    return $r->header('www-authenticate');
}

# how the JSON body of a 401 says why (docs/protocol.md: {"error":
# "invalid_token", "message": ...}); the reasons are sse::jwt::status_name's
my %REASON = (
    malformed     => qr/not a well-formed/,
    bad_alg       => qr/algorithm is not its key's/,
    unknown_kid   => qr/no key has the token's kid/,
    no_key        => qr/no key for the token's algorithm/,
    bad_signature => qr/signature is not valid/,
    expired       => qr/has expired/,
    not_yet_valid => qr/not valid yet/,
    bad_issuer    => qr/issuer/,
    bad_audience  => qr/audience/,
);

# refused($response, $status, $error, $reason, $name): one test that the
# answer is exactly that refusal:
#   $error: undef (no token: JSON error "token_required"), 'invalid_token'
#           or 'insufficient_scope' (the challenge's error= and the JSON
#           error)
#   $reason: why, as sse::jwt::status_name says it (undef: not checked):
#           the JSON "reason" when there is one, else the message
sub refused {
    my ($r, $status, $error, $reason, $name) = @_;
    local $Test::Builder::Level = $Test::Builder::Level + 1;
    my @why;
    push @why, "status " . $r->status . ", not $status" if $r->status != $status;
    my $wa = www_authenticate($r);
    my $count = $r->header_count('www-authenticate');
    if (!defined $wa) {
        push @why, "no WWW-Authenticate";
    } else {
        push @why, "$count WWW-Authenticate headers" if $count != 1;
        push @why, "WWW-Authenticate '$wa' is not a Bearer challenge"
            unless $wa =~ /^Bearer(?:\s|$)/;
        if (defined $error) {
            push @why, "WWW-Authenticate '$wa' lacks error=\"$error\""
                unless $wa =~ /[\s,]error="\Q$error\E"(?:,|\s|$)/;
        } else {
            push @why, "WWW-Authenticate '$wa' has an error= without a token"
                if $wa =~ /\berror=/;
        }
    }
    my $j = $r->json;
    if (!$r->is_json) {
        push @why, "body is not JSON: " . $r->body;
    } else {
        my $want_error = $error // 'token_required';
        push @why, "JSON error '" . ($j->{error} // 'undef') . "', not '$want_error'"
            if ($j->{error} // '') ne $want_error;
        if (defined $reason && exists $j->{reason}) {
            push @why, "JSON reason '" . ($j->{reason} // 'undef') . "', not '$reason'"
                if ($j->{reason} // '') ne $reason;
        } elsif (defined $reason) {
            my $re = $REASON{$reason} or die "unknown reason $reason";
            push @why, "JSON message '" . ($j->{message} // 'undef') . "' does not say $reason"
                unless ($j->{message} // '') =~ $re;
        }
    }
    my $ok = Test::More::ok(!@why, $name);
    Test::More::diag(join("\n", @why) . "\n" . $r->describe) unless $ok;
    return $ok;
}

1;
