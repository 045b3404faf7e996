"""Every project type (issue 5): the per-frame view of Video items, Pixel
documents and masks, Document/Tiled/PointCloud writes, Multimodal read-only.

Contract: docs/filesystem.md §1, §4; docs/api.md §10.2 step 4, §10.9, §12,
§12.1. The per-frame bytes are compared with tests/unit/doc/frames_ref.py, an
independent Python implementation of §12 (not with the daemon's C code).
"""
import errno
import json
import math
import os
import shlex
import sys
import time

import pytest

from harness import STATUS_XATTR, SUFFIX, errno_of, parse_ts, pretty_tokens, read, run, sh

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit", "doc"))
import frames_ref  # noqa: E402

VIDEO = "Demo Video"
PIXEL = "Demo Pixel"
MULTI = "Demo Multimodal"
CLIPS = ["clip_01.mp4", "clip_02.mp4", "clip_03.mp4"]
FRAMES = "___frames.json"
PIXSUF = "___pixel.json"
MASK = "___save.png"

# 16 bytes of a real PNG header + IHDR start: what a mask copy would write
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64


def ref_frames(raw, fps=1.0):
    """The per-frame bytes the SDK gives for platform document text @raw."""
    out = frames_ref.render_or_error(raw, float(fps))
    assert out is not None, "the reference refuses this document: %r" % raw[:300]
    return out.encode("utf-8")


def plat_bytes(api, project, folder, name):
    """The platform's document text for one item, through the single-item
    download (api.md §9.4), which needs no metadata.id inside the document
    (documents uploaded through the mount or the SDK carry none)."""
    p = api.project(project)
    iid = api.item(project, folder, name)["id"]
    return api.raw("POST", "api/v3.01/items/%d/annotations/download" % iid,
                   {"project_id": p["id"], "annotation_type": "MAIN", "version": "V1.00"})


def plat_doc(api, project, folder, name):
    return json.loads(plat_bytes(api, project, folder, name))


def plat_docs(api, project, folder=None):
    """{item name: document text} for every item of a folder."""
    return {n: plat_bytes(api, project, folder, n) for n in api.names(project, folder)}


def log_lines_with(m, *words):
    return [ln for ln in m.log().splitlines() if all(w in ln for w in words)]


def open_errno(path, flags):
    """errno of os.open(path, flags) (0 if it opened)."""
    def f():
        fd = os.open(path, flags, 0o644)
        os.close(fd)
    return errno_of(f)


def read_errno(path):
    """errno of opening and reading @path whole (0 if it worked)."""
    return errno_of(lambda: read(path))


# ---------------------------------------------------------------------------
# Video: the per-frame view

def test_frames_found_by_name_not_listed(mount, api, tmp_path):
    m = mount(VIDEO)
    names = os.listdir(m.path)
    assert sorted(names) == sorted(c + SUFFIX for c in CLIPS), names
    assert not [n for n in names if n.endswith(FRAMES)]
    ls = run(["ls", "-la", m.path], timeout=60).stdout
    assert FRAMES not in ls and all(c + SUFFIX in ls for c in CLIPS), ls
    items = {i["name"]: i for i in api.items(VIDEO)}
    for c in CLIPS:
        p = m.p(c + FRAMES)
        st = os.stat(p)
        data = run(["cat", p], timeout=60).stdout.encode("utf-8")
        assert data == read(p)
        assert os.path.isfile(p)
        assert st.st_mode & 0o777 == 0o444, oct(st.st_mode)
        assert st.st_size == len(data), (c, st.st_size, len(data))
        assert abs(st.st_mtime - parse_ts(items[c]["updatedAt"])) < 0.0015, (c, st.st_mtime,
                                                                             items[c]["updatedAt"])
    # the video's own document reads as the platform holds it
    for c, raw in plat_docs(api, VIDEO).items():
        assert read(m.p(c + SUFFIX)) == pretty_tokens(raw), c
    # fstat on an open handle agrees with the bytes
    with open(m.p("clip_02.mp4" + FRAMES), "rb") as fh:
        data = fh.read()
        assert os.fstat(fh.fileno()).st_size == len(data)
        assert os.fstat(fh.fileno()).st_mode & 0o777 == 0o444
    # cp -r and rsync -a out of the mount never see it
    run(["cp", "-r", m.path + "/.", str(tmp_path / "cp")], timeout=120)
    run(["rsync", "-a", m.path + "/", str(tmp_path / "rs") + "/"], timeout=120)
    for d in ("cp", "rs"):
        got = sorted(os.listdir(tmp_path / d))
        assert got == sorted(c + SUFFIX for c in CLIPS), (d, got)
    # and find does not either
    out = run(["find", m.path, "-name", "*" + FRAMES], timeout=60).stdout
    assert out.strip() == "", out
    # no such file for an item that is not a video
    v = mount("Demo Vector")
    assert errno_of(lambda: os.stat(v.p("street_001.jpg" + FRAMES))) == errno.ENOENT
    assert errno_of(lambda: os.stat(m.p("no_such_clip.mp4" + FRAMES))) == errno.ENOENT


