"""The on-disk document cache (issue 11; docs/fs-choices.md "Document cache"):
settled documents by (item, version) under -o cache_dir=, shared by the
mounts of a team, bounded by -o cache_max=, checked by checksum."""
import json
import os
import shutil
import threading
import time

from harness import SUFFIX, Emulator, read, run, sh

V = "Demo Vector"


def clock(emulator, **body):
    return emulator.ctl("POST", "clock", body)


def settle(emulator):
    """updatedAt has whole seconds: move the emulator's clock past the second
    of everything seeded, so what a mount downloads now is settled."""
    clock(emulator, advance_ms=1500)


def dc_dir(base):
    """The team's directory under a cache_dir (one team key per test)."""
    subs = [d for d in os.listdir(base) if "-team" in d]
    assert len(subs) == 1, subs
    return os.path.join(base, subs[0])


def entries(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".e"))


def entries_bytes(d):
    return sum(os.path.getsize(os.path.join(d, f)) for f in entries(d))


def stats(m):
    return json.loads(os.getxattr(m.path, "user.safs.stats"))["disk_cache"]


def written(m, timeout=30):
    """The counters once the writer thread has written what batches queued
    (user.safs.stats is a snapshot of up to a second)."""
    deadline = time.monotonic() + timeout
    while True:
        s = stats(m)
        if s["queued"] == 0 or time.monotonic() > deadline:
            time.sleep(1.1)
            return stats(m)
        time.sleep(0.2)


def tree(root):
    out = {}
    for dp, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dp, f)
            out[os.path.relpath(p, root)] = read(p)
    return out


def cp_tree(m, src, dst):
    sh("cp -r %s %s" % (q(m.p(*src) if isinstance(src, tuple) else m.p(src)), q(dst)), timeout=300)
    return tree(dst)


def q(s):
    import shlex
    return shlex.quote(s)


def streams(emulator):
    return emulator.downloads()


def test_warm_remount_downloads_nothing(mount, emulator, tmp_path):
    settle(emulator)
    cache = str(tmp_path / "dc")
    m = mount(V, opts={"cache_dir": cache})
    first = cp_tree(m, "", str(tmp_path / "out1"))
    assert first
    assert written(m)["stored"] == len([k for k in first if k.endswith(SUFFIX)])
    m.unmount()
    d = dc_dir(cache)
    assert len(entries(d)) == len([k for k in first if k.endswith(SUFFIX)])

    emulator.reset_stats()
    m2 = mount(V, opts={"cache_dir": cache})
    second = cp_tree(m2, "", str(tmp_path / "out2"))
    assert second == first
    assert streams(emulator) == 0, emulator.routes()
    s = stats(m2)
    assert s["hits"] == len(entries(d)) and s["misses"] == 0 and s["corrupt"] == 0, s


def test_item_changed_while_unmounted_is_downloaded_again(mount, emulator, api, tmp_path):
    settle(emulator)
    cache = str(tmp_path / "dc")
    m = mount(V, opts={"cache_dir": cache})
    first = cp_tree(m, "val", str(tmp_path / "out1"))
    m.unmount()

    name = api.names(V, "val")[0]
    doc = api.document(V, "val", name)
    doc["tags"] = ["changed-while-unmounted"]
    clock(emulator, advance_ms=1000)  # a later second than the cached version
    api.upload(V, "val", name, doc)
    settle(emulator)
    emulator.reset_stats()
    m2 = mount(V, opts={"cache_dir": cache})
    second = cp_tree(m2, "val", str(tmp_path / "out2"))
    f = name + SUFFIX
    assert json.loads(second[f])["tags"] == ["changed-while-unmounted"]
    assert {k: v for k, v in second.items() if k != f} == {k: v for k, v in first.items() if k != f}
    s = stats(m2)
    assert s["misses"] == 1 and s["hits"] == len(first) - 1, s
    assert streams(emulator) >= 1
    m2.unmount()
    # the new version replaced the entry: a third mount downloads nothing
    emulator.reset_stats()
    m3 = mount(V, opts={"cache_dir": cache})
    assert cp_tree(m3, "val", str(tmp_path / "out3")) == second
    assert streams(emulator) == 0, emulator.routes()


