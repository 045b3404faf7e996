"""The fault suite (issue 10): every fault class of the emulator's
/_emulator/faults during every user operation.

For each fault class one mount runs the eight operations (cat, ls -l,
cp -r out, cp of files in, rsync -a back, setfattr status, mkdir, rm) while
the fault is active (phase A), then the fault is cleared and the same
operations run again on other files of the same mount (phase B: the mount
serves again without a remount). Asserted for every (fault, operation) pair:

* the program ends within a bound (never a hang: each file operation has
  one deadline, -o op_timeout=, whatever number of requests it makes);
* it succeeds, or fails with EIO (filesystem.md §6: platform unreachable,
  timeouts, 5xx after retries), as the table FAULTS says for that class;
* retries happened where the class is retryable (the emulator's fault was
  used up and the daemon's retry counter moved);
* nothing the program wrote is lost: each written file is on the platform or
  its exact bytes are in the recovery folder, with a log line naming it;
* phase B: every operation succeeds and the platform shows its effect.

The chaos run (test_chaos_rsync) rsyncs N edited files (SAFS_CHAOS_N,
default 200; 1000 for the long run) while 10 % of requests fail at random.
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from harness import EMULATOR, STATUS_XATTR, SUFFIX, Emulator, pretty_tokens, read

P = "Faults"
F = "work"          # what the programs write: cp in, rsync, setfattr, rm
RD = "read"         # what cat and ls -l read
OUT = "out"         # what cp -r copies out
OP_TIMEOUT = 3.0            # -o op_timeout= of these mounts (seconds)
N_IN = 4                    # files of the cp-in and rsync operations per phase
STREAM = "/api/v4/items/annotations/download"


def doc(name, tag):
    return {"metadata": {"name": name}, "instances": [], "tags": [tag], "comments": []}


def doc_text(name, tag):
    return (json.dumps(doc(name, tag), indent=4) + "\n").encode()


def names_of(phase):
    """Items each phase's operations use (none shared between phases)."""
    return {
        "cat": "%s_cat.jpg" % phase,
        "attr": "%s_attr.jpg" % phase,
        "rm": "%s_rm.jpg" % phase,
        "cp": ["%s_cp_%02d.jpg" % (phase, i) for i in range(N_IN)],
        "rs": ["%s_rs_%02d.jpg" % (phase, i) for i in range(N_IN)],
        "mkdir": "dir_%s" % phase,
    }


def seed(em):
    items, rd = [], ["r_%d.jpg" % i for i in range(4)]
    for ph in "AB":
        n = names_of(ph)
        items += [n["attr"], n["rm"]] + n["cp"] + n["rs"]
        rd.append(n["cat"])
    em.seed(P, folder=F, items=items, documents={i: doc(i, "orig") for i in items})
    em.seed(P, folder=RD, items=rd, documents={i: doc(i, "read") for i in rd})
    out = ["out_%d.jpg" % i for i in range(4)]
    em.seed(P, folder=OUT, items=out, documents={i: doc(i, "out") for i in out})


