# The module is built like the nginx binary it loads into: Debian's (and
# nginx.org's) packages are compiled with -O2, -fstack-protector-strong and
# -D_FORTIFY_SOURCE=2 and linked with full RELRO (-z relro -z now); a module
# built with nginx's bare default (-O, no hardening) would be the weakest
# code in the process.  Checked on the shared object itself (readelf, nm),
# whichever module the suite runs against (TEST_NGINX_MODULE).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use SSETest;

my $so = SSETest::module_path();
-f $so or skip_file("no module at $so");

for my $tool (qw(readelf nm)) {
    system("command -v $tool >/dev/null 2>&1") == 0
        or skip_file("$tool (binutils) is not installed");
}

my $dynsyms = `nm -D '$so' 2>&1`;
my $nm_rc = $?;

# The sanitizer tier builds with -O1 and its own flags on purpose: not a
# test that tier is meant to run, so a plain skip, also where skips fail.
plan skip_all => 'a sanitizer build (make test-asan) is not hardened this way'
    if $dynsyms =~ /\b__asan_init\b/;

is($nm_rc, 0, 'nm reads the dynamic symbols') or diag($dynsyms);

my $segments = `readelf -lW '$so' 2>&1`;
like($segments, qr/^\s*GNU_RELRO\b/m, 'RELRO segment (-z relro)');

my $dynamic = `readelf -dW '$so' 2>&1`;
like($dynamic, qr/\(FLAGS\)\s.*\bBIND_NOW\b|\(FLAGS_1\)\s.*\bNOW\b/,
     'BIND_NOW (-z now): the GOT is read-only after loading');

like($dynsyms, qr/\bU __stack_chk_fail\b/,
     'stack protector canaries (-fstack-protector-strong)');
like($dynsyms, qr/\bU __\w+_chk\b/,
     'fortified libc calls (-D_FORTIFY_SOURCE=2 with optimisation)');

unlike($segments, qr/^\s*GNU_STACK\s.*RWE/m, 'no executable stack');

# The compiler records its options in the debug info (when built with -g,
# as nginx's flags always are): the last -O wins.
my $info = `readelf --debug-dump=info '$so' 2>/dev/null`;
my ($producer) = $info =~ /DW_AT_producer\s*:.*?:\s*(GNU C\S* .*)$/m;
SKIP: {
    skip 'no DWARF producer string (built without -g)', 2 unless $producer;
    my @opt = $producer =~ /\s-O(\d|s|fast|g)?(?=\s|$)/g;
    my $last = defined $opt[-1] ? $opt[-1] : '1';
    ok($last eq '2' || $last eq '3' || $last eq 's',
       "optimised like the binary (last -O is -O$last)") or diag($producer);
    like($producer, qr/-fstack-protector-strong/,
         'compiled with -fstack-protector-strong');
}

done_testing;