def test_document_fetched_within_its_second_is_not_trusted(mount, emulator, api, tmp_path):
    """updatedAt has whole seconds: a document downloaded within its own
    second is not proven by its key, so it is not stored; the next mount
    downloads it again."""
    cache = str(tmp_path / "dc")
    name = api.names(V, "val")[0]
    doc = api.document(V, "val", name)
    doc["tags"] = ["same-second"]
    now = emulator.ctl("GET", "clock")["now_ms"]
    clock(emulator, freeze_ms=now - now % 1000 + 1300)
    api.upload(V, "val", name, doc)  # updatedAt in the frozen second
    f = name + SUFFIX
    m = mount(V, opts={"cache_dir": cache})
    assert json.loads(read(m.p("val", f)))["tags"] == ["same-second"]
    m.unmount()
    entry = os.path.join(dc_dir(cache), "%d.e" % api.item(V, "val", name)["id"])
    assert not os.path.exists(entry)

    emulator.reset_stats()
    m2 = mount(V, opts={"cache_dir": cache})
    assert json.loads(read(m2.p("val", f)))["tags"] == ["same-second"]
    assert streams(emulator) >= 1, emulator.routes()
    # that item only (its stat's batch and its open); the folder's others
    # come from the disk
    s = stats(m2)
    assert s["hits"] == len(api.names(V, "val")) - 1 and 1 <= s["misses"] <= 2, s
    m2.unmount()
    assert not os.path.exists(entry)
    # a second later the download is settled and stored
    clock(emulator, advance_ms=1000)
    emulator.reset_stats()
    m3 = mount(V, opts={"cache_dir": cache})
    assert json.loads(read(m3.p("val", f)))["tags"] == ["same-second"]
    assert written(m3)["stored"] == 1
    m3.unmount()
    emulator.reset_stats()
    m4 = mount(V, opts={"cache_dir": cache})
    assert json.loads(read(m4.p("val", f)))["tags"] == ["same-second"]
    assert streams(emulator) == 0, emulator.routes()


