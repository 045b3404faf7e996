#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers (tests/fuzz/README.md).
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
# Builds the libFuzzer targets with clang in build-fuzz/ (meson -Dfuzz=true,
# ASan + UBSan, every UBSan finding fatal) and runs each for
# SECONDS_PER_TARGET (default 15) from its seed corpus (tests/fuzz/corpus/T)
# and regression inputs (tests/fuzz/regress/T). New inputs found go to
# build-fuzz/fuzz-out/T/corpus (kept between runs); a crash, leak, timeout
# or out-of-memory input is saved in build-fuzz/fuzz-out/T/ and named.
# Prints one line per target, "fuzz-result: T pass|fail N executions", and
# exits non-zero if any target failed. A crash input belongs, once fixed, in
# tests/fuzz/regress/T/ (the driver build runs it on every CI run).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SECS=${1:-15}
shift || true
ALL="stream doc frames names config multipart"
TARGETS=${*:-$ALL}
BUILD=${FUZZ_BUILD:-build-fuzz}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=$BUILD/fuzz-out

maxlen() {
    case $1 in
    names) echo 1024 ;;
    config) echo 2048 ;;
    *) echo 8192 ;;
    esac
}

command -v clang >/dev/null || { echo "fuzz: clang is missing (scripts/deps.sh installs it)"; exit 1; }
if [ ! -f "$BUILD/build.ninja" ]; then
    rm -rf "$BUILD"
    CC=clang meson setup "$BUILD" -Dfuzz=true -Db_sanitize=address,undefined \
        -Db_lundef=false -Dbuildtype=debugoptimized >/dev/null || { echo "fuzz: meson setup failed"; exit 1; }
fi
exes=()
for t in $TARGETS; do exes+=("tests/fuzz/fuzz_$t"); done
nice ninja -C "$BUILD" "${exes[@]}" >/dev/null || { ninja -C "$BUILD" "${exes[@]}"; echo "fuzz: build failed"; exit 1; }

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
bad=0
for t in $TARGETS; do
    d=$OUT/$t
    mkdir -p "$d/corpus" "$d/tmp"
    rm -f "$d"/crash-* "$d"/leak-* "$d"/timeout-* "$d"/oom-* "$d"/slow-unit-*
    log=$d/log.txt
    SAFS_FUZZ_TMP="$d/tmp" timeout $((SECS + 120)) nice "$BUILD/tests/fuzz/fuzz_$t" \
        -max_total_time="$SECS" -max_len="$(maxlen "$t")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$d/" \
        "$d/corpus" "$ROOT/tests/fuzz/corpus/$t" "$ROOT/tests/fuzz/regress/$t" >"$log" 2>&1
    rc=$?
    rm -rf "${d:?}/tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(ls "$d"/crash-* "$d"/leak-* "$d"/timeout-* "$d"/oom-* 2>/dev/null)
    if [ $rc -eq 0 ] && [ -z "$found" ] && [ -n "$execs" ]; then
        echo "fuzz-result: $t pass ${execs} executions in ${SECS} s"
    else
        bad=$((bad + 1))
        echo "fuzz-result: $t fail ${execs:-0} executions (exit $rc)"
        grep -E "ERROR|SUMMARY|property broken|runtime error" "$log" | head -5 | sed 's/^/    /'
        for f in $found; do echo "    input saved: $f"; done
        echo "    log: $log"
    fi
done
[ $bad -eq 0 ]
