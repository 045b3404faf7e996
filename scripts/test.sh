#!/usr/bin/env bash
# The whole test suite (README's second command; .ci/run calls it).
#  1. installs what is missing (scripts/deps.sh)
#  2. builds twice: build/ (debugoptimized) and build-asan/ (ASan + UBSan)
#  3. runs the C unit tests in both builds (meson test)
#  4. fuzzes each parser for a few seconds (scripts/fuzz.sh: clang libFuzzer
#     in build-fuzz/) and runs valgrind memcheck over the unit tests and a
#     mount session (scripts/valgrind.sh, the plain build/)
#  5. runs the emulator's tests and the integration tests (pytest, real FUSE
#     mounts) against the ASan/UBSan binaries
# A skipped test counts as a failure: everything here is expected to run.
# Ends with "N passed, N failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3
passed=0; failed=0; stages_failed=()

note() { printf '\n=== %s ===\n' "$*"; }
stage_fail() { stages_failed+=("$1"); }

# processes of ours that were already running (another checkout's demo, say)
# are not this run's leftovers
pre_existing=" $(pgrep -d ' ' -x sa-emulator) $(pgrep -d ' ' -x safs) "

note "dependencies"
scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

build() { # dir, extra meson args...
    local dir=$1; shift
    if [ -d "$dir" ] && [ -f "$dir/build.ninja" ]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null
    else
        rm -rf "$dir"; meson setup "$dir" "$@" >/dev/null
    fi && ninja -C "$dir"
}
note "build (debugoptimized)"
if ! build build; then echo "build failed"; echo "0 passed, 1 failed"; exit 1; fi
note "build (ASan + UBSan)"
if ! build build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug; then
    echo "ASan build failed"; echo "0 passed, 1 failed"; exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# meson test: count from the testlog (Ok/Expected fail pass; Fail/Timeout/Skipped fail)
meson_stage() { # dir
    local dir=$1 log
    note "unit tests: $dir"
    # the emulator suite runs below under pytest, for per-test counts
    timeout 1800 meson test -C "$dir" --print-errorlogs --num-processes 2 --no-suite emulator
    local rc=$?
    log="$dir/meson-logs/testlog.json"
    if [ -f "$log" ]; then
        local ok bad
        read -r ok bad < <($PY -c 'import json,sys
ok=bad=0
for l in open(sys.argv[1]):
    good=json.loads(l)["result"] in ("OK","EXPECTEDFAIL")
    ok+=good; bad+=not good
print(ok, bad)' "$log")
        passed=$((passed + ok)); failed=$((failed + bad))
        [ "$bad" -eq 0 ] && [ $rc -eq 0 ] || stage_fail "unit:$dir"
        [ $rc -ne 0 ] && [ "$bad" -eq 0 ] && failed=$((failed + 1))
    else
        failed=$((failed + 1)); stage_fail "unit:$dir"
    fi
}
meson_stage build
meson_stage build-asan

# a script printing "<prefix> NAME pass|fail ..." per case: one count each
lines_stage() { # name, prefix, timeout, command...
    local name=$1 prefix=$2 limit=$3 out ok bad rc
    shift 3
    note "$name"
    out=$(mktemp)
    timeout "$limit" "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    ok=$(grep -c "^$prefix: [^ ]* pass" "$out")
    bad=$(grep -c "^$prefix: [^ ]* fail" "$out")
    rm -f "$out"
    passed=$((passed + ok)); failed=$((failed + bad))
    if [ $rc -ne 0 ] || [ $((ok + bad)) -eq 0 ]; then
        [ "$bad" -eq 0 ] && failed=$((failed + 1))
        stage_fail "$name"
    fi
}
lines_stage fuzz fuzz-result 900 scripts/fuzz.sh 10
lines_stage valgrind valgrind-result 900 scripts/valgrind.sh build

# pytest: parse the JUnit XML for counts; skips are failures
pytest_stage() { # name, paths...
    local name=$1; shift
    local xml="$ROOT/build-asan/pytest-$name.xml"
    note "pytest: $name"
    rm -f "$xml"
    timeout 3000 $PY -m pytest -p no:cacheprovider -rfEs --timeout=600 --junitxml="$xml" "$@"
    local rc=$?
    if [ -f "$xml" ]; then
        read -r t f e s < <($PY -c 'import sys,xml.etree.ElementTree as E
r=E.parse(sys.argv[1]).getroot()
s=r if r.tag=="testsuite" else r.find("testsuite")
print(s.get("tests"),s.get("failures"),s.get("errors"),s.get("skipped"))' "$xml")
        local bad=$((f + e + s))
        passed=$((passed + t - bad)); failed=$((failed + bad))
        if [ "$t" -eq 0 ]; then failed=$((failed + 1)); fi
        [ $rc -eq 0 ] && [ $bad -eq 0 ] && [ "$t" -gt 0 ] || stage_fail "pytest:$name"
        [ $rc -ne 0 ] && [ $bad -eq 0 ] && failed=$((failed + 1))
    else
        failed=$((failed + 1)); stage_fail "pytest:$name"
    fi
}
export SAFS_BUILD="$ROOT/build-asan"
export SA_EMULATOR="$SAFS_BUILD/tests/emulator/sa-emulator"
pytest_stage emulator tests/emulator
pytest_stage integration tests/integration

# nothing may be left behind
if grep -q ' fuse.safs ' /proc/mounts 2>/dev/null || grep -q '^safs' /proc/mounts 2>/dev/null; then
    echo "LEFT MOUNTED:"; grep safs /proc/mounts
    failed=$((failed + 1)); stage_fail "leftover-mount"
fi
leftover=""
for pid in $(pgrep -x sa-emulator) $(pgrep -x safs); do
    case "$pre_existing" in *" $pid "*) ;; *) leftover="$leftover $pid" ;; esac
done
if [ -n "$leftover" ]; then
    echo "LEFT RUNNING:"; ps -o pid,args -p ${leftover# }
    failed=$((failed + 1)); stage_fail "leftover-process"
fi

note "summary"
[ ${#stages_failed[@]} -gt 0 ] && echo "failed stages: ${stages_failed[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#stages_failed[@]} -eq 0 ]
