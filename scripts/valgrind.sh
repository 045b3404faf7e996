#!/usr/bin/env bash
# valgrind memcheck over the non-sanitized build (build/, README "Fuzzing and
# sanitizers"):
#  1. the client's unit tests (build/tests/unit/test_*, test_doc --quick: its
#     140 MB benchmark takes ~9 min under valgrind) and the fuzz drivers over
#     their corpus and regression inputs;
#  2. a short mount session: sa-emulator (--seed demo, not under valgrind)
#     and safs under valgrind in the foreground: ls -l, cat, a save by cp,
#     setfattr of the status, rm, then fusermount3 -u.
# Each run must report zero errors and no definitely lost block
# (--errors-for-leak-kinds=definite --error-exitcode=1). Prints
# "valgrind-result: NAME pass|fail" per run; exits non-zero on any failure.
#   scripts/valgrind.sh [BUILD_DIR [unit|session|all]]   (default: build all)
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
B=${1:-build}
case $B in /*) ;; *) B=$ROOT/$B ;; esac
command -v valgrind >/dev/null || { echo "valgrind: not installed (scripts/deps.sh)"; exit 1; }
[ -x "$B/fs/safs" ] || { echo "valgrind: $B/fs/safs missing (ninja -C $B)"; exit 1; }
san=$(meson introspect --buildoptions "$B" 2>/dev/null | /usr/bin/python3 -c \
    'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="b_sanitize"][0])')
[ "$san" = none ] || { echo "valgrind: $B is a sanitizer build ($san); use the plain build/"; exit 1; }
WHAT=${2:-all}
VG=(valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=97
    --show-leak-kinds=definite --num-callers=30)
W=$(mktemp -d /tmp/safs-valgrind.XXXXXX)
bad=0
export SA_EMULATOR=$B/tests/emulator/sa-emulator
# the unit tests' client deadlines (some tests set tiny ones on purpose),
# stretched for valgrind's 20-50x slowdown (tests/unit/harness.c)
export SAFS_TEST_TIMEOUT_SCALE=${SAFS_TEST_TIMEOUT_SCALE:-10}

# "N errors, B bytes definitely lost" from a valgrind log (every process in it)
summary() {
    local e d
    e=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$1" | tr -d , | awk '{s+=$1} END {print s+0}')
    d=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$1" | tr -d , | awk '{s+=$1} END {print s+0}')
    grep -q "ERROR SUMMARY" "$1" || e="no valgrind report:"
    echo "$e errors, $d bytes definitely lost"
}

result() { # name, rc, log
    if [ "$2" -eq 0 ]; then
        echo "valgrind-result: $1 pass ($(summary "$3"))"
    else
        bad=$((bad + 1))
        echo "valgrind-result: $1 fail (exit $2; $(summary "$3"))"
        grep -E "==[0-9]+== +(at|by|Invalid|Conditional|Use of|[0-9,]+ bytes in)" "$3" | head -40 | sed 's/^/    /'
        echo "    log: $3"
    fi
}

# ---- 1. unit tests and fuzz drivers
[ "$WHAT" = session ] ||
for t in "$B"/tests/unit/test_* "$B"/tests/unit/doc/test_doc; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    n=$(basename "$t")
    args=()
    [ "$n" = test_doc ] && args=(--quick)
    timeout 900 nice "${VG[@]}" --log-file="$W/$n.vg" "$t" "${args[@]}" >"$W/$n.out" 2>&1
    rc=$?
    cat "$W/$n.vg" >>"$W/$n.out"
    result "$n" $rc "$W/$n.out"
done
[ "$WHAT" = session ] ||
for t in "$B"/tests/fuzz/fuzz_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    n=$(basename "$t"); n=${n#fuzz_}
    timeout 600 nice "${VG[@]}" --log-file="$W/fuzz_$n.vg" "$t" "$ROOT/tests/fuzz/corpus/$n" \
        "$ROOT/tests/fuzz/regress/$n" >"$W/fuzz_$n.out" 2>&1
    rc=$?
    cat "$W/fuzz_$n.vg" >>"$W/fuzz_$n.out"
    result "fuzz_$n" $rc "$W/fuzz_$n.out"
done

# ---- 2. a mount session
session() {
    local emu_pid safs_pid port mnt=$W/mnt f rc=0
    mkdir -p "$mnt" "$W/recovery" "$W/cache"
    "$SA_EMULATOR" --port 0 --port-file "$W/port" --seed demo --quiet >"$W/emulator.log" 2>&1 &
    emu_pid=$!
    for _ in $(seq 100); do [ -s "$W/port" ] && grep -q . "$W/port" && break; sleep 0.1; done
    port=$(cat "$W/port" 2>/dev/null)
    [ -n "$port" ] || { echo "    emulator did not start"; kill "$emu_pid"; return 1; }
    (umask 077; echo "emulator-token=1" >"$W/token")
    XDG_CACHE_HOME=$W/cache nice "${VG[@]}" --log-file="$W/safs.vg" "$B/fs/safs" "Demo Vector" "$mnt" -f \
        -o "url=http://127.0.0.1:$port/,token_file=$W/token,recovery_dir=$W/recovery,cache_timeout=0" \
        >"$W/safs.log" 2>&1 &
    safs_pid=$!
    sleep 0.5
    case $(readlink "/proc/$safs_pid/exe") in
    *valgrind*|*memcheck*) ;;
    *) echo "    safs is not running under valgrind"; rc=1 ;;
    esac
    for _ in $(seq 600); do mountpoint -q "$mnt" && break; kill -0 "$safs_pid" 2>/dev/null || break; sleep 0.1; done
    if ! mountpoint -q "$mnt"; then
        echo "    safs did not mount"; kill "$safs_pid" "$emu_pid" 2>/dev/null; wait; return 1
    fi
    step() { # what, command...
        local what=$1; shift
        if "$@" >>"$W/session.out" 2>&1; then echo "    ok: $what"; else echo "    FAILED: $what"; rc=1; fi
    }
    f="$mnt/train/car 01.jpg___objects.json"
    step "ls -l" ls -l "$mnt" "$mnt/train" "$mnt/val"
    step "cat" cat "$f"
    step "the document is JSON" jq -e '.metadata.name == "car 01.jpg"' "$f"
    step "cat of every document" sh -c 'cat "$1"/val/*.json >/dev/null' sh "$mnt"
    jq '.tags += ["valgrind"]' "$f" >"$W/edited.json"
    step "save via cp" cp "$W/edited.json" "$f"
    step "the save shows" jq -e '.tags | index("valgrind")' "$f"
    step "setfattr status" setfattr -n user.superannotate.status -v Completed "$f"
    step "getfattr status" sh -c '[ "$(getfattr --only-values -n user.superannotate.status "$1")" = Completed ]' sh "$f"
    step "rm" rm "$mnt/val/val_001.jpg___objects.json"
    step "rm shows" sh -c '! ls "$1"/val | grep -qx "val_001.jpg___objects.json" || jq -e ".instances == []" "$1/val/val_001.jpg___objects.json"' sh "$mnt"
    step "fusermount3 -u" fusermount3 -u "$mnt"
    for _ in $(seq 600); do kill -0 "$safs_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$safs_pid" 2>/dev/null; then
        echo "    safs did not exit after the unmount"; kill "$safs_pid"; rc=1
    fi
    wait "$safs_pid"
    local src=$?
    [ $src -eq 0 ] || { echo "    safs exited $src (97: valgrind errors)"; rc=1; }
    kill "$emu_pid" 2>/dev/null
    wait "$emu_pid" 2>/dev/null
    mountpoint -q "$mnt" && fusermount3 -u "$mnt"
    cat "$W/safs.vg" >>"$W/session.out"
    return $rc
}
if [ "$WHAT" != unit ]; then
    session
    result "mount-session" $? "$W/session.out"
fi

if [ $bad -eq 0 ]; then
    rm -rf "$W"
else
    echo "valgrind: logs kept in $W"
fi
[ $bad -eq 0 ]