def test_rsync_round_trip_ignores_frames(mount, emulator, tmp_path):
    """The reason the per-frame file is not listed: a copy out and back in
    changes nothing and fails nothing."""
    m = mount(VIDEO)
    out = str(tmp_path / "out") + "/"
    run(["rsync", "-a", m.path + "/", out], timeout=120)
    emulator.reset_stats()
    run(["rsync", "-a", out, m.path + "/"], timeout=120)
    run(["cp", "-r", out + ".", m.path + "/"], timeout=120)
    assert emulator.writes() == 0, emulator.routes()


@pytest.mark.parametrize("fps", [None, "25", "2.5", "30"])
def test_frames_bytes_equal_reference(mount, api, fps):
    opts = {"fps": fps} if fps else {}
    m = mount(VIDEO, opts)
    docs = plat_docs(api, VIDEO)
    f = float(fps or 1)
    for c in CLIPS:
        raw = docs[c]
        want = ref_frames(raw, f)
        p = m.p(c + FRAMES)
        got = read(p)
        assert got == want, "%s @ %s fps\n--- got ---\n%s\n--- want ---\n%s" % (
            c, f, got[:2000].decode(errors="replace"), want[:2000].decode())
        assert os.stat(p).st_size == len(want)
        # jq sees one entry per frame: ceil(duration s * fps), frames 1..n
        dur = json.loads(raw)["metadata"]["duration"]
        n = math.ceil((dur / 1e6) * f)
        r = run(["jq", "-c", "[length, .[0].frame, .[-1].frame]", p], timeout=60)
        assert json.loads(r.stdout) == [n, 1, n], (c, f, r.stdout)
    if fps == "25":
        # 280000 us at 25 fps is 8 frames in doubles (api.md §12.1 point 1)
        assert len(json.loads(read(m.p("clip_02.mp4" + FRAMES)))) == 8


def test_frames_list_frames_option(mount, api):
    m = mount(VIDEO, {"list_frames": True})
    names = sorted(os.listdir(m.path))
    want = sorted([c + SUFFIX for c in CLIPS] + [c + FRAMES for c in CLIPS])
    assert names == want, names
    docs = plat_docs(api, VIDEO)
    for c in CLIPS:
        p = m.p(c + FRAMES)
        data = read(p)
        assert data == ref_frames(docs[c])
        assert os.stat(p).st_size == len(data)
        assert os.stat(p).st_mode & 0o777 == 0o444
    # a team mount finds it too, two levels down
    t = mount(None)
    assert read(t.p(VIDEO, "clip_01.mp4" + FRAMES)) == ref_frames(docs["clip_01.mp4"])


