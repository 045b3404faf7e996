"""Conflicts: another user's edit is never silently overwritten."""
import errno
import json
import os

from harness import SUFFIX, read, recovered_bytes, run

V = "Demo Vector"


def doc(name, tag):
    return {"metadata": {"name": name}, "instances": [], "tags": [tag], "comments": []}


def ours(name, tag="ours"):
    return (json.dumps(doc(name, tag), indent=4) + "\n").encode()


def test_estale_on_close(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    read(p)
    f = open(p, "r+b")
    api.upload(V, None, name, doc(name, "theirs"))      # another user
    f.seek(0)
    f.truncate()
    data = ours(name)
    f.write(data)
    try:
        f.close()
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.ESTALE
    assert api.document(V, None, name)["tags"] == ["theirs"]
    assert any(data == r for r in recovered_bytes(m.recovery_dir))
    # a new open + write afterwards is a deliberate overwrite
    with open(p, "wb") as f:
        f.write(data)
    assert api.document(V, None, name)["tags"] == ["ours"]


def test_estale_on_rename(mount, emulator, api):
    m = mount(V)
    name = api.names(V, "train")[0]
    p = m.p("train", name + SUFFIX)
    read(p)
    t = m.p("train", ".%s.tmp" % name)
    with open(t, "wb") as f:
        f.write(ours(name))
    api.upload(V, "train", name, doc(name, "theirs"))
    try:
        os.rename(t, p)
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.ESTALE
    assert api.document(V, "train", name)["tags"] == ["theirs"]
    assert any(ours(name) == r for r in recovered_bytes(m.recovery_dir))
    # the same through mv(1): it fails, and never falls back to copy + delete
    r = run(["mv", t, p], check=False)
    assert r.returncode != 0, r
    assert "stale" in r.stderr.lower(), r.stderr
    assert api.document(V, "train", name)["tags"] == ["theirs"]
    assert os.path.exists(t)
    # a new scratch file made after the ESTALE overwrites
    t2 = m.p("train", ".%s.tmp2" % name)
    with open(t2, "wb") as f:
        f.write(ours(name, "ours2"))
    os.rename(t2, p)
    assert api.document(V, "train", name)["tags"] == ["ours2"]


def test_blind_write_is_no_conflict(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[1]
    api.upload(V, None, name, doc(name, "theirs"))
    with open(m.p(name + SUFFIX), "wb") as f:
        f.write(ours(name))
    assert api.document(V, None, name)["tags"] == ["ours"]
