#!/usr/bin/env bash
# make soak: two long runs against one nginx with the module, checking that
# nothing is lost or repeated and that the workers' memory stays flat.
#
#   Run A  1 subscriber  x 1,000,000 events
#   Run B  1000 subscribers on one channel (a broadcast) x 10,000 events
#
# Usage: soak/run.sh ROOT BUILD   (mk/soak.mk passes them; the client must
# be built: $BUILD/soak/soak_client).  Environment:
#   TEST_NGINX_BINARY   nginx to run (default /usr/sbin/nginx)
#   TEST_NGINX_MODULE   the module (default $BUILD/ngx_http_sse_module.so)
#   SOAK_SCALE          multiplies both runs' event counts (default 1)
#   SOAK_MAX_GROWTH_KB  allowed RSS growth per worker, 10% point to end (2048)
#   SOAK_INTERVAL       seconds between memory samples (default 0.1)
#   SOAK_DOCS           1: on success, rewrite docs/soak.md and
#                       docs/soak/rss.png with this run's figures (default 1)
#   SOAK_KEEP           1: keep the run directory $BUILD/soak/run.* (default:
#                       kept only on failure)

# shellcheck disable=SC2317  # the functions called from traps are reachable
set -uo pipefail

ROOT=${1:?usage: run.sh ROOT BUILD}
BUILD=${2:?usage: run.sh ROOT BUILD}
NGINX=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
MODULE=${TEST_NGINX_MODULE:-$BUILD/ngx_http_sse_module.so}
CLIENT=$BUILD/soak/soak_client
SCALE=${SOAK_SCALE:-1}
MAX_GROWTH_KB=${SOAK_MAX_GROWTH_KB:-2048}
INTERVAL=${SOAK_INTERVAL:-0.1}

for f in "$NGINX" "$MODULE" "$CLIENT"; do
    [ -e "$f" ] || { echo "soak: $f is missing" >&2; exit 2; }
done

mkdir -p "$BUILD/soak"
DIR=$(mktemp -d "$BUILD/soak/run.XXXXXX")
mkdir -p "$DIR/tmp"
# nginx maps its own copy of the module: a `make` elsewhere rewriting
# build/ngx_http_sse_module.so in place must not pull it from under the
# running workers.
cp "$MODULE" "$DIR/ngx_http_sse_module.so"

# ---------------------------------------------------------------- nginx

started=0
WORKERS=
stop_nginx() {
    [ "$started" = 1 ] || return 0
    started=0
    local pid
    pid=$(cat "$DIR/nginx.pid" 2>/dev/null) || return 0
    kill -QUIT "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    echo "soak: nginx did not stop in 5s: killing it" >&2
    # shellcheck disable=SC2086  # the worker pids, one word each
    kill -KILL "$pid" ${WORKERS//,/ } 2>/dev/null
}
cleanup() {
    stop_nginx
    if [ "${SOAK_KEEP:-0}" != 1 ] && [ "${status:-1}" = 0 ]; then rm -rf "$DIR"; fi
}
CLIENT_PID=
interrupted() {
    status=130
    [ -z "$CLIENT_PID" ] || kill "$CLIENT_PID" 2>/dev/null
    exit 130
}
trap cleanup EXIT
trap interrupted INT TERM

# A port no socket uses, below the ephemeral range (from which the other
# load tests on this machine take their client ports).  Checked in /proc,
# not by binding: with reuseport, nginx would silently share a port another
# nginx of the same user listens on.
free_port() {
    local port hex
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 12000))
        hex=$(printf '%04X' "$port")
        awk -v h="$hex" 'NR > 1 && $2 ~ (":" h "$") { found = 1 } END { exit !found }' \
            /proc/net/tcp /proc/net/tcp6 || { echo "$port"; return; }
    done
    echo "soak: no free port found" >&2
    exit 2
}

# A free port can be taken between the check and nginx's bind: try a few.
for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    sed -e "s|@DIR@|$DIR|g" -e "s|@PORT@|$PORT|g" "$ROOT/soak/nginx.conf.in" > "$DIR/nginx.conf"
    if "$NGINX" -p "$DIR" -c "$DIR/nginx.conf" 2> "$DIR/start.log"; then
        started=1
        break
    fi
    grep -q "Address already in use" "$DIR/start.log" || { cat "$DIR/start.log" >&2; exit 2; }
done
[ "$started" = 1 ] || { echo "soak: no free port for nginx" >&2; exit 2; }

# the master forks its workers: wait for both
MASTER=$(cat "$DIR/nginx.pid")
for _ in $(seq 50); do
    WORKERS=$(pgrep -P "$MASTER" | sort -n | paste -sd, -)
    [ "$(echo "$WORKERS" | tr , '\n' | grep -c .)" = 2 ] && break
    sleep 0.1
done
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)  # the machine may be shared: note how busy
echo "soak: nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') on 127.0.0.1:$PORT," \
     "workers $WORKERS, run directory $DIR"

# ---------------------------------------------------------------- runs

