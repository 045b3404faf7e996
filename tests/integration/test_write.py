"""Writing with real programs: what the platform holds afterwards, and the cost."""
import json
import os
import shlex

import pytest

from harness import SUFFIX, pretty_tokens, read, run, sh, strip_server_meta, write

V = "Demo Vector"


def base_doc(name, marker="MARKER_OLD"):
    return {
        "metadata": {"name": name, "width": 640, "height": 480},
        "instances": [
            {"type": "bbox", "classId": 1, "className": marker, "probability": 90,
             "creationType": "Manual", "attributes": [],
             "points": {"x1": 12.3, "y1": 0.1, "x2": 100.25, "y2": 200}},
            {"type": "point", "classId": 2, "className": "dot", "probability": 100,
             "creationType": "Preannotation", "attributes": [], "x": 1.5, "y": 2.5},
        ],
        "tags": ["t1"],
        "comments": [],
    }


@pytest.fixture
def target(emulator, api):
    """A root item of Demo Vector holding base_doc, status NotStarted."""
    name = api.names(V)[0]
    api.upload(V, None, name, base_doc(name))
    api.set_status(V, None, [name], "NotStarted")
    emulator.reset_stats()
    return name


def check_saved(emulator, api, m, name, written, uploads=1, status="InProgress", folder=None):
    """The platform holds `written` (parsed, modulo server metadata), the item is
    `status`, exactly `uploads` upload requests were made, and the file reads
    back as the platform's document pretty-printed, exactly what a fresh
    mount reads (filesystem.md §2 "After an upload"), st_size its length."""
    routes = emulator.routes()
    assert emulator.uploads(routes) == uploads, routes
    doc = api.document(V, folder, name)
    assert strip_server_meta(doc) == strip_server_meta(json.loads(written))
    assert doc["metadata"]["name"] == name
    assert api.status(V, folder, name) == status
    p = m.p(folder, name + SUFFIX) if folder else m.p(name + SUFFIX)
    shown = read(p)
    assert shown == pretty_tokens(api.document_bytes(V, folder, name))
    assert os.stat(p).st_size == len(shown)


def new_bytes(name, indent=2):
    d = base_doc(name, "MARKER_NEW")
    d["instances"][1]["x"] = 7.25
    return (json.dumps(d, indent=indent) + "\n").encode()


def test_cp_into_mount(mount, emulator, api, target, tmp_path):
    m = mount(V)
    f = m.p(target + SUFFIX)
    read(f)
    emulator.reset_stats()
    src = tmp_path / "src.json"
    data = new_bytes(target)
    src.write_bytes(data)
    run(["cp", str(src), f])
    check_saved(emulator, api, m, target, data)


def test_cat_redirect(mount, emulator, api, target, tmp_path):
    m = mount(V)
    f = m.p(target + SUFFIX)
    src = tmp_path / "src.json"
    data = new_bytes(target, indent=4)
    src.write_bytes(data)
    emulator.reset_stats()
    sh("cat %s > %s" % (shlex.quote(str(src)), shlex.quote(f)))
    check_saved(emulator, api, m, target, data)


def test_jq_tmp_and_mv(mount, emulator, api, target):
    m = mount(V)
    f = m.p(target + SUFFIX)
    t = m.p("t.tmp")
    # what jq writes (2-space JSON), computed outside the mount
    data = run(["jq", '.instances[0].className = "MARKER_NEW"'], input=read(f), text=False).stdout
    assert b'"className": "MARKER_NEW"' in data and data.startswith(b"{\n  \"metadata\"")
    emulator.reset_stats()
    sh("jq '.instances[0].className = \"MARKER_NEW\"' %s > %s && mv %s %s"
       % (shlex.quote(f), shlex.quote(t), shlex.quote(t), shlex.quote(f)))
    check_saved(emulator, api, m, target, data)
    assert not os.path.exists(t)


