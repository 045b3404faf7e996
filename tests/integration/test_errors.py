"""Errors a program sees: errno, platform untouched, bytes recovered."""
import errno
import json
import os

import pytest

from harness import SUFFIX, STATUS_XATTR, errno_of, pretty_tokens, read, recovered_bytes, xset

V = "Demo Vector"


def close_errno(path, data, mode="wb"):
    f = open(path, mode)
    try:
        f.write(data)
    except OSError as e:
        try:
            f.close()
        except OSError:
            pass
        return ("write", e.errno)
    try:
        f.close()
    except OSError as e:
        return ("close", e.errno)
    return ("ok", 0)


def assert_refused(m, api, folder, name, bad, err):
    before = api.document_bytes(V, folder, name)
    p = m.p(folder, name + SUFFIX) if folder else m.p(name + SUFFIX)
    read(p)
    assert close_errno(p, bad) == ("close", err)
    assert api.document_bytes(V, folder, name) == before
    assert any(bad == r for r in recovered_bytes(m.recovery_dir)), os.listdir(m.recovery_dir)
    assert read(p) == pretty_tokens(before)


def test_invalid_json_einval(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    emulator.reset_stats()
    assert_refused(m, api, None, name, b'{"metadata": {"name": "x"}, "instances": [', errno.EINVAL)
    assert emulator.uploads() == 0
    assert name in m.log()


def test_nan_einval(mount, emulator, api):
    m = mount(V)
    name = api.names(V, "train")[0]
    emulator.reset_stats()
    assert_refused(m, api, "train", name,
                   b'{"metadata": {"name": "x"}, "instances": [{"type": "point", "x": NaN, "y": 1}],'
                   b' "tags": [], "comments": []}', errno.EINVAL)
    assert emulator.uploads() == 0


def test_create_missing_item_enoent(mount, emulator):
    m = mount(V)
    emulator.reset_stats()
    e = errno_of(lambda: open(m.p("no-such-item.jpg" + SUFFIX), "wb").close())
    assert e == errno.ENOENT
    assert "no-such-item.jpg" in m.log()
    assert emulator.uploads() == 0


def test_bad_status_value_einval(mount, api, emulator):
    m = mount(V)
    name = api.names(V)[0]
    before = api.status(V, None, name)
    emulator.reset_stats()
    assert errno_of(lambda: xset(m.p(name + SUFFIX), STATUS_XATTR, "Done-ish")) == errno.EINVAL
    assert errno_of(lambda: xset(m.p(name + SUFFIX), STATUS_XATTR, "completed")) == errno.EINVAL
    assert emulator.status_changes() == 0
    assert api.status(V, None, name) == before


def test_rename_annotation_to_annotation_eperm(mount, api):
    m = mount(V)
    a, b = api.names(V)[:2]
    before = api.document_bytes(V, None, b)
    assert errno_of(lambda: os.rename(m.p(a + SUFFIX), m.p(b + SUFFIX))) == errno.EPERM
    assert errno_of(lambda: os.rename(m.p(a + SUFFIX), m.p("train", b + SUFFIX))) == errno.EPERM
    assert api.document_bytes(V, None, b) == before
    assert a + SUFFIX in os.listdir(m.path)


def test_rename_out_of_project_eperm(mount, api):
    m = mount(source=None)
    a = api.names(V)[0]
    px = api.names("Demo Pixel")[0]
    e = errno_of(lambda: os.rename(m.p(V, a + SUFFIX), m.p("Demo Pixel", px + "___pixel.json")))
    assert e == errno.EPERM
    e = errno_of(lambda: os.rename(m.p(V, a + SUFFIX), m.p("Demo Pixel", "x~")))
    assert e == errno.EPERM  # never EXDEV: mv would copy and delete
    e = errno_of(lambda: os.rename(m.p(V, "train"), m.p("Demo Pixel", "train")))
    assert e == errno.EPERM


def test_mkdir_deeper_eperm(mount):
    m = mount(V)
    assert errno_of(lambda: os.mkdir(m.p("train", "sub"))) == errno.EPERM


def test_rmdir_nonempty_enotempty(mount, api, emulator):
    m = mount(V)
    emulator.reset_stats()
    assert errno_of(lambda: os.rmdir(m.p("train"))) == errno.ENOTEMPTY
    assert "train" in [f["name"] for f in api.folders(V)]
    assert emulator.writes() == 0


@pytest.mark.parametrize("kind", ["503", "drop"])
def test_dead_server_eio(mount, emulator, api, kind):
    m = mount(V, opts={"timeout": "0.05"})
    name = api.names(V)[0]
    other = api.names(V)[1]
    before = api.document_bytes(V, None, name)
    f = open(m.p(name + SUFFIX), "wb")       # opened while the server is alive
    fault = {"path": "/api/", "count": -1}
    fault.update({"status": 503} if kind == "503" else {"drop": True})
    emulator.faults([dict(fault, path=pre) for pre in
                     ("/api/", "/folder", "/image", "/annotations", "/user", "/classes", "/templates")])
    data = b'{"metadata": {"name": "x"}, "instances": [], "tags": ["dead"], "comments": []}\n'
    f.write(data)
    try:
        f.close()
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.EIO
    assert any(data == r for r in recovered_bytes(m.recovery_dir))
    e = errno_of(lambda: read(m.p(other + SUFFIX)))
    assert e == errno.EIO
    emulator.clear_faults()
    assert api.document_bytes(V, None, name) == before


def test_429_retry_after_then_success(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    read(m.p(name + SUFFIX))
    emulator.faults({"method": "POST", "path": "/api/v4/items/annotations/upload", "status": 429,
                     "retry_after": 1, "count": 1})
    doc = {"metadata": {"name": name}, "instances": [], "tags": ["after-429"], "comments": []}
    data = (json.dumps(doc, indent=4) + "\n").encode()
    emulator.reset_stats()
    with open(m.p(name + SUFFIX), "wb") as f:
        f.write(data)
    assert emulator.uploads() == 2  # the 429 and the retry
    assert api.document(V, None, name)["tags"] == ["after-429"]
    assert read(m.p(name + SUFFIX)) == pretty_tokens(api.document_bytes(V, None, name))
