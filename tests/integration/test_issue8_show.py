"""Issue 8, "what the file shows": items 6, 7 and 9.

Contract: ../shared/design/filesystem.md §2 ("After an upload", the stat and
unlink rows), §6 (ESTALE is for saves only); api.md §11 (the server fills
metadata.status of a downloaded document).
"""
import collections
import errno
import filecmp
import json
import os
import shlex
import threading
import time

import pytest

from harness import STATUS_XATTR, SUFFIX, read, run, sh, write
from defects import (GRACE, V, annotated, hidden, platform_pretty, read_fd, shows, wait_for)

q = shlex.quote


# ---------------------------------------------------------------------------
# 6. after a save the file shows what a fresh mount reads

def test_6_after_save_shows_what_a_fresh_mount_reads(mount, emulator, api, tmp_path):
    name = annotated(api, "train")[2]
    api.set_status(V, "train", [name], "Completed")
    a = mount(V)
    f = a.p("train", name + SUFFIX)
    d = json.loads(read(f))
    # one instance without creationType and probability: the upload adds them
    d["instances"][0].pop("creationType", None)
    d["instances"][0].pop("probability", None)
    d["tags"] = d.get("tags", []) + ["six"]
    src = tmp_path / "x.json"
    src.write_text(json.dumps(d, indent=2))  # another layout than the mount's
    run(["cp", str(src), f])
    assert emulator.uploads() == 1, emulator.routes()
    emulator.reset_stats()
    data = shows(f)
    routes = emulator.routes()
    assert emulator.downloads(routes) == 0, "computed locally, not downloaded again: %r" % routes
    got = json.loads(data)
    assert got["instances"][0]["creationType"] == "Preannotation"
    assert got["instances"][0]["probability"] == 100
    assert got["metadata"]["status"] == "InProgress"  # the save's status step
    assert got["metadata"]["name"] == name and "lastAction" in got["metadata"]
    assert got["tags"][-1] == "six"
    # byte for byte what a fresh mount reads, and the platform's document
    b = mount(V)
    assert shows(b.p("train", name + SUFFIX)) == data
    assert data == platform_pretty(api, "train", name)
    # cp -r from both mounts: identical trees
    run(["cp", "-r", a.p("train"), str(tmp_path / "a")], timeout=120)
    run(["cp", "-r", b.p("train"), str(tmp_path / "b")], timeout=120)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == sorted(os.listdir(tmp_path / "b")) and name + SUFFIX in names
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert mismatch == [] and errors == [], (mismatch, errors)
    assert emulator.writes() == 0, emulator.routes()


# ---------------------------------------------------------------------------
# 7. cat agrees with getfattr after any status change

def test_7_cat_agrees_with_getfattr(mount, emulator, api):
    """The emulator is being changed to fill metadata.status on download, as
    the platform does (api.md §11); the mount must then serve it."""
    name = annotated(api, "val")[0]
    m = mount(V)
    f = m.p("val", name + SUFFIX)

    def agree(want):
        data = run(["cat", f], text=False).stdout
        assert json.loads(data)["metadata"]["status"] == want
        r = run(["getfattr", "-n", STATUS_XATTR, "--only-values", "--absolute-names", f])
        assert r.stdout == want
        assert api.status(V, "val", name) == want
        assert data == platform_pretty(api, "val", name)
        assert os.stat(f).st_size == len(data)

    agree(api.status(V, "val", name))
    run(["setfattr", "-n", STATUS_XATTR, "-v", "Completed", f])             # through the mount
    agree("Completed")
    api.set_status(V, "val", [name], "Returned")                           # through the API
    agree("Returned")
    sh("jq '.tags += [\"seven\"]' %s > %s && mv %s %s"                      # a save: InProgress
       % (q(f), q(m.p("val", ".7.tmp")), q(m.p("val", ".7.tmp")), q(f)))
    agree("InProgress")
    run(["setfattr", "-n", STATUS_XATTR, "-v", "QualityCheck", m.p("val")])  # the folder
    agree("QualityCheck")
    api.set_status(V, "val", [name], "Skipped")
    agree("Skipped")


# ---------------------------------------------------------------------------
# 9. descriptors opened before an rm, and reads racing unlink + re-create