# --------------------------------------------------------------- fault table
# kind: "burst" (retried away: every operation succeeds; re-armed before each
# operation and used up by it) or "down" (lasts the whole phase: operations
# that need the platform fail with EIO). must_fail: operations that need the
# faulted requests and therefore MUST fail (the others may succeed or fail
# with EIO). retried: the client retries this class.
FAULTS = {
    "503_burst": dict(kind="burst", retried=True,
                      faults=[{"path": "/", "status": 503, "count": 2}]),
    "502_burst": dict(kind="burst", retried=True,
                      faults=[{"path": "/", "status": 502, "count": 2}]),
    "429_retry_after": dict(kind="burst", retried=True,
                            faults=[{"path": "/", "status": 429, "retry_after": 1, "count": 1}]),
    "drop_mid_answer": dict(kind="burst", retried=True,
                            faults=[{"path": "/", "drop": True, "count": 2}]),
    "slower_than_deadline": dict(kind="down", retried=False,
                                 faults=[{"path": "/", "delay_ms": int(OP_TIMEOUT * 2000),
                                          "count": -1}],
                                 must_fail={"cat", "ls", "cp_out", "cp_in", "rsync", "setfattr",
                                            "mkdir"}),
    "truncated_stream": dict(kind="down", retried=False,
                             faults=[{"path": STREAM, "stream_limit": 0, "count": -1}],
                             must_fail={"cat", "ls", "cp_out"}),
    "malformed_json": dict(kind="down", retried=False,
                           faults=[{"path": "/", "status": 200, "body": "{\"data\": [tru",
                                    "count": -1}],
                           must_fail={"cat", "ls", "cp_out", "cp_in", "rsync", "setfattr",
                                      "mkdir"}),
    "oversized_body": dict(kind="down", retried=False,
                           faults=[{"path": "/", "status": 200, "body": "{\"data\": [\"",
                                    "pad": 3 << 20, "count": -1}],
                           must_fail={"cat", "ls", "cp_out", "cp_in", "rsync", "setfattr",
                                      "mkdir"}),
    "server_killed": dict(kind="killed", retried=True,
                          must_fail={"cat", "ls", "cp_out", "cp_in", "rsync", "setfattr",
                                     "mkdir"}),
}
OPS = ("cat", "ls", "cp_out", "cp_in", "rsync", "setfattr", "mkdir", "rm")


def bound(calls):
    """The property: a program making @calls file operations that need the
    platform ends within their deadlines plus a generous margin."""
    return calls * OP_TIMEOUT * 2 + 20


def stats(m):
    return json.loads(os.getxattr(m.path, "user.safs.stats"))


class Result:
    def __init__(self, op, rc, out, err, secs):
        self.op, self.rc, self.out, self.err, self.secs = op, rc, out, err, secs

    @property
    def ok(self):
        return self.rc == 0

    def __repr__(self):
        return "%s rc=%s %.1fs err=%r" % (self.op, self.rc, self.secs, self.err[-400:])


def run_op(m, op, n, work):
    """Run one user operation with real programs; returns a Result."""
    d = m.p(F)
    if op == "cat":
        cmd, calls = ["cat", m.p(RD, n["cat"] + SUFFIX)], 3
    elif op == "ls":
        cmd, calls = ["ls", "-l", m.p(RD)], 4
    elif op == "cp_out":
        dst = os.path.join(work, "out_%s" % n["mkdir"])
        shutil.rmtree(dst, ignore_errors=True)
        cmd, calls = ["cp", "-r", m.p(OUT), dst], 4 * 4 + 2
    elif op == "cp_in":
        cmd = ["cp"] + [os.path.join(work, "src_cp", x + SUFFIX) for x in n["cp"]] + [d + "/"]
        calls = 4 * len(n["cp"]) + 2
    elif op == "rsync":
        cmd = ["rsync", "-a", "--itemize-changes", os.path.join(work, "src_rs") + "/", d + "/"]
        calls = 6 * len(n["rs"]) + 4
    elif op == "setfattr":
        cmd = ["setfattr", "-n", STATUS_XATTR, "-v", "Completed",
               os.path.join(d, n["attr"] + SUFFIX)]
        calls = 2
    elif op == "mkdir":
        cmd, calls = ["mkdir", m.p(n["mkdir"])], 2
    elif op == "rm":
        cmd, calls = ["rm", os.path.join(d, n["rm"] + SUFFIX)], 2
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=bound(calls))
    except subprocess.TimeoutExpired:
        pytest.fail("%s did not return within %.0f s (a hang): %s" % (op, bound(calls), cmd))
    res = Result(op, r.returncode, r.stdout, r.stderr.decode(errors="replace"),
                 time.monotonic() - t0)
    return res


def prepare_sources(work, n, phase):
    for sub, key in (("src_cp", "cp"), ("src_rs", "rs")):
        p = os.path.join(work, sub)
        shutil.rmtree(p, ignore_errors=True)
        os.makedirs(p)
        for x in n[key]:
            with open(os.path.join(p, x + SUFFIX), "wb") as f:
                f.write(doc_text(x, "edit-" + phase))


def recovered(m):
    out = {}
    for f in os.listdir(m.recovery_dir):
        out[f] = read(os.path.join(m.recovery_dir, f))
    return out