def test_frames_in_a_folder(mount, emulator, api):
    """A video in a sub-folder, with a document seeded raw: found by name
    there, bytes as the reference computes them (at 2 fps)."""
    raw = ('{"metadata":{"name":"f.mp4","duration":3500000,"width":4,"height":4},'
           '"instances":[{"meta":{"type":"point","className":"p"},"parameters":[{"start":0,'
           '"end":3000000,"timestamps":[{"timestamp":500000,"x":1,"y":2,"attributes":[]},'
           '{"timestamp":3000000,"x":4.4,"y":0.1,"attributes":[]}]}]},'
           '{"meta":{"type":"comment"},"parameters":[]},'
           '{"meta":{"type":"polyline","classId":"7"},"parameters":[{"start":0,"end":2000000,'
           '"timestamps":[{"timestamp":0,"points":[0,0,10,10],"attributes":null},'
           '{"timestamp":2000000,"points":[5,5,20,20],"attributes":null}]}]}],"tags":[]}')
    emulator.seed(VIDEO, type=3, folder="clips", items=["f.mp4"], raw_documents={"f.mp4": raw})
    m = mount(VIDEO, {"fps": "2"})
    assert sorted(os.listdir(m.p("clips"))) == ["f.mp4" + SUFFIX]
    got = read(m.p("clips", "f.mp4" + FRAMES))
    want = ref_frames(raw, 2.0)
    assert got == want, got.decode()
    frames = json.loads(got)
    assert len(frames) == 7
    # the interpolated point of frame 3 is a float, the classId string became 7
    assert b'"classId": 7' in got and frames[2]["annotations"][0]["keyframe"] is False


def test_frames_writes_refused(mount, emulator, api, tmp_path):
    m = mount(VIDEO)
    p = m.p("clip_01.mp4" + FRAMES)
    before = read(p)
    doc_before = plat_bytes(api, VIDEO, None, "clip_01.mp4")
    emulator.reset_stats()
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_RDONLY | os.O_TRUNC,
                  os.O_WRONLY | os.O_CREAT | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
        assert open_errno(p, flags) == errno.EACCES, flags
    # every refusal has its log line (filesystem.md §6)
    assert m.log().count("per-frame view is read-only") >= 6, m.log()[-2000:]
    src = tmp_path / "x.json"
    src.write_bytes(b"[]\n")
    r = run(["cp", str(src), p], check=False, timeout=60)
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)
    r = sh("echo '[]' > %s" % shlex.quote(p), check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.returncode, r.stderr)
    assert errno_of(lambda: os.truncate(p, 0)) in (errno.EACCES, errno.EPERM)
    assert errno_of(lambda: os.setxattr(p, STATUS_XATTR, b"Completed")) == errno.EACCES
    assert emulator.uploads() == 0 and emulator.writes() == 0, emulator.routes()
    assert read(p) == before
    assert plat_bytes(api, VIDEO, None, "clip_01.mp4") == doc_before


def edited_video(raw):
    """The clip's document with the point's end moved and a new bbox instance
    (no creationType) plus one instance that says Manual."""
    d = json.loads(raw)
    for inst in d["instances"]:
        if inst["meta"]["type"] == "point":
            inst["parameters"][0]["timestamps"][-1]["x"] = 51.5
    d["instances"].append({
        "meta": {"type": "bbox", "classId": -1, "className": "NEW_BOX", "start": 0, "end": 3000000},
        "parameters": [{"start": 0, "end": 3000000, "timestamps": [
            {"timestamp": 0, "points": {"x1": 0, "y1": 0, "x2": 10, "y2": 10}, "attributes": []},
            {"timestamp": 3000000, "points": {"x1": 30, "y1": 33, "x2": 40, "y2": 47.5},
             "attributes": []}]}]})
    d["instances"].append({
        "meta": {"type": "point", "classId": -1, "className": "MANUAL_PT", "creationType": "Manual",
                 "start": 0, "end": 1000000},
        "parameters": [{"start": 0, "end": 1000000, "timestamps": [
            {"timestamp": 1000000, "x": 5, "y": 6, "attributes": []}]}]})
    return d


def check_video_defaults(doc):
    """api.md §10.2 step 4 as safs applies it to Video: creationType inside
    instances[].meta where missing, an existing one kept, no probability."""
    for inst in doc["instances"]:
        assert "probability" not in inst and "probability" not in inst["meta"], inst
        assert "creationType" not in inst, inst
        want = "Manual" if inst["meta"].get("className") == "MANUAL_PT" else "Preannotation"
        assert inst["meta"]["creationType"] == want, inst["meta"]


