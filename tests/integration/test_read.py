"""Reading: bytes = the platform's document, pretty-printed with tokens verbatim."""
import json
import math
import os
import shlex

from harness import SUFFIX, parse_ts, pretty_tokens, read, run, sh

V = "Demo Vector"

RAW = ('{"metadata":{"name":"raw.jpg","width":12.3,"height":0.1,"id":%d,"projectId":%d},'
       '"instances":[{"type":"point","x":1e-7,"y":340.55,"classId":-1,"className":"c",'
       '"big":123456789012345678901234567890,"label":"\\u00e9t\\u00e9 \\"q\\"","probability":100,'
       '"creationType":"Manual","attributes":[]}],"tags":["\\u00e9"],"comments":[]}')


def seed_raw(emulator, api, folder="train"):
    r = emulator.seed(V, folder=folder, items=["raw.jpg"])
    iid = r["items"]["raw.jpg"]
    raw = RAW % (iid, r["project_id"])
    api.upload(V, folder, "raw.jpg", raw)
    # the platform serves the stored bytes, with metadata.status filled in
    # from the item (api.md §11): every other token verbatim
    got = api.document_bytes(V, folder, "raw.jpg")
    sent = json.loads(raw)
    back = json.loads(got)
    assert back["metadata"].pop("status", "NotStarted") == "NotStarted"
    assert back == sent
    for tok in (b'"width":12.3', b'"x":1e-7', b'"big":123456789012345678901234567890',
                b'"label":"\\u00e9t\\u00e9 \\"q\\""'):
        assert tok in got, (tok, got)
    return got.decode()


def test_numbers_and_strings_verbatim(mount, emulator, api):
    raw = seed_raw(emulator, api)
    m = mount(V)
    data = read(m.p("train", "raw.jpg" + SUFFIX))
    for tok in (b'"width": 12.3', b'"height": 0.1', b'"x": 1e-7', b'"y": 340.55',
                b'"big": 123456789012345678901234567890', b'"\\u00e9t\\u00e9 \\"q\\""',
                b'"classId": -1'):
        assert tok in data, (tok, data)
    assert data == pretty_tokens(raw)
    assert data.endswith(b"}\n")
    assert b"\n    \"metadata\": {\n        \"name\"" in data


def test_every_item_bytes_size_mtime(mount, api):
    m = mount(V)
    for folder in (None, "train", "val"):
        docs = api.folder_documents(V, folder)
        items = {i["name"]: i for i in api.items(V, folder)}
        d = m.p(folder) if folder else m.path
        for name, raw in docs.items():
            p = os.path.join(d, name + SUFFIX)
            data = read(p)
            assert data == pretty_tokens(raw), name
            st = os.stat(p)
            assert st.st_size == len(data), name
            assert abs(st.st_mtime - parse_ts(items[name]["updatedAt"])) < 0.0015, (name, st.st_mtime,
                                                                                 items[name]["updatedAt"])
            assert st.st_mode & 0o777 == 0o644


def test_cat_jq_grep_python(mount, api):
    m = mount(V)
    train = m.p("train")
    names = api.names(V, "train")
    docs = api.folder_documents(V, "train")
    # cat of all files = the concatenation, in glob order
    r = run(["bash", "-c", "LC_ALL=C; cat -- %s/*%s" % (shlex.quote(train), SUFFIX)], text=False)
    files = sorted(os.listdir(train))
    assert r.stdout == b"".join(pretty_tokens(docs[f[:-len(SUFFIX)]]) for f in files)
    # jq reads each file and sees the item's name
    for n in names:
        r = run(["jq", "-r", ".metadata.name", os.path.join(train, n + SUFFIX)])
        assert r.stdout == n + "\n"
    # grep -r finds a token that is on the platform
    r = run(["grep", "-rl", '"metadata"', m.path])
    assert len(r.stdout.splitlines()) == sum(len(api.names(V, f)) for f in (None, "train", "val"))
    # python json.load equals the platform's parsed document
    for n in names:
        with open(os.path.join(train, n + SUFFIX)) as f:
            assert json.load(f) == json.loads(docs[n]), n


def test_cp_r_out(mount, api, tmp_path):
    m = mount(V)
    out = tmp_path / "out"
    run(["cp", "-r", m.p("train"), str(out)])
    docs = api.folder_documents(V, "train")
    assert sorted(os.listdir(out)) == sorted(n + SUFFIX for n in docs)
    for n, raw in docs.items():
        assert read(str(out / (n + SUFFIX))) == pretty_tokens(raw), n


def test_rsync_out(mount, api, tmp_path):
    m = mount(V)
    out = tmp_path / "out"
    run(["rsync", "-a", m.path + "/", str(out) + "/"], timeout=120)
    for folder in (None, "train", "val"):
        docs = api.folder_documents(V, folder)
        d = out / folder if folder else out
        got = sorted(x for x in os.listdir(d) if x.endswith(SUFFIX))
        assert got == sorted(n + SUFFIX for n in docs)
        items = {i["name"]: i for i in api.items(V, folder)}
        for n, raw in docs.items():
            p = str(d / (n + SUFFIX))
            assert read(p) == pretty_tokens(raw), n
            # rsync -a kept the mtime = updatedAt (whole seconds at least)
            assert int(os.stat(p).st_mtime) == int(parse_ts(items[n]["updatedAt"]))


def test_ls_l_costs_bulk_batches(mount, api, emulator):
    m = mount(V)
    n = len(api.names(V, "train"))
    emulator.reset_stats()
    r = sh("ls -l %s" % shlex.quote(m.p("train")))
    lines = [x for x in r.stdout.splitlines() if x.endswith(SUFFIX)]
    assert len(lines) == n
    docs = api.folder_documents(V, "train")
    routes = emulator.routes()
    stream = emulator.count("POST /api/v4/items/annotations/download", routes)
    assert stream >= 1
    assert emulator.downloads(routes) <= math.ceil(n / 500) * 2 + 2, routes
    assert emulator.downloads(routes) < n / 2, routes
    # sizes shown = exact byte sizes
    sizes = {}
    for line in lines:
        parts = line.split(None, 8)
        sizes[parts[8]] = int(parts[4])
    for name, raw in docs.items():
        assert sizes[name + SUFFIX] == len(pretty_tokens(raw)), name


def test_find_size_costs_bulk(mount, api, emulator):
    m = mount(V)
    n = sum(len(api.names(V, f)) for f in (None, "train", "val"))
    emulator.reset_stats()
    r = sh("find %s -type f -size +0 | wc -l" % shlex.quote(m.path))
    assert int(r.stdout) == n
    routes = emulator.routes()
    assert emulator.downloads(routes) <= 3 * 2 + 2, routes


def test_unannotated_item_reads_as_skeleton(mount, emulator, api):
    emulator.seed(V, folder="val", items=["fresh.jpg"])
    m = mount(V)
    raw = api.document_bytes(V, "val", "fresh.jpg")
    data = read(m.p("val", "fresh.jpg" + SUFFIX))
    assert data == pretty_tokens(raw)
    doc = json.loads(data)
    assert doc["instances"] == [] and doc["metadata"]["name"] == "fresh.jpg"
    assert doc["metadata"]["status"] == "NotStarted"
    assert os.stat(m.p("val", "fresh.jpg" + SUFFIX)).st_size == len(data)
