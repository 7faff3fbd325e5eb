#!/usr/bin/env bash
# Run nginx in the foreground with examples/nginx.conf and the demo page.
#
# `make run` calls this after building the module.  It lays out a private
# nginx prefix under build/run/ (the config's relative paths point there):
#
#   build/run/modules/ngx_http_sse_module.so -> build/ngx_http_sse_module.so
#   build/run/html                           -> examples/demo
#   build/run/logs/                             access.log, error.log, nginx.pid
#   build/run/temp/                             nginx's temporary files
#
# and execs nginx with `daemon off; master_process on;` and the error log on
# stderr.  Ctrl-C stops it (nginx's fast shutdown).  Works as root (workers
# run as the default unprivileged user) and as any other user.
#
# Environment: NGINX (default /usr/sbin/nginx), SSE_MODULE (default
# build/ngx_http_sse_module.so).

set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
nginx=${NGINX:-/usr/sbin/nginx}
module=${SSE_MODULE:-$root/build/ngx_http_sse_module.so}
conf=$root/examples/nginx.conf
prefix=$root/build/run
url=http://127.0.0.1:8080

die() { echo "run.sh: $*" >&2; exit 1; }

[ -x "$nginx" ]  || die "no nginx binary at $nginx (make deps)"
[ -f "$module" ] || die "no module at $module (run 'make' first)"

# The prefix: directories nginx writes to, links to what it reads.
mkdir -p "$prefix/logs" "$prefix/temp" "$prefix/modules"
ln -sfn "$module" "$prefix/modules/ngx_http_sse_module.so"
ln -sfn "$root/examples/demo" "$prefix/html"

# Directives that only make sense for this foreground run; the config file
# itself stays what a user would deploy.
globals="daemon off; master_process on; error_log stderr notice;"

# As root, nginx's workers switch to the unprivileged default user ("nobody"),
# which must be able to read the demo page.  If the checkout is private
# (e.g. under /root), run the workers as the invoking user instead.
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1 \
        && ! runuser -u nobody -- test -r "$prefix/html/index.html" 2>/dev/null; then
    echo "run.sh: 'nobody' cannot read $root/examples/demo; workers run as root" >&2
    globals="$globals user root;"
fi

args=(-p "$prefix/" -c "$conf" -g "$globals")

# Check the configuration first, so that mistakes show before the banner.
"$nginx" "${args[@]}" -t -q || die "the configuration test failed (see above)"

cat <<EOF

  ngx_http_sse_module demo            (Ctrl-C stops nginx)

    demo page:      $url/
    subscribe:      curl -N $url/events/demo
    publish:        curl -d 'hello' $url/publish/demo
    typed event:    curl -H 'SSE-Event: update' -d 'hello' $url/publish/demo
    status:         curl $url/sse-status
    live status:    $url/sse-status?format=html   (in a browser)

    logs and pid:   $prefix/logs/

EOF

exec "$nginx" "${args[@]}"