def test_frames_follow_upload_through_mount(mount, emulator, api, tmp_path):
    m = mount(VIDEO)
    c = "clip_01.mp4"
    fr = m.p(c + FRAMES)
    old_raw = plat_bytes(api, VIDEO, None, c)
    old = read(fr)
    assert old == ref_frames(old_raw)
    new = (json.dumps(edited_video(old_raw), indent=2) + "\n").encode()
    src = tmp_path / "new.json"
    src.write_bytes(new)
    emulator.reset_stats()
    run(["cp", str(src), m.p(c + SUFFIX)], timeout=60)
    assert emulator.uploads() == 1, emulator.routes()
    plat_raw = plat_bytes(api, VIDEO, None, c)
    # the file shows the platform's document, not the bytes written
    assert read(m.p(c + SUFFIX)) == pretty_tokens(plat_raw)
    plat = json.loads(plat_raw)
    check_video_defaults(plat)
    assert plat["metadata"]["name"] == c
    assert api.status(VIDEO, None, c) == "InProgress"
    got = read(fr)
    assert got != old
    assert got == ref_frames(plat_raw)
    assert b'"className": "NEW_BOX"' in got and b'"x": 51.5' in got
    st = os.stat(fr)
    assert st.st_size == len(got)
    assert abs(st.st_mtime - os.stat(m.p(c + SUFFIX)).st_mtime) < 0.0015


def test_frames_follow_upload_by_another_client(mount, emulator, api):
    m = mount(VIDEO)
    c = "clip_03.mp4"
    fr = m.p(c + FRAMES)
    old = read(fr)
    old_mtime = os.stat(fr).st_mtime
    raw = plat_bytes(api, VIDEO, None, c)
    # updatedAt has whole seconds (api.md §7): upload in a later second than
    # the item's last change, so that the mtime moves
    while time.time() < int(old_mtime) + 1.05:
        time.sleep(0.05)
    api.upload(VIDEO, None, c, json.dumps(edited_video(raw)))
    new_raw = plat_bytes(api, VIDEO, None, c)
    want = ref_frames(new_raw)
    assert want != old
    got = read(fr)
    assert got == want
    st = os.stat(fr)
    assert st.st_size == len(want)
    upd = parse_ts(api.item(VIDEO, None, c)["updatedAt"])
    assert abs(st.st_mtime - upd) < 0.0015 and st.st_mtime > old_mtime, (st.st_mtime, upd, old_mtime)
    # a status change moves updatedAt, so the mtime, but not the bytes
    api.set_status(VIDEO, None, [c], "Completed")
    upd2 = parse_ts(api.item(VIDEO, None, c)["updatedAt"])
    assert read(fr) == want
    assert abs(os.stat(fr).st_mtime - upd2) < 0.0015


BAD_VIDEOS = {
    # a cuboid cannot be interpolated over a gap of 3 frames (api.md §12 5c)
    "gap_cuboid.mp4": ('{"metadata":{"name":"gap_cuboid.mp4","duration":5000000,"width":10,"height":10},'
                       '"instances":[{"meta":{"type":"cuboid","classId":1,"className":"box"},'
                       '"parameters":[{"start":0,"end":4000000,"timestamps":['
                       '{"timestamp":1000000,"points":{"f1":{"x":1,"y":1}},"attributes":[]},'
                       '{"timestamp":4000000,"points":{"f1":{"x":2,"y":2}},"attributes":[]}]}]}],'
                       '"tags":[]}',
                       ("cuboid", "gap")),
    # metadata without duration (api.md §12.1 point 4)
    "no_duration.mp4": ('{"metadata":{"name":"no_duration.mp4","width":10,"height":10},'
                        '"instances":[],"tags":[]}',
                        ("duration",)),
}