status=0
: > "$DIR/summary.md"
run() {  # label channel subscribers events batch window deadline
    # The client keeps its own deadline; timeout(1) is only a backstop.  It
    # runs in the background so that a signal to this script acts at once.
    timeout -k 5 $(($7 + 60)) "$CLIENT" --addr "127.0.0.1:$PORT" --label "$1" --channel "$2" \
        --subscribers "$3" --events "$4" --batch "$5" --window "$6" --deadline "$7" \
        --pids "$WORKERS" --interval "$INTERVAL" --max-growth-kb "$MAX_GROWTH_KB" \
        --samples "$DIR/samples-$2.tsv" --summary "$DIR/summary.md" &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || status=1
    CLIENT_PID=
}

# Each run has a fresh channel, so that its event k has the id <epoch>-k.
# Run A: 250 events per POST, at most 1000 events ahead of the subscriber.
# Run B: 10 events per POST, the next one only once all 1000 subscribers
# have the last (a window of 10): see docs/soak.md for why.
run "A: 1 subscriber" soak-a 1 $((1000000 * SCALE)) 250 1000 $((120 * SCALE))
run "B: 1000 subscribers, one channel" soak-b 1000 $((10000 * SCALE)) 10 10 $((300 * SCALE))

# The zone's counters once the closed streams are gone from it.
for _ in $(seq 50); do
    curl -s "http://127.0.0.1:$PORT/status" > "$DIR/status.json"
    grep -q '"subscribers":0,' "$DIR/status.json" && break
    sleep 0.1
done
echo "soak: zone counters: $(cat "$DIR/status.json")"

# The counters must agree with what the runs did: every event published
# once; each delivered to every subscriber (more only when a subscriber was
# dropped as slow and resumed: then what its socket lost is sent again);
# no subscriber left, nothing refused.  (RSS: each run fails by itself when
# a worker grew more than SOAK_MAX_GROWTH_KB from the 10% point to the end.)
EVENTS_A=$((1000000 * SCALE)) EVENTS_B=$((10000 * SCALE)) \
python3 - "$DIR/status.json" <<'CHECK' || status=1
import json, os, sys
z = next(iter(json.load(open(sys.argv[1]))["zones"].values()))
a, b = int(os.environ["EVENTS_A"]), int(os.environ["EVENTS_B"])
want_delivered = a * 1 + b * 1000
bad = []
if z["published"] != a + b:
    bad.append(f"published {z['published']}, expected {a + b}")
if z["subscribers"] != 0:
    bad.append(f"{z['subscribers']} subscribers left")
if z["refused_full"] != 0:
    bad.append(f"refused_full {z['refused_full']}")
if z["dropped_slow"] == 0 and z["delivered"] != want_delivered:
    bad.append(f"delivered {z['delivered']}, expected {want_delivered} (nobody was dropped)")
if z["delivered"] < want_delivered:
    bad.append(f"delivered {z['delivered']} < {want_delivered}")
for line in bad:
    print(f"soak: FAIL: zone counters: {line}")
print("soak: zone counters consistent" if not bad else "", end="\n" if not bad else "")
sys.exit(1 if bad else 0)
CHECK

stop_nginx
# A worker that crashed, or any serious complaint, fails the soak.
if grep -E '\[(alert|crit|emerg)\]' "$DIR/error.log"; then
    echo "soak: FAIL: [alert]/[crit]/[emerg] lines in $DIR/error.log"
    status=1
fi

# ---------------------------------------------------------------- report

HEADER='| run | subscribers × events | deliveries | seconds | events/s | deliveries/s | RSS start MB | RSS 10% MB | RSS end MB | RSS max MB | RSS growth 10%→end per worker, kB | PSS 10% → end MB | resumes | result |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
echo
echo "$HEADER"
cat "$DIR/summary.md"
echo "(RSS and PSS: the sum over both workers)"

if [ "$status" = 0 ] && [ "${SOAK_DOCS:-1}" = 1 ]; then
    mkdir -p "$ROOT/docs/soak"
    gnuplot -e "a='$DIR/samples-soak-a.tsv'; b='$DIR/samples-soak-b.tsv'; out='$ROOT/docs/soak/rss.png'" \
        "$ROOT/soak/rss.gp" || status=1
    { echo "$HEADER"; cat "$DIR/summary.md"; } > "$DIR/table.md"
    awk -v date="$(date -u '+%Y-%m-%d %H:%M UTC')" \
        -v machine="$(nproc) cores, $(uname -sr), nginx $("$NGINX" -v 2>&1 | sed 's|.*/||'), load average $LOAD at the start" \
        -v commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
        -v table="$DIR/table.md" -v status_json="$DIR/status.json" '
        /^@TABLE@$/  { while ((getline l < table) > 0) print l; next }
        /^@STATUS@$/ { while ((getline l < status_json) > 0) print l; next }
        { gsub(/@DATE@/, date); gsub(/@MACHINE@/, machine); gsub(/@COMMIT@/, commit); print }
    ' "$ROOT/soak/soak.md.in" > "$ROOT/docs/soak.md"
    echo "soak: wrote docs/soak.md and docs/soak/rss.png"
fi

if [ "$status" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL (run directory kept: $DIR)"; fi
exit "$status"
