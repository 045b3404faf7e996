"""unlink = delete_annotations; folders via mkdir/mv/rmdir; odd names end to end."""
import errno
import json
import os
import time
import zlib

from harness import STATUS_XATTR, SUFFIX, errno_of, pretty_tokens, read, recovered_bytes, write, xget

V = "Demo Vector"


def wait_deletes(emulator, n, timeout=6):
    """The delete of an unlink is sent after a grace period of about a second."""
    deadline = time.monotonic() + timeout
    while emulator.deletes() < n and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)


def annotated(api, folder=None):
    docs = api.folder_documents(V, folder)
    return [n for n, raw in docs.items() if json.loads(raw).get("instances")]


def test_rm_deletes_annotations(mount, emulator, api):
    name = annotated(api)[0]
    api.set_status(V, None, [name], "Completed")
    old = api.document(V, None, name)
    m = mount(V)
    p = m.p(name + SUFFIX)
    emulator.reset_stats()
    os.unlink(p)
    # the name is hidden at once; the delete is sent after the grace period
    # (filesystem.md §2 unlink)
    assert name + SUFFIX not in os.listdir(m.path)
    assert errno_of(lambda: os.stat(p)) == errno.ENOENT
    wait_deletes(emulator, 1)
    assert emulator.deletes() == 1
    assert emulator.uploads() == 0
    doc = api.document(V, None, name)
    assert doc["instances"] == [] and doc.get("tags", []) == []
    assert api.status(V, None, name) == "NotStarted"
    assert any(json.loads(r) == old for r in recovered_bytes(m.recovery_dir) if r.strip().startswith(b"{"))
    # the name stays hidden (nobody annotated the item since): a second rm
    # finds nothing and costs nothing
    emulator.reset_stats()
    assert errno_of(lambda: os.unlink(p)) == errno.ENOENT
    time.sleep(2)
    assert emulator.deletes() == 0 and emulator.uploads() == 0


def test_rm_while_open_for_write_no_upload(mount, emulator, api):
    name = annotated(api, "train")[0]
    m = mount(V)
    p = m.p("train", name + SUFFIX)
    f = open(p, "wb")
    f.write(b'{"metadata": {"name": "x"}, "instances": [], "tags": ["never"], "comments": []}\n')
    emulator.reset_stats()
    os.unlink(p)
    f.close()
    wait_deletes(emulator, 1)
    assert emulator.uploads() == 0, emulator.routes()
    assert emulator.deletes() == 1
    assert "never" not in api.document(V, "train", name).get("tags", [])
    assert not [x for x in os.listdir(m.p("train")) if x.startswith(".fuse_hidden")]


def test_mkdir_mv_rmdir_folders(mount, emulator, api):
    m = mount(V)
    os.mkdir(m.p("new folder é%#&+"))
    assert "new folder é%#&+" in [f["name"] for f in api.folders(V)]
    assert os.path.isdir(m.p("new folder é%#&+"))
    os.rename(m.p("new folder é%#&+"), m.p("renamed"))
    names = [f["name"] for f in api.folders(V)]
    assert "renamed" in names and "new folder é%#&+" not in names
    assert sorted(os.listdir(m.p("renamed"))) == []
    os.rmdir(m.p("renamed"))
    assert "renamed" not in [f["name"] for f in api.folders(V)]
    assert not os.path.exists(m.p("renamed"))
    assert errno_of(lambda: os.mkdir(m.p("a?b"))) == errno.EINVAL
    assert errno_of(lambda: os.mkdir(m.p("x" * 81))) == errno.ENAMETOOLONG
    assert errno_of(lambda: os.mkdir(m.p("train"))) == errno.EEXIST


def test_odd_names_end_to_end(mount, emulator, api):
    long230 = ("é" * 50) + "x" * 126 + ".jpg"        # 230 bytes
    assert len(long230.encode()) == 230
    emulator.seed(V, folder="train", items=[long230])
    m = mount(V)
    names = [n for n in api.names(V, "train") if any(c in n for c in " %#?&+") or not n.isascii()]
    assert long230 in names and len(names) >= 7
    for n in names:
        p = m.p("train", n + SUFFIX)
        assert read(p) == pretty_tokens(api.document_bytes(V, "train", n)), n
        d = {"metadata": {"name": n}, "instances": [], "tags": ["odd"], "comments": []}
        write(p, (json.dumps(d, indent=4, ensure_ascii=False) + "\n").encode())
        assert api.document(V, "train", n)["tags"] == ["odd"], n
        os.setxattr(p, STATUS_XATTR, b"Completed")
        assert api.status(V, "train", n) == "Completed", n
        assert xget(p, STATUS_XATTR) == "Completed"


def test_too_long_name_is_escaped(mount, emulator, api):
    name = "n" * 250 + ".jpg"
    emulator.seed(V, folder="val", items=[name])
    m = mount(V)
    shown = [x for x in os.listdir(m.p("val")) if x.startswith("n" * 200)]
    want = "n" * 200 + "\u2025" + "%08x" % zlib.crc32(name.encode())
    assert len(shown) == 1, os.listdir(m.p("val"))
    assert shown[0].startswith(want) or shown[0].lower().startswith(want.lower()), shown
    assert len(shown[0].encode()) <= 255
    p = m.p("val", shown[0])
    assert json.loads(read(p))["metadata"]["name"] == name
    d = {"metadata": {"name": name}, "instances": [], "tags": ["long"], "comments": []}
    write(p, json.dumps(d).encode())
    assert api.document(V, "val", name)["tags"] == ["long"]
    assert name in m.log()