def test_frames_error_is_eio_with_reason(mount, emulator, api):
    emulator.seed(VIDEO, type=3, items=list(BAD_VIDEOS),
                  raw_documents={k: v[0] for k, v in BAD_VIDEOS.items()})
    for name, (raw, _) in BAD_VIDEOS.items():
        assert frames_ref.render_or_error(raw, 1.0) is None, name  # the SDK rejects it
        # an adjacent-frame cuboid is fine (the rule is about the gap)
    ok = BAD_VIDEOS["gap_cuboid.mp4"][0].replace("4000000", "2000000")
    assert frames_ref.render_or_error(ok, 1.0) is not None
    m = mount(VIDEO)
    for name, (raw, words) in BAD_VIDEOS.items():
        p = m.p(name + FRAMES)
        e = read_errno(p)
        assert e == errno.EIO, (name, errno.errorcode.get(e, e))
        r = run(["cat", p], check=False, timeout=60)
        assert r.returncode != 0 and "Input/output error" in r.stderr, (name, r.returncode, r.stderr)
        lines = log_lines_with(m, name, *words)
        assert lines, (name, words, m.log()[-3000:])
        # the document itself still reads as the platform holds it (the
        # platform fills metadata.status in, api.md §11)
        assert read(m.p(name + SUFFIX)) == pretty_tokens(plat_bytes(api, VIDEO, None, name))
    # the good clips are not affected
    assert read(m.p("clip_01.mp4" + FRAMES)) == ref_frames(plat_bytes(api, VIDEO, None, "clip_01.mp4"))


def test_frames_error_then_fixed_document(mount, emulator, api, tmp_path):
    """A rejected video becomes readable once its document is fixed through
    the mount."""
    name = "gap_cuboid.mp4"
    raw = BAD_VIDEOS[name][0]
    emulator.seed(VIDEO, type=3, items=[name], raw_documents={name: raw})
    m = mount(VIDEO)
    assert read_errno(m.p(name + FRAMES)) == errno.EIO
    fixed = raw.replace("4000000", "2000000").encode()
    src = tmp_path / "fixed.json"
    src.write_bytes(fixed)
    run(["cp", str(src), m.p(name + SUFFIX)], timeout=60)
    plat_raw = plat_bytes(api, VIDEO, None, name)
    assert json.loads(plat_raw)["instances"][0]["meta"]["creationType"] == "Preannotation"
    got = read(m.p(name + FRAMES))
    assert got == ref_frames(plat_raw)
    assert len(json.loads(got)) == 5


# ---------------------------------------------------------------------------
# Pixel

PIXEL_ITEMS = ["item_01.png", "item_02.png", "item_03.png", "item_04.png"]


def test_pixel_listing_and_read(mount, api):
    m = mount(PIXEL)
    names = sorted(os.listdir(m.path))
    assert names == sorted(i + PIXSUF for i in PIXEL_ITEMS), names
    assert not [n for n in names if n.endswith(MASK) or n.endswith(SUFFIX)]
    docs = plat_docs(api, PIXEL)
    items = {i["name"]: i for i in api.items(PIXEL)}
    for name, raw in docs.items():
        p = m.p(name + PIXSUF)
        data = read(p)
        assert data == pretty_tokens(raw), name
        st = os.stat(p)
        assert st.st_size == len(data) and st.st_mode & 0o777 == 0o644
        assert abs(st.st_mtime - parse_ts(items[name]["updatedAt"])) < 0.0015
    # the item without a document reads as the skeleton (status NotStarted)
    skel = json.loads(read(m.p("item_04.png" + PIXSUF)))
    assert skel["instances"] == [] and skel["metadata"]["name"] == "item_04.png"
    r = run(["jq", "-r", ".instances[].className", m.p("item_01.png" + PIXSUF)], timeout=60)
    assert r.stdout.split() == ["car", "person"]


def pixel_doc(name):
    return {
        "metadata": {"name": name, "width": 800, "height": 600, "isSegmented": False},
        "instances": [
            {"classId": 1, "className": "KEEP_MANUAL", "probability": 90, "creationType": "Manual",
             "visible": True, "attributes": [], "parts": [{"color": "#000001"}]},
            {"classId": 2, "className": "NO_DEFAULTS", "visible": True, "attributes": [],
             "parts": [{"color": "#000002"}, {"color": "#000005"}]},
            {"classId": 2, "className": "PROB_ONLY", "probability": 12.5, "attributes": [],
             "parts": [{"color": "#000003"}]},
        ],
        "tags": ["px"],
        "comments": [],
    }


def check_image_defaults(doc):
    """Image types (Vector, Pixel, Tiled): probability 100 where missing,
    creationType Preannotation where missing, existing values kept."""
    by = {i["className"]: i for i in doc["instances"]}
    assert by["KEEP_MANUAL"]["creationType"] == "Manual" and by["KEEP_MANUAL"]["probability"] == 90
    assert by["NO_DEFAULTS"]["creationType"] == "Preannotation" and by["NO_DEFAULTS"]["probability"] == 100
    assert by["PROB_ONLY"]["creationType"] == "Preannotation" and by["PROB_ONLY"]["probability"] == 12.5


