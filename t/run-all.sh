#!/usr/bin/env bash
# The whole test suite: unit tests, the nginx integration suite (prove),
# the fuzzers over their corpora, and the real-browser tests.
# Prints one closing line "N passed, N failed" over all tiers.
set -u
cd "$(dirname "$0")/.."

# many subscribers per test process (t/040 needs 4200): raise the
# open-files limit to the max
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# the whole suite is meant to run here: a test that would skip fails
# (t/lib/SSETest.pm, no_skip)
export TEST_NGINX_NO_SKIP=1

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
# make unit runs more than one GoogleTest binary: add up their summaries
count unit "$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log/unit.out" | awk '{s+=$1} END {print s+0}')" \
           "$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log/unit.out" | awk '{s+=$1} END {print s+0}')"

tier fuzz-regress make --no-print-directory fuzz-regress

# Files marked "# harness: serial" hold tight time bounds: they run one at a
# time after the others, which run two at a time.
serial=$(grep -l '^# harness: serial' t/*.t)
parallel=$(grep -L '^# harness: serial' t/*.t)
prove_count() {  # name
    local tests bad
    tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$log/$1.out" | tail -1)
    bad=$(sed -n 's/^Failed \([0-9]*\)\/\([0-9]*\) subtests.*/\1/p' "$log/$1.out" | awk '{s+=$1} END {print s+0}')
    count "$1" "$(( ${tests:-0} - ${bad:-0} ))" "${bad:-0}"
}
# shellcheck disable=SC2086
tier integration prove -I t/lib -j2 $parallel
prove_count integration
# shellcheck disable=SC2086
tier integration-serial prove -I t/lib $serial
prove_count integration-serial


# bench.py's report logic on canned results (seconds; measures nothing)
tier bench-report python3 bench/bench_report_test.py
ran=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$log/bench-report.out" | tail -1)
bad=$(grep -oE '(failures|errors)=[0-9]+' "$log/bench-report.out" | awk -F= '{s+=$2} END {print s+0}')
count bench-report "$(( ${ran:-0} - bad ))" "$bad"

tier browser make --no-print-directory test-browser
count browser "$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$log/browser.out" | tail -1)" \
              "$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$log/browser.out" | tail -1)"

if [ "$status" != 0 ] && [ "$failed" = 0 ]; then
    failed=1   # a tier failed without a countable test failure
fi

echo
echo "$passed passed, $failed failed"
exit $status