def handed_over(res, x):
    """What the program @res said about file @x: "ok" (no error: its bytes
    must be on the platform), "kept" (the mount took its bytes and the save
    failed: on the platform or in the recovery folder) or "refused" (the
    file was never opened or renamed: no bytes went in)."""
    lines = [ln for ln in res.err.splitlines() if (x + SUFFIX) in ln]
    if res.op == "rsync":
        itemized = any(ln.endswith(x + SUFFIX) for ln in res.out.decode().splitlines())
        if res.ok:
            return "ok"
        if any("rename" in ln for ln in lines):
            return "kept"
        return "ok" if itemized and not lines and "rsync error" not in res.err else "refused"
    if not lines:
        # cp names each file it failed on; an error naming none (the target
        # directory) means nothing was copied
        return "ok" if res.ok or SUFFIX in res.err else "refused"
    if any("failed to close" in ln or "error writing" in ln for ln in lines):
        return "kept"
    return "refused"


def check_written(m, api, res_list, names, phase):
    """Nothing lost: every file a program handed over is on the platform, or
    its exact bytes are in the recovery folder with a log line naming the
    recovery file. Returns the number of files recovered."""
    rec = recovered(m)
    log = m.log()
    got = api.folder_documents(P, F)
    n_rec = 0
    for res, xs in zip(res_list, names):
        for x in xs:
            how = handed_over(res, x)
            on_platform = json.loads(got[x]).get("tags") == ["edit-" + phase]
            if how == "ok":
                assert on_platform, (res, x, got[x][:200])
            elif how == "kept" and not on_platform:
                want = doc_text(x, "edit-" + phase)
                hits = [f for f, b in rec.items() if b == want and x in f]
                assert hits, "%s: neither on the platform nor recovered %s" % (x, list(rec))
                assert any(h in log for h in hits), "no log line names %s" % hits
                n_rec += 1
            else:
                # never opened: the platform keeps the original or has the edit
                assert json.loads(got[x]).get("tags") in (["orig"], ["edit-" + phase]), x
    return n_rec


def assert_phase_b(m, api, n, work, res):
    """Without faults every operation succeeds and the platform shows it."""
    for op in OPS:
        assert res[op].ok, res[op]
    assert read(m.p(RD, n["cat"] + SUFFIX)) == pretty_tokens(
        api.document_bytes(P, RD, n["cat"]))
    shown = {ln.rsplit(" ", 1)[-1][:-len(SUFFIX)] for ln in res["ls"].out.decode().splitlines()
             if ln.endswith(SUFFIX)}
    assert set(api.names(P, RD)) == shown, shown
    for x in api.names(P, OUT):
        assert read(os.path.join(work, "out_%s" % n["mkdir"], x + SUFFIX)) == pretty_tokens(
            api.document_bytes(P, OUT, x))
    check_written(m, api, [res["cp_in"], res["rsync"]], [n["cp"], n["rs"]], "B")
    assert api.status(P, F, n["attr"]) == "Completed"
    assert n["mkdir"] in [f["name"] for f in api.folders(P)]
    # rm: the delete is sent after the grace period; the document was saved
    # to the recovery folder first
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if json.loads(api.document_bytes(P, F, n["rm"])).get("instances") == [] and \
                json.loads(api.document_bytes(P, F, n["rm"])).get("tags") == []:
            break
        time.sleep(0.3)
    else:
        pytest.fail("rm of %s never reached the platform" % n["rm"])
    assert any(n["rm"] in f for f in recovered(m)), list(recovered(m))


def faults_left(em):
    return em.ctl("GET", "faults")["faults"]


FIGURES = {}
request_cleanup = []   # private emulators, stopped after the mounts are gone


def wait_landed(m, n, timeout=90):
    """-o writeback: the saves of the files cp and rsync wrote landed or
    failed for good (user.safs.sync is no longer "pending")."""
    deadline = time.monotonic() + timeout
    for x in n["cp"] + n["rs"]:
        while os.getxattr(m.p(F, x + SUFFIX), "user.safs.sync") == b"pending":
            assert time.monotonic() < deadline, "%s still pending" % x
            time.sleep(0.2)