def test_pixel_write_round_trip(mount, emulator, api, tmp_path):
    name = "item_02.png"
    api.set_status(PIXEL, None, [name], "NotStarted")
    m = mount(PIXEL)
    p = m.p(name + PIXSUF)
    read(p)
    data = (json.dumps(pixel_doc(name), indent=2) + "\n").encode()
    src = tmp_path / "px.json"
    src.write_bytes(data)
    emulator.reset_stats()
    run(["cp", str(src), p], timeout=60)
    assert emulator.uploads() == 1, emulator.routes()
    plat = plat_doc(api, PIXEL, None, name)
    assert plat["metadata"]["name"] == name
    assert [i["className"] for i in plat["instances"]] == ["KEEP_MANUAL", "NO_DEFAULTS", "PROB_ONLY"]
    assert plat["instances"][1]["parts"] == [{"color": "#000002"}, {"color": "#000005"}]
    assert plat["tags"] == ["px"]
    check_image_defaults(plat)
    assert api.status(PIXEL, None, name) == "InProgress"
    # the file shows the platform's document now (filesystem.md §2)
    shown = pretty_tokens(api.document_bytes(PIXEL, None, name))
    assert read(p) == shown and os.stat(p).st_size == len(shown)
    # a jq edit through a temporary file and mv
    emulator.reset_stats()
    t = m.p("t.tmp")
    sh("jq '.tags = [\"px2\"]' %s > %s && mv %s %s" % (shlex.quote(p), shlex.quote(t), shlex.quote(t),
                                                       shlex.quote(p)))
    assert emulator.uploads() == 1, emulator.routes()
    assert plat_doc(api, PIXEL, None, name)["tags"] == ["px2"]
    # a fresh mount reads what the platform holds
    m2 = mount(PIXEL)
    assert read(m2.p(name + PIXSUF)) == pretty_tokens(plat_bytes(api, PIXEL, None, name))
    assert MASK not in "".join(os.listdir(m.path))


def test_pixel_mask_refused(mount, emulator, api, tmp_path):
    m = mount(PIXEL)
    before = plat_docs(api, PIXEL)
    src = tmp_path / "mask.png"
    src.write_bytes(PNG)
    emulator.reset_stats()
    mask = m.p("item_01.png" + MASK)
    assert open_errno(mask, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) == errno.EOPNOTSUPP
    r = run(["cp", str(src), mask], check=False, timeout=60)
    assert r.returncode != 0 and "not supported" in r.stderr, (r.returncode, r.stderr)
    # the mask of an item that has no document yet, and of one in no project
    assert open_errno(m.p("item_04.png" + MASK), os.O_WRONLY | os.O_CREAT) == errno.EOPNOTSUPP
    lines = log_lines_with(m, "item_01.png" + MASK)
    assert lines and any("mask" in ln.lower() for ln in lines), m.log()[-3000:]
    assert any("10.9" in ln or "API" in ln or "api" in ln for ln in lines), lines
    names = os.listdir(m.path)
    assert not [n for n in names if n.endswith(MASK)], names
    assert errno_of(lambda: os.stat(mask)) == errno.ENOENT
    assert emulator.writes() == 0, emulator.routes()
    assert plat_docs(api, PIXEL) == before


def test_pixel_old_sdk_folder_copy(mount, emulator, api, tmp_path):
    """cp -r of an SDK <= 4.5.1 download folder (JSON + mask): the JSON
    uploads, the mask fails on its own, loudly."""
    name = "item_03.png"
    src = tmp_path / "old"
    src.mkdir()
    doc = pixel_doc(name)
    (src / (name + PIXSUF)).write_bytes((json.dumps(doc, indent=4) + "\n").encode())
    (src / (name + MASK)).write_bytes(PNG)
    m = mount(PIXEL)
    emulator.reset_stats()
    r = run(["cp", "-r", str(src) + "/.", m.path + "/"], check=False, timeout=120)
    assert r.returncode != 0 and name + MASK in r.stderr and "not supported" in r.stderr, r.stderr
    assert emulator.uploads() == 1, emulator.routes()
    check_image_defaults(plat_doc(api, PIXEL, None, name))
    assert not [n for n in os.listdir(m.path) if n.endswith(MASK)]


