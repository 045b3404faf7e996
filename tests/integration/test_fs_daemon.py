"""safs daemon edge cases the tool matrix does not drive (filesystem.md §2-§4,
docs/fs-choices.md): O_TRUNC without writes, truncate(2) by path, renameat2
flags, annotation -> scratch copies, max_doc, read-only mounts and projects,
utimens, empty unlink, folder-name rules, read-only xattrs, recovery names."""
import ctypes
import errno
import json
import os
import time
import re

import shlex

from harness import SUFFIX, errno_of, parse_ts, pretty_tokens, read, recovered_bytes, sh, write

V = "Demo Vector"
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100

_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(a, b, flags):
    r = _libc.renameat2(AT_FDCWD, a.encode(), AT_FDCWD, b.encode(), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def test_o_trunc_then_close_uploads_nothing(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    before = api.document_bytes(V, None, name)
    emulator.reset_stats()
    with open(m.p(name + SUFFIX), "wb"):
        pass
    assert emulator.writes() == 0
    assert api.document_bytes(V, None, name) == before
    # the file still reads as the platform's document
    assert json.loads(read(m.p(name + SUFFIX)))["metadata"]["name"] == name


def test_truncate_by_path(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    size = os.stat(p).st_size
    emulator.reset_stats()
    assert errno_of(lambda: os.truncate(p, 0)) == errno.EINVAL
    # dropping the final newline leaves the same document: a save that uploads nothing
    os.truncate(p, size - 1)
    assert emulator.uploads() == 0
    # cutting into the JSON is an invalid document: EINVAL, bytes recovered
    assert errno_of(lambda: os.truncate(p, size // 2)) == errno.EINVAL
    assert emulator.uploads() == 0
    assert recovered_bytes(m.recovery_dir)


def test_renameat2_flags(mount, api):
    m = mount(V)
    a, b = api.names(V)[:2]
    pa, pb = m.p(a + SUFFIX), m.p(b + SUFFIX)
    t = m.p(".tmp-noreplace")
    write(t, read(pa))
    assert errno_of(lambda: renameat2(t, pa, RENAME_NOREPLACE)) == errno.EEXIST
    assert errno_of(lambda: renameat2(pa, pb, RENAME_EXCHANGE)) == errno.EINVAL
    assert errno_of(lambda: renameat2(t, pa, RENAME_EXCHANGE)) == errno.EINVAL
    os.unlink(t)


def test_rename_annotation_to_scratch_is_a_copy(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    data = read(p)
    before = api.document_bytes(V, None, name)
    emulator.reset_stats()
    os.rename(p, m.p(name + SUFFIX + "~"))
    assert emulator.writes() == 0
    assert read(m.p(name + SUFFIX + "~")) == data
    assert name + SUFFIX in os.listdir(m.path)
    assert read(p) == data
    assert api.document_bytes(V, None, name) == before


def test_scratch_rename_and_local_xattrs(mount, emulator):
    m = mount(V)
    emulator.reset_stats()
    a, b = m.p("#scratch#"), m.p(".scratch.swp")
    write(a, b"hello")
    os.setxattr(a, "user.mine", b"v1")
    os.rename(a, b)
    assert read(b) == b"hello"
    assert os.getxattr(b, "user.mine") == b"v1"
    assert "user.mine" in os.listxattr(b)
    os.chmod(b, 0o600)
    assert os.stat(b).st_mode & 0o777 == 0o600
    os.unlink(b)
    assert not os.path.exists(b)
    assert emulator.writes() == 0


def test_max_doc_efbig(mount, api):
    m = mount(V, opts={"max_doc": "1024"})
    name = api.names(V)[0]

    def big():
        with open(m.p(name + SUFFIX), "wb") as f:
            f.write(b" " * 4096)
    assert errno_of(big) == errno.EFBIG


def test_read_only_mount_erofs(mount, emulator, api):
    m = mount(V, opts={"ro": True})
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    assert json.loads(read(p))
    assert errno_of(lambda: write(p, b"{}")) == errno.EROFS
    assert errno_of(lambda: os.unlink(p)) == errno.EROFS
    assert emulator.writes() == 0


def test_multimodal_is_read_only(mount, emulator):
    m = mount("Demo Multimodal")
    files = [n for n in os.listdir(m.path) if n.endswith(SUFFIX)]
    assert files
    p = m.p(files[0])
    data = read(p)
    assert json.loads(data)
    assert errno_of(lambda: write(p, data)) == errno.EROFS
    assert "Multimodal" in m.log()
    assert emulator.writes() == 0


def test_utimens_shown_until_version_changes(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    emulator.reset_stats()
    os.utime(p, (1000000000, 1000000000))
    assert os.stat(p).st_mtime == 1000000000
    assert emulator.writes() == 0
    # another user changes the item: the platform's updatedAt shows again.
    # updatedAt has whole seconds (api.md §7): let the clock leave the second
    # of the item's last change, so that the change is visible in it
    upd = parse_ts(api.item(V, None, name)["updatedAt"])
    while time.time() < int(upd) + 1.05:
        time.sleep(0.05)
    api.upload(V, None, name, {"metadata": {"name": name}, "instances": [], "tags": ["x"],
                               "comments": []})
    # a lookup trusts a listing younger than 1 s even with cache_timeout=0
    # (FS_LOOKUP_MIN_TTL, docs/fs-choices.md), as the kernel's default
    # attr_timeout would
    time.sleep(1.1)
    assert os.stat(p).st_mtime != 1000000000


def test_unlink_empty_item_costs_no_delete(mount, emulator, api):
    emulator.seed(V, folder="val", items=["empty.jpg"])
    m = mount(V)
    p = m.p("val", "empty.jpg" + SUFFIX)
    emulator.reset_stats()
    os.unlink(p)
    # the name is hidden at once (filesystem.md §2 unlink); nothing is sent,
    # not even after the grace period
    assert "empty.jpg" + SUFFIX not in os.listdir(m.p("val"))
    time.sleep(3)
    assert emulator.deletes() == 0
    assert emulator.writes() == 0, emulator.routes()


def test_unlink_saves_document_to_recovery(mount, emulator, api):
    m = mount(V)
    name = api.names(V, "train")[0]
    p = m.p("train", name + SUFFIX)
    data = read(p)
    os.unlink(p)
    # the delete (and the recovery copy) come after the grace period
    deadline = time.monotonic() + 6
    while emulator.deletes() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert emulator.deletes() >= 1
    files = os.listdir(m.recovery_dir)
    assert any(re.match(r"^\d{8}T\d{6}Z_deleted_Demo Vector_train_" + re.escape(name + SUFFIX), f)
               for f in files), files
    assert data in recovered_bytes(m.recovery_dir)
    # the platform holds the emptied document; the mount hides the name
    doc = api.document(V, "train", name)
    assert doc["instances"] == [] and doc["metadata"]["status"] == "NotStarted"
    assert errno_of(lambda: os.stat(p)) == errno.ENOENT


def test_folder_name_rules(mount, emulator):
    m = mount(V)
    emulator.reset_stats()
    assert errno_of(lambda: os.mkdir(m.p("a:b"))) == errno.EINVAL
    assert errno_of(lambda: os.mkdir(m.p("q?"))) == errno.EINVAL
    assert errno_of(lambda: os.mkdir(m.p("x" * 81))) == errno.ENAMETOOLONG
    assert emulator.writes() == 0
    t = mount("", opts=None)
    assert errno_of(lambda: os.mkdir(t.p("New Project"))) == errno.EPERM


def test_read_only_xattrs(mount, emulator, api):
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    iid = os.getxattr(p, "user.superannotate.id")
    emulator.reset_stats()
    os.setxattr(p, "user.superannotate.id", iid)
    # setting or removing a read-only one succeeds and changes nothing (§4)
    os.setxattr(p, "user.superannotate.id", b"1")
    os.removexattr(p, "user.superannotate.id")
    assert os.getxattr(p, "user.superannotate.id") == iid
    assert errno_of(lambda: os.setxattr(p, "user.other", b"1")) == errno.ENOTSUP
    assert errno_of(lambda: os.getxattr(p, "user.other")) == errno.ENODATA
    assert os.getxattr(p, "user.superannotate.name").decode() == name
    assert os.listxattr(p) == ["user.superannotate.status"]
    assert "user.safs.stats" not in os.listxattr(m.path)
    assert emulator.writes() == 0


def test_pixel_mask_refused(mount):
    m = mount("Demo Pixel")
    name = [n for n in os.listdir(m.path) if n.endswith("___pixel.json")][0][:-len("___pixel.json")]
    assert errno_of(lambda: write(m.p(name + "___save.png"), b"x")) == errno.EOPNOTSUPP


def test_stats_snapshot_is_json(mount):
    m = mount(V)
    os.listdir(m.path)
    s = json.loads(os.getxattr(m.path, "user.safs.stats"))
    for k in ("requests", "retries", "bytes_down", "bytes_up", "cache_hits", "cache_misses",
              "uploads", "uploads_skipped_unchanged", "uploads_pending", "conflicts"):
        assert k in s
    assert s["requests"]["list"] >= 1


def test_sizes_and_bytes_are_kept_after_ls_l(mount, emulator):
    """ls -l fetches the folder's documents in bulk once; cat and a second
    ls -l then cost no download (the LRU keeps the bytes, sizes stay)."""
    m = mount(V)
    d = m.p("train")
    # the demo was seeded this second: documents fetched within their
    # updatedAt's second are not proven by their key, and with
    # cache_timeout=0 a read fetches them again (filesystem.md §2)
    time.sleep(1.1)
    sh("ls -l %s > /dev/null" % shlex.quote(d))
    emulator.reset_stats()
    names = [n for n in os.listdir(d) if n.endswith(SUFFIX)]
    assert names
    for n in names:
        assert json.loads(read(os.path.join(d, n)))
    sh("ls -l %s > /dev/null" % shlex.quote(d))
    assert emulator.downloads() == 0, emulator.routes()


def test_fstat_of_open_file_is_its_bytes(mount, api):
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    with open(p, "r+b") as f:
        data = f.read()
        assert os.fstat(f.fileno()).st_size == len(data)
        f.seek(0)
        f.write(data.replace(b"{", b"{ ", 1))
        f.flush()
        assert os.fstat(f.fileno()).st_size == len(data) + 1


def test_remote_change_is_seen_by_the_next_read(mount, api):
    """The kernel's page cache is kept only while the version is unchanged."""
    m = mount(V)
    name = api.names(V)[0]
    p = m.p(name + SUFFIX)
    read(p)
    read(p)
    api.upload(V, None, name, {"metadata": {"name": name}, "instances": [],
                               "tags": ["remote"], "comments": []})
    data = read(p)
    assert json.loads(data)["tags"] == ["remote"]
    assert os.stat(p).st_size == len(data)


def test_write_then_read_back_exact_bytes_and_mtime(mount, emulator, api):
    """After an upload the file reads back as the platform's document, exactly
    as a fresh mount reads it (filesystem.md §2), with the mtime cp -p set,
    and a rewrite of the same bytes uploads nothing."""
    m = mount(V)
    name = api.names(V, "val")[0]
    p = m.p("val", name + SUFFIX)
    data = json.dumps({"metadata": {"name": name}, "instances": [], "tags": ["t", 1.50],
                       "comments": []}, indent=2).encode()
    write(p, data)
    os.utime(p, (1500000000, 1500000000))
    shown = pretty_tokens(api.document_bytes(V, "val", name))
    assert read(p) == shown and os.stat(p).st_size == len(shown)
    assert os.stat(p).st_mtime == 1500000000
    emulator.reset_stats()
    write(p, data)
    assert emulator.uploads() == 0
    assert read(p) == shown


def points_doc(name, n, dy):
    """A Vector document of @n point instances, 4-space indented (~150 bytes
    an instance), for the big-document tests."""
    inst = [{"type": "point", "x": i, "y": i + dy, "classId": 1, "className": "c",
             "probability": 100, "creationType": "Manual", "attributes": []}
            for i in range(n)]
    return (json.dumps({"metadata": {"name": name}, "instances": inst, "tags": [],
                        "comments": []}, indent=4) + "\n").encode()


def test_large_write_spills_and_uploads_whole(mount, emulator, api):
    """A write buffer beyond a few MiB spills to an unlinked temp file under
    the cache directory; the document still uploads whole and reads back."""
    m = mount(V)
    name = api.names(V, "train")[0]
    p = m.p("train", name + SUFFIX)
    data = points_doc(name, 60000, 0.25)
    assert len(data) > 8 << 20
    with open(p, "wb") as f:
        for off in range(0, len(data), 1 << 20):
            f.write(data[off:off + (1 << 20)])
    assert emulator.uploads() == 1
    assert len(api.document(V, "train", name)["instances"]) == 60000
    assert read(p) == pretty_tokens(api.document_bytes(V, "train", name))


def test_slash_and_long_utf8_names(mount, emulator, api):
    """§1 escaping: `/` shows as U+FF0F, a literal U+FF0F as U+201B U+FF0F; a
    too-long name is cut at a UTF-8 boundary before 200 bytes + U+2025 + CRC."""
    import zlib
    slash, fw, longn = "a/b.jpg", "x\uff0fy.jpg", "a" + "\u00e9" * 150
    emulator.seed(V, folder="val", items=[slash, fw, longn])
    m = mount(V)
    shown = os.listdir(m.p("val"))
    assert "a\uff0fb.jpg" + SUFFIX in shown, shown
    assert "x\u201b\uff0fy.jpg" + SUFFIX in shown, shown
    want = "a" + "\u00e9" * 99 + "\u2025" + "%08x" % zlib.crc32(longn.encode()) + SUFFIX
    assert want in shown, [s for s in shown if s.startswith("a\u00e9")]
    for name, fname in ((slash, "a\uff0fb.jpg"), (fw, "x\u201b\uff0fy.jpg")):
        p = m.p("val", fname + SUFFIX)
        assert json.loads(read(p))["metadata"]["name"] == name
        d = {"metadata": {"name": name}, "instances": [], "tags": ["esc"], "comments": []}
        write(p, json.dumps(d).encode())
        assert api.document(V, "val", name)["tags"] == ["esc"]
    assert json.loads(read(m.p("val", want)))["metadata"]["name"] == longn
    # a folder name that would hold a `/` is refused; 80 two-byte characters are fine
    assert errno_of(lambda: os.mkdir(m.p("a\uff0fb"))) == errno.EINVAL
    os.mkdir(m.p("\u00e9" * 80))
    assert "\u00e9" * 80 in os.listdir(m.path)


def test_ls_l_with_cache_timeout_0_lists_once(mount, emulator):
    """cache_timeout=0 and kernel TTLs 0: `ls -l` is a readdir plus one
    getattr per file. A lookup trusts a listing younger than 1 s, so the
    command costs one listing, not one per file (it once cost 2,000)."""
    names = ["n%04d.jpg" % i for i in range(2000)]
    emulator.seed("Many", folder="f", items=names)
    m = mount("Many")  # cache_timeout=0, attr/entry timeouts 0 (fixture defaults)
    emulator.reset_stats()
    t0 = time.monotonic()
    out = sh("ls -l %s | wc -l" % shlex.quote(m.p("f")), timeout=120).stdout
    took = time.monotonic() - t0
    assert int(out) == 2001
    searches = emulator.count("POST /api/v1/items/search")
    # one listing, and one more per second the command runs (a loaded
    # machine under ASan can take several): never one per file
    assert 1 <= searches <= 2 + int(took), (took, emulator.routes())
    # the next read still sees the platform: open asks for the item's version
    emulator.reset_stats()
    read(m.p("f", names[0] + SUFFIX))
    assert emulator.count(lambda k: k.startswith("GET /api/v1/items/")) == 1, emulator.routes()


def test_document_over_15_mib_takes_the_large_path(mount, emulator, api):
    """api.md §10.5: a document over 15 MiB is uploaded through multipart
    start/part/finish/sync, never the small multipart request; nothing is
    truncated; it reads back as the platform's document (filesystem.md §2)."""
    m = mount(V)
    name = api.names(V, "val")[0]
    p = m.p("val", name + SUFFIX)
    data = points_doc(name, 110000, 0.5)
    assert len(data) > 15 * 1024 * 1024
    emulator.reset_stats()
    with open(p, "wb") as f:
        f.write(data)
    routes = emulator.routes()
    starts = emulator.count(lambda k: k.endswith("/annotations/upload/multipart/start"), routes)
    parts = emulator.count(lambda k: k.endswith("/annotations/upload/multipart/part"), routes)
    assert starts == 1 and parts >= 3, routes
    assert emulator.count("POST /api/v4/items/annotations/upload", routes) == 0, routes
    assert len(api.document(V, "val", name)["instances"]) == 110000
    assert read(p) == pretty_tokens(api.document_bytes(V, "val", name))