def run_class(name, spec, mount, emulator, api, tmp_path, em_restart=None, writeback=False):
    seed(emulator)
    # listings trusted for 30 s and fetched before the fault, so the faulted
    # requests are the operations' own (downloads, saves, status, mkdir),
    # not only the first listing
    opts = {"op_timeout": str(OP_TIMEOUT), "max_doc": "1M", "cache_timeout": "30"}
    if writeback:
        opts["writeback"] = True
    m = mount(P, opts=opts, emu=emulator)
    for d in (m.path, m.p(RD), m.p(OUT)):
        os.listdir(d)
    # the sizes of the files the programs write are known (cp and rsync
    # stat their destination first): their saves meet the fault
    subprocess.run(["ls", "-l", m.p(F)], check=True, capture_output=True, timeout=60)
    work = str(tmp_path / "work")
    os.makedirs(work, exist_ok=True)
    na, nb = names_of("A"), names_of("B")
    prepare_sources(work, na, "A")
    s0 = stats(m)
    injected = 0
    res = {}
    if spec["kind"] == "killed":
        emulator.proc.send_signal(signal.SIGKILL)
        emulator.proc.wait(10)
    elif spec["kind"] == "down":
        emulator.faults(spec["faults"])
    for op in OPS:
        if spec["kind"] == "burst":
            emulator.faults(spec["faults"])
        res[op] = run_op(m, op, na, work)
        if spec["kind"] == "burst":
            # rm's delete is sent by the deleter after the grace period
            t0 = time.monotonic()
            while faults_left(emulator) and time.monotonic() - t0 < 10:
                time.sleep(0.1)
            left = faults_left(emulator)
            assert left == [], "%s: the fault was not used up: %s" % (op, left)
            injected += sum(f.get("count", 1) for f in spec["faults"])
    s1 = stats(m)
    if spec["kind"] == "killed":
        injected = 1   # one kill -9; the refused connections are the retries
        emulator = em_restart()
        api = emulator.api
    else:
        if spec["kind"] == "down":
            injected = emulator.stats()["total"]
        emulator.clear_faults()
    # phase A: errno, bound, retries
    for op in OPS:
        r = res[op]
        if spec["kind"] == "burst" or (writeback and op in ("cp_in", "rsync")):
            # -o writeback: close journals (no request); uploads come later
            assert r.ok, r
        elif op in spec.get("must_fail", ()):
            assert not r.ok, r
            assert "Input/output error" in r.err, r
        else:
            assert r.ok or "Input/output error" in r.err, r
    if spec["retried"]:
        assert s1["retries"] > s0["retries"], (s0, s1)
    if writeback:
        # the journaled saves land once the server answers again
        wait_landed(m, na)
        if res["setfattr"].ok:
            assert api.status(P, F, na["attr"]) == "Completed", res["setfattr"]
    # nothing lost: what phase A wrote is on the platform or recovered
    n_rec = check_written(m, api, [res["cp_in"], res["rsync"]], [na["cp"], na["rs"]], "A")
    rec_bytes = sum(len(b) for b in recovered(m).values())
    # phase B: the same mount serves again, at the latest once a failed
    # folder's next fetch is due (fetch.c: as long as the failed attempt
    # took, at most 30 s)
    t0 = time.monotonic()
    while True:
        r = run_op(m, "cat", nb, work)
        if r.ok:
            r = run_op(m, "cp_out", nb, work)
        if r.ok:
            r = run_op(m, "ls", nb, work)
        if r.ok:
            break
        assert time.monotonic() - t0 < 35, r
        time.sleep(0.2)
    back = time.monotonic() - t0
    prepare_sources(work, nb, "B")
    resb = {op: run_op(m, op, nb, work) for op in OPS}
    if writeback:
        wait_landed(m, nb)
    assert_phase_b(m, api, nb, work, resb)
    if writeback:
        name += "+writeback"
    FIGURES[name] = dict(injected=injected, retries=s1["retries"] - s0["retries"],
                         recovered_files=n_rec, recovered_bytes=rec_bytes,
                         slowest_a=round(max(r.secs for r in res.values()), 1),
                         serves_again_after=round(back, 1),
                         failed_a=sorted(op for op in OPS if not res[op].ok))
    print("FIGURES %s %s" % (name, json.dumps(FIGURES[name])))
    return m


