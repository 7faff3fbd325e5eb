#!/usr/bin/env bash
# The version matrix: for each upstream nginx release in $MATRIX_SOURCES,
# build nginx (--with-compat, SSL, HTTP/2, HTTP/3) and the module into
# build/matrix/<version>/, then run the t/ suite and the browser tests
# (t/browser: EventSource in Chromium, and over HTTP/3 where nginx has it)
# against that pair.
# `make test-matrix` calls it; docs/install.md and docs/testing.md say more.
#
# Environment:
#   MATRIX_SOURCES    directory of nginx-<version>.tar.gz (with SHA256SUMS)
#   MATRIX_VERSIONS   which ones, as version prefixes ("1.24 1.30 1.31");
#                     default every tarball there
#   MATRIX_DIR        where to build (default build/matrix)
#   PROVE_JOBS        parallel test files (default 2)
# Prints one line per version and a closing "matrix: ..." line; exits
# non-zero if any build or any test fails, or a requested version is absent.

set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MATRIX_SOURCES=${MATRIX_SOURCES:-$ROOT/../shared/nginx}
MATRIX_DIR=${MATRIX_DIR:-$ROOT/build/matrix}
PROVE_JOBS=${PROVE_JOBS:-2}

die() { echo "test-matrix: $*" >&2; exit 1; }

[ -d "$MATRIX_SOURCES" ] ||
    die "no nginx sources at $MATRIX_SOURCES (set MATRIX_SOURCES)"

tarballs=()
if [ -n "${MATRIX_VERSIONS:-}" ]; then
    for want in $MATRIX_VERSIONS; do
        found=$(ls "$MATRIX_SOURCES"/nginx-"$want"*.tar.gz 2>/dev/null \
                | sort -V | tail -1)
        [ -n "$found" ] || die "no nginx-$want*.tar.gz in $MATRIX_SOURCES"
        tarballs+=("$found")
    done
else
    mapfile -t tarballs < <(ls "$MATRIX_SOURCES"/nginx-*.tar.gz | sort -V)
fi
[ "${#tarballs[@]}" -gt 0 ] || die "no nginx-*.tar.gz in $MATRIX_SOURCES"

if [ -f "$MATRIX_SOURCES/SHA256SUMS" ]; then
    names=()
    for t in "${tarballs[@]}"; do names+=("$(basename "$t")"); done
    (cd "$MATRIX_SOURCES" &&
     grep -F -f <(printf '%s\n' "${names[@]}") SHA256SUMS | sha256sum -c --quiet) ||
        die "checksum mismatch in $MATRIX_SOURCES"
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

summary=()
failures=()
status=0
all_start=$(date +%s)
for tarball in "${tarballs[@]}"; do
    v=$(basename "$tarball" .tar.gz); v=${v#nginx-}
    dir=$MATRIX_DIR/$v
    src=$dir/nginx-$v
    echo "=== nginx $v"
    start=$(date +%s)
    if [ ! -f "$src/src/core/nginx.h" ]; then
        rm -rf "$src"; mkdir -p "$dir"
        tar xzf "$tarball" -C "$dir" || die "cannot unpack $tarball"
    fi
    if ! nice -n 10 "$ROOT/build-tools/nginx-build.sh" nginx "$src" "$dir/build" \
            > "$dir/build.log" 2>&1; then
        tail -40 "$dir/build.log"
        summary+=("nginx $v: BUILD FAILED (log: $dir/build.log)")
        status=1
        continue
    fi
    built=$(date +%s)
    objs=$dir/build/objs
    TEST_NGINX_BINARY=$objs/nginx TEST_NGINX_MODULE=$objs/ngx_http_sse_module.so \
        prove -I "$ROOT/t/lib" -r -j"$PROVE_JOBS" "$ROOT/t/" 2>&1 | tee "$dir/prove.log"
    rc=${PIPESTATUS[0]}
    tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$dir/prove.log" | tail -1)
    (cd "$ROOT/t/browser" &&
     TEST_NGINX_BINARY=$objs/nginx TEST_NGINX_MODULE=$objs/ngx_http_sse_module.so \
         node --test --test-concurrency=1 ./*.test.mjs) 2>&1 | tee "$dir/browser.log"
    [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    browser=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$dir/browser.log" | tail -1)
    end=$(date +%s)
    if [ "$rc" = 0 ]; then
        summary+=("nginx $v: ${tests:-0} tests + ${browser:-0} browser tests passed (build $((built - start))s, tests $((end - built))s)")
    else
        summary+=("nginx $v: FAILED (build $((built - start))s, tests $((end - built))s; log: $dir/prove.log)")
        # CI keeps only the tail of the output: repeat what failed there
        failures+=("--- nginx $v: what failed")
        mapfile -t -O "${#failures[@]}" failures < <(
            { sed -n '/^Test Summary Report/,/^Files=/p' "$dir/prove.log"
              grep -E '^ *not ok' "$dir/browser.log"
              grep -E '^(#   Failed test|#   at )' "$dir/prove.log"; } | head -60)
        status=1
    fi
done

echo
[ "${#failures[@]}" = 0 ] || printf '%s\n' "${failures[@]}"
printf '%s\n' "${summary[@]}"
echo "matrix: ${#tarballs[@]} versions, $( [ $status = 0 ] && echo passed || echo FAILED ) in $(( $(date +%s) - all_start ))s"
exit $status
