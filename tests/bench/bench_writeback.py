#!/usr/bin/python3
"""safs write benchmark (issue 9): moving a folder of edited files in.

    /usr/bin/python3 tests/bench/bench_writeback.py [--items 5000] [--files 1000]
        [--latency 0,5,50] [--runs 3] [--build DIR] [--kinds cp-default,cp-wb,rsync-wb]

One emulator (--seed-items Bench/f=ITEMS). For each latency L, side by side:
  - baseline: what the SDK's upload_annotations_from_folder_to_project does
    on the wire (api.md §10): existence check by names (100 a request),
    multipart batches by the 10 MiB / name-length rules, statuses 500 a call;
  - the mount, default mode: `cp` of FILES edited files into the folder;
  - the mount, -o writeback: `cp`, then `rsync -a` of the same (new content),
    each timed until everything is on the platform (fsync of the folder).
Source trees live on tmpfs (/dev/shm) when it exists. Prints medians of
--runs runs: time ratio to the baseline, requests against the baseline's,
requests made while cp ran (writeback: its close paths make none; the
uploader runs meanwhile), daemon CPU seconds and peak RSS. A report, never a
pass/fail test.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import SUFFIX, Emulator, Mount  # noqa: E402

P, F = "Bench", "f"
URI_THRESHOLD = 4 * 1024 - 120
CHUNK = 10 * 1024 * 1024


def total(em):
    return sum(n for k, n in em.routes().items() if "/_emulator" not in k)


def doc(name, tag):
    return {"metadata": {"name": name, "width": 100, "height": 100},
            "instances": [{"type": "bbox", "classId": 1, "className": "c", "probability": 100,
                           "creationType": "Manual", "attributes": [],
                           "points": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}}],
            "tags": [tag], "comments": []}


def baseline(api, names, tag):
    """upload_annotations_from_folder_to_project on the wire."""
    p = api.project(P)
    f = api.folder(p, F)
    ctx = {"x-sa-entity-context": api.context(team_id=api.team_id, project_id=p["id"],
                                              folder_id=f["id"])}
    for i in range(0, len(names), 100):
        api.call("POST", "api/v1/items/search",
                 body={"query": {"limit": 2000, "offset": 0,
                                 "search": {"$and": [{"name": {"$in": names[i:i + 100]}}]}}},
                 headers=ctx)
    batch, size, nlen = [], 0, 0

    def send(batch):
        boundary = uuid.uuid4().hex
        body = b""
        q = [("project_id", p["id"]), ("folder_id", f["id"])]
        for n, data in batch:
            qn = n.encode()
            body += (b"--" + boundary.encode() + b"\r\n"
                     b'Content-Disposition: form-data; name="' + qn + b'"; filename="' + qn
                     + b'"\r\nContent-Type: application/json\r\n\r\n{"data": ' + data + b"}\r\n")
            q.append(("image_names[]", n))
        body += b"--" + boundary.encode() + b"--\r\n"
        api.raw("POST", "api/v4/items/annotations/upload", q, body,
                ctype="multipart/form-data; boundary=" + boundary)

    for n in names:
        data = json.dumps(doc(n, tag)).encode()
        if batch and (size + len(data) >= CHUNK or nlen >= URI_THRESHOLD - 14 * (len(batch) + 1)):
            send(batch)
            batch, size, nlen = [], 0, 0
        batch.append((n, data))
        size += len(data)
        nlen += len(n)
    if batch:
        send(batch)
    for i in range(0, len(names), 500):
        api.set_status(p, f, names[i:i + 500], "InProgress")


def daemon_cost(m):
    try:
        with open("/proc/%d/stat" % m.pid) as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
        rss = 0
        with open("/proc/%d/status" % m.pid) as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    rss = int(line.split()[1]) // 1024
        return cpu, rss
    except OSError:
        return 0.0, 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--latency", default="0,5,50")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=None)
    ap.add_argument("--kinds", default="cp-default,cp-wb,rsync-wb",
                    help="the mount runs to make (cp-default at 50 ms takes minutes)")
    a = ap.parse_args()
    kinds = [k for k in a.kinds.split(",") if k]
    for k in kinds:
        if k not in ("cp-default", "cp-wb", "rsync-wb"):
            ap.error("unknown kind %s" % k)
    if a.build:
        harness.BUILD = os.path.abspath(a.build)
        harness.SAFS = os.path.join(harness.BUILD, "fs", "safs")
        harness.EMULATOR = os.path.join(harness.BUILD, "tests", "emulator", "sa-emulator")
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    work = tempfile.mkdtemp(prefix="safs-benchwb-")
    srcroot = tempfile.mkdtemp(prefix="safs-benchwb-src-", dir=shm)
    os.environ["XDG_STATE_HOME"] = os.path.join(work, "state")
    em = Emulator(work, ["--seed-items", "%s/%s=%d" % (P, F, a.items)], name="benchwb-emu")
    api = em.api
    names = sorted(api.names(P, F))[:a.files]
    seq = [0]
    results = {}

    def src_tree(tag):
        d = os.path.join(srcroot, tag)
        os.makedirs(d)
        for n in names:
            with open(os.path.join(d, n + SUFFIX), "w") as fh:
                json.dump(doc(n, tag), fh, indent=2)
        return d

    def run_mount(kind, lat):
        seq[0] += 1
        tag = "%s%d" % (kind, seq[0])
        src = src_tree(tag)
        wb = kind != "cp-default"
        # safs's own defaults (cache_timeout 5 s, kernel TTLs 1 s), not the
        # test harness's zeros
        opts = {"cache_timeout": None, "attr_timeout": None, "entry_timeout": None,
                "negative_timeout": None}
        if wb:
            opts["writeback"] = True
        m = Mount(em, os.path.join(work, tag), P, opts)
        try:
            os.listdir(m.p(F))
            em.latency(lat)
            em.reset_stats()
            t = time.monotonic()
            prog = ["rsync", "-a", src + "/", m.p(F) + "/"] if kind == "rsync-wb" else \
                ["bash", "-c", "cp %s/* %s/" % (src, m.p(F))]
            subprocess.run(prog, check=True, timeout=3600, stdout=subprocess.DEVNULL)
            tp = time.monotonic() - t
            during = total(em)
            if wb:
                fd = os.open(m.p(F), os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            dt = time.monotonic() - t
            req = total(em)
            cpu, rss = daemon_cost(m)
            em.latency(0)
        finally:
            m.unmount()
            shutil.rmtree(src, ignore_errors=True)
        return dt, req, during, cpu, rss, tp

    for lat in [int(x) for x in a.latency.split(",")]:
        for r in range(a.runs):
            em.latency(lat)
            em.reset_stats()
            t = time.monotonic()
            seq[0] += 1
            baseline(api, names, "base%d" % seq[0])
            bt = time.monotonic() - t
            res = {"baseline": (bt, total(em), 0, 0.0, 0, bt)}
            em.latency(0)
            for kind in kinds:
                res[kind] = run_mount(kind, lat)
            for k, v in res.items():
                results.setdefault((lat, k), []).append(v)

    print("\n%d files into a %d-item folder; medians of %d runs" % (a.files, a.items, a.runs))
    print("%-4s %-11s %8s %6s %8s %6s %9s %6s %7s" % ("L ms", "run", "time s", "x base",
                                                   "requests", "x base", "during cp",
                                                   "cpu s", "rss MB") + "  prog s")
    for lat in [int(x) for x in a.latency.split(",")]:
        bt = statistics.median(v[0] for v in results[(lat, "baseline")])
        br = statistics.median(v[1] for v in results[(lat, "baseline")])
        for k in ["baseline"] + kinds:
            vs = results[(lat, k)]
            t = statistics.median(v[0] for v in vs)
            rq = statistics.median(v[1] for v in vs)
            print("%-4d %-11s %8.2f %6.2f %8d %6.2f %9s %6.2f %7d %7.2f" % (
                lat, k, t, t / bt if bt else 0, rq, rq / br if br else 0,
                "-" if k == "baseline" else "%d" % statistics.median(v[2] for v in vs),
                statistics.median(v[3] for v in vs), statistics.median(v[4] for v in vs),
                statistics.median(v[5] for v in vs)))
    em.stop()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(srcroot, ignore_errors=True)


if __name__ == "__main__":
    main()
