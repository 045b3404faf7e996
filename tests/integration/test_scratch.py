"""Scratch files: editors' temp names are local, full POSIX, never uploaded."""
import os
import stat

import pytest

from harness import SUFFIX, read, write

V = "Demo Vector"
NAMES = [".x.swp", "4913", "x~", ".x.AbC123", "sedAbC123", "#x#"]


@pytest.mark.parametrize("name", NAMES)
def test_scratch_posix(mount, emulator, api, name):
    names_before = {f: api.names(V, f) for f in (None, "train")}
    m = mount(V)
    emulator.reset_stats()
    for d in (m.path, m.p("train")):
        p = os.path.join(d, name)
        write(p, b"hello world")
        assert read(p) == b"hello world"
        assert name in os.listdir(d)
        assert os.stat(p).st_size == 11
        with open(p, "r+b") as f:
            f.seek(6)
            f.write(b"W")
            f.truncate(8)
        assert read(p) == b"hello Wo"
        os.truncate(p, 3)
        assert read(p) == b"hel"
        with open(p, "ab") as f:
            f.write(b"p!")
        assert read(p) == b"help!"
        os.chmod(p, 0o600)
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
        os.utime(p, (1000000000, 1000000000))
        assert os.stat(p).st_mtime == 1000000000
        q = os.path.join(d, name + ".2~")
        os.rename(p, q)
        assert not os.path.exists(p) and read(q) == b"help!"
        assert name + ".2~" in os.listdir(d) and name not in os.listdir(d)
        os.unlink(q)
        assert not os.path.exists(q)
        assert name + ".2~" not in os.listdir(d)
    routes = emulator.routes()
    assert emulator.writes(routes) == 0, routes
    assert emulator.uploads(routes) == 0
    for f, names in names_before.items():
        assert api.names(V, f) == names


def test_scratch_with_json_content_is_not_uploaded(mount, emulator, api):
    """A scratch file full of a valid document stays local."""
    m = mount(V)
    item = api.names(V)[0]
    data = read(m.p(item + SUFFIX))
    names_before = api.names(V)
    emulator.reset_stats()
    write(m.p(".%s.swp" % item), data)
    write(m.p(item + SUFFIX + "~"), data)
    assert emulator.writes() == 0
    assert api.names(V) == names_before
    assert read(m.p(item + SUFFIX + "~")) == data


def test_scratch_gone_after_remount(mount, emulator, api):
    m = mount(V)
    write(m.p("4913"), b"")
    write(m.p("x~"), b"data")
    m.unmount()
    m2 = mount(V)
    assert "4913" not in os.listdir(m2.path)
    assert "x~" not in os.listdir(m2.path)
    assert "x~" in m.log(), "unmount should list scratch files that held data"