def substitution_case(mount, emulator, api, target, cmd):
    m = mount(V)
    f = m.p(target + SUFFIX)
    before = read(f)
    names_before = api.names(V)
    assert b"MARKER_OLD" in before
    emulator.reset_stats()
    run(cmd(f), timeout=60)
    want = before.replace(b"MARKER_OLD", b"MARKER_NEW")
    check_saved(emulator, api, m, target, want)
    assert target + SUFFIX in os.listdir(m.path)
    # the editor's backup/temp files never reached the platform
    assert api.names(V) == names_before
    assert sorted(x for x in os.listdir(m.path) if x.endswith(SUFFIX)) == sorted(n + SUFFIX for n in names_before)


def test_sed_i(mount, emulator, api, target):
    substitution_case(mount, emulator, api, target, lambda f: ["sed", "-i", "s/MARKER_OLD/MARKER_NEW/", f])


def test_perl_pi(mount, emulator, api, target):
    substitution_case(mount, emulator, api, target, lambda f: ["perl", "-pi", "-e", "s/MARKER_OLD/MARKER_NEW/", f])


@pytest.mark.parametrize("backupcopy", ["no", "yes"])
def test_vim(mount, emulator, api, target, backupcopy):
    substitution_case(mount, emulator, api, target,
                      lambda f: ["vim", "-N", "-u", "DEFAULTS", "-i", "NONE", "-Es",
                                 "-c", "set backupcopy=" + backupcopy,
                                 "-c", "%s/MARKER_OLD/MARKER_NEW/", "-c", "wq", f])


def test_python_tempfile_replace(mount, emulator, api, target):
    import tempfile
    m = mount(V)
    f = m.p(target + SUFFIX)
    read(f)
    emulator.reset_stats()
    data = new_bytes(target)
    fd, tmp = tempfile.mkstemp(dir=m.path, prefix=".tmp", suffix=".json")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, f)
    check_saved(emulator, api, m, target, data)


def test_unchanged_document_costs_nothing(mount, emulator, api, target, tmp_path):
    api.set_status(V, None, [target], "Completed")
    m = mount(V)
    f = m.p(target + SUFFIX)
    t = str(tmp_path / "t")
    emulator.reset_stats()
    sh("cat %s > %s && cp %s %s" % (shlex.quote(f), t, t, shlex.quote(f)))
    sh("jq . %s > %s && cp %s %s" % (shlex.quote(f), t, t, shlex.quote(f)))        # 2-space indent
    sh("jq -c . %s > %s && cp %s %s" % (shlex.quote(f), t, t, shlex.quote(f)))     # no final newline
    routes = emulator.routes()
    assert emulator.uploads(routes) == 0, routes
    assert emulator.status_changes(routes) == 0, routes
    assert api.status(V, None, target) == "Completed"


def test_rsync_round_trip(mount, emulator, api, tmp_path):
    completed = api.names(V, "train")[0]
    api.set_status(V, "train", [completed], "Completed")
    m = mount(V)
    out = str(tmp_path / "out")
    run(["rsync", "-a", m.path + "/", out + "/"], timeout=120)
    # edit two files outside the mount
    edited = api.names(V, "val")[:2]
    for n in edited:
        p = os.path.join(out, "val", n + SUFFIX)
        d = json.loads(read(p))
        d["tags"] = d.get("tags", []) + ["rsync-edit"]
        write(p, (json.dumps(d, indent=4) + "\n").encode())
    emulator.reset_stats()
    run(["rsync", "-a", out + "/", m.path + "/"], timeout=120)
    routes = emulator.routes()
    assert emulator.uploads(routes) == len(edited), routes
    for n in edited:
        doc = api.document(V, "val", n)
        assert "rsync-edit" in doc["tags"]
        # the mount shows the platform's document now, not the bytes rsync wrote
        assert read(m.p("val", n + SUFFIX)) == pretty_tokens(api.document_bytes(V, "val", n))
        assert api.status(V, "val", n) == "InProgress"
    assert api.status(V, "train", completed) == "Completed"
    # a second rsync uploads nothing; it transfers nothing but the edited files
    # (the mount now serves them with the platform's metadata: filesystem.md §2)
    emulator.reset_stats()
    r = run(["rsync", "-a", "-i", out + "/", m.path + "/"], timeout=120)
    changed = [line for line in r.stdout.splitlines() if not line.startswith(".d")]
    assert all(any(line.endswith(" val/" + n + SUFFIX) for n in edited) for line in changed), r.stdout
    assert emulator.writes() == 0, emulator.routes()
    assert api.status(V, "train", completed) == "Completed"