def test_corrupt_and_partial_entries_are_refetched(mount, emulator, tmp_path):
    settle(emulator)
    cache = str(tmp_path / "dc")
    m = mount(V, opts={"cache_dir": cache})
    first = cp_tree(m, "val", str(tmp_path / "out1"))
    m.unmount()
    d = dc_dir(cache)
    es = entries(d)
    assert len(es) >= 3
    flipped, cut, header = (os.path.join(d, e) for e in es[:3])
    with open(flipped, "r+b") as fh:  # one byte of the body
        fh.seek(64 + 20)
        b = fh.read(1)
        fh.seek(64 + 20)
        fh.write(bytes([b[0] ^ 0x01]))
    with open(cut, "r+b") as fh:  # a partial write
        fh.truncate(os.path.getsize(cut) // 2)
    with open(header, "r+b") as fh:  # the header's version field
        fh.seek(17)
        fh.write(b"\xff")

    emulator.reset_stats()
    m2 = mount(V, opts={"cache_dir": cache})
    second = cp_tree(m2, "val", str(tmp_path / "out2"))
    assert second == first
    s = stats(m2)
    assert s["corrupt"] == 3 and s["hits"] == len(first) - 3, s
    assert "document cache: entry" in m2.log()
    m2.unmount()
    # stored again, whole: the next mount reads them from the disk
    emulator.reset_stats()
    m3 = mount(V, opts={"cache_dir": cache})
    assert cp_tree(m3, "val", str(tmp_path / "out3")) == first
    assert streams(emulator) == 0 and stats(m3)["corrupt"] == 0


def test_cache_max_is_respected_and_only_entries_are_evicted(mount, tmp_path):
    em = Emulator(str(tmp_path / "emu"), ["--seed-items", "Big/f=300"], name="big")
    try:
        settle(em)
        cache = str(tmp_path / "dc")
        # files that live near the cache and must never be evicted: a
        # recovery folder inside the cache base, a journal-like file and a
        # stranger in the team's directory, all older than every entry
        rec = os.path.join(cache, "recovery")
        os.makedirs(rec)
        m0 = mount("Big", opts={"cache_dir": cache, "cache_max": "200K"}, emu=em)
        m0.unmount()
        d = dc_dir(cache)
        planted = [os.path.join(rec, "Big___f___x.json"), os.path.join(d, "lock"),
                   os.path.join(d, "notes.txt"), os.path.join(d, "0001.rec")]
        for p in planted:
            with open(p, "wb") as fh:
                fh.write(b"x" * 50000)
            os.utime(p, (1, 1))
        m = mount("Big", opts={"cache_dir": cache, "cache_max": "200K",
                               "recovery_dir": rec}, emu=em)
        out = cp_tree(m, "f", str(tmp_path / "out"))
        assert len(out) == 300
        total = sum(len(v) for v in out.values())
        assert total > 3 * 200 * 1024  # the folder is well over the bound
        s = written(m)
        assert entries_bytes(d) <= 200 * 1024
        assert s["evicted"] > 0 and s["stored"] == 300, s
        for p in planted:
            assert os.path.getsize(p) == 50000, p
        # what is left is whole and served: a remount downloads only the rest
        left = len(entries(d))
        assert left > 0
        m.unmount()
        em.reset_stats()
        m2 = mount("Big", opts={"cache_dir": cache, "cache_max": "200K"}, emu=em)
        assert cp_tree(m2, "f", str(tmp_path / "out2")) == out
        assert stats(m2)["hits"] >= left - 1
    finally:
        em.stop()


def test_team_and_project_mounts_share_one_cache(mount, emulator, api, tmp_path):
    settle(emulator)
    cache = str(tmp_path / "dc")
    team = mount(None, opts={"cache_dir": cache})
    proj = mount(V, opts={"cache_dir": cache})
    res = {}

    def go(tag, m, src):
        res[tag] = cp_tree(m, src, str(tmp_path / tag))

    ts = [threading.Thread(target=go, args=("team", team, V)),
          threading.Thread(target=go, args=("proj", proj, ""))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(300)
    assert res["team"] == res["proj"]
    for rel, data in res["proj"].items():
        folder, fname = os.path.split(rel)
        assert json.loads(data) == api.document(V, folder or None, fname[:-len(SUFFIX)]), rel
    team.unmount()
    proj.unmount()
    # a folder mount of the same team: every document from the shared cache
    emulator.reset_stats()
    fold = mount(V + "/val", opts={"cache_dir": cache})
    got = cp_tree(fold, "", str(tmp_path / "fold"))
    assert got == {k[len("val/"):]: v for k, v in res["proj"].items() if k.startswith("val/")}
    assert streams(emulator) == 0, emulator.routes()


def test_cache_dir_none_writes_nothing(mount, emulator, tmp_path):
    settle(emulator)
    m = mount(V, opts={"cache_dir": "none"})
    assert cp_tree(m, "", str(tmp_path / "out"))
    s = written(m)
    assert s["enabled"] is False and s["stored"] == 0
    m.unmount()
    # not under the default place either ($XDG_CACHE_HOME: the harness's)
    assert not os.path.exists(os.path.join(m.cache_dir, "safs")), os.listdir(m.cache_dir)


def test_default_cache_dir_is_under_xdg_cache_home(mount, emulator, tmp_path):
    settle(emulator)
    m = mount(V)
    cp_tree(m, "val", str(tmp_path / "out"))
    m.unmount()
    d = dc_dir(os.path.join(m.cache_dir, "safs"))
    assert entries(d)


def test_small_memory_budget_reads_come_from_the_disk(mount, emulator, tmp_path):
    """Documents dropped from memory by -o mem_max= are read again from the
    disk cache: reading every file after ls -l makes no request per file."""
    em = Emulator(str(tmp_path / "emu"), ["--seed-items", "Big/f=400"], name="big")
    try:
        settle(em)
        m = mount("Big", opts={"cache_dir": str(tmp_path / "dc"), "mem_max": "256K",
                               "cache_timeout": "30"}, emu=em)
        run(["ls", "-l", m.p("f")], timeout=120)
        written(m)  # the writer thread has stored what the batches fetched
        em.reset_stats()
        sh("cat %s/* > /dev/null" % q(m.p("f")), timeout=300)
        sh("cat %s/* > /dev/null" % q(m.p("f")), timeout=300)
        assert em.downloads() == 0, em.routes()
        time.sleep(1.1)  # user.safs.stats is a snapshot of up to a second
        s = stats(m)
        assert s["hits"] >= 700, s
        st = json.loads(os.getxattr(m.path, "user.safs.stats"))
        assert st["cache_bytes"] <= 256 * 1024 + 16 * 1024, st
    finally:
        em.stop()


def test_reread_beyond_memory_and_disk_bounds_is_batched(mount, tmp_path):
    """A folder bigger than both mem_max and cache_max (400 documents of
    about 12 KB, 1 MiB and 100 KiB): re-reading every
    file after ls -l fetches the dropped documents in batches (the item and
    its dropped neighbours), never one request per file; content exact."""
    em = Emulator(str(tmp_path / "emu"), ["--seed-items", "Big/f=400"], name="big")
    try:
        settle(em)
        m = mount("Big", opts={"cache_dir": str(tmp_path / "dc"), "mem_max": "1M",
                               "cache_max": "100K", "cache_timeout": "30"}, emu=em)
        run(["ls", "-l", m.p("f")], timeout=120)
        written(m)
        em.reset_stats()
        names = sorted(os.listdir(m.p("f")))
        got = {n: read(m.p("f", n)) for n in names}
        streams_n = em.count("POST /api/v4/items/annotations/download")
        assert 0 < streams_n <= len(names) // 20, em.routes()
        want = em.api.folder_documents("Big", "f")
        for n in names:
            assert json.loads(got[n]) == json.loads(want[n[:-len(SUFFIX)]]), n
    finally:
        em.stop()
