"""Issue 8, tools: item 4 (only GNU tar x over existing files; the tool
matrix covers the rest) and item 15 (an official SDK download copies in,
classes/classes.json included).

Contract: ../shared/design/filesystem.md §2 (the unlink row: a re-create
inside the grace period is a plain save); the lead's spec, "Names and odd
operations" (-o suffix=.json and classes/classes.json).
"""
import json
import os
import subprocess
import time

import pytest

from harness import SUFFIX, pretty_tokens, read, run
from defects import GRACE, V, LogMark, annotated, shows

CLASSES = "classes.json"


# ---------------------------------------------------------------------------
# 4. GNU tar x over existing files

def test_4_tar_x_over_existing_files_terminates_and_sends_nothing(mount, emulator, api, tmp_path):
    """GNU tar x opens O_EXCL, unlinks on EEXIST and retries: it looped
    forever (12,843 requests in 3 s) and emptied the first file."""
    m = mount(V)
    names = api.names(V, "val")[:3]
    files = [n + SUFFIX for n in names]
    tarf = str(tmp_path / "val.tar")
    run(["tar", "cf", tarf, "-C", m.p("val")] + files, timeout=60)
    before = {n: api.document_bytes(V, "val", n) for n in names}
    statuses = {n: api.status(V, "val", n) for n in names}
    emulator.reset_stats()
    t0 = time.monotonic()
    try:
        r = run(["tar", "xf", tarf, "-C", m.p("val")], check=False, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("tar x did not terminate within 15 s (%d requests)" % emulator.stats()["total"])
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert took < 10, took
    time.sleep(GRACE)  # a delete that was not cancelled would be sent by now
    routes = emulator.routes()
    assert emulator.writes(routes) == 0, routes
    assert sum(routes.values()) < 200, routes
    for n in names:
        assert api.document_bytes(V, "val", n) == before[n], n
        assert api.status(V, "val", n) == statuses[n], n
    listed = os.listdir(m.p("val"))
    for n in names:
        assert n + SUFFIX in listed, n
        assert shows(m.p("val", n + SUFFIX)) == pretty_tokens(before[n]), n


# ---------------------------------------------------------------------------
# 15. classes/classes.json with -o suffix=.json

def sdk_classes(api, project=V):
    """The project's classes as the SDK's download_annotations writes them:
    GET classes data, attribute_groups[*].is_multiselect dropped."""
    pid = api.project(project)["id"]
    data = api.call("GET", "classes", {"project_id": pid})["data"]
    for c in data:
        for g in c.get("attribute_groups", []):
            g.pop("is_multiselect", None)
    return data


def sdk_download(api, dest, project=V):
    """An SDK-style download folder: root items as <name>.json, folder items
    as F/<name>.json, classes/classes.json; json.dump(indent=4)."""
    os.makedirs(dest)
    for f in api.folders(project):
        folder = None if f.get("is_root") else f["name"]
        d = os.path.join(dest, folder) if folder else dest
        os.makedirs(d, exist_ok=True)
        for n, raw in api.folder_documents(project, folder).items():
            with open(os.path.join(d, n + ".json"), "w") as fh:
                json.dump(json.loads(raw), fh, indent=4)
    os.makedirs(os.path.join(dest, "classes"))
    with open(os.path.join(dest, "classes", CLASSES), "w") as fh:
        json.dump(sdk_classes(api, project), fh, indent=4)


def test_15_classes_json_is_shown(mount, emulator, api):
    m = mount(V, opts={"suffix": ".json"})
    assert "classes" in os.listdir(m.path)
    assert os.path.isdir(m.p("classes"))
    assert os.listdir(m.p("classes")) == [CLASSES]
    data = shows(m.p("classes", CLASSES))
    assert json.loads(data) == sdk_classes(api)
    assert "classes" not in [f["name"] for f in api.folders(V)]
    # without suffix=.json there is no such directory
    plain = mount(V)
    assert "classes" not in os.listdir(plain.path)


def test_15_sdk_download_copies_in(mount, emulator, api, tmp_path):
    dl = str(tmp_path / "dl")
    sdk_download(api, dl)
    folders = sorted(f["name"] for f in api.folders(V))
    docs = {f: api.folder_documents(V, f) for f in (None, "train", "val")}
    m = mount(source=None, opts={"suffix": ".json"})
    emulator.reset_stats()
    r = run(["cp", "-r", dl + "/.", m.p(V) + "/"], check=False, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    routes = emulator.routes()
    assert emulator.uploads(routes) == 0, routes
    assert emulator.writes(routes) == 0, routes
    assert emulator.count("POST /folder", routes) == 0, routes
    assert sorted(f["name"] for f in api.folders(V)) == folders
    for f, d in docs.items():
        assert api.folder_documents(V, f) == d, f
    assert json.loads(shows(m.p(V, "classes", CLASSES))) == sdk_classes(api)
    assert os.listdir(m.p(V, "classes")) == [CLASSES]


def test_15_other_classes_json_is_erofs(mount, emulator, api, tmp_path):
    m = mount(V, opts={"suffix": ".json"})
    p = m.p("classes", CLASSES)
    other = sdk_classes(api)
    other[0]["name"] = "truck"
    src = tmp_path / CLASSES
    src.write_text(json.dumps(other, indent=4))
    emulator.reset_stats()
    mark = LogMark(m)
    r = run(["cp", str(src), p], check=False, timeout=60)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, (r.returncode, r.stderr)
    assert mark.lines(CLASSES), m.log()[mark.at:][-3000:]
    assert emulator.writes() == 0, emulator.routes()
    assert json.loads(shows(p)) == sdk_classes(api)


def test_15_platform_folder_named_classes_takes_precedence(mount, emulator, api):
    emulator.seed(V, folder="classes", items=["c1.jpg"])
    m = mount(V, opts={"suffix": ".json"})
    assert os.listdir(m.p("classes")) == ["c1.jpg.json"]
    data = shows(m.p("classes", "c1.jpg.json"))
    assert data == pretty_tokens(api.document_bytes(V, "classes", "c1.jpg"))
    assert json.loads(data)["metadata"]["name"] == "c1.jpg"
    assert json.loads(read(m.p("classes", "c1.jpg.json")))["instances"] == []


# ---------------------------------------------------------------------------
# deletes still pending at unmount

def test_4_rm_many_then_unmount_at_once_sends_every_delete(mount, emulator, api):
    """rm of files the kernel knows (default TTLs, after ls -l), then an
    unmount inside the grace period: the deletes are sent at unmount, and the
    daemon exits cleanly. The kernel notifications that followed those
    deletes once ran after libfuse had freed its node tables (a SEGV in
    fuse_invalidate_path, seen in CI under ASan)."""
    m = mount(V, opts={"attr_timeout": None, "entry_timeout": None, "negative_timeout": None})
    names = annotated(api, "train")
    assert len(names) >= 10, names
    run(["ls", "-l", m.p("train")], timeout=60)
    emulator.reset_stats()
    r = run(["rm"] + [m.p("train", n + SUFFIX) for n in names], check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert emulator.deletes() == 0, emulator.routes()  # still inside the grace period
    m.unmount()  # fails the test on a sanitizer report or a daemon that does not exit
    log = m.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log, log
    for n in names:
        doc = api.document(V, "train", n)
        assert doc["instances"] == [], (n, doc)
    # a fresh mount shows the items (they still exist) with empty documents
    m2 = mount(V)
    for n in names[:3]:
        data = read(m2.p("train", n + SUFFIX))
        assert json.loads(data)["instances"] == [], (n, data[:200])
        assert os.stat(m2.p("train", n + SUFFIX)).st_size == len(data)
