#!/usr/bin/env bash
# Install the Debian 12 packages safs needs to build, test and demo.
# apt-get update runs first whenever something must be installed (and
# always under CI, where the machine is new).
set -eu
PKGS=(meson ninja-build pkg-config gcc libc6-dev
      libfuse3-dev fuse3 libcurl4-openssl-dev libjansson-dev
      libmicrohttpd-dev libsqlite3-dev
      python3 python3-pytest python3-pytest-timeout
      jq attr rsync vim perl curl util-linux procps
      emacs-nox nano tar zip unzip coreutils    # tests/integration/test_tools.py
      openssl gdb                               # tests/integration/test_security.py
      clang libclang-rt-14-dev                  # scripts/fuzz.sh: libFuzzer (only Recommended by clang-14)
      valgrind)                                 # scripts/valgrind.sh
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${CI:-}" = true ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    echo "deps: installing ${missing[*]:-(none missing; CI refresh)}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
# FUSE needs the device node; containers sometimes lack the module loaded.
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
