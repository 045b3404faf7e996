#!/usr/bin/env bash
# safs demo on a fresh Debian 12, as root: install what is missing, build,
# start the emulator with the demo team, mount it, and say what to try.
#
#   scripts/demo.sh [MOUNTPOINT]    (default ./mnt)   start (idempotent)
#   scripts/demo.sh stop            unmount and stop the emulator (the log stays)
#
# The daemon's log is appended to ./demo.log (-o log_file=; ignored by git).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE="$ROOT/build/demo"            # pid, port, token, logs of this demo (ignored by git)
EMU="$ROOT/build/tests/emulator/sa-emulator"
SAFS="$ROOT/build/fs/safs"
LOG="$ROOT/demo.log"                # the daemon's log (-o log_file)

mnt_of() { cat "$STATE/mnt" 2>/dev/null || echo "$ROOT/mnt"; }
is_mounted() { grep -qs " $(printf '%s' "$1" | sed 's/ /\\\\040/g') fuse" /proc/mounts; }

stop() {
    local mnt; mnt=$(mnt_of)
    if is_mounted "$mnt"; then
        fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" || true
        echo "demo: unmounted $mnt"
    fi
    if [ -f "$STATE/emulator.pid" ]; then
        local pid; pid=$(cat "$STATE/emulator.pid")
        if kill -0 "$pid" 2>/dev/null && grep -qs sa-emulator "/proc/$pid/cmdline"; then
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            echo "demo: emulator stopped"
        fi
        rm -f "$STATE/emulator.pid" "$STATE/port"
    fi
}

if [ "${1:-}" = stop ]; then
    stop
    exit 0
fi

MNT=${1:-$ROOT/mnt}
case $MNT in /*) ;; *) MNT="$(pwd)/$MNT" ;; esac

# 1. packages (the same list the test command installs)
"$ROOT/scripts/deps.sh"

# 2. build
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
mkdir -p "$STATE"
chmod 700 "$STATE"

# 3. emulator (kept if it is already running)
running=0
if [ -f "$STATE/emulator.pid" ] && [ -f "$STATE/port" ]; then
    pid=$(cat "$STATE/emulator.pid")
    kill -0 "$pid" 2>/dev/null && grep -qs sa-emulator "/proc/$pid/cmdline" && running=1
fi
if [ "$running" = 0 ]; then
    rm -f "$STATE/port"
    nohup "$EMU" --port 0 --port-file "$STATE/port" --seed demo \
        >"$STATE/emulator.log" 2>&1 </dev/null &
    echo $! >"$STATE/emulator.pid"
    for _ in $(seq 600); do
        [ -s "$STATE/port" ] && [ "$(tail -c1 "$STATE/port" | od -An -c | tr -d ' ')" = '\n' ] && break
        kill -0 "$(cat "$STATE/emulator.pid")" 2>/dev/null ||
            { echo "demo: the emulator died; see $STATE/emulator.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$STATE/port" ] || { echo "demo: the emulator did not start; see $STATE/emulator.log" >&2; exit 1; }
fi
PORT=$(tr -d '\n' <"$STATE/port")

# 4. token file, 0600
( umask 077; printf 'emulator-token=1\n' >"$STATE/token" )
chmod 600 "$STATE/token"

# 5. mount (kept if already mounted)
mkdir -p "$MNT"
printf '%s\n' "$MNT" >"$STATE/mnt"
if ! is_mounted "$MNT"; then
    "$SAFS" team "$MNT" -o "url=http://127.0.0.1:$PORT/,token_file=$STATE/token,log_file=$LOG" \
        2>"$STATE/safs.err" || { cat "$STATE/safs.err" >&2; exit 1; }
    for _ in $(seq 100); do is_mounted "$MNT" && break; sleep 0.1; done
    is_mounted "$MNT" || { echo "demo: $MNT did not mount" >&2; cat "$STATE/safs.err" >&2
                          [ -f "$LOG" ] && tail -n 20 "$LOG" >&2; exit 1; }
fi

M=$(printf '%q' "$MNT")
ITEM=$(cd "$MNT/Demo Vector" 2>/dev/null && ls | grep -m1 '___objects\.json$' || true)
F="$M/\"Demo Vector\"/${ITEM:-<item>___objects.json}"
cat <<EOF
demo: the emulator's demo team is mounted at $MNT (emulator on port $PORT).
demo: the mount's log is $LOG (tail -f it to see why something was refused).

Try:
  ls $M
  ls $M/"Demo Vector"
  cat $M/"Demo Vector"/*___objects.json | jq '.instances | length'
  vim $F    # a save is one upload
  setfattr -n user.superannotate.status -v Completed $F
  getfattr -n user.superannotate.status $M/"Demo Vector"/*___objects.json
  rsync -a $M/"Demo Vector"/ out/                     # download_annotations
  getfattr -n user.safs.stats $M                       # requests made so far

Stop:  scripts/demo.sh stop     (leaves $LOG)
EOF