def test_suffix_json_sdk_folder_copies_in_unchanged(mount, emulator, api, tmp_path):
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    docs = api.folder_documents(V, "train")
    for n, raw in docs.items():
        (sdk / (n + ".json")).write_text(json.dumps(json.loads(raw), indent=2))
    m = mount(V + "/train", opts={"suffix": ".json"})
    emulator.reset_stats()
    run(["cp", "-r", str(sdk) + "/.", m.path + "/"], timeout=120)
    routes = emulator.routes()
    assert emulator.uploads(routes) == 0, routes
    assert emulator.status_changes(routes) == 0, routes
    # one changed file: one upload
    n0 = sorted(docs)[0]
    d = json.loads(docs[n0])
    d["tags"] = ["sdk-edit"]
    (sdk / (n0 + ".json")).write_text(json.dumps(d, indent=2))
    emulator.reset_stats()
    run(["cp", "-r", str(sdk) + "/.", m.path + "/"], timeout=120)
    assert emulator.uploads() == 1
    assert api.document(V, "train", n0)["tags"] == ["sdk-edit"]


def test_metadata_name_from_file_name(mount, emulator, api, target, tmp_path):
    m = mount(V)
    d = base_doc("someone-else.jpg", "MARKER_NEW")
    src = tmp_path / "x.json"
    src.write_text(json.dumps(d))
    emulator.reset_stats()
    run(["cp", str(src), m.p(target + SUFFIX)])
    assert emulator.uploads() == 1
    assert api.document(V, None, target)["metadata"]["name"] == target


def test_creation_type_kept_or_preannotation(mount, emulator, api, target, tmp_path):
    m = mount(V)
    d = base_doc(target, "MARKER_NEW")
    d["instances"][0]["creationType"] = "Manual"
    del d["instances"][1]["creationType"]
    del d["instances"][1]["probability"]
    src = tmp_path / "x.json"
    src.write_text(json.dumps(d))
    run(["cp", str(src), m.p(target + SUFFIX)])
    got = api.document(V, None, target)
    assert got["instances"][0]["creationType"] == "Manual"
    assert got["instances"][1]["creationType"] == "Preannotation"
    assert got["instances"][1]["probability"] == 100


def test_keep_status(mount, emulator, api, target, tmp_path):
    api.set_status(V, None, [target], "Completed")
    m = mount(V, opts={"keep_status": True})
    data = new_bytes(target)
    src = tmp_path / "x.json"
    src.write_bytes(data)
    emulator.reset_stats()
    run(["cp", str(src), m.p(target + SUFFIX)])
    check_saved(emulator, api, m, target, data, status="Completed")
    assert emulator.status_changes() == 0


def test_fsync_then_close_is_one_upload(mount, emulator, api, target):
    m = mount(V)
    data = new_bytes(target)
    emulator.reset_stats()
    with open(m.p(target + SUFFIX), "wb") as f:
        f.write(data[:10])
        f.write(data[10:])
        f.flush()
        os.fsync(f.fileno())
        assert emulator.uploads() == 1
    check_saved(emulator, api, m, target, data)


def test_write_in_folder_with_odd_name(mount, emulator, api):
    odd = [n for n in api.names(V, "train") if any(c in n for c in "%#?&+ ") or not n.isascii()]
    m = mount(V)
    for n in odd:
        d = base_doc(n, "ODD")
        data = (json.dumps(d, indent=4, ensure_ascii=False) + "\n").encode()
        emulator.reset_stats()
        write(m.p("train", n + SUFFIX), data)
        check_saved(emulator, api, m, n, data, folder="train")
