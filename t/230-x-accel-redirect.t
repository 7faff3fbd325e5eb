# X-Accel-Redirect hand-over: an application behind proxy_pass answers a
# client's request (a fetch POST "start a job and stream its answer", or a
# GET) with X-Accel-Redirect: /internal/sse/<channel>, and nginx continues
# that very request as a subscription in an internal location, honouring
# the client's Last-Event-ID.  The application here is a small HTTP server
# the test starts; it publishes the job's events to nginx itself.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use SSETest;

my ($app_port) = free_ports(1);

my $t = SSETest->new(workers => 2)->run(<<EOF);
http {
    sse_zone z 8m history=100;
    upstream app { server 127.0.0.1:$app_port; }
    server {
        listen 127.0.0.1:%%PORT%%;

        location /api/ {
            proxy_pass http://app;
        }

        location ~ ^/internal/sse/([^/]+)\$ {
            internal;
            sse_subscribe \$1 zone=z;
            sse_replay all;
        }

        location ~ ^/publish/([^/]+)\$ {
            allow 127.0.0.1;
            deny all;
            sse_publish \$1 zone=z;
        }
    }
}
EOF

my $nginx_port = $t->port;

# -- the application ----------------------------------------------------------
#
# POST /api/jobs/<n>: "starts" job n: publishes its first events to nginx,
# then answers with X-Accel-Redirect to the job's channel.
# GET /api/watch/<n>: only the redirect.

sub publish_via_http {
    my ($channel, $event, $data) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$nginx_port",
        Timeout => 5) or return 0;
    print $s "POST /publish/$channel HTTP/1.1\r\nHost: x\r\n"
        . "SSE-Event: $event\r\nContent-Length: " . length($data)
        . "\r\nConnection: close\r\n\r\n$data";
    my $reply = do { local $/; <$s> } // '';
    return $reply =~ m{^HTTP/1\.1 20[12]};
}

my $listener = IO::Socket::INET->new(LocalAddr => "127.0.0.1:$app_port",
    Listen => 16, ReuseAddr => 1) or die "app listen: $!";

my $app = fork // die "fork: $!";
if ($app == 0) {
    # the harness's cleanup handlers belong to the test process, not to us
    $SIG{$_} = 'DEFAULT' for qw(TERM INT HUP ALRM);
    alarm 60;                       # never outlives a stuck test
    while (my $c = $listener->accept) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, $head, 4096, length $head) or last;
        }
        my ($method, $path) = $head =~ m{^(\S+) (\S+)};
        my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
        my $body = substr($head, index($head, "\r\n\r\n") + 4);
        while (defined $len && length($body) < $len) {
            sysread($c, $body, $len - length $body, length $body) or last;
        }

        my $reply;
        if ($method eq 'POST' && $path =~ m{^/api/jobs/(\d+)$}) {
            my $job = $1;
            my $ok = publish_via_http("job-$job", 'start', qq({"job":$job}))
                  && publish_via_http("job-$job", 'progress', '50%');
            $reply = $ok
                ? "HTTP/1.1 200 OK\r\nX-Accel-Redirect: /internal/sse/job-$job\r\n"
                  . "Content-Length: 0\r\nConnection: close\r\n\r\n"
                : "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        } elsif ($path =~ m{^/api/watch/(\d+)$}) {
            $reply = "HTTP/1.1 200 OK\r\nX-Accel-Redirect: /internal/sse/job-$1\r\n"
                . "Content-Length: 0\r\nConnection: close\r\n\r\n";
        } else {
            $reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                . "Connection: close\r\n\r\n";
        }
        print $c $reply;
        close $c;
    }
    POSIX::_exit(0);
}
close $listener;

# -- a fetch POST that starts a job and streams its answer ----------------------

my $s = $t->subscribe('/api/jobs/7', method => 'POST', body => '{"prompt":"hi"}',
    headers => { 'Content-Type' => 'application/json' });
is($s->status, 200, 'the POST answered by X-Accel-Redirect becomes a stream');
like($s->header('content-type') // '', qr{^text/event-stream}, '... of events');
ok($s->wait_events(2, 3), 'the job events published before the hand-over arrive');
is_deeply([map { $_->{type} } @{$s->events}], [qw(start progress)],
    '... in order, with their types');

my $r = $t->publish('/publish/job-7', 'done!', 'SSE-Event' => 'done');
is($r->status, 201, 'the next event finds the handed-over subscriber');
ok($s->wait_events(3, 3), 'and reaches it live');
is($s->events->[2]{data}, 'done!', '... with its data');
my $second_id = $s->events->[1]{id};
$s->close;

# -- the client's Last-Event-ID is honoured after the redirect ------------------

$s = $t->subscribe('/api/watch/7', headers => { 'Last-Event-ID' => $second_id });
is($s->status, 200, 'a GET handed over with a Last-Event-ID');
ok($s->wait_events(1, 3), 'resumes');
ok(!$s->wait_events(2, 0.3), '... with nothing before the id');
is_deeply([$s->data], ['done!'], '... exactly the events after it');
$s->close;

# -- the internal location is not reachable from outside --------------------------

$r = $t->get('/internal/sse/job-7');
is($r->status, 404, 'the internal subscribe location is not public');

kill 'KILL', $app;
waitpid($app, 0);

$t->done;
