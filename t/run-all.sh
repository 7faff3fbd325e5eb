#!/usr/bin/env bash
# The whole test suite: unit tests, the nginx integration suite (prove),
# the fuzzers over their corpora, and the real-browser tests.
# Prints one closing line "N passed, N failed" over all tiers.
set -u
cd "$(dirname "$0")/.."

# many subscribers per test process: raise the open-files limit to the max
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

passed=0
failed=0
status=0
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

tier() {  # name, command...
    local name=$1; shift
    echo "=== $name"
    "$@" 2>&1 | tee "$log/$name.out"
    local rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "=== $name FAILED (exit $rc)"; status=1; }
    return 0
}

count() {  # name, passed, failed
    passed=$((passed + ${2:-0})); failed=$((failed + ${3:-0}))
}

tier unit make --no-print-directory unit
count unit "$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log/unit.out" | tail -1)" \
           "$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log/unit.out" | tail -1)"

tier fuzz-regress make --no-print-directory fuzz-regress

tier integration prove -I t/lib -j2 t/*.t
tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log/integration.out" | tail -1)
bad=$(sed -n 's/^Failed \([0-9]*\)\/\([0-9]*\) subtests.*/\1/p' "$log/integration.out" | awk '{s+=$1} END {print s+0}')
count integration "$(( ${tests:-0} - ${bad:-0} ))" "${bad:-0}"

tier browser make --no-print-directory test-browser
count browser "$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/browser.out" | tail -1)" \
              "$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/browser.out" | tail -1)"

if [ "$status" != 0 ] && [ "$failed" = 0 ]; then
    failed=1   # a tier failed without a countable test failure
fi

echo
echo "$passed passed, $failed failed"
exit $status