# ---------------------------------------------------------------------------
# Document, Tiled, PointCloud: read and write like Vector

WRITABLE = {
    "Demo Document": (".txt", False),
    "Demo Tiled": (".tif", True),
    "Demo PointCloud": (".pcd", False),
}


def other_doc(project, name):
    if project == "Demo Document":
        insts = [
            {"type": "entity", "start": 0, "end": 4, "classId": 1, "className": "KEEP_MANUAL",
             "creationType": "Manual", "attributes": []},
            {"type": "entity", "start": 5, "end": 9, "classId": 2, "className": "NO_DEFAULTS",
             "attributes": []},
            {"type": "tag", "classId": 1, "className": "PROB_ONLY", "probability": 12.5,
             "attributes": []},
        ]
        return {"metadata": {"name": name}, "instances": insts, "tags": ["doc"], "freeText": "ok \u00e9"}
    if project == "Demo Tiled":
        box = {"x1": 1.5, "y1": 2, "x2": 4096.25, "y2": 3000}
        insts = [
            {"type": "bbox", "classId": 1, "className": "KEEP_MANUAL", "probability": 90,
             "creationType": "Manual", "points": box, "attributes": []},
            {"type": "bbox", "classId": 2, "className": "NO_DEFAULTS", "points": box, "attributes": []},
            {"type": "point", "classId": 2, "className": "PROB_ONLY", "probability": 12.5,
             "x": 3, "y": 4, "attributes": []},
        ]
        return {"metadata": {"name": name, "width": 8192, "height": 8192}, "instances": insts,
                "tags": ["tiled"], "comments": []}
    pts = {"position": {"x": 1.5, "y": -2.25, "z": 0.1}, "rotation": {"x": 0, "y": 0, "z": 1},
           "scale": {"x": 4.2, "y": 1.8, "z": 1.5}}
    insts = [
        {"type": "cuboid", "classId": 1, "className": "KEEP_MANUAL", "creationType": "Manual",
         "points": pts, "attributes": []},
        {"type": "cuboid", "classId": 2, "className": "NO_DEFAULTS", "points": pts, "attributes": []},
        {"type": "cuboid", "classId": 2, "className": "PROB_ONLY", "probability": 12.5, "points": pts,
         "attributes": []},
    ]
    return {"metadata": {"name": name}, "instances": insts, "tags": ["pc"]}


def test_other_types_read(mount, api):
    t = mount(None)
    for project in list(WRITABLE) + [MULTI]:
        docs = plat_docs(api, project)
        items = {i["name"]: i for i in api.items(project)}
        assert len(docs) == 2, (project, docs.keys())
        names = sorted(os.listdir(t.p(project)))
        assert names == sorted(n + SUFFIX for n in docs), (project, names)
        for name, raw in docs.items():
            p = t.p(project, name + SUFFIX)
            r = run(["cat", p], timeout=60)
            assert r.stdout.encode("utf-8") == pretty_tokens(raw), (project, name)
            st = os.stat(p)
            assert st.st_size == len(pretty_tokens(raw))
            assert abs(st.st_mtime - parse_ts(items[name]["updatedAt"])) < 0.0015
            assert json.loads(run(["jq", "-c", ".metadata.name", p], timeout=60).stdout) == name
            # writable projects show 0644 (a read-only one may drop write bits)
            if project != MULTI:
                assert st.st_mode & 0o777 == 0o644, (project, oct(st.st_mode))


