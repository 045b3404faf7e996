#!/usr/bin/python3
"""safs read benchmark (issue 11): `cp -r` of a folder out of the mount, cold,
from memory, and after a remount with the on-disk document cache.

    /usr/bin/python3 tests/bench/bench_diskcache.py [--items 5000] [--latency 0,50]
        [--build DIR] [--profile] [--memory [--mem-max SIZE]]

One emulator (--seed-items Bench/f=ITEMS, clock moved 1.5 s on so every
download is settled). For each latency L:
  - baseline: what the SDK's download_annotations does on the wire and on
    disk (tests/integration/saapi.py, as tests/bench/bench.py): the listing
    pages, download/method per 1000 ids, the stream batches, one file written
    per item;
  - cold: a fresh mount and an empty cache directory, `cp -r` of the folder;
  - memory: a second `cp -r` in the same mount (the in-memory floor);
  - warm: unmount, mount again on the same cache directory, `cp -r`.
Each row: time, ratio to the baseline, the emulator's requests (all /
document downloads), the daemon's CPU seconds and peak RSS (VmHWM) at the
end of that mount. Mounts use the daemon's default kernel TTLs and
cache_timeout=30. Non-sanitized build by default (build/). A report, never
pass/fail. --profile runs `strace -c -f` on the warm mount's daemon.
--memory runs issue 11's memory case instead (two folders of ITEMS, `ls -lR`,
then every file read: document requests and peak RSS).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import SUFFIX, Emulator, Mount  # noqa: E402

P, F = "Bench", "f"


def proc_usage(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) // 1024
    return cpu, rss


def reqs(em):
    r = em.routes()
    return (sum(n for k, n in r.items() if "/_emulator" not in k), em.downloads(r))


def cp(src, dst):
    t = time.monotonic()
    subprocess.run(["cp", "-r", src, dst], check=True, timeout=3600)
    return time.monotonic() - t


def baseline(api, out):
    t = time.monotonic()
    p = api.project(P)
    f = api.folder(p, F)
    items = api.search(p["id"], f["id"])
    docs = api.documents_by_id(p["id"], [i["id"] for i in items], {i["id"]: i["name"] for i in items})
    os.makedirs(out)
    for i in items:
        with open(os.path.join(out, i["name"] + SUFFIX), "wb") as fh:
            fh.write(docs[i["id"]].encode() if isinstance(docs[i["id"]], str) else docs[i["id"]])
    return time.monotonic() - t


def memory_scenario(a):
    """Issue 11's memory case: two folders of ITEMS each, `ls -lR`, then every
    file read (find | xargs cat): document requests during the reads, the
    daemon's peak RSS, with the defaults (mem_max, cache_max) and an empty
    cache directory."""
    work = tempfile.mkdtemp(prefix="safs-bench-mem-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    cache = tempfile.mkdtemp(prefix="safs-bench-mem-cache-")
    em = Emulator(os.path.join(work, "emu"), ["--seed-items", "%s/a=%d" % (P, a.items),
                                              "--seed-items", "%s/b=%d" % (P, a.items)], name="emu")
    out = []
    try:
        em.ctl("POST", "clock", {"advance_ms": 1500})
        opts = {"cache_timeout": "30", "cache_dir": cache, "attr_timeout": None,
                "entry_timeout": None, "negative_timeout": None}
        if a.mem_max:
            opts["mem_max"] = a.mem_max
        m = Mount(em, os.path.join(work, "m"), P, opts)
        try:
            em.reset_stats()
            t = time.monotonic()
            subprocess.run("ls -lR %s > /dev/null" % m.p(), shell=True, check=True, timeout=3600)
            out.append(("ls -lR", time.monotonic() - t, reqs(em)) + proc_usage(m.pid))
            em.reset_stats()
            t = time.monotonic()
            subprocess.run("find %s -type f -print0 | xargs -0 cat > /dev/null" % m.p(), shell=True,
                           check=True, timeout=3600)
            out.append(("read every file", time.monotonic() - t, reqs(em)) + proc_usage(m.pid))
        finally:
            m.unmount()
    finally:
        em.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    print("\n2 folders x %d items, mem_max=%s, fresh cache dir (non-sanitized build)\n"
          % (a.items, a.mem_max or "default"))
    print("%-18s %8s %9s %9s %7s %10s" % ("step", "time s", "requests", "doc reqs", "cpu s", "peak MB"))
    for name, t, (nreq, ndown), c, r in out:
        print("%-18s %8.2f %9d %9d %7.2f %10d" % (name, t, nreq, ndown, c, r))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--latency", default="0,50")
    ap.add_argument("--build", default=os.path.join(harness.REPO, "build"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--memory", action="store_true",
                    help="the memory scenario instead: 2 folders x ITEMS, ls -lR, read every file")
    ap.add_argument("--mem-max", default=None, help="-o mem_max= (default: the daemon's)")
    ap.add_argument("--cache-max", default=None, help="-o cache_max= (default: the daemon's)")
    a = ap.parse_args()
    harness.BUILD = os.path.abspath(a.build)
    harness.SAFS = os.path.join(harness.BUILD, "fs", "safs")
    harness.EMULATOR = os.path.join(harness.BUILD, "tests", "emulator", "sa-emulator")
    if a.memory:
        return memory_scenario(a)

    work = tempfile.mkdtemp(prefix="safs-bench-dc-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    em = Emulator(os.path.join(work, "emu"), ["--seed-items", "%s/%s=%d" % (P, F, a.items)], name="emu")
    rows = []
    caches = []
    try:
        em.ctl("POST", "clock", {"advance_ms": 1500})
        for lat in [int(x) for x in a.latency.split(",")]:
            em.latency(lat)
            run = os.path.join(work, "L%d" % lat)
            os.makedirs(run)
            em.reset_stats()
            tb = baseline(em.api, os.path.join(run, "base"))
            rows.append((lat, "baseline", tb, reqs(em), None, None))
            # the cache on the ordinary filesystem (/tmp), not tmpfs
            cache = tempfile.mkdtemp(prefix="safs-bench-dc-cache-")
            caches.append(cache)
            opts = {"cache_timeout": "30", "cache_dir": cache, "attr_timeout": None,
                    "entry_timeout": None, "negative_timeout": None}
            if a.mem_max:
                opts["mem_max"] = a.mem_max
            if a.cache_max:
                opts["cache_max"] = a.cache_max

            m = Mount(em, os.path.join(run, "m1"), P, opts)
            try:
                em.reset_stats()
                t = cp(m.p(F), os.path.join(run, "cold"))
                rc = reqs(em)
                c, r = proc_usage(m.pid)
                rows.append((lat, "cold cp -r", t, rc, c, r))
                em.reset_stats()
                t = cp(m.p(F), os.path.join(run, "mem"))
                c2, r2 = proc_usage(m.pid)
                rows.append((lat, "memory cp -r", t, reqs(em), c2 - c, r2))
            finally:
                m.unmount()
            m = Mount(em, os.path.join(run, "m2"), P, opts)
            prof = None
            try:
                if a.profile:
                    prof = subprocess.Popen(["strace", "-c", "-f", "-p", str(m.pid), "-o",
                                             os.path.join(run, "strace.txt")])
                    time.sleep(0.5)
                em.reset_stats()
                t = cp(m.p(F), os.path.join(run, "warm"))
                rw = reqs(em)
                c, r = proc_usage(m.pid)
                rows.append((lat, "warm remount cp -r", t, rw, c, r))
            finally:
                if prof:
                    prof.terminate()
                    prof.wait(30)
                m.unmount()
            if prof:
                print(open(os.path.join(run, "strace.txt")).read())
            for d in ("cold", "mem", "warm"):
                assert sorted(os.listdir(os.path.join(run, d))) == sorted(os.listdir(os.path.join(run, "base")))
            shutil.rmtree(os.path.join(run, "base"))
            for d in ("cold", "mem", "warm"):
                shutil.rmtree(os.path.join(run, d))
    finally:
        em.stop(check=False)
        shutil.rmtree(work, ignore_errors=True)
        for c in caches:
            shutil.rmtree(c, ignore_errors=True)

    print("\n%d items in one folder; cp -r out of the mount (non-sanitized build; mem_max=%s, "
          "cache_max=%s)\n" % (a.items, a.mem_max or "default", a.cache_max or "default"))
    print("%-4s %-20s %8s %7s %9s %9s %7s %7s" % ("L ms", "run", "time s", "x base", "requests",
                                                   "doc reqs", "cpu s", "rss MB"))
    base = {}
    for lat, name, t, (nreq, ndown), c, r in rows:
        if name == "baseline":
            base[lat] = t
        print("%-4d %-20s %8.2f %7.2f %9d %9d %7s %7s" % (
            lat, name, t, base[lat] / t if t else 0, nreq, ndown,
            "-" if c is None else "%.2f" % c, "-" if r is None else "%d" % r))
    print("(x base = baseline time / run time: higher is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
