#!/usr/bin/python3
"""safs benchmark: the mount vs the minimum the API needs, under injected latency.

    /usr/bin/python3 tests/bench/bench.py [--items 2000] [--latency-ms 20] [--build DIR]

Starts its own emulator (--latency-ms N, --seed-items Bench/f=ITEMS) and mounts
"Bench" with safs. For each operation it measures, in one run, side by side:
  - the operation through the mount (real programs: ls -l, cat, rsync, cp), and
  - the same result fetched/stored directly with the fewest API round trips
    (tests/integration/saapi.py: listing pages, download/method, stream batches,
    one upload + one status change),
and prints the time ratio and the emulator's request counts. Nothing here is
pass/fail on time; it is a report. Request counts are exact.
"""
import argparse
import json
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


def kinds(em, routes):
    return {"list": em.count(lambda k: k.endswith("/items/search") or k.endswith("/folders")
                             or "getFolderBy" in k or "/projects" in k or "/project/" in k, routes),
            "down": em.downloads(routes), "up": em.uploads(routes),
            "status": em.status_changes(routes), "total": sum(routes.values())}


def timed(em, fn):
    em.reset_stats()
    t = time.monotonic()
    fn()
    dt = time.monotonic() - t
    return dt, kinds(em, em.routes())


def sh(cmd, timeout=900):
    subprocess.run(["bash", "-c", cmd], check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--build", default=None, help="build dir (default $SAFS_BUILD or build/)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    a = ap.parse_args()
    if a.build:
        harness.BUILD = os.path.abspath(a.build)
        harness.SAFS = os.path.join(harness.BUILD, "fs", "safs")
        harness.EMULATOR = os.path.join(harness.BUILD, "tests", "emulator", "sa-emulator")

    work = tempfile.mkdtemp(prefix="safs-bench-")
    em = Emulator(work, ["--seed-items", "%s/%s=%d" % (P, F, a.items), "--latency-ms", str(a.latency_ms)],
                  name="bench-emu")
    api = em.api
    rows = []
    mounts = []

    def mount(tag, opts=None):
        m = Mount(em, os.path.join(work, tag), P, dict({"cache_timeout": "30"}, **(opts or {})))
        mounts.append(m)
        return m

    def row(name, mount_res, direct_res):
        rows.append((name, mount_res, direct_res))

    try:
        p = api.project(P)
        fo = api.folder(p, F)

        # --- direct: the minimum round trips -----------------------------
        def direct_list():
            return api.search(p["id"], fo["id"])

        def direct_all_docs():
            items = direct_list()
            return api.documents_by_id(p["id"], [i["id"] for i in items])

        # ls -l (cold mount) vs listing + bulk documents (sizes need them)
        m = mount("lsl")
        d = m.p(F)
        row("ls -l %d items" % a.items, timed(em, lambda: sh("ls -l %s" % harness_q(d))),
            timed(em, direct_all_docs))
        row("ls -l again (warm)", timed(em, lambda: sh("ls -l %s" % harness_q(d))), None)
        m.unmount()

        # ls | wc -l (names only) vs listing pages
        m = mount("ls")
        row("ls | wc -l", timed(em, lambda: sh("ls %s | wc -l" % harness_q(m.p(F)))), timed(em, direct_list))
        m.unmount()

        # cat of every file (cold) vs listing + bulk documents
        m = mount("cat")
        row("cat dir/* (cold)", timed(em, lambda: sh("cat %s/* > /dev/null" % harness_q(m.p(F)))),
            timed(em, direct_all_docs))
        m.unmount()

        # rsync -a out (cold) and back
        m = mount("rsync")
        out = os.path.join(work, "out")
        row("rsync -a out (cold)", timed(em, lambda: sh("rsync -a %s/ %s/" % (harness_q(m.p(F)), out))),
            timed(em, direct_all_docs))
        row("rsync -a back, unchanged", timed(em, lambda: sh("rsync -a %s/ %s/" % (out, harness_q(m.p(F))))),
            None)
        names = sorted(os.listdir(out))[:10]
        for n in names:
            fp = os.path.join(out, n)
            doc = json.load(open(fp))
            doc.setdefault("tags", []).append("bench")
            with open(fp, "w") as fh:
                json.dump(doc, fh, indent=4)

        def direct_upload_10():
            for n in names:
                item = n[:-len(SUFFIX)]
                api.upload(p, fo, item, json.load(open(os.path.join(out, n))))
            api.set_status(p, fo, [n[:-len(SUFFIX)] for n in names], "InProgress")
        row("rsync -a back, 10 changed", timed(em, lambda: sh("rsync -a %s/ %s/" % (out, harness_q(m.p(F))))),
            None)
        # restore the 10 documents' contents on the platform for the direct comparison
        row("  direct: 10 uploads + 1 status", None, timed(em, direct_upload_10))

        # a single-file save: read, edit, cp back vs one upload + one status change
        n0 = sorted(os.listdir(out))[20]
        item0 = n0[:-len(SUFFIX)]
        fp = m.p(F, n0)
        doc = json.loads(open(fp, "rb").read())
        doc.setdefault("tags", []).append("single")
        src = os.path.join(work, "single.json")
        with open(src, "w") as fh:
            json.dump(doc, fh, indent=4)

        def direct_single():
            api.upload(p, fo, item0, doc)
            api.set_status(p, fo, [item0], "InProgress")
        row("single-file save (cp)", timed(em, lambda: sh("cp %s %s" % (src, harness_q(fp)))),
            timed(em, direct_single))
        m.unmount()
    finally:
        for m in mounts:
            try:
                m.unmount()
            except BaseException:  # noqa: B902
                m.cleanup()
        em.stop(check=False)
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    print("\nsafs bench: %d items, emulator latency %d ms per request\n" % (a.items, a.latency_ms))
    hdr = "%-32s %9s %9s %7s   %-34s %-34s" % ("operation", "mount s", "direct s", "ratio",
                                              "mount reqs (list/down/up/status/total)",
                                              "direct reqs")
    print(hdr)
    print("-" * len(hdr))
    for name, mr, dr in rows:
        def fmt(r):
            if not r:
                return "-"
            k = r[1]
            return "%d/%d/%d/%d/%d" % (k["list"], k["down"], k["up"], k["status"], k["total"])
        ms = "%.2f" % mr[0] if mr else "-"
        ds = "%.2f" % dr[0] if dr else "-"
        ratio = "%.1fx" % (mr[0] / dr[0]) if mr and dr and dr[0] > 0 else "-"
        print("%-32s %9s %9s %7s   %-38s %-34s" % (name, ms, ds, ratio, fmt(mr), fmt(dr)))
    return 0


def harness_q(s):
    import shlex
    return shlex.quote(s)


if __name__ == "__main__":
    sys.exit(main())