@pytest.mark.parametrize("name", [k for k in FAULTS if FAULTS[k]["kind"] != "killed"])
def test_fault_during_every_operation(name, mount, emulator, api, tmp_path):
    run_class(name, FAULTS[name], mount, emulator, api, tmp_path)


@pytest.mark.parametrize("name", [k for k in FAULTS if FAULTS[k]["kind"] != "killed"])
def test_fault_during_every_operation_writeback(name, mount, emulator, api, tmp_path):
    """The same matrix on top of -o writeback (issue 10: re-run on write-back):
    cp in and rsync succeed at once (close journals), their uploads meet the
    fault in the background and land once it is gone, or their bytes are in
    the recovery folder."""
    run_class(name, FAULTS[name], mount, emulator, api, tmp_path, writeback=True)


def test_server_killed_and_restarted(mount, tmp_path):
    """kill -9 of the server during the operations; restarted on the same
    database and port, the same mount serves again."""
    db = str(tmp_path / "emu.db")
    wd = str(tmp_path / "emu")
    em = Emulator(wd, ["--db", db])
    port = em.port
    box = {"em": em}
    request_cleanup.append(box)

    def restart():
        box["em"]._log.close()
        box["em"] = Emulator(wd, ["--db", db, "--port", str(port)], name="emulator2")
        assert box["em"].port == port
        return box["em"]

    # the mount fixture unmounts first; the server is stopped after that
    run_class("server_killed", FAULTS["server_killed"], mount, em, em.api, tmp_path,
              em_restart=restart)


@pytest.fixture(autouse=True)
def _stop_private_emulators():
    yield
    while request_cleanup:
        box = request_cleanup.pop()
        box["em"].stop(check=True)


def test_cp_200_files_in_under_503_bursts(mount, emulator, api, tmp_path):
    """cp of 200 files into the mount while bursts of 503 hit every route:
    every file reaches the platform, retried, nothing recovered."""
    names = ["in_%03d.jpg" % i for i in range(200)]
    emulator.seed(P, folder=F, items=names, documents={i: doc(i, "orig") for i in names})
    m = mount(P, opts={"op_timeout": str(OP_TIMEOUT)})
    src = tmp_path / "src"
    src.mkdir()
    for x in names:
        (src / (x + SUFFIX)).write_bytes(doc_text(x, "edit-200"))
    s0 = stats(m)
    # a burst at the start, then 5 % of the requests at random (seeded)
    emulator.faults({"path": "/", "status": 503, "count": 2})
    emulator.faults({"path": "/", "status": 503, "count": -1, "probability": 0.05, "seed": 7})
    t0 = time.monotonic()
    r = subprocess.run(["cp"] + [str(src / (x + SUFFIX)) for x in names] + [m.p(F) + "/"],
                       capture_output=True, timeout=bound(4 * 200))
    secs = time.monotonic() - t0
    hits = sum(f.get("hits", 0) for f in faults_left(emulator))
    emulator.clear_faults()
    assert r.returncode == 0, r.stderr[-2000:]
    s1 = stats(m)
    assert hits > 0 and s1["retries"] >= hits + 2, (hits, s0, s1)
    got = api.folder_documents(P, F)
    assert all(json.loads(got[x])["tags"] == ["edit-200"] for x in names)
    assert recovered(m) == {}
    print("FIGURES cp_200 %s" % json.dumps(dict(secs=round(secs, 1), retries=s1["retries"] - s0["retries"],
                                                   injected=hits + 2)))


# ------------------------------------------------------------------ chaos
CHAOS_N = int(os.environ.get("SAFS_CHAOS_N", "200"))


def chaos_items(emulator, tmp_path, prefix, tag):
    """CHAOS_N items seeded with "orig" documents, and a source tree of
    their edits (tag @tag): (names, source directory)."""
    names = ["%s_%04d.jpg" % (prefix, i) for i in range(CHAOS_N)]
    emulator.seed(P, folder=F, items=names, documents={i: doc(i, "orig") for i in names})
    src = tmp_path / "src"
    src.mkdir()
    for x in names:
        (src / (x + SUFFIX)).write_bytes(doc_text(x, tag))
    return names, src