def test_9_cat_through_descriptor_opened_before_rm(mount, emulator, api):
    names = annotated(api, "train")[:2]
    m = mount(V)
    d = m.p("train")
    before = [shows(m.p("train", n + SUFFIX)) for n in names]
    emulator.reset_stats()
    r = sh("cd %s && exec 3< %s && rm %s && cat <&3" % (q(d), q(names[0] + SUFFIX), q(names[0] + SUFFIX)),
           text=False, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == before[0]
    # fstat and read through a descriptor opened before the unlink
    p = m.p("train", names[1] + SUFFIX)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.unlink(p)
        st = os.fstat(fd)
        data = read_fd(fd)
        st2 = os.fstat(fd)
    finally:
        os.close(fd)
    assert data == before[1] and st.st_size == len(data) == st2.st_size
    for n in names:
        assert hidden(m, "train", n + SUFFIX)
    # the deletes land after the grace period
    assert wait_for(lambda: emulator.deletes() >= 2, 2 * GRACE), emulator.routes()
    for n in names:
        doc = api.document(V, "train", n)
        assert doc["instances"] == [] and api.status(V, "train", n) == "NotStarted", n
    assert emulator.uploads() == 0


@pytest.mark.parametrize("mode", ["unlink", "unlink+re-create"])
def test_9_reads_racing_unlink_never_estale(mount, emulator, api, mode):
    """Read-only opens racing a loop of unlinks (today: ESTALE for about one
    read in five) or of unlink + re-create (today: torn reads, and ESTALE for
    the re-creating writer) fail only with ENOENT, and every read that
    succeeds is one whole version."""
    name = annotated(api, "val")[1]
    m = mount(V)
    p = m.p("val", name + SUFFIX)
    base = json.loads(read(p))
    stop = time.monotonic() + 4
    errs = collections.Counter()
    bad, ok, writer_errs, last = [], [0], [], [None]

    def writer():
        i = 0
        while time.monotonic() < stop:
            d = json.loads(json.dumps(base))
            d["tags"] = ["race-%d" % i]
            data = (json.dumps(d, indent=4) + "\n").encode()
            try:
                os.unlink(p)
                if mode == "unlink+re-create":
                    write(p, data)
                    last[0] = d["tags"]
            except OSError as e:
                if not (mode == "unlink" and e.errno == errno.ENOENT and i > 0):
                    writer_errs.append((i, errno.errorcode.get(e.errno, e.errno)))
            i += 1

    def reader():
        while time.monotonic() < stop:
            try:
                data = read(p)
            except OSError as e:
                errs[errno.errorcode.get(e.errno, e.errno)] += 1
                continue
            try:
                json.loads(data)
                ok[0] += 1
            except ValueError:
                bad.append(data[:120])

    ts = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
        assert not t.is_alive()
    print("reads ok %d, errors %r, torn %d, writer errors %r" % (ok[0], dict(errs), len(bad), writer_errs[:5]))
    if mode == "unlink":
        assert errs.get("ESTALE", 0) == 0, dict(errs)
    else:
        # README "Known limits": an open whose name is replaced twice between
        # the kernel's lookup and its open (here: rm, then the re-create's
        # node removed by the next rm) is ESTALE after the kernel's one
        # retry; rare (0 to 2 in some thousand reads under load), never more
        assert errs.get("ESTALE", 0) * 200 <= ok[0] + sum(errs.values()), dict(errs)
    assert set(errs) <= {"ENOENT", "ESTALE"}, dict(errs)
    assert bad == [], bad[:3]
    assert writer_errs == [], writer_errs[:10]
    time.sleep(GRACE)
    if mode == "unlink":
        # the first unlink hid the name; its delete landed once
        assert emulator.deletes() == 1, emulator.routes()
        assert api.document(V, "val", name)["instances"] == []
        assert hidden(m, "val", name + SUFFIX)
    else:
        # each re-create inside the grace period is a plain save: no delete
        assert ok[0] > 0, dict(errs)
        assert emulator.deletes() == 0, emulator.routes()
        assert api.document(V, "val", name)["tags"] == last[0]
        assert shows(p) == platform_pretty(api, "val", name)
