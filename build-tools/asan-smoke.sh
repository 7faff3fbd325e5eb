#!/bin/bash
# asan-smoke.sh NGINX [MODULE] -- a quick run of the sanitizer build.
#
# Starts NGINX (the ASan/UBSan binary) in a temp prefix with a minimal
# config that loads MODULE (when given), drives it with curl over HTTP/1.1
# and HTTP/2 -- publish, subscribe, resume, status, delete, a bad request, a
# reload with an open stream -- and quits it.  Fails when nginx does not
# start, a request does not get the expected status, or error.log has an
# [alert]/[crit]/[emerg] line.  Sanitizer reports go wherever ASAN_OPTIONS /
# UBSAN_OPTIONS log_path says (mk/asan.mk checks that directory).
#
# `make test-asan` runs it before the t/ suite, as a fast check that the
# sanitizer build works at all (and as the whole tier when t/ has no tests).
set -uo pipefail

NGINX=${1:?usage: asan-smoke.sh NGINX [MODULE]}
MODULE=${2:-}
fail=0

dir=$(mktemp -d /tmp/sse-asan-smoke-XXXXXX)
chmod 755 "$dir"                           # workers run as nobody under root
mkdir -p "$dir/logs"
trap 'cleanup' EXIT

read -ra ports < <(perl -MIO::Socket::INET -e '
    my @s = map { IO::Socket::INET->new(LocalAddr => "127.0.0.1",
        LocalPort => 0, Listen => 1, ReuseAddr => 1) or die $! } 1 .. 2;
    print join(" ", map { $_->sockport } @s), "\n"')
P1=${ports[0]} P2=${ports[1]}
URL=http://127.0.0.1:$P1

user=""
[ "$(id -u)" = 0 ] && user="user nobody $(id -gn nobody 2>/dev/null || echo nogroup);"

{
    [ -n "$MODULE" ] && echo "load_module $MODULE;"
    cat <<EOF
$user
worker_processes 2;
error_log logs/error.log debug;
pid logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log logs/access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
EOF
    [ -n "$MODULE" ] && echo "    sse_zone smoke 1m history=5;"
    cat <<EOF
    server {
        listen 127.0.0.1:$P1;
        listen 127.0.0.1:$P2 http2;
        location /plain { return 200 "plain\n"; }
        location /proxy { proxy_pass $URL/plain; }
EOF
    [ -n "$MODULE" ] && cat <<EOF
        location /sub    { sse_subscribe \$arg_ch zone=smoke; sse_heartbeat 1s; }
        location /pub    { sse_publish \$arg_ch zone=smoke; }
        location /status { sse_status; }
EOF
    echo "    }"
    echo "}"
} > "$dir/nginx.conf"

cleanup() {
    if [ -f "$dir/logs/nginx.pid" ]; then
        local pid; pid=$(cat "$dir/logs/nginx.pid")
        kill -QUIT "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        pkill -KILL -P "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null
    fi
    [ -n "${SMOKE_KEEP:-}" ] && echo "smoke: kept $dir" >&2 || rm -rf "$dir"
}

check() {       # check NAME STATUS-REGEX curl-args...
    local name=$1 want=$2 got; shift 2
    got=$(curl -s -o "$dir/body" -w '%{http_code}' --max-time 20 "$@")
    if [[ $got =~ ^($want)$ ]]; then
        echo "ok    $name ($got)"
    else
        echo "FAIL  $name: status $got, expected $want"; head -c 300 "$dir/body"; echo
        fail=1
    fi
}

"$NGINX" -p "$dir/" -c "$dir/nginx.conf" -t -q || { echo "FAIL  nginx -t"; exit 1; }
"$NGINX" -p "$dir/" -c "$dir/nginx.conf" || { echo "FAIL  nginx start"; exit 1; }
for _ in $(seq 100); do
    curl -s -o /dev/null "$URL/plain" && break; sleep 0.1
done

check "plain location"            200 "$URL/plain"
check "plain over HTTP/2"         200 --http2-prior-knowledge "http://127.0.0.1:$P2/plain"
check "proxied, chunked body"     200 -H 'Transfer-Encoding: chunked' \
                                      --data-binary @/etc/services "$URL/proxy"

if [ -n "$MODULE" ]; then
    # a subscriber that stays open across publishes and a reload
    curl -s -N --max-time 8 "$URL/sub?ch=a" > "$dir/stream1" &
    s1=$!
    curl -s -N --max-time 8 --http2-prior-knowledge \
        "http://127.0.0.1:$P2/sub?ch=a,b" > "$dir/stream2" &
    s2=$!
    sleep 1
    check "publish plain"         201 -d 'hello world' "$URL/pub?ch=a"
    check "publish event-stream"  201 -H 'Content-Type: text/event-stream' \
        --data-binary $'event: chunk\ndata: one\ndata: two\n\ndata: three\n\n' "$URL/pub?ch=a"
    for i in $(seq 8); do          # more than history=5: eviction
        curl -s -o /dev/null -d "event $i" "$URL/pub?ch=b"
    done
    check "publish, no subscriber" 202 --data-binary @/etc/services "$URL/pub?ch=c"
    check "channel info"          200 "$URL/pub?ch=a"
    check "resume, evicted id"    200 --max-time 2 -H 'Last-Event-ID: 0-1' "$URL/sub?ch=b"
    check "bad channel id"        400 -d x "$URL/pub?ch=$(printf 'x%.0s' {1..256})"
    check "status json"           200 "$URL/status"
    check "status prometheus"     200 "$URL/status?format=prometheus"
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -s reload
    sleep 1
    check "publish after reload"  '20[12]' -d 'after reload' "$URL/pub?ch=a"
    check "delete channel"        200 -X DELETE "$URL/pub?ch=a"
    wait $s1 $s2 2>/dev/null
    if grep -q 'hello world' "$dir/stream1" && grep -q 'data: three' "$dir/stream1"; then
        echo "ok    subscriber got the events"
    else
        echo "FAIL  subscriber stream:"; head -c 500 "$dir/stream1"; echo; fail=1
    fi
else
    "$NGINX" -p "$dir/" -c "$dir/nginx.conf" -s reload
    sleep 1
    check "plain after reload"    200 "$URL/plain"
fi

pid=$(cat "$dir/logs/nginx.pid")
"$NGINX" -p "$dir/" -c "$dir/nginx.conf" -s quit
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "FAIL  nginx did not quit"; fail=1; fi

if grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log"; then
    echo "FAIL  error.log has alert/crit/emerg lines"; fail=1
fi
[ $fail = 0 ] && echo "smoke: ok" || echo "smoke: FAILED"
exit $fail