def test_chaos_rsync(mount, emulator, api, tmp_path):
    """rsync -a of CHAOS_N edited files while 10 % of the requests fail at
    random (seeded): 10 % of uploads answer 500 (not retried: the save
    fails), and 10 % of every other request 503 (retried). Afterwards the
    platform holds every edit rsync reported done, the others are on the
    platform or in the recovery folder, and a second rsync -a completes the
    job (exit 0, platform == source)."""
    names, src = chaos_items(emulator, tmp_path, "c", "chaos")
    m = mount(P, opts={"op_timeout": str(OP_TIMEOUT * 4)})
    s0 = stats(m)
    seed_ = int(os.environ.get("SAFS_CHAOS_SEED", "20261202"))
    emulator.faults([
        {"path": "/api/v4/items/annotations/upload", "status": 500, "count": -1,
         "probability": 0.10, "seed": seed_},
        {"path": "/", "status": 503, "count": -1, "probability": 0.10, "seed": seed_ + 1},
    ])
    t0 = time.monotonic()
    r = subprocess.run(["rsync", "-a", "--itemize-changes", str(src) + "/", m.p(F) + "/"],
                       capture_output=True, text=True, timeout=bound(8 * CHAOS_N))
    secs = time.monotonic() - t0
    hits = {f["path"]: f.get("hits", 0) for f in faults_left(emulator)}
    emulator.clear_faults()
    s1 = stats(m)
    assert r.returncode in (0, 23), (r.returncode, r.stderr[-3000:])
    itemized = {ln.split(" ", 1)[1][:-len(SUFFIX)] for ln in r.stdout.splitlines()
                if ln.startswith(">f") and ln.endswith(SUFFIX)}
    failed = {x for x in names if (x + SUFFIX) in r.stderr}
    done = itemized - failed
    assert (r.returncode == 23) == bool(failed), (r.returncode, sorted(failed)[:5], r.stderr[-2000:])
    got = api.folder_documents(P, F)
    want = {x: doc_text(x, "chaos") for x in names}
    for x in done:
        assert json.loads(got[x])["tags"] == ["chaos"], x
    rec = recovered(m)
    not_landed = [x for x in names if json.loads(got[x])["tags"] != ["chaos"]]
    for x in not_landed:
        assert x in failed or x not in itemized, x
        assert any(b == want[x] and x in f for f, b in rec.items()), \
            "%s: neither on the platform nor recovered" % x
    assert s1["retries"] > s0["retries"]
    # the second run completes the job
    r2 = subprocess.run(["rsync", "-a", str(src) + "/", m.p(F) + "/"],
                        capture_output=True, text=True, timeout=bound(8 * CHAOS_N))
    assert r2.returncode == 0, r2.stderr[-3000:]
    got = api.folder_documents(P, F)
    assert all(json.loads(got[x])["tags"] == ["chaos"] for x in names)
    print("FIGURES chaos %s" % json.dumps(dict(
        n=CHAOS_N, secs=round(secs, 1), rsync_rc=r.returncode, faults_hit=hits,
        retries=s1["retries"] - s0["retries"], failed=len(failed), not_landed=len(not_landed),
        recovered_files=len(rec), recovered_bytes=sum(len(b) for b in rec.values()))))


