"""Issue 8, "our own changes" and timestamps: items 10, 11 and 16.

Contract: ../shared/design/filesystem.md §2 (conflicts; the version key and
its whole-second updatedAt), §4 (a status set while a save is pending).
Items 11c and 16 use the emulator's clock control (POST /_emulator/clock,
being added) to put two changes in one second.
"""
import errno
import json
import os
import shlex
import threading
import time

import pytest

from harness import STATUS_XATTR, SUFFIX, read, recovered_bytes, run, sh, write, xget
from defects import (GRACE, UPLOAD, V, annotated, clock, close_errno, doc_bytes, freeze_clock,
                     platform_pretty, recorded, same_instances, shows, wait_for)

q = shlex.quote


def edited(base, tag):
    d = json.loads(base)
    d["tags"] = [tag]
    return (json.dumps(d, indent=4) + "\n").encode()


def save_through(f, data):
    """Rewrite an open r+ descriptor and close it; the close's errno (0 = saved)."""
    f.seek(0)
    f.truncate()
    f.write(data)
    return close_errno(f)


# ---------------------------------------------------------------------------
# 10. a status set while that file's save is in flight

def test_10_setfattr_during_inflight_save_is_applied(mount, emulator, api):
    name = annotated(api, "val")[0]
    api.set_status(V, "val", [name], "NotStarted")
    m = mount(V)
    p = m.p("val", name + SUFFIX)
    data = edited(read(p), "ten")
    emulator.faults({"method": "POST", "path": UPLOAD, "delay_ms": 1500})
    emulator.reset_requests()
    err = []

    def saver():
        try:
            write(p, data)
        except OSError as e:
            err.append(e.errno)

    t = threading.Thread(target=saver)
    t.start()
    try:
        assert wait_for(lambda: recorded(emulator, UPLOAD), 10), "the upload never started"
        r = run(["setfattr", "-n", STATUS_XATTR, "-v", "Completed", p], check=False, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        t.join(60)
    assert err == [], err
    assert wait_for(lambda: api.status(V, "val", name) == "Completed", 5), api.status(V, "val", name)
    assert api.document(V, "val", name)["tags"] == ["ten"]
    assert xget(p, STATUS_XATTR) == "Completed"
    shown = shows(p)
    assert json.loads(shown)["metadata"]["status"] == "Completed"
    assert shown == platform_pretty(api, "val", name)


# ---------------------------------------------------------------------------
# 11. our own status change, save or delete does not make an editor's save ESTALE

def test_11_editor_survives_own_status_change(mount, emulator, api):
    name = annotated(api, "val")[1]
    m = mount(V)
    p = m.p("val", name + SUFFIX)
    f = open(p, "r+b")
    try:
        base = f.read()
        run(["setfattr", "-n", STATUS_XATTR, "-v", "Completed", p])
        assert api.status(V, "val", name) == "Completed"
        data = edited(base, "after-own-status")
        emulator.reset_stats()
        assert save_through(f, data) == 0
    finally:
        close_errno(f)
    assert emulator.uploads() == 1, emulator.routes()
    doc = api.document(V, "val", name)
    assert doc["tags"] == ["after-own-status"]
    assert same_instances(doc["instances"], json.loads(base)["instances"])
    assert api.status(V, "val", name) == "InProgress"  # the save's status step
    assert xget(p, STATUS_XATTR) == "InProgress"
    assert shows(p) == platform_pretty(api, "val", name)


def test_11_editor_survives_own_save(mount, emulator, api, tmp_path):
    name = annotated(api, "val")[2]
    m = mount(V)
    p = m.p("val", name + SUFFIX)
    f = open(p, "r+b")
    try:
        base = f.read()
        src = tmp_path / "x.json"
        src.write_bytes(edited(base, "own-cp"))
        run(["cp", str(src), p])          # our own save, through another descriptor
        assert api.document(V, "val", name)["tags"] == ["own-cp"]
        assert save_through(f, edited(base, "editor")) == 0
    finally:
        close_errno(f)
    assert api.document(V, "val", name)["tags"] == ["editor"]
    assert shows(p) == platform_pretty(api, "val", name)


def test_11_editor_survives_own_delete_and_recreate(mount, emulator, api, tmp_path):
    """The user removes the file in a shell and restores it from a copy (a
    re-create inside the grace period: the delete is cancelled, unchanged
    content sends nothing), while an editor has it open. A descriptor opened
    before the unlink belongs to the removed file: its writes are never
    uploaded (filesystem.md §2.1) but are kept in the recovery folder. The
    editor's next save — a new open, as editors save — is not ESTALE: our own
    delete and re-create moved its base."""
    name = annotated(api, "train")[3]
    m = mount(V)
    p = m.p("train", name + SUFFIX)
    f = open(p, "r+b")
    try:
        base = f.read()
        (tmp_path / "copy.json").write_bytes(base)
        emulator.reset_stats()
        sh("rm %s && cp %s %s" % (q(p), q(str(tmp_path / "copy.json")), q(p)))
        routes = emulator.routes()
        assert emulator.writes(routes) == 0, routes
        old = edited(base, "through-the-removed-file")
        assert save_through(f, old) == 0
    finally:
        close_errno(f)
    assert emulator.uploads() == 0, emulator.routes()
    assert any(old == r for r in recovered_bytes(m.recovery_dir))
    # the editor saves (a new open of the name)
    with open(p, "r+b") as g:
        g.seek(0)
        g.truncate()
        g.write(edited(base, "editor-after-rm"))
    routes = emulator.routes()
    assert emulator.deletes(routes) == 0 and emulator.uploads(routes) == 1, routes
    doc = api.document(V, "train", name)
    assert doc["tags"] == ["editor-after-rm"]
    assert same_instances(doc["instances"], json.loads(base)["instances"])
    assert shows(p) == platform_pretty(api, "train", name)
    time.sleep(GRACE)
    assert emulator.deletes() == 0


def test_11_colleague_edit_in_the_second_of_our_own_change_is_estale(mount, emulator, api):
    """Our own status change moves the editor's base; a colleague's upload in
    the same (frozen) second leaves the version key (id, updatedAt, status)
    as it was and must still be ESTALE."""
    name = annotated(api, "val")[3]
    m = mount(V)
    p = m.p("val", name + SUFFIX)
    freeze_clock(emulator)
    try:
        api.upload(V, "val", name, doc_bytes(name, ["v1"]))
        f = open(p, "r+b")
        try:
            base = f.read()
            assert json.loads(base)["tags"] == ["v1"]
            run(["setfattr", "-n", STATUS_XATTR, "-v", "Completed", p])   # our own change
            upd = api.item(V, "val", name)["updatedAt"]
            api.upload(V, "val", name, doc_bytes(name, ["colleague"]))       # the same second
            assert api.item(V, "val", name)["updatedAt"] == upd and upd.endswith(".000Z"), upd
            ours = edited(base, "ours")
            assert save_through(f, ours) == errno.ESTALE
        finally:
            close_errno(f)
    finally:
        clock(emulator, real=True)
    assert api.document(V, "val", name)["tags"] == ["colleague"]
    assert api.status(V, "val", name) == "Completed"
    assert ours in recovered_bytes(m.recovery_dir)
    assert shows(p) == platform_pretty(api, "val", name)


# ---------------------------------------------------------------------------
# 16. whole-second timestamps: a colleague's edit in the second of our read

@pytest.mark.parametrize("how", ["descriptor", "jq+mv"])
def test_16_colleague_edit_in_the_second_of_our_read_is_estale(mount, emulator, api, how):
    name = annotated(api, "train")[4]
    m = mount(V)
    p = m.p("train", name + SUFFIX)
    freeze_clock(emulator)
    try:
        api.upload(V, "train", name, doc_bytes(name, ["v1"]))
        upd = api.item(V, "train", name)["updatedAt"]
        assert upd.endswith(".000Z"), "the emulator's default is whole seconds: %s" % upd
        if how == "descriptor":
            f = open(p, "r+b")
            try:
                base = f.read()
                api.upload(V, "train", name, doc_bytes(name, ["colleague"]))
                ours = edited(base, "ours")
                err = save_through(f, ours)
            finally:
                close_errno(f)
            assert err == errno.ESTALE
        else:
            t = m.p("train", ".16.tmp")
            sh("jq '.tags = [\"ours\"]' %s > %s" % (q(p), q(t)))   # reads the file, starts the scratch
            ours = read(t)
            api.upload(V, "train", name, doc_bytes(name, ["colleague"]))
            r = sh("mv %s %s" % (q(t), q(p)), check=False)
            assert r.returncode != 0 and "stale" in r.stderr.lower(), (r.returncode, r.stderr)
            if os.path.exists(t):
                os.unlink(t)
        assert api.item(V, "train", name)["updatedAt"] == upd
    finally:
        clock(emulator, real=True)
    assert api.document(V, "train", name)["tags"] == ["colleague"]
    assert ours in recovered_bytes(m.recovery_dir)
    assert shows(p) == platform_pretty(api, "train", name)
