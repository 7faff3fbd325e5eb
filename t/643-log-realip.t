# The client address in a detached stream's end line is the one its request
# had: the realip module sets it from a trusted proxy's header, and gives
# the connection its own address back when the request is freed, long
# before the stream ends; the module keeps the request's address for the
# line (only when realip changed it).  Needs an nginx with the realip
# module (Debian's has it; the matrix builds do not).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $v = `@{[SSETest::binary()]} -V 2>&1`;
skip_file('nginx is built without the realip module')
    unless $v =~ /--with-http_realip_module/;

my $t = SSETest->new(workers => 1)->run(<<'EOF2');
http {
    log_format sse 'a=$args ra=$remote_addr why=$sse_close_reason';
    server {
        listen 127.0.0.1:%%PORT%%;
        sse_heartbeat off;
        access_log %%TESTDIR%%/sse.log sse;
        location /sub { sse_subscribe $arg_ch; }
        location /real { sse_subscribe $arg_ch;
                         set_real_ip_from 127.0.0.1; real_ip_header X-Real-IP; }
    }
}
EOF2

sub line_of {
    my ($tag) = @_;
    my @l;
    wait_until(sub {
        open my $fh, '<', $t->dir . '/sse.log' or return 0;
        @l = grep { /\btag=\Q$tag\E\b/ } <$fh>;
        @l > 0;
    }, tmo(5));
    return @l == 1 ? $l[0] : '';
}

my $s = $t->subscribe('/real?ch=real&tag=realip', headers => { 'X-Real-IP' => '192.0.2.7' });
is($s->status, 200, 'a stream whose client address realip sets');
ok($s->is_chunked, '... detached (chunked)');
$s->close;
like(line_of('realip'), qr/ ra=192\.0\.2\.7 why=client/, '... its end line has the address the request had');

$s = $t->subscribe('/sub?ch=real&tag=norealip', headers => { 'X-Real-IP' => '192.0.2.8' });
$s->close;
like(line_of('norealip'), qr/ ra=127\.0\.0\.1 why=client/, '... without realip, the connection\'s');

$t->done;