def test_chaos_rsync_writeback(mount, emulator, api, tmp_path):
    """The chaos run on top of -o writeback: rsync -a of CHAOS_N edited files
    while requests fail at random (30 % of uploads 500, 10 % of the rest 503),
    plus one certain 500 on the first multipart upload. rsync's close paths
    make no request, so it sees only its stats' faults (retried); the
    uploader retries every failed batch with backoff. fsync of the folder,
    bounded by the deadline (EIO while the faults last), then lands
    everything: the platform equals the source, nothing is recovered (a 500
    is transient), and a second rsync -a transfers nothing."""
    names, src = chaos_items(emulator, tmp_path, "w", "chaos-wb")
    m = mount(P, opts={"op_timeout": str(OP_TIMEOUT * 4), "writeback": True,
                       "cache_timeout": "30"})
    s0 = stats(m)
    seed_ = int(os.environ.get("SAFS_CHAOS_SEED", "20261202"))
    up = "/api/v4/items/annotations/upload"
    emulator.faults([
        {"path": up, "status": 500, "count": 1},
        # write-back makes few upload requests (batches): 30 % of them fail
        {"path": up, "status": 500, "count": -1, "probability": 0.30, "seed": seed_},
        {"path": "/", "status": 503, "count": -1, "probability": 0.10, "seed": seed_ + 1},
    ])
    t0 = time.monotonic()
    r = subprocess.run(["rsync", "-a", "--itemize-changes", str(src) + "/", m.p(F) + "/"],
                       capture_output=True, text=True, timeout=bound(8 * CHAOS_N))
    secs = time.monotonic() - t0
    assert r.returncode in (0, 23), (r.returncode, r.stderr[-3000:])
    failed = {x for x in names if (x + SUFFIX) in r.stderr}
    assert (r.returncode == 23) == bool(failed), r.stderr[-2000:]
    # fsync of the folder while the faults last: EIO within its deadline, or done
    fsyncs, landed = 0, False
    while not landed and time.monotonic() - t0 < 120:
        fd = os.open(m.p(F), os.O_RDONLY)
        t1 = time.monotonic()
        try:
            os.fsync(fd)
            landed = True
        except OSError as e:
            assert e.errno == errno.EIO, e
            assert time.monotonic() - t1 < OP_TIMEOUT * 4 + 5, "fsync beyond its deadline"
        finally:
            os.close(fd)
        fsyncs += 1
    left = faults_left(emulator)
    hits = {f["path"] + ("(p)" if f.get("probability") else ""): f.get("hits", 0) for f in left}
    # the certain 500 met the first multipart upload (a used-up fault is gone)
    assert not [f for f in left if f.get("count") == 1], left
    emulator.clear_faults()
    if not landed:
        fd = os.open(m.p(F), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    s1 = stats(m)
    got = api.folder_documents(P, F)
    for x in names:
        if x not in failed:
            assert json.loads(got[x])["tags"] == ["chaos-wb"], x
    assert recovered(m) == {}, list(recovered(m))
    assert s1["uploads_pending"] == 0 and s1["uploads_failed"] == 0, s1
    # the first multipart upload failed (at least): its saves stayed
    # journaled and were retried by the uploader (the client does not retry
    # a 500; a 503 it does)
    n_retried = m.log().count("kept journaled, retried")
    assert n_retried > 0
    # a second rsync completes the job (the files it could not stat) ...
    r2 = subprocess.run(["rsync", "-a", str(src) + "/", m.p(F) + "/"],
                        capture_output=True, text=True, timeout=bound(8 * CHAOS_N))
    assert r2.returncode == 0, r2.stderr[-3000:]
    fd = os.open(m.p(F), os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    got = api.folder_documents(P, F)
    assert all(json.loads(got[x])["tags"] == ["chaos-wb"] for x in names)
    # ... and a third uploads nothing (the mount shows the platform's form of
    # each document, so rsync compares and re-sends; nothing changed)
    emulator.reset_stats()
    r3 = subprocess.run(["rsync", "-a", str(src) + "/", m.p(F) + "/"],
                        capture_output=True, text=True, timeout=bound(8 * CHAOS_N))
    assert r3.returncode == 0, r3.stderr[-3000:]
    fd = os.open(m.p(F), os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    assert emulator.uploads() == 0, emulator.routes()
    for x in names[::25]:
        assert read(m.p(F, x + SUFFIX)) == pretty_tokens(api.document_bytes(P, F, x))
    print("FIGURES chaos_writeback %s" % json.dumps(dict(
        n=CHAOS_N, rsync_secs=round(secs, 1), rsync_rc=r.returncode, faults_hit=hits,
        fsyncs_until_landed=fsyncs, client_retries=s1["retries"] - s0["retries"],
        uploader_retries=n_retried, failed=len(failed))))
