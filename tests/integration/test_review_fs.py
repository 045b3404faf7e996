"""Defects found in a review of fs/ (each test failed before its fix)."""
import errno
import json
import os
import threading
import time

from harness import SUFFIX, errno_of, recovered_bytes

V = "Demo Vector"


def test_scratch_user_xattr_kept_byte_for_byte(mount):
    # rsync -X / cp -a keep user.* xattrs of their temp (scratch) files: a
    # value is binary data, neither cut at 1023 bytes nor stripped of a
    # trailing newline (only the status name is)
    m = mount(V)
    p = m.p("tmp-xattr.bin")
    with open(p, "wb") as f:
        f.write(b"x")
    big = bytes(range(256)) * 16  # 4096 bytes
    os.setxattr(p, "user.big", big)
    assert os.getxattr(p, "user.big") == big
    nl = b"line one\nline two\n"
    os.setxattr(p, "user.nl", nl)
    assert os.getxattr(p, "user.nl") == nl
    os.unlink(p)


def test_oversized_scratch_rename_is_efbig_without_copying_it(mount, emulator, api):
    # A scratch file has no size limit (it is local); renaming one over
    # max_doc onto an annotation must fail with EFBIG (the contract's errno
    # for "over max_doc") before the daemon copies it into memory: a 64 GiB
    # sparse scratch was malloc'd whole (ENOMEM, or the daemon filling RAM
    # for sizes that fit). The scratch keeps its bytes; nothing is uploaded.
    m = mount(V)
    name = api.names(V)[0]
    p = m.p("huge.tmp")
    with open(p, "wb") as f:
        f.write(b"{}")
    os.truncate(p, 64 << 30)
    emulator.reset_stats()
    assert errno_of(lambda: os.rename(p, m.p(name + SUFFIX))) == errno.EFBIG
    assert os.stat(p).st_size == 64 << 30
    assert emulator.uploads() == 0
    with open(m.p(name + SUFFIX), "rb") as f:
        assert f.read(1) == b"{"
    os.unlink(p)


def test_failed_unlink_does_not_discard_open_writes(mount, emulator, api):
    # unlink marked the item "deleted while open" BEFORE delete_annotations
    # was sent; when that call failed (EIO) the item kept its annotations,
    # but a handle opened before it then dropped its writes at close: close
    # returned 0, nothing was uploaded, nothing went to the recovery folder.
    # Since issue 8 the delete is sent after a grace period (filesystem.md
    # §2 unlink): unlink returns 0, the failed delete is logged and the name
    # shows again. The handle belongs to the removed file (§2.1: never
    # uploaded), but its writes must not be dropped: they are in the
    # recovery folder, and the platform keeps its annotations.
    docs = api.folder_documents(V, None)
    name = [n for n, raw in docs.items() if json.loads(raw).get("instances")][0]
    m = mount(V, opts={"timeout": "0.05"})
    p = m.p(name + SUFFIX)
    f = open(p, "r+b")
    try:
        f.read()
        emulator.faults({"method": "POST", "path": "/annotations/remove", "status": 503,
                         "count": -1})
        os.unlink(p)
        deadline = time.monotonic() + 10
        while not os.path.exists(p) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.path.exists(p), "a delete that fails shows the name again"
        assert emulator.deletes() >= 1, emulator.routes()
        emulator.clear_faults()
        assert json.loads(api.document_bytes(V, None, name)).get("instances")
        doc = {"metadata": {"name": name}, "instances": [], "tags": ["kept"], "comments": []}
        data = (json.dumps(doc, indent=4) + "\n").encode()
        f.seek(0)
        f.truncate()
        f.write(data)
        emulator.reset_stats()
        f.close()
    finally:
        if not f.closed:
            try:
                f.close()  # an open descriptor would keep the mount busy
            except OSError:
                pass
    assert emulator.uploads() == 0, emulator.routes()
    assert any(data == r for r in recovered_bytes(m.recovery_dir))
    assert json.loads(api.document_bytes(V, None, name)).get("instances")
    assert "removed while open" in m.log()


def test_long_item_name_xattr_is_whole(mount, emulator):
    # user.superannotate.name is how a shortened file name (filesystem.md
    # §1) tells its item's name: it was formatted into a 1024-byte buffer
    # and silently cut for longer names
    name = "l" * 1500 + ".jpg"
    emulator.seed(V, folder="val", items=[name])
    m = mount(V)
    shown = [x for x in os.listdir(m.p("val")) if x.startswith("l" * 200)]
    assert len(shown) == 1
    got = os.getxattr(m.p("val", shown[0]), "user.superannotate.name")
    assert got == name.encode()


def test_multimodal_rename_to_scratch_is_erofs(mount, emulator):
    # project-types.md: in a Multimodal project every change, a scratch file
    # included, is EROFS; mv <annotation> <new name> made a scratch copy
    m = mount("Demo Multimodal")
    files = [n for n in os.listdir(m.path) if n.endswith(SUFFIX)]
    assert files
    assert errno_of(lambda: os.rename(m.p(files[0]), m.p("copy.tmp"))) == errno.EROFS
    assert "copy.tmp" not in os.listdir(m.path)
    assert files[0] in os.listdir(m.path)
    assert emulator.writes() == 0


def test_stress_folder_renamed_on_platform_while_recovering(mount, api):
    # fs_recover read the folder's (and project's) name without st->mu while
    # a re-list that saw the folder renamed on the platform freed it: a
    # heap-use-after-free in recovery.c's add_part (fails under the ASan
    # build within seconds; the conftest turns a sanitizer report into a
    # failure)
    f0 = api.folder(V, "val")
    pid = api.project(V)["id"]
    name = api.names(V, "val")[0]
    m = mount(V, opts={"cache_timeout": "0"})
    fd = os.open(m.p("val", name + SUFFIX), os.O_RDWR)
    stop = time.time() + 6
    renames = [0]

    def renamer():
        while time.time() < stop:
            renames[0] += 1
            new = "val%d" % (renames[0] % 2) + "x" * 40
            api.call("PUT", "folder/%d" % f0["id"], {"project_id": pid},
                     {"id": f0["id"], "name": new, "project_id": pid})
            os.listdir(m.path)  # the re-list replaces the folder's name

    t = threading.Thread(target=renamer)
    t.start()
    saves = 0
    try:
        while time.time() < stop:
            os.ftruncate(fd, 0)
            os.pwrite(fd, b"x", 0)
            # invalid JSON: refused (EINVAL) and saved to the recovery folder
            assert errno_of(lambda: os.fsync(fd)) == errno.EINVAL
            saves += 1
    finally:
        t.join()
        # the refused save's error stays until close (filesystem.md §2)
        assert errno_of(lambda: os.close(fd)) == errno.EINVAL
    assert saves > 10 and renames[0] > 10
    assert len(os.listdir(m.recovery_dir)) == saves
