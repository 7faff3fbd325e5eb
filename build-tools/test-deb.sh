#!/usr/bin/env bash
# `make test-deb`: install the built libnginx-mod-http-sse .deb with apt on
# this machine, check that it is laid out and enabled like Debian's own
# libnginx-mod-* packages, that the stock /etc/nginx still passes `nginx -t`
# with it, run the t/ suite against the installed module, and purge the
# package again -- also when a check fails, so that the machine is left as
# it was.
#
#   test-deb.sh build/deb/libnginx-mod-http-sse_<version>_<arch>.deb
#
# Needs root (apt).  Refuses to run if the package is already installed:
# that installation is someone's, not this test's to replace and remove.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PKG=${DEB_PACKAGE:-libnginx-mod-http-sse}
SO=/usr/lib/nginx/modules/ngx_http_sse_module.so
AVAILABLE=/usr/share/nginx/modules-available/mod-http-sse.conf
ENABLED=/etc/nginx/modules-enabled/50-mod-http-sse.conf

die() { echo "test-deb: $*" >&2; exit 1; }

[ $# = 1 ] && [ -f "$1" ] || die "usage: $0 PACKAGE.deb"
deb=$(readlink -f "$1")
[ "$(id -u)" = 0 ] || die "run as root (it installs $PKG with apt)"
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'ok installed'; then
    die "$PKG is already installed; remove it first (this test installs and purges it)"
fi

failures=0
check() {  # description, command...
    local what=$1; shift
    if "$@"; then
        echo "ok - $what"
    else
        echo "not ok - $what"
        failures=$((failures + 1))
    fi
}

cleanup() {
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'ok installed'; then
        echo "test-deb: purging $PKG"
        DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$PKG" > /dev/null 2>&1 ||
            echo "test-deb: WARNING: could not purge $PKG" >&2
    fi
}
trap cleanup EXIT

echo "test-deb: apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" \
    > /tmp/test-deb-apt.$$ 2>&1 || { cat /tmp/test-deb-apt.$$; rm -f /tmp/test-deb-apt.$$; die "apt-get install failed"; }
rm -f /tmp/test-deb-apt.$$

# -- the layout of Debian's libnginx-mod-* packages -------------------------
check "module installed at $SO" test -f "$SO"
check "load file $AVAILABLE" grep -qx "load_module modules/ngx_http_sse_module.so;" "$AVAILABLE"
check "enabled: $ENABLED -> $AVAILABLE" \
    test "$(readlink "$ENABLED")" = "$AVAILABLE"
check "depends on the nginx ABI it was built for" \
    bash -c "dpkg-query -W -f='\${Depends}' $PKG | grep -q 'nginx-abi-'"

# -- the stock configuration loads it ---------------------------------------
out=$(nginx -t 2>&1); rc=$?
check "nginx -t passes with the stock /etc/nginx" test "$rc" = 0
[ "$rc" = 0 ] || echo "$out" | sed 's/^/    /'
check "nginx -T shows the module's load file in the stock configuration" \
    bash -c "nginx -T 2>/dev/null | grep -q '^load_module modules/ngx_http_sse_module.so;'"

# The stock nginx.conf with an sse_ location: the directives are known, i.e.
# the module was really loaded through modules-enabled (the rest of the
# stock file, its includes of conf.d and sites-enabled, stays as it is).
conf=$(mktemp /tmp/test-deb-nginx.XXXXXX.conf)
sed 's|^\(\s*\)include /etc/nginx/sites-enabled/\*;|&\n\1server { listen 127.0.0.1:1; location /sub { sse_subscribe $arg_ch; } location /pub { sse_publish $arg_ch; } }|' \
    /etc/nginx/nginx.conf > "$conf"
if grep -q sse_subscribe "$conf"; then
    out=$(nginx -t -c "$conf" 2>&1); rc=$?
    check "the stock nginx.conf plus an sse_ server passes nginx -t" test "$rc" = 0
    [ "$rc" = 0 ] || echo "$out" | sed 's/^/    /'
else
    check "the stock nginx.conf includes sites-enabled (to add an sse_ server)" false
fi
rm -f "$conf"

# -- the suite against the installed module ---------------------------------
echo "test-deb: prove -r t/ with TEST_NGINX_MODULE=$SO"
cd "$ROOT" || exit 1
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
TEST_NGINX_BINARY=/usr/sbin/nginx TEST_NGINX_MODULE=$SO \
    prove -I t/lib -r -j"${PROVE_JOBS:-2}" t/
check "the t/ suite passes against the installed module" test "$?" = 0

# -- removal leaves nothing behind ------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "$PKG" > /dev/null 2>&1
check "apt-get purge removes the package" \
    bash -c "! dpkg-query -W -f='\${Status}' $PKG 2>/dev/null | grep -q 'ok installed'"
check "purge removes the module" test ! -e "$SO"
check "purge removes the modules-enabled link" test ! -e "$ENABLED" -a ! -L "$ENABLED"
out=$(nginx -t 2>&1); rc=$?
check "nginx -t passes with the stock /etc/nginx after removal" test "$rc" = 0
[ "$rc" = 0 ] || echo "$out" | sed 's/^/    /'

if [ "$failures" = 0 ]; then
    echo "test-deb: all checks passed"
else
    echo "test-deb: $failures check(s) FAILED"
    exit 1
fi
