"""Caching (filesystem.md §5): listings and attributes are reused for
-o cache_timeout, the mount's own changes show at once; and the unmount
report of scratch files that held data (§3)."""
import errno
import json
import os
import time

from harness import STATUS_XATTR, SUFFIX, errno_of, pretty_tokens, read, write, xget, xset

V = "Demo Vector"


def searches(emulator):
    return emulator.count("POST /api/v1/items/search")


def test_listing_cached_and_own_changes_visible_at_once(mount, emulator, api):
    m = mount(V, opts={"cache_timeout": "60"})
    val = m.p("val")
    names = sorted(os.listdir(val))
    name = api.names(V, "val")[0]
    p = m.p("val", name + SUFFIX)
    read(p)
    emulator.reset_stats()
    # within cache_timeout: ls and stat cost no listing
    for _ in range(3):
        assert sorted(os.listdir(val)) == names
        os.stat(p)
    assert searches(emulator) == 0, emulator.routes()

    # our own save: the new size and bytes (the platform's document, as a
    # fresh mount reads it: filesystem.md §2) show at once, without a re-list
    doc = {"metadata": {"name": name}, "instances": [], "tags": ["cached"], "comments": []}
    data = (json.dumps(doc, indent=2) + "\n").encode()
    write(p, data)
    size = os.stat(p).st_size
    shown = read(p)
    assert size == len(shown)
    assert shown == pretty_tokens(api.document_bytes(V, "val", name))
    assert api.document(V, "val", name)["tags"] == ["cached"]

    # our own status change shows at once
    xset(p, STATUS_XATTR, "Completed")
    assert xget(p, STATUS_XATTR) == "Completed"
    assert api.status(V, "val", name) == "Completed"

    # our own mkdir / rmdir show at once
    os.mkdir(m.p("fresh"))
    assert "fresh" in os.listdir(m.path)
    os.rmdir(m.p("fresh"))
    assert "fresh" not in os.listdir(m.path)

    # our own rm: the name is hidden at once; the delete lands after the
    # grace period (about a second)
    os.unlink(p)
    assert errno_of(lambda: os.stat(p)) == errno.ENOENT
    assert name + SUFFIX not in os.listdir(val)
    deadline = time.monotonic() + 6
    while emulator.deletes() == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert emulator.deletes() == 1, emulator.routes()
    assert api.document(V, "val", name)["instances"] == []


def test_others_changes_wait_for_cache_timeout(mount, emulator, api):
    """A colleague's new item is not listed before cache_timeout (the listing
    is cached); with cache_timeout=0 the next ls shows it."""
    cached = mount(V, opts={"cache_timeout": "60"})
    fresh = mount(V)  # the fixture's cache_timeout=0
    before_c = set(os.listdir(cached.p("val")))
    before_f = set(os.listdir(fresh.p("val")))
    emulator.seed(V, folder="val", items=["late.jpg"])
    assert set(os.listdir(cached.p("val"))) == before_c
    assert set(os.listdir(fresh.p("val"))) == before_f | {"late.jpg" + SUFFIX}


def test_unmount_lists_scratch_files_that_held_data(mount, api):
    m = mount(V)
    name = api.names(V, "val")[0]
    kept = m.p("val", ".notes.tmp")
    write(kept, b"unsaved thoughts\n")
    empty = m.p("val", ".empty.tmp")
    write(empty, b"")
    # a scratch file that became an annotation is not reported
    doc = json.loads(read(m.p("val", name + SUFFIX)))
    tmp = m.p("val", ".save.tmp")
    write(tmp, json.dumps(doc).encode())
    os.rename(tmp, m.p("val", name + SUFFIX))
    m.unmount()
    log = m.log()
    warn = [l for l in log.splitlines() if ".notes.tmp" in l and "warning" in l.lower()]
    assert warn, log[-3000:]
    assert not [l for l in log.splitlines() if ".save.tmp" in l and "warning" in l.lower()], log[-3000:]
    assert not [l for l in log.splitlines() if ".empty.tmp" in l and "warning" in l.lower()], log[-3000:]
