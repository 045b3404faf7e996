"""user.superannotate.status and friends, on files and directories."""
import errno
import json
import os

from harness import ID_XATTR, STATUS_XATTR, SUFFIX, errno_of, read, run, write, xget

V = "Demo Vector"


def test_setfattr_status_on_file(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    emulator.reset_stats()
    run(["setfattr", "-n", STATUS_XATTR, "-v", "Completed", m.p(name + SUFFIX)])
    assert api.status(V, None, name) == "Completed"
    assert emulator.status_changes() == 1
    assert emulator.uploads() == 0
    assert xget(m.p(name + SUFFIX), STATUS_XATTR) == "Completed"
    run(["setfattr", "-n", STATUS_XATTR, "-v", "QualityCheck", m.p(name + SUFFIX)])
    assert api.status(V, None, name) == "QualityCheck"


def test_setfattr_status_on_folder(mount, emulator, api):
    m = mount(V)
    names = api.names(V, "val")
    root_before = {n: api.status(V, None, n) for n in api.names(V)}
    run(["setfattr", "-n", STATUS_XATTR, "-v", "Completed", m.p("val")])
    for n in names:
        assert api.status(V, "val", n) == "Completed", n
    # only the items directly in it
    assert {n: api.status(V, None, n) for n in api.names(V)} == root_before
    assert emulator.status_changes() >= 1


def test_setfattr_status_on_project_dir(mount, emulator, api):
    m = mount(source=None)
    train_before = {n: api.status(V, "train", n) for n in api.names(V, "train")}
    run(["setfattr", "-n", STATUS_XATTR, "-v", "Skipped", m.p(V)])
    for n in api.names(V):
        assert api.status(V, None, n) == "Skipped", n
    assert {n: api.status(V, "train", n) for n in api.names(V, "train")} == train_before


def test_getfattr_d_lists_only_status(mount, api):
    # filesystem.md §4 (issue 8): an annotation file lists only the status;
    # the read-only attributes are read by name
    m = mount(V)
    name = api.names(V)[0]
    it = api.item(V, None, name)
    r = run(["getfattr", "-d", "--absolute-names", m.p(name + SUFFIX)])
    assert '%s="%s"' % (STATUS_XATTR, api.status(V, None, name)) in r.stdout, r.stdout
    assert ID_XATTR not in r.stdout, r.stdout
    assert "user.safs" not in r.stdout
    assert xget(m.p(name + SUFFIX), ID_XATTR) == str(it["id"])
    # read-only attributes: setting any value succeeds and changes nothing
    os.setxattr(m.p(name + SUFFIX), ID_XATTR, str(it["id"]).encode())
    os.setxattr(m.p(name + SUFFIX), ID_XATTR, b"999999")
    assert xget(m.p(name + SUFFIX), ID_XATTR) == str(it["id"])
    assert errno_of(lambda: os.getxattr(m.p(name + SUFFIX), "user.nope")) == errno.ENODATA
    assert errno_of(lambda: os.setxattr(m.p(name + SUFFIX), "user.nope", b"1")) == errno.ENOTSUP


def test_status_on_scratch_applies_after_rename(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    data = (json.dumps({"metadata": {"name": name}, "instances": [], "tags": ["via-scratch"],
                        "comments": []}, indent=4) + "\n").encode()
    t = m.p(".%s.XyZ123" % name)
    write(t, data)
    os.setxattr(t, STATUS_XATTR, b"Completed")
    emulator.reset_stats()
    os.rename(t, m.p(name + SUFFIX))
    assert api.document(V, None, name)["tags"] == ["via-scratch"]
    assert api.status(V, None, name) == "Completed"
    assert emulator.uploads() == 1


def test_rsync_aX_and_cp_a_keep_statuses(mount, emulator, api, tmp_path):
    m = mount(V)
    out = str(tmp_path / "out")
    run(["rsync", "-aX", m.p("val") + "/", out + "/"], timeout=120)
    a, b = api.names(V, "val")[:2]
    for n, st in ((a, "Completed"), (b, "Returned")):
        p = os.path.join(out, n + SUFFIX)
        d = json.loads(read(p))
        d["tags"] = ["status-" + st]
        write(p, (json.dumps(d, indent=4) + "\n").encode())
        os.setxattr(p, STATUS_XATTR, st.encode())
    emulator.reset_stats()
    run(["rsync", "-aX", out + "/" + a + SUFFIX, m.p("val") + "/"], timeout=120)
    run(["cp", "-a", os.path.join(out, b + SUFFIX), m.p("val") + "/"], timeout=120)
    assert api.document(V, "val", a)["tags"] == ["status-Completed"]
    assert api.status(V, "val", a) == "Completed"
    assert api.document(V, "val", b)["tags"] == ["status-Returned"]
    assert api.status(V, "val", b) == "Returned"
    assert emulator.uploads() == 2


def test_security_and_system_cost_nothing(mount, emulator, api):
    m = mount(V, opts={"cache_timeout": "60"})
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    os.stat(p)
    os.listxattr(p)
    emulator.reset_stats()
    for attr in ("security.selinux", "security.capability", "system.posix_acl_access",
                 "system.posix_acl_default"):
        e = errno_of(lambda: os.getxattr(p, attr))
        assert e in (errno.ENODATA, errno.ENOTSUP), (attr, e)
    routes = emulator.routes()
    assert sum(routes.values()) == 0, routes


def test_stats_xattr_on_root(mount, api):
    m = mount(V)
    read(m.p(api.names(V)[0] + SUFFIX))
    r = run(["getfattr", "-n", "user.safs.stats", "--only-values", "--absolute-names", m.path])
    stats = json.loads(r.stdout)
    assert isinstance(stats, dict) and stats
    r = run(["getfattr", "-d", "--absolute-names", m.path])
    assert "user.safs" not in r.stdout
    assert "user.safs.stats" not in [x for x in os.listxattr(m.path)]