@pytest.mark.parametrize("project", list(WRITABLE))
def test_other_types_write(mount, emulator, api, tmp_path, project):
    ext, image = WRITABLE[project]
    name = "item_01" + ext
    api.set_status(project, None, [name], "NotStarted")
    m = mount(project)
    p = m.p(name + SUFFIX)
    read(p)
    data = (json.dumps(other_doc(project, name), indent=2, ensure_ascii=False) + "\n").encode()
    src = tmp_path / "doc.json"
    src.write_bytes(data)
    emulator.reset_stats()
    run(["cp", str(src), p], timeout=60)
    assert emulator.uploads() == 1, emulator.routes()
    plat = plat_doc(api, project, None, name)
    assert plat["metadata"]["name"] == name
    assert [i["className"] for i in plat["instances"]] == ["KEEP_MANUAL", "NO_DEFAULTS", "PROB_ONLY"]
    sent = other_doc(project, name)
    for k in sent:
        if k != "metadata" and k != "instances":
            assert plat[k] == sent[k], (project, k)
    if image:
        check_image_defaults(plat)
    else:
        by = {i["className"]: i for i in plat["instances"]}
        assert by["KEEP_MANUAL"]["creationType"] == "Manual"
        assert by["NO_DEFAULTS"]["creationType"] == "Preannotation"
        assert by["PROB_ONLY"]["creationType"] == "Preannotation"
        # probability is an image-project default only
        assert "probability" not in by["KEEP_MANUAL"] and "probability" not in by["NO_DEFAULTS"], by
        assert by["PROB_ONLY"]["probability"] == 12.5
    for inst, s in zip(plat["instances"], sent["instances"]):
        for k, v in s.items():
            if k not in ("creationType", "probability"):
                assert inst[k] == v, (project, k)
    assert api.status(project, None, name) == "InProgress"
    # the file shows the platform's document now (filesystem.md §2)
    shown = pretty_tokens(api.document_bytes(project, None, name))
    assert read(p) == shown and os.stat(p).st_size == len(shown)
    # sed -i through the mount, then a fresh mount reads the platform's bytes
    emulator.reset_stats()
    run(["sed", "-i", "s/NO_DEFAULTS/SED_EDIT/", p], timeout=60)
    assert emulator.uploads() == 1, emulator.routes()
    assert [i["className"] for i in plat_doc(api, project, None, name)["instances"]][1] == "SED_EDIT"
    m2 = mount(project)
    assert read(m2.p(name + SUFFIX)) == pretty_tokens(plat_bytes(api, project, None, name))


# ---------------------------------------------------------------------------
# Multimodal: read-only

def test_multimodal_read_only(mount, emulator, api, tmp_path):
    m = mount(MULTI)
    name = "item_01.json"
    p = m.p(name + SUFFIX)
    before = plat_docs(api, MULTI)
    status_before = api.status(MULTI, None, name)
    assert status_before != "Completed"
    data = read(p)
    assert data == pretty_tokens(before[name])
    assert os.stat(p).st_mode & 0o777 == 0o444  # docs/project-types.md
    assert json.loads(data)["data"]["answer"]["value"] == "A street with two cars."
    src = tmp_path / "mm.json"
    d = json.loads(data)
    d["data"]["rating"]["value"] = 1
    src.write_bytes((json.dumps(d, indent=2) + "\n").encode())
    emulator.reset_stats()
    for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
        assert open_errno(p, flags) == errno.EROFS, flags
    r = run(["cp", str(src), p], check=False, timeout=60)
    assert r.returncode != 0 and "Read-only file system" in r.stderr, (r.returncode, r.stderr)
    r = sh("jq '.tags = [\"x\"]' %s > %s" % (shlex.quote(p), shlex.quote(p + ".tmp")), check=False)
    assert r.returncode != 0, "a scratch file in a read-only project"
    assert errno_of(lambda: os.truncate(p, 0)) == errno.EROFS
    assert errno_of(lambda: os.unlink(p)) == errno.EROFS
    r = run(["rsync", "-a", str(src), p], check=False, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    # a status change is a write too, on a file and on the project directory
    assert errno_of(lambda: os.setxattr(p, STATUS_XATTR, b"Completed")) == errno.EROFS
    assert errno_of(lambda: os.setxattr(m.path, STATUS_XATTR, b"Completed")) == errno.EROFS
    assert api.status(MULTI, None, name) == status_before
    assert os.getxattr(p, STATUS_XATTR).decode() == status_before
    assert emulator.writes() == 0, emulator.routes()
    assert plat_docs(api, MULTI) == before
    assert read(p) == data
    assert log_lines_with(m, name, "read-only"), m.log()[-3000:]
