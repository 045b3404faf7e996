"""Tests of sa-emulator against docs/api.md (standard library only).

Run: /usr/bin/python3 -m pytest tests/emulator
The binary is $SA_EMULATOR, default build/tests/emulator/sa-emulator.
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("SA_EMULATOR",
                        os.path.join(ROOT, "build/tests/emulator/sa-emulator"))
TOKEN = "emulator-token=1"
DELIM = b"\\n;)\\n"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SEC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$")


class Emulator:
    """One sa-emulator process on a free port; always killed by stop()."""

    def __init__(self, *args, timeout=30):
        self.dir = tempfile.mkdtemp(prefix="sa-emu-test-")
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "log")
        self.log = open(self.log_path, "wb")
        self.args = [BINARY, "--port", "0", "--port-file", self.port_file,
                     "--quiet"] + list(args)
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("sa-emulator exited %s: %s" % (
                    self.proc.returncode, self.read_log()))
            if time.monotonic() - t0 > timeout:
                self.stop()
                raise RuntimeError("sa-emulator did not start")
            time.sleep(0.02)
        self.startup_seconds = time.monotonic() - t0
        with open(self.port_file) as f:
            self.port = int(f.read().strip())

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        """Stops the process; fails on a sanitizer report in its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self.log.closed:
            self.log.close()
            log = self.read_log()
            shutil.rmtree(self.dir, ignore_errors=True)
            for bad in ("ERROR: AddressSanitizer", "runtime error:",
                        "ERROR: LeakSanitizer"):
                assert bad not in log, log
        return self.proc.returncode

    # -- HTTP ----------------------------------------------------------------
    def request(self, method, path, body=None, headers=None, token=TOKEN,
                ctx=None, timeout=30):
        h = {}
        if token is not None:
            h["Authorization"] = token
        if ctx is not None:
            h["x-sa-entity-context"] = base64.b64encode(
                json.dumps(ctx).encode()).decode()
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif isinstance(body, str):
            body = body.encode()
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, expect=200, **kw):
        st, hdrs, data = self.request(method, path, body, **kw)
        assert st == expect, (method, path, st, data[:500])
        assert hdrs.get("content-type", "").startswith("application/json")
        return json.loads(data)

    def control(self, method, path, body=None):
        return self.json(method, "/_emulator/" + path, body, token=None)

    # -- helpers built on the API ---------------------------------------------
    def project(self, name):
        d = self.json("GET", "/api/v1/projects?name=%s&offset=0" %
                      name.replace(" ", "+"))
        return [p for p in d["data"] if p["name"] == name][0]

    def folder(self, pid, name):
        return self.json("GET", "/folder/getFolderByName?project_id=%d&name=%s"
                         % (pid, name))

    def search(self, pid, fid=None, search=None, limit=2000, offset=0,
               expect=200):
        ctx = {"team_id": 1, "project_id": pid}
        if fid is not None:
            ctx["folder_id"] = fid
        q = {"limit": limit, "offset": offset,
             "search": {"$and": search} if search else {},
             "join": [{"field": "metadata", "select": ["path"]}]}
        return self.json("POST", "/api/v1/items/search?team_id=1",
                         {"query": q}, ctx=ctx, expect=expect)

    def stream(self, pid, ids, folder_id=None):
        path = "/api/v4/items/annotations/download?project_id=%d&limit=%d" % (
            pid, len(ids))
        if folder_id:
            path += "&folder_id=%d" % folder_id
        st, _, data = self.request("POST", path, {"image_ids": ids})
        assert st == 200, data
        return data


def parse_stream(data):
    """Parses like the SDK: raw decode at the cursor, then skip 6 bytes."""
    dec = json.JSONDecoder()
    text = data.decode("utf-8")
    out, pos = [], 0
    while pos < len(text):
        if text.startswith("\\n;)\\n", pos):
            pos += 6
            continue
        obj, end = dec.raw_decode(text, pos)
        assert "metadata" in obj
        out.append(obj)
        pos = end
        assert text[pos:pos + 6] == "\\n;)\\n", text[pos:pos + 20]
        pos += 6
    return out


def with_status(doc, status):
    """What the emulator serves for stored bytes `doc` (sa_doc_with_status),
    for the simple documents of these tests: a top-level "metadata" whose
    members hold no '}' and no "status" gets ',"status":…' before its '}';
    no metadata: '"metadata":{"status":…}' becomes the first member."""
    q = json.dumps(status, ensure_ascii=False).encode()
    at = doc.find(b'"metadata"')
    if at < 0:
        first = doc.index(b"{") + 1
        rest = doc[first:].lstrip()
        sep = b"" if rest.startswith(b"}") else b","
        return doc[:first] + b'"metadata":{"status":' + q + b"}" + sep + \
            doc[first:]
    assert b'"status"' not in doc[at:doc.index(b"}", at)]
    close = doc.index(b"}", at)
    inner = doc[doc.index(b"{", at) + 1:close]
    end = doc.index(b"{", at) + 1 + len(inner.rstrip())
    sep = b"," if inner.strip() else b""
    return doc[:end] + sep + b'"status":' + q + doc[end:]


class frozen_clock:
    """with frozen_clock(emu, ms): the emulator's clock stands at ms (None:
    now) inside, and is back to real time after, whatever happens."""

    def __init__(self, emu, ms=None):
        self.emu, self.ms = emu, ms

    def __enter__(self):
        if self.ms is None:
            self.ms = self.emu.control("GET", "clock")["now_ms"]
        self.emu.control("POST", "clock", {"freeze_ms": self.ms})
        return self

    def advance(self, ms):
        return self.emu.control("POST", "clock", {"advance_ms": ms})["now_ms"]

    def __exit__(self, *exc):
        self.emu.control("POST", "clock", {"real": True})


def multipart(parts, boundary="emuBoundary7MA4YWxk"):
    """parts: list of (disposition-name-text, bytes)."""
    b = b""
    for disp, content in parts:
        b += b"--" + boundary.encode() + b"\r\n"
        b += b"Content-Disposition: form-data; " + disp.encode() + b"\r\n"
        b += b"Content-Type: application/json\r\n\r\n" + content + b"\r\n"
    b += b"--" + boundary.encode() + b"--\r\n"
    return b, "multipart/form-data; boundary=" + boundary


def quoted(name):
    q = name.replace("\\", "\\\\").replace('"', '\\"')
    return 'name="%s"; filename="%s"' % (q, q)


def upload(emu, pid, fid, parts, names):
    body, ctype = multipart(parts)
    qs = "team_id=1&project_id=%d&folder_id=%d" % (pid, fid)
    for n in names:
        qs += "&image_names%%5B%%5D=%s" % urlquote(n)
    return emu.request("POST", "/api/v4/items/annotations/upload?" + qs, body,
                       headers={"Content-Type": ctype})


def urlquote(s):
    from urllib.parse import quote_plus
    return quote_plus(s)


@pytest.fixture(scope="module")
def emu():
    e = Emulator("--seed", "demo", "--seed-items", "Bench/f=4500",
                 "--token", "other-key=77", "--token", TOKEN)
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture
def fresh():
    """A private emulator per test; the list collects extra instances."""
    started = []

    def start(*args):
        e = Emulator(*args)
        started.append(e)
        return e
    try:
        yield start
    finally:
        for e in started:
            e.stop()


# ---------------------------------------------------------------------------
def test_auth(emu):
    for tok in (None, "wrong=1", "Bearer " + TOKEN, TOKEN + "x"):
        st, hdrs, body = emu.request("GET", "/user/ME", token=tok)
        assert st == 401
        assert json.loads(body) == {"error": "Not authorized"}
    me = emu.json("GET", "/user/ME?team_id=1")
    assert me["email"] and me["id"]
    assert emu.json("GET", "/api/v1/team/1?team_id=1&include_users=False")["id"] == 1
    assert emu.json("GET", "/api/v1/team/77", token="other-key=77")["id"] == 77
    assert emu.json("GET", "/user/ME", token="other-key=77")["team_id"] == 77


def test_default_token_only_without_token_option(fresh):
    e = fresh("--token", "k=5")
    assert e.request("GET", "/user/ME")[0] == 401
    assert e.json("GET", "/user/ME", token="k=5")["team_id"] == 5


def test_projects(emu):
    d = emu.json("GET", "/api/v1/projects?team_id=1&name=dEmO&offset=0")
    names = [p["name"] for p in d["data"]]
    assert d["count"] == len(names) == 8
    assert "Demo Vector" in names and "Bench" not in names
    p = emu.project("Demo Vector")
    for k in ("id", "team_id", "name", "type", "description", "creator_id",
              "status", "folder_id", "workflow_id", "upload_state",
              "imageCount", "completedImagesCount", "createdAt", "updatedAt"):
        assert k in p, k
    assert p["type"] == 1 and p["workflow_id"] == 1 and p["upload_state"] == 1
    assert TS_RE.match(p["createdAt"])
    assert emu.json("GET", "/api/v1/project/%d" % p["id"]) == p
    types = {emu.project(n)["type"] for n in (
        "Demo Video", "Demo Pixel", "Demo Document", "Demo Tiled",
        "Demo PointCloud", "Demo Multimodal")}
    assert types == {3, 2, 4, 5, 7, 8}
    assert emu.project("Demo Custom Workflow")["workflow_id"] == 2
    emu.json("GET", "/api/v1/project/999999", expect=404)


def test_folders(emu):
    p = emu.project("Demo Vector")
    root = emu.folder(p["id"], "root")
    assert root["is_root"] is True and root["id"] == p["folder_id"]
    train = emu.folder(p["id"], "train")
    assert train["is_root"] is False and train["project_id"] == p["id"]
    assert emu.json("GET", "/folder/getFolderById?folder_id=%d&project_id=%d"
                    % (train["id"], p["id"])) == train
    emu.json("GET", "/folder/getFolderByName?project_id=%d&name=nope"
             % p["id"], expect=404)
    lst = emu.json("GET", "/folders?project_id=%d&offset=0" % p["id"])
    assert lst["count"] == 3
    assert [f["name"] for f in lst["data"]] == ["root", "train", "val"]
    for k in ("id", "name", "status", "project_id", "team_id", "is_root",
              "completedCount", "createdAt", "updatedAt", "folderUsers"):
        assert k in train


def test_demo_contents(emu):
    p = emu.project("Demo Vector")
    root = emu.search(p["id"], p["folder_id"])
    assert root["count"] == 3
    train = emu.folder(p["id"], "train")
    items = emu.search(p["id"], train["id"])["data"]
    names = {i["name"] for i in items}
    assert len(items) >= 25
    for n in ("car 01.jpg", "straße_ü.jpg", "東京.jpg", "50%_off.jpg",
              "tag#1.jpg", "why?.jpg", "a&b.jpg", "1+1.jpg"):
        assert n in names
    assert emu.search(p["id"], emu.folder(p["id"], "val")["id"])["count"] >= 5
    docs = parse_stream(emu.stream(p["id"], [i["id"] for i in items]))
    annotated = [d for d in docs if d["instances"]]
    assert 0 < len(annotated) < len(docs)
    types = {i["type"] for d in annotated for i in d["instances"]}
    assert types >= {"bbox", "polygon", "polyline", "point", "ellipse",
                     "cuboid"}
    insts = [i for d in annotated for i in d["instances"]]
    assert any("creationType" not in i for i in insts)
    assert all("classId" in i and "className" in i for i in insts)
    raw = emu.stream(p["id"], [items[0]["id"]])
    assert b"12.3" in raw and b"340.55" in raw
    # Video documents carry duration and timelines
    v = emu.project("Demo Video")
    vitems = emu.search(v["id"], v["folder_id"])["data"]
    assert 2 <= len(vitems) <= 3
    vdocs = parse_stream(emu.stream(v["id"], [i["id"] for i in vitems]))
    for d in vdocs:
        assert d["metadata"]["duration"] > 0
        kinds = {i["meta"]["type"] for i in d["instances"]}
        assert kinds >= {"bbox", "point", "polygon", "event"}
        assert all("parameters" in i for i in d["instances"])
    for name, n in (("Demo Document", 2), ("Demo Tiled", 2),
                    ("Demo PointCloud", 2), ("Demo Multimodal", 2),
                    ("Demo Custom Workflow", 3)):
        q = emu.project(name)
        assert emu.search(q["id"], q["folder_id"])["count"] == n


def test_pagination_style_b(emu):
    b = emu.project("Bench")
    f = emu.folder(b["id"], "f")
    seen = []
    for off, n in ((0, 2000), (2000, 2000), (4000, 500)):
        page = emu.search(b["id"], f["id"], offset=off)
        assert page["count"] == 4500
        assert len(page["data"]) == n
        seen += [i["id"] for i in page["data"]]
    assert seen == sorted(seen) and len(set(seen)) == 4500
    assert emu.search(b["id"], f["id"], offset=4500)["data"] == []
    assert len(emu.search(b["id"], f["id"], limit=10)["data"]) == 10
    # limit above 2000 is capped
    assert len(emu.search(b["id"], f["id"], limit=5000)["data"]) == 2000
    item = emu.search(b["id"], f["id"], limit=1)["data"][0]
    assert item["name"] == "img_000001.jpg"
    for k in ("id", "name", "folder_id", "project_id", "annotation_status",
              "approval_status", "is_pinned", "entropy_value", "createdAt",
              "updatedAt", "metadata", "assignments"):
        assert k in item
    assert item["approval_status"] is None and item["is_pinned"] is False
    assert item["metadata"]["path"] and item["assignments"] == []
    assert isinstance(item["annotation_status"], int)


def test_pagination_style_a(fresh):
    e = fresh()
    for k in range(3):
        e.control("POST", "seed", {"project": "Pg %d" % k})
    d = e.json("GET", "/api/v1/projects?name=pg&offset=1")
    assert d["count"] == 3 and len(d["data"]) == 2
    e.json("GET", "/api/v1/projects?offset=-1", expect=400)
    # /folders: pages of 2000, count = total, the root included
    for k in range(2002):
        e.control("POST", "seed", {"project": "Pg 0", "folder": "f%04d" % k})
    pid = e.project("Pg 0")["id"]
    p1 = e.json("GET", "/folders?project_id=%d&offset=0" % pid)
    p2 = e.json("GET", "/folders?project_id=%d&offset=2000" % pid)
    assert p1["count"] == p2["count"] == 2003
    assert len(p1["data"]) == 2000 and len(p2["data"]) == 3
    assert p1["data"][0]["is_root"] is True
    assert len({f["id"] for f in p1["data"] + p2["data"]}) == 2003


def test_search_filters(emu):
    p = emu.project("Demo Vector")
    train = emu.folder(p["id"], "train")
    pid, fid = p["id"], train["id"]

    def names(search, folder=fid):
        return sorted(i["name"] for i in emu.search(pid, folder, search)["data"])
    assert names([{"name": {"$eq": "car 01.jpg"}}]) == ["car 01.jpg"]
    assert names([{"name": {"$in": ["a&b.jpg", "1+1.jpg", "nope"]}}]) == [
        "1+1.jpg", "a&b.jpg"]
    assert names([{"name": {"$cont": "car"}}]) == ["car 01.jpg", "car 02.jpg"]
    assert names([{"name": {"$starts": "car 0"}}]) == ["car 01.jpg",
                                                       "car 02.jpg"]
    assert "東京.jpg" in names([{"name": {"$ends": ".jpg"}}])
    assert "ünïcödé façade.png" not in names([{"name": {"$ends": ".jpg"}}])
    all_items = emu.search(pid, fid)["data"]
    one = all_items[3]
    assert names([{"id": {"$eq": one["id"]}}]) == [one["name"]]
    assert len(names([{"id": {"$in": [i["id"] for i in all_items[:5]]}}])) == 5
    st = [i["annotation_status"] for i in all_items]
    by = lambda s: sorted(i["name"] for i in all_items if s(i["annotation_status"]))
    assert names([{"annotation_status": {"$eq": 1}}]) == by(lambda v: v == 1)
    assert names([{"annotation_status": {"$in": [2, 5]}}]) == by(
        lambda v: v in (2, 5))
    assert names([{"$or": [{"annotation_status": {"$ne": 1}},
                           {"annotation_status": {"$isnull": True}}]}]) == by(
        lambda v: v != 1)
    assert names([{"$or": [{"annotation_status": {"$notin": [1, 2]}},
                           {"annotation_status": {"$isnull": True}}]}]) == by(
        lambda v: v not in (1, 2))
    assert 1 in st and len(set(st)) > 1
    # project-wide (no folder_id): ids from several folders
    root_ids = [i["id"] for i in emu.search(pid, p["folder_id"])["data"]]
    mixed = [root_ids[0], one["id"]]
    got = emu.search(pid, None, [{"id": {"$in": mixed}}])
    assert sorted(i["id"] for i in got["data"]) == sorted(mixed)
    assert got["count"] == 2
    # team_id as a string (work-management style), spaces in the JSON
    ctx = {"team_id": "1", "project_id": pid, "folder_id": fid}
    d = emu.json("POST", "/api/v1/items/search", {"query": {
        "limit": 2000, "offset": 0, "search": {}}}, ctx=ctx)
    assert d["count"] == len(all_items)
    emu.search(pid, fid, [{"nosuchfield": {"$eq": 1}}], expect=400)
    emu.search(pid, fid, [{"name": {"$regex": "x"}}], expect=400)


def test_item_by_id(emu):
    p = emu.project("Demo Vector")
    item = emu.search(p["id"], p["folder_id"])["data"][0]
    got = emu.json("GET", "/api/v1/items/%d" % item["id"],
                   ctx={"team_id": 1, "project_id": p["id"]})
    assert got == item
    emu.json("GET", "/api/v1/items/%d" % item["id"], expect=404,
             ctx={"team_id": 1, "project_id": p["id"] + 1})
    emu.json("GET", "/api/v1/items/1", expect=404)


def test_workflows(emu):
    d = emu.json("GET", "/api/v1/workflows?filter=id%7C%7C%24eq%7C%7C1&offset=0")
    assert d["count"] == 1 and d["data"][0]["type"] == "system"
    d = emu.json("GET", "/api/v1/workflows?filter=id||$eq||2&offset=0")
    assert d["data"][0]["id"] == 2 and d["data"][0]["type"] == "custom"
    s = emu.json("GET", "/api/v1/workflows/1/workflowstatuses?join=status")
    assert [(x["value"], x["status"]["name"]) for x in s["data"]] == [
        (1, "NotStarted"), (2, "InProgress"), (3, "QualityCheck"),
        (4, "Returned"), (5, "Completed"), (6, "Skipped")]
    s = emu.json("GET", "/api/v1/workflows/2/workflowstatuses?join=status")
    assert [(x["value"], x["status"]["name"]) for x in s["data"]] == [
        (1, "NotStarted"), (2, "InProgress"), (7, "Review"), (5, "Completed")]
    r = emu.json("GET", "/api/v1/workflows/1/workflowroles?join=role")
    assert {(x["role_id"], x["role"]["name"]) for x in r["data"]} == {
        (4, "Annotator"), (5, "QA")}
    emu.json("GET", "/api/v1/workflows/9/workflowstatuses?join=status",
             expect=404)


def test_classes_templates_schema(emu):
    p = emu.project("Demo Vector")
    c = emu.json("GET", "/classes?project_id=%d&offset=0" % p["id"])
    assert c["count"] == len(c["data"]) >= 2
    assert all("attribute_groups" in k and "name" in k for k in c["data"])
    t = emu.json("GET", "/templates?team_id=1")
    assert t["data"] == []
    s = emu.json("GET", "/api/v4/items/annotations/schema?team_id=1"
                 "&project_type=1&version=V1.00")
    assert s["$schema"].startswith("http://json-schema.org/draft-07")
    assert "metadata" in s["properties"] and s != {}


def test_download_method_and_stream(emu):
    p = emu.project("Demo Vector")
    items = emu.search(p["id"], p["folder_id"])["data"]
    ids = [i["id"] for i in items]
    m = emu.json("POST", "/api/v4/items/annotations/download/method?team_id=1"
                 "&limit=4", {"project_id": p["id"], "item_ids": ids + [1]})
    assert m["large"] == []
    got = [x["id"] for b in m["small"].values() for x in b["data"]]
    assert sorted(got) == sorted(ids)
    raw = emu.stream(p["id"], ids + [424242])
    assert raw.endswith(DELIM)
    assert raw.count(DELIM) == len(ids)
    for piece in raw.split(DELIM)[:-1]:
        assert piece[:1] == b"{" and piece[-1:] == b"}"
        json.loads(piece)
    docs = parse_stream(raw)
    assert [d["metadata"]["id"] for d in docs] == ids
    # the item without a document: the exact compact skeleton
    bare = [i for i in items if i["name"] == "street_003.jpg"][0]
    skel = emu.stream(p["id"], [bare["id"]])
    assert skel == (
        b'{"metadata":{"name":"street_003.jpg","height":null,"width":null,'
        b'"status":"NotStarted","pinned":false,"annotatorEmail":null,'
        b'"qaEmail":null,"projectId":%d,"id":%d},"instances":[],"tags":[],'
        b'"comments":[]}' % (p["id"], bare["id"]) + DELIM)
    # folder_id restricts; other projects' ids are left out
    train = emu.folder(p["id"], "train")
    assert emu.stream(p["id"], ids, folder_id=train["id"]) == b""
    other = emu.project("Demo Pixel")
    assert emu.stream(other["id"], ids) == b""


def test_batches_large_and_v301(fresh):
    e = fresh("--seed", "demo", "--stream-batch", "2",
              "--large-threshold", "3000")
    p = e.project("Demo Vector")
    items = e.search(p["id"], p["folder_id"])["data"]
    ids = [i["id"] for i in items]
    m = e.json("POST", "/api/v4/items/annotations/download/method",
               {"project_id": p["id"], "item_ids": ids})
    large = [x["id"] for x in m["large"]]
    small = [x["id"] for b in m["small"].values() for x in b["data"]]
    assert len(large) == 2 and len(small) == 1          # skeleton is small
    assert sorted(large + small) == sorted(ids)
    e2 = fresh("--seed", "demo", "--stream-batch", "2")
    m2 = e2.json("POST", "/api/v4/items/annotations/download/method",
                 {"project_id": p["id"], "item_ids": ids})
    assert [len(b["data"]) for b in m2["small"].values()] == [2, 1]
    assert list(m2["small"].keys()) == ["0", "1"]
    qs = ("team_id=1&project_id=%d&desired_transform_version=export"
          "&desired_version=V1.00&current_transform_version=V1.00" % p["id"])
    for iid in large:
        assert e.json("POST", "/api/v4/items/%d/annotations/sync?%s"
                      "&current_source=main&desired_source=secondary"
                      % (iid, qs))["status"] == "SUCCESS"
        assert e.json("GET", "/api/v4/items/%d/annotations/sync/status?%s"
                      % (iid, qs))["status"] == "SUCCESS"
        st, _, body = e.request(
            "POST", "/api/v3.01/items/%d/annotations/download?team_id=1"
            "&project_id=%d&annotation_type=MAIN&version=V1.00" % (iid, p["id"]))
        assert st == 200
        assert body + DELIM == e.stream(p["id"], [iid])
    e.json("POST", "/api/v3.01/items/1/annotations/download?project_id=%d"
           % p["id"], expect=404)


def seed_upload_targets(emu, project="Up", names=None):
    names = names or ["a.jpg", 'q"uote.jpg', "back\\slash.jpg",
                      "bare.jpg", "ünï cödé.jpg"]
    return emu.control("POST", "seed", {"project": project, "folder": "in",
                                        "items": names})


def test_upload_byte_exact(emu):
    with frozen_clock(emu) as clock:
        s = seed_upload_targets(emu)
        pid, fid, ids = s["project_id"], s["folder_id"], s["items"]
        before = {i["name"]: i["updatedAt"]
                  for i in emu.search(pid, fid)["data"]}
        clock.advance(1000)
        upload_byte_exact(emu, pid, fid, ids, before)


def upload_byte_exact(emu, pid, fid, ids, before):
    doc_a = (b'{"metadata": {"name": "a.jpg"}, "instances": [{"type": "bbox",'
             b' "points": {"x1": 12.3, "y1": 0.1, "x2": 1e-7, "y2": 340.55},'
             b' "big": 123456789012345678901234567890}], "tags": ["\\u00fc"]}')
    doc_q = b'{"metadata":{"name":"q\\"uote.jpg"},"instances":[],"x":1.50}'
    doc_b = b'{"metadata":{"name":"back\\\\slash.jpg"},"n":-0.0}'
    doc_bare = b'{"metadata":{"name":"bare.jpg"},"v":2.50E+3}'
    doc_u = '{"metadata":{"name":"ünï cödé.jpg"},"t":"東京"}'.encode()
    parts = [
        (quoted("a.jpg"), b'{"data": ' + doc_a + b'}'),
        (quoted('q"uote.jpg'), b'{"data":' + doc_q + b'}'),
        (quoted("back\\slash.jpg"), b'{"data":' + doc_b + b'}'),
        ("name=bare.jpg; filename=bare.jpg", b'{"data":' + doc_bare + b'}'),
        (quoted("ünï cödé.jpg"), b'{"data":' + doc_u + b'}'),
        (quoted("missing.jpg"), b'{"data":{"metadata":{}}}'),
    ]
    names = [n for n in ids] + ["missing.jpg"]
    st, _, body = upload(emu, pid, fid, parts, names)
    assert st == 200, body
    res = json.loads(body)
    assert res == {"failedItems": ["missing.jpg"], "missingResources": {
        "class": [], "template": [], "attribute": [], "attributeGroup": []}}
    order = ["a.jpg", 'q"uote.jpg', "back\\slash.jpg", "bare.jpg",
             "ünï cödé.jpg"]
    raw = emu.stream(pid, [ids[n] for n in order])
    # byte for byte, but for the status the server fills in
    assert raw == DELIM.join(with_status(d, "NotStarted") for d in (
        doc_a, doc_q, doc_b, doc_bare, doc_u)) + DELIM
    assert raw.startswith(b'{"metadata": {"name": "a.jpg","status":"NotStarted"}, '
                          b'"instances": [{"type": "bbox",')
    st, _, one = emu.request(
        "POST", "/api/v3.01/items/%d/annotations/download?project_id=%d"
        % (ids["a.jpg"], pid))
    assert one == with_status(doc_a, "NotStarted")
    after = {i["name"]: i["updatedAt"] for i in emu.search(pid, fid)["data"]}
    for n in order:
        assert SEC_RE.match(after[n]) and after[n] > before[n]
    # the status is not changed by an upload (the client sets it)
    assert {i["annotation_status"] for i in emu.search(pid, fid)["data"]} == {1}


def test_upload_bad_parts(emu):
    s = seed_upload_targets(emu, "Up2", ["x.jpg", "y.jpg", "z.jpg", "w.jpg"])
    pid, fid = s["project_id"], s["folder_id"]
    parts = [(quoted("x.jpg"), b'{"data": [1, 2]}'),
             (quoted("y.jpg"), b'{"notdata": {}}'),
             (quoted("z.jpg"), b'{"data": {"a": }'),
             (quoted("w.jpg"), b'{"data": {"ok": true}}')]
    st, _, body = upload(emu, pid, fid, parts, ["x.jpg", "y.jpg", "z.jpg",
                                                "w.jpg"])
    assert st == 200
    assert json.loads(body)["failedItems"] == ["x.jpg", "y.jpg", "z.jpg"]
    assert emu.stream(pid, [s["items"]["w.jpg"]]) == (
        b'{"metadata":{"status":"NotStarted"},"ok": true}' + DELIM)


@pytest.mark.parametrize("body,ctype", [
    (b"not multipart at all", "multipart/form-data; boundary=zzz"),
    (b"--zzz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{}",
     "multipart/form-data; boundary=zzz"),
    (b"--zzz\r\nno-blank-line", "multipart/form-data; boundary=zzz"),
    (b"--zzz\r\n\r\n{}\r\n--zzz--", "multipart/form-data; boundary=zzz"),
    (b"{}", "application/json"),
    (b"", "multipart/form-data"),
])
def test_upload_malformed(emu, body, ctype):
    p = emu.project("Demo Vector")
    st, _, data = emu.request(
        "POST", "/api/v4/items/annotations/upload?project_id=%d&folder_id=%d"
        % (p["id"], p["folder_id"]), body, headers={"Content-Type": ctype})
    assert st == 400 and "error" in json.loads(data)
    assert emu.json("GET", "/user/ME")["id"]


def test_updated_at_moves_with_ms(fresh):
    """--ms-timestamps: real milliseconds, strictly increasing."""
    emu = fresh("--ms-timestamps")
    s = emu.control("POST", "seed", {"project": "Clock", "items": ["c.jpg"]})
    pid, fid, iid = s["project_id"], s["folder_id"], s["items"]["c.jpg"]
    seen = []
    for k in range(5):
        part = [(quoted("c.jpg"), b'{"data":{"k":%d}}' % k)]
        assert upload(emu, pid, fid, part, ["c.jpg"])[0] == 200
        seen.append(emu.json("GET", "/api/v1/items/%d" % iid)["updatedAt"])
        emu.json("PUT", "/image/updateAnnotationStatusBulk?project_id=%d" % pid,
                 {"folder_id": fid, "annotation_status": 2,
                  "image_names": ["c.jpg"]})
        seen.append(emu.json("GET", "/api/v1/items/%d" % iid)["updatedAt"])
    assert all(TS_RE.match(t) for t in seen)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert any(not t.endswith(".000Z") for t in seen)


def test_status_bulk(emu):
    s = emu.control("POST", "seed", {"project": "St", "folder": "f",
                                     "items": ["s1.jpg", "s2.jpg", "s3.jpg"]})
    pid, fid = s["project_id"], s["folder_id"]
    url = "/image/updateAnnotationStatusBulk?project_id=%d&team_id=1" % pid
    emu.json("PUT", url, {"folder_id": fid, "annotation_status": 5,
                          "image_names": ["s1.jpg", "s3.jpg", "nope.jpg"]})
    st = {i["name"]: i["annotation_status"] for i in emu.search(pid, fid)["data"]}
    assert st == {"s1.jpg": 5, "s2.jpg": 1, "s3.jpg": 5}
    emu.json("PUT", url, {"folder_id": fid, "annotation_status": 7,
                          "image_names": ["s1.jpg"]}, expect=400)
    emu.json("PUT", url, {"folder_id": fid, "annotation_status": 2,
                          "image_names": ["n%d" % k for k in range(501)]},
             expect=400)
    emu.json("PUT", url, {"folder_id": fid, "annotation_status": 2,
                          "image_names": ["n%d" % k for k in range(500)]})
    emu.json("PUT", url, {"annotation_status": 2, "image_names": []},
             expect=400)
    # a custom workflow has value 7 (Review) but not 3
    c = emu.control("POST", "seed", {"project": "StC", "workflow": 2,
                                     "items": ["c.jpg"]})
    url = "/image/updateAnnotationStatusBulk?project_id=%d" % c["project_id"]
    emu.json("PUT", url, {"folder_id": c["folder_id"], "annotation_status": 7,
                          "image_names": ["c.jpg"]})
    emu.json("PUT", url, {"folder_id": c["folder_id"], "annotation_status": 3,
                          "image_names": ["c.jpg"]}, expect=400)
    # the skeleton shows the status name from the project's workflow
    doc = parse_stream(emu.stream(c["project_id"], [c["items"]["c.jpg"]]))[0]
    assert doc["metadata"]["status"] == "Review"


def test_delete_annotations(emu):
    s = emu.control("POST", "seed", {
        "project": "Del", "folder": "d", "items": ["keep.jpg"],
        "documents": {"x.jpg": {"metadata": {"name": "x.jpg"}, "v": 1.0},
                      "y.jpg": {"metadata": {"name": "y.jpg"}}}})
    pid, fid, ids = s["project_id"], s["folder_id"], s["items"]
    assert {i["annotation_status"] for i in emu.search(
        pid, fid, [{"name": {"$in": ["x.jpg", "y.jpg"]}}])["data"]} == {2}
    before = emu.json("GET", "/api/v1/items/%d" % ids["x.jpg"])["updatedAt"]
    url = "/annotations/remove?project_id=%d&folder_id=%d&team_id=1" % (pid, fid)
    with frozen_clock(emu) as clock:
        clock.advance(1000)  # whole-second updatedAt: make sure it moves
        r = emu.json("POST", url, {"image_names": ["x.jpg"]})
    poll = r["poll_id"]
    st = "/annotations/getRemoveStatus?project_id=%d&poll_id=%d&team_id=1" % (
        pid, poll)
    assert emu.json("GET", st) == {"process": 50}
    assert emu.json("GET", st) == {"process": 100}
    assert emu.json("GET", st) == {"process": 100}
    item = emu.json("GET", "/api/v1/items/%d" % ids["x.jpg"])
    assert item["annotation_status"] == 1 and item["updatedAt"] > before
    doc = parse_stream(emu.stream(pid, [ids["x.jpg"]]))[0]
    assert doc == {"metadata": {"name": "x.jpg", "height": None, "width": None,
                                "status": "NotStarted", "pinned": False,
                                "annotatorEmail": None, "qaEmail": None,
                                "projectId": pid, "id": ids["x.jpg"]},
                   "instances": [], "tags": [], "comments": []}
    st2, _, body = emu.request("POST", url, {"image_names": ["nope.jpg"]})
    assert st2 == 400
    assert json.loads(body) == {"error": "Invalid item names or empty folder."}
    emu.json("POST", url, {"image_names": ["n"] * 2001}, expect=400)
    # no body at all: the whole folder
    st3, _, body = emu.request("POST", url, b"",
                               headers={"Content-Type": "application/json"})
    assert st3 == 200 and "poll_id" in json.loads(body)
    assert parse_stream(emu.stream(pid, [ids["y.jpg"]]))[0]["instances"] == []
    emu.json("GET", "/annotations/getRemoveStatus?project_id=%d&poll_id=9999"
             % pid, expect=404)


def test_delete_polls_option(fresh):
    e = fresh("--delete-polls", "4")
    s = e.control("POST", "seed", {"project": "D", "documents": {"a.jpg": {}}})
    r = e.json("POST", "/annotations/remove?project_id=%d&folder_id=%d"
               % (s["project_id"], s["folder_id"]), {"image_names": ["a.jpg"]})
    got = [e.json("GET", "/annotations/getRemoveStatus?project_id=%d&poll_id=%d"
                  % (s["project_id"], r["poll_id"]))["process"] for _ in range(5)]
    assert got == [50, 50, 50, 100, 100]


def test_large_upload(emu):
    s = emu.control("POST", "seed", {"project": "Big", "items": ["big.jpg"]})
    pid, fid, iid = s["project_id"], s["folder_id"], s["items"]["big.jpg"]
    q = "team_id=1&project_id=%d&folder_id=%d" % (pid, fid)
    start = emu.json("POST", "/api/v3.01/items/%d/annotations/upload/multipart/"
                     "start?%s" % (iid, q))
    path, uid = start["path"], start["upload_id"]
    doc = ('{"metadata":{"name":"big.jpg"},"instances":[' + ",".join(
        '{"type":"point","x":%d.25,"y":0.1,"n":12345678901234567890123}' % k
        for k in range(3000)) + '],"note":"\\"quoted\\" ü"}')
    chunks = [doc[k:k + 40000] for k in range(0, len(doc), 40000)]
    base = "/api/v4/items/%d/annotations/upload/multipart/" % iid
    from urllib.parse import quote
    for n, ch in enumerate(chunks, 1):
        emu.json("POST", base + "part?%s&path=%s&chunk_id=%d" % (
            q, quote(path), n), {"data_chunk": ch}, headers={"upload_id": uid})
    emu.json("POST", base + "part?%s&path=%s&chunk_id=1" % (q, quote(path)),
             {"data_chunk": "x"}, headers={"upload_id": "nope"}, expect=400)
    emu.json("POST", base + "finish?%s&path=%s" % (q, quote(path)),
             headers={"upload_id": uid})
    emu.json("POST", "/api/v4/items/%d/annotations/sync?%s" % (iid, q),
             headers={"upload_id": uid})
    assert emu.json("GET", "/api/v4/items/%d/annotations/sync/status?%s"
                    % (iid, q), headers={"upload_id": uid}) == {
        "status": "SUCCESS"}
    st, _, got = emu.request("POST", "/api/v3.01/items/%d/annotations/download"
                             "?project_id=%d" % (iid, pid))
    assert got == with_status(doc.encode(), "NotStarted")
    # the session is gone after finish
    emu.json("POST", base + "finish?%s" % q, headers={"upload_id": uid},
             expect=400)


def test_faults(emu):
    emu.control("DELETE", "faults")
    emu.control("POST", "reset-stats")
    emu.control("POST", "faults", {"method": "GET", "path": "/user/ME",
                                   "status": 503, "count": 2,
                                   "retry_after": 1})
    r1 = emu.request("GET", "/user/ME")
    r2 = emu.request("GET", "/user/ME")
    r3 = emu.request("GET", "/user/ME")
    assert [r[0] for r in (r1, r2, r3)] == [503, 503, 200]
    assert r1[1]["retry-after"] == "1" and "retry-after" not in r3[1]
    assert json.loads(r1[2]) == {"error": "injected fault"}
    # method must match, path is a prefix
    emu.control("POST", "faults", {"method": "POST", "path": "/api/v4/",
                                   "status": 500, "body": {"error": "boom"}})
    assert emu.request("GET", "/user/ME")[0] == 200
    p = emu.project("Demo Vector")
    st, _, body = emu.request("POST", "/api/v4/items/annotations/download/method",
                              {"project_id": p["id"], "item_ids": []})
    assert st == 500 and json.loads(body) == {"error": "boom"}
    # delay only
    emu.control("POST", "faults", {"path": "/user", "delay_ms": 400})
    t0 = time.monotonic()
    assert emu.request("GET", "/user/ME")[0] == 200
    assert time.monotonic() - t0 >= 0.38
    # forever, then cleared
    emu.control("POST", "faults", {"path": "/api/v1/team", "status": 502,
                                   "count": -1})
    assert [emu.request("GET", "/api/v1/team/1")[0] for _ in range(3)] == [
        502] * 3
    assert len(emu.control("GET", "faults")["faults"]) == 1
    emu.control("DELETE", "faults")
    assert emu.request("GET", "/api/v1/team/1")[0] == 200
    stats = emu.control("GET", "stats")
    assert stats["routes"]["GET /user/ME"] == 5
    assert stats["routes"]["GET /api/v1/team/1"] == 4


def test_fault_drop(emu):
    p = emu.project("Demo Vector")
    items = emu.search(p["id"], p["folder_id"])["data"]
    emu.control("POST", "faults", {"path": "/api/v4/items/annotations/download",
                                   "method": "POST", "drop": True})
    path = "/api/v4/items/annotations/download?project_id=%d&limit=3" % p["id"]
    with pytest.raises((http.client.IncompleteRead, ConnectionError,
                        http.client.HTTPException)):
        emu.request("POST", path, {"image_ids": [i["id"] for i in items]})
    # a drop on a plain JSON reply cuts it short, too
    emu.control("POST", "faults", {"path": "/api/v1/projects", "drop": True})
    with pytest.raises((http.client.IncompleteRead, ConnectionError,
                        http.client.HTTPException)):
        emu.request("GET", "/api/v1/projects?name=Demo")
    # and a status with drop sends part of the error body
    emu.control("POST", "faults", {"path": "/user/ME", "drop": True,
                                   "status": 503})
    with pytest.raises((http.client.IncompleteRead, ConnectionError,
                        http.client.HTTPException)):
        emu.request("GET", "/user/ME")
    assert len(parse_stream(emu.stream(p["id"], [items[0]["id"]]))) == 1


def test_delay_blocks_nothing_else(emu):
    emu.control("POST", "faults", {"path": "/api/v1/team", "delay_ms": 1500})
    out = {}

    def slow():
        out["st"] = emu.request("GET", "/api/v1/team/1")[0]
    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    assert emu.request("GET", "/user/ME")[0] == 200
    assert time.monotonic() - t0 < 0.5
    t.join(10)
    assert out["st"] == 200


def test_stats_and_requests(emu):
    emu.control("POST", "reset-stats")
    emu.control("POST", "reset-requests")
    p = emu.project("Demo Vector")
    emu.request("GET", "/user/ME", token="bad=1")
    emu.request("GET", "/no/such/route")
    st = emu.control("GET", "stats")
    assert st["total"] == 3
    assert st["routes"] == {"GET /api/v1/projects": 1, "GET /user/ME": 1,
                            "GET /no/such/route": 1}
    emu.control("GET", "stats")  # the control plane is not counted
    assert emu.control("GET", "stats")["total"] == 3
    emu.request("POST", "/api/v4/items/annotations/upload?project_id=%d&"
                "folder_id=%d&image_names%%5B%%5D=a+b.jpg&image_names%%5B%%5D="
                "c%%26d.jpg" % (p["id"], p["folder_id"]), b"--x--",
                headers={"Content-Type": "multipart/form-data; boundary=x"},
                ctx={"team_id": "1", "project_id": p["id"]})
    reqs = emu.control("GET", "requests")["requests"]
    assert [r["path"] for r in reqs] == [
        "/api/v1/projects", "/user/ME", "/no/such/route",
        "/api/v4/items/annotations/upload"]
    last = reqs[-1]
    assert last["params"]["image_names[]"] == ["a b.jpg", "c&d.jpg"]
    assert last["params"]["project_id"] == str(p["id"])
    assert last["headers"]["x-sa-entity-context"] == {"team_id": "1",
                                                      "project_id": p["id"]}
    assert last["headers"]["content-type"].startswith("multipart/form-data")
    assert last["body"] == "--x--" and last["body_length"] == 5
    assert reqs[1]["authorized"] is False and last["authorized"] is True
    dump = json.dumps(reqs)
    assert TOKEN not in dump and "bad=1" not in dump
    only = emu.json("GET", "/_emulator/requests?path=/user", token=None)
    assert [r["path"] for r in only["requests"]] == ["/user/ME"]


def test_query_decoding(emu):
    s = emu.control("POST", "seed", {"project": "Q+uery & %Co",
                                     "folder": "my folder+1"})
    pid = s["project_id"]
    d = emu.json("GET", "/api/v1/projects?offset=0&name=Q%2Buery+%26+%25co")
    assert [x["id"] for x in d["data"]] == [pid]
    for enc in ("my+folder%2B1", "my%20folder%2B1"):
        f = emu.json("GET", "/folder/getFolderByName?name=%s&project_id=%d"
                     % (enc, pid))
        assert f["id"] == s["folder_id"]


def test_folder_create_rename_delete(emu):
    s = emu.control("POST", "seed", {"project": "Fold", "items": ["r.jpg"]})
    pid = s["project_id"]
    url = "/folder?project_id=%d&team_id=1" % pid
    f = emu.json("POST", url, {"name": "new one"})
    assert f["name"] == "new one" and f["is_root"] is False
    assert f["project_id"] == pid and TS_RE.match(f["createdAt"])
    emu.json("POST", url, {"name": "new one"}, expect=409)
    emu.json("POST", url, {"name": "x" * 81}, expect=400)
    emu.json("POST", url, {"name": "ü" * 80})
    emu.json("POST", url, {"name": "a/b"}, expect=400)
    emu.json("POST", url, {}, expect=400)
    f2 = dict(f, name="renamed")
    r = emu.json("PUT", "/folder/%d?project_id=%d" % (f["id"], pid), f2)
    assert r["name"] == "renamed" and r["id"] == f["id"]
    assert emu.folder(pid, "renamed")["id"] == f["id"]
    emu.json("GET", "/folder/getFolderByName?project_id=%d&name=new+one" % pid,
             expect=404)
    other = emu.json("POST", url, {"name": "other"})
    emu.json("PUT", "/folder/%d?project_id=%d" % (other["id"], pid),
             dict(other, name="renamed"), expect=409)
    emu.control("POST", "seed", {"project": "Fold", "folder": "renamed",
                                 "items": ["in1.jpg", "in2.jpg"]})
    emu.json("PUT", "/image/delete/images?project_id=%d" % pid,
             {"folder_ids": [f["id"]]})
    emu.json("GET", "/folder/getFolderById?folder_id=%d&project_id=%d"
             % (f["id"], pid), expect=404)
    assert emu.search(pid, None)["count"] == 1   # r.jpg in root remains
    emu.json("PUT", "/image/delete/images?project_id=%d" % pid,
             {"folder_ids": [s["folder_id"]]}, expect=400)   # root


def test_bad_input(emu):
    p = emu.project("Demo Vector")
    ctx = {"team_id": 1, "project_id": p["id"]}
    cases = [
        ("POST", "/api/v1/items/search", b"{not json", ctx, 400),
        ("POST", "/api/v1/items/search", b'{"query":{"limit":"x"}}', ctx, 400),
        ("POST", "/api/v1/items/search", b"{}", None, 400),
        ("POST", "/api/v1/items/search", b"{}", {"project_id": 1}, 404),
        ("POST", "/api/v4/items/annotations/download/method", b"[]", None, 400),
        ("POST", "/api/v4/items/annotations/download/method",
         b'{"project_id":1,"item_ids":[1]}', None, 404),
        ("POST", "/api/v4/items/annotations/download?project_id=%d" % p["id"],
         b'{"image_ids":"x"}', None, 400),
        ("POST", "/api/v4/items/annotations/download", b'{"image_ids":[]}',
         None, 400),
        ("GET", "/folder/getFolderByName?name=root", None, None, 400),
        ("GET", "/folders?project_id=abc", None, None, 400),
        ("GET", "/api/v1/project/0", None, None, 404),
        ("PUT", "/image/updateAnnotationStatusBulk?project_id=%d" % p["id"],
         b"\xff\xfe", None, 400),
        ("POST", "/annotations/remove?project_id=%d" % p["id"], b"[1]", None,
         400),
        ("GET", "/annotations/getRemoveStatus", None, None, 400),
        ("POST", "/api/v4/items/1/annotations/upload/multipart/part?chunk_id=1",
         b'{"data_chunk":"x"}', None, 400),
        ("GET", "/nope", None, None, 404),
        ("DELETE", "/user/ME", None, None, 404),
        ("GET", "/api/v1/items/notanumber", None, None, 404),
    ]
    for method, path, body, c, expect in cases:
        st, hdrs, data = emu.request(method, path, body, ctx=c,
                                     headers={"Content-Type":
                                              "application/json"})
        assert st == expect, (method, path, st, data)
        assert "error" in json.loads(data), data
    assert emu.json("GET", "/user/ME")["id"]


def test_huge_body(fresh):
    e = fresh("--max-body", "100000")
    st, _, data = e.request("POST", "/api/v1/items/search", b"x" * 300000,
                            ctx={"project_id": 1})
    assert st == 413 and "error" in json.loads(data)
    assert e.json("GET", "/user/ME")["id"]


def test_garbage_on_the_socket(emu):
    for junk in (b"\x00\x01\x02 garbage\r\n\r\n", b"GET /user/ME HTTP/1.1\r\n"
                 b"Content-Length: 99999999999999999999\r\n\r\n",
                 b"POST /api/v1/items/search HTTP/1.1\r\nHost: x\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"):
        s = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
        try:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.recv(4096)
        except OSError:
            pass
        finally:
            s.close()
    assert emu.json("GET", "/user/ME")["id"]


def test_latency(emu):
    emu.control("POST", "latency", {"ms": 300})
    try:
        t0 = time.monotonic()
        emu.json("GET", "/user/ME")
        assert time.monotonic() - t0 >= 0.29
        t0 = time.monotonic()
        emu.control("GET", "stats")
        assert time.monotonic() - t0 < 0.25
    finally:
        emu.control("POST", "latency", {"ms": 0})
    t0 = time.monotonic()
    emu.json("GET", "/user/ME")
    assert time.monotonic() - t0 < 0.25


def test_latency_option(fresh):
    e = fresh("--latency-ms", "250")
    t0 = time.monotonic()
    e.json("GET", "/user/ME")
    assert time.monotonic() - t0 >= 0.24


def test_limits(fresh):
    e = fresh()
    r = e.control("POST", "seed", {"project": "L", "folder": "f",
                                   "items": ["i%d" % k for k in range(50000)]})
    assert len(r["items"]) == 50000
    st, _, body = e.request("POST", "/_emulator/seed", {
        "project": "L", "folder": "f", "items": ["one-more.jpg"]}, token=None)
    assert st == 400 and "limit" in json.loads(body)["error"]
    p = e.project("L")
    assert e.search(p["id"], None)["count"] == 50000
    proc = subprocess.run([BINARY, "--port", "0", "--quiet", "--seed-items",
                           "X/f=50001"], capture_output=True, timeout=60)
    assert proc.returncode != 0 and b"limit" in proc.stderr


def test_reset_is_deterministic(fresh):
    e = fresh("--seed", "demo", "--seed-items", "B/root=10")
    before = e.json("GET", "/api/v1/projects?offset=0")
    ids = [x["id"] for x in before["data"]]
    p = e.project("Demo Vector")
    items = e.search(p["id"], p["folder_id"])["data"]
    e.control("POST", "seed", {"project": "Extra", "items": ["z.jpg"]})
    e.json("POST", "/folder?project_id=%d" % p["id"], {"name": "tmp"})
    e.control("POST", "faults", {"path": "/", "status": 500, "count": -1})
    e.control("POST", "latency", {"ms": 100})
    e.control("POST", "reset")
    after = e.json("GET", "/api/v1/projects?offset=0")
    assert [x["id"] for x in after["data"]] == ids
    assert [x["name"] for x in after["data"]] == [
        x["name"] for x in before["data"]]
    assert [(i["id"], i["name"]) for i in e.search(p["id"], p["folder_id"])[
        "data"]] == [(i["id"], i["name"]) for i in items]
    assert e.control("GET", "faults")["faults"] == []
    assert e.control("GET", "stats")["total"] == 2  # the two calls above


def test_seed_raw_documents(emu):
    raw = '{"metadata":{"name":"r.jpg"},  "n": 1.10, "big": 1' + "0" * 40 + '}'
    s = emu.control("POST", "seed", {"project": "Raw",
                                     "raw_documents": {"r.jpg": raw},
                                     "statuses": {"r.jpg": 5}})
    iid = s["items"]["r.jpg"]
    assert emu.stream(s["project_id"], [iid]) == (
        '{"metadata":{"name":"r.jpg","status":"Completed"},  "n": 1.10, '
        '"big": 1' + "0" * 40 + '}').encode() + DELIM
    assert emu.json("GET", "/api/v1/items/%d" % iid)["annotation_status"] == 5
    body = ('{"project":"Raw","documents":{"d.jpg": {"x": 0.10, "y": '
            '123456789012345678901234567890} }}').encode()
    st, _, data = emu.request("POST", "/_emulator/seed", body, token=None)
    assert st == 200, data
    did = json.loads(data)["items"]["d.jpg"]
    assert emu.stream(s["project_id"], [did]) == (
        b'{"metadata":{"status":"InProgress"},"x": 0.10, '
        b'"y": 123456789012345678901234567890}' + DELIM)
    # a raw text that is no valid document is served as stored
    s2 = emu.control("POST", "seed", {"project": "Raw",
                                      "raw_documents": {"bad.jpg": '{"a": 1,}'}})
    assert emu.stream(s2["project_id"], [s2["items"]["bad.jpg"]]) == (
        b'{"a": 1,}' + DELIM)
    st, _, _ = emu.request("POST", "/_emulator/seed", {"project": "Raw",
                                                        "statuses": {"d.jpg": 99}},
                           token=None)
    assert st == 400


def test_bench_seed_50000(fresh):
    e = fresh("--seed-items", "Bench/f=50000")
    print("\n--seed-items Bench/f=50000: listening after %.2f s"
          % e.startup_seconds)
    assert e.startup_seconds < 15
    p = e.project("Bench")
    f = e.folder(p["id"], "f")
    page = e.search(p["id"], f["id"], offset=48000)
    assert page["count"] == 50000 and len(page["data"]) == 2000
    assert page["data"][-1]["name"] == "img_050000.jpg"
    sample = [page["data"][k]["id"] for k in range(0, 2000, 97)]
    docs = e.stream(p["id"], sample).split(DELIM)[:-1]
    sizes = [len(d) for d in docs]
    assert len(docs) == len(sample)
    assert min(sizes) >= 3000 and max(sizes) <= 10500, sizes
    assert len(set(sizes)) > 5
    for d in docs:
        assert json.loads(d)["instances"]


def test_db_file_and_sigterm(fresh, tmp_path):
    db = str(tmp_path / "emu.db")
    e = fresh("--db", db)
    st, _, body = e.request("POST", "/_emulator/seed",
                            b'{"project": "Persist", "documents": '
                            b'{"p.jpg": {"k": 1.50}}}', token=None)
    assert st == 200
    s = json.loads(body)
    assert e.stop() == 0
    e2 = fresh("--db", db)
    p = e2.project("Persist")
    assert p["id"] == s["project_id"]
    assert e2.stream(p["id"], [s["items"]["p.jpg"]]) == (
        b'{"metadata":{"status":"InProgress"},"k": 1.50}' + DELIM)
    e2.proc.send_signal(signal.SIGINT)
    assert e2.proc.wait(10) == 0


def test_port_file_and_loopback(fresh):
    e = fresh()
    with open(e.port_file) as f:
        assert f.read() == "%d\n" % e.port
    assert not [n for n in os.listdir(e.dir) if ".tmp." in n]
    assert e.control("GET", "health")["port"] == e.port


def test_concurrent_clients(emu):
    """Parallel uploads, searches and streams: no crash, no lost update."""
    names = ["cc%02d.jpg" % k for k in range(16)]
    s = emu.control("POST", "seed", {"project": "Conc", "items": names})
    pid, fid, ids = s["project_id"], s["folder_id"], s["items"]
    errors = []

    def worker(k):
        try:
            name = names[k]
            for r in range(15):
                doc = b'{"metadata":{"name":"%s"},"round":%d,"w":%d.5}' % (
                    name.encode(), r, k)
                st, _, body = upload(emu, pid, fid,
                                     [(quoted(name), b'{"data":' + doc + b'}')],
                                     [name])
                assert st == 200 and json.loads(body)["failedItems"] == []
                got = emu.stream(pid, [ids[name]])
                assert got == with_status(doc, "NotStarted") + DELIM, got
                assert emu.search(pid, fid)["count"] == len(names)
        except Exception as e:  # reported below
            errors.append(repr(e))
    emu.control("POST", "faults", {"path": "/api/v1/team", "delay_ms": 800})
    slow = threading.Thread(target=lambda: emu.request("GET", "/api/v1/team/1"))
    slow.start()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    slow.join(10)
    assert errors == []
    assert emu.json("GET", "/user/ME")["id"]


# -- clock, timestamps, status fill, stream faults ----------------------------
T0 = 1700000000123            # 2023-11-14T22:13:20.123Z, a Tuesday
T0_SEC = "2023-11-14T22:13:20.000Z"
STREAM = "/api/v4/items/annotations/download"


def raw_response(emu, method, path, body=None, token=TOKEN):
    """(status, [(header, value)...] exactly as sent, body)."""
    h = {"Authorization": token} if token else {}
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    c = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.getheaders(), r.read()
    finally:
        c.close()


def dates(headers):
    return [v for k, v in headers if k.lower() == "date"]


def item_ts(emu, iid):
    it = emu.json("GET", "/api/v1/items/%d" % iid)
    return it["createdAt"], it["updatedAt"]


def test_whole_second_timestamps(fresh):
    e = fresh("--seed", "demo")
    seen = []
    for p in e.json("GET", "/api/v1/projects?offset=0")["data"]:
        seen += [p["createdAt"], p["updatedAt"]]
        for f in e.json("GET", "/folders?project_id=%d&offset=0" % p["id"])["data"]:
            seen += [f["createdAt"], f["updatedAt"]]
        for i in e.search(p["id"])["data"]:
            seen += [i["createdAt"], i["updatedAt"]]
    seen += [r["time"] for r in e.control("GET", "requests")["requests"]]
    assert len(seen) > 100 and all(SEC_RE.match(t) for t in seen), [
        t for t in seen if not SEC_RE.match(t)][:5]
    # with the clock at a known time: every kind of timestamp is its second
    with frozen_clock(e, T0):
        s = e.control("POST", "seed", {"project": "Ts", "folder": "f",
                                       "items": ["a.jpg"]})
        iid = s["items"]["a.jpg"]
        assert item_ts(e, iid) == (T0_SEC, T0_SEC)
        p = e.json("GET", "/api/v1/project/%d" % s["project_id"])
        assert (p["createdAt"], p["updatedAt"]) == (T0_SEC, T0_SEC)
        f = e.folder(s["project_id"], "f")
        assert (f["createdAt"], f["updatedAt"]) == (T0_SEC, T0_SEC)
        assert e.control("GET", "requests")["requests"][-1]["time"] == T0_SEC
    # --ms-timestamps: real milliseconds, and strictly increasing
    m = fresh("--ms-timestamps")
    with frozen_clock(m, T0):
        s = m.control("POST", "seed", {"project": "Ms", "items": ["a.jpg"]})
        pid, fid, iid = s["project_id"], s["folder_id"], s["items"]["a.jpg"]
        created = item_ts(m, iid)[0]
        # each timestamp handed out is 1 ms past the last (project, items)
        assert re.match(r"2023-11-14T22:13:20\.12[4-9]Z$", created), created
        assert m.control("GET", "requests")["requests"][-1]["time"] == (
            "2023-11-14T22:13:20.123Z")
        got = [created]
        for k in range(2):
            part = [(quoted("a.jpg"), b'{"data":{"k":%d}}' % k)]
            assert upload(m, pid, fid, part, ["a.jpg"])[0] == 200
            got.append(item_ts(m, iid)[1])
        assert got == sorted(set(got)) and len(got) == 3


def test_clock_control(fresh):
    e = fresh()
    c = e.control("GET", "clock")
    assert c["frozen"] is False and abs(c["now_ms"] - time.time() * 1000) < 5000
    assert e.control("POST", "clock", {"freeze_ms": T0}) == {
        "now_ms": T0, "frozen": True}
    time.sleep(0.05)
    assert e.control("GET", "clock") == {"now_ms": T0, "frozen": True}
    # the Date header follows it, exactly one, on every kind of answer
    p = e.control("POST", "seed", {"project": "C", "items": ["c.jpg"]})
    e.control("POST", "faults", {"path": "/api/v1/team", "status": 503})
    for method, path, body, token, status in (
            ("GET", "/user/ME", None, TOKEN, 200),
            ("GET", "/user/ME", None, None, 401),
            ("GET", "/nope", None, TOKEN, 404),
            ("GET", "/api/v1/team/1", None, TOKEN, 503),
            ("POST", STREAM + "?project_id=%d" % p["project_id"],
             {"image_ids": [p["items"]["c.jpg"]]}, TOKEN, 200),
            ("GET", "/_emulator/health", None, None, 200)):
        st, hdrs, _ = raw_response(e, method, path, body, token)
        assert st == status, (path, st)
        assert dates(hdrs) == ["Tue, 14 Nov 2023 22:13:20 GMT"], (path, hdrs)
    # advance: frozen, it moves by exactly that
    assert e.control("POST", "clock", {"advance_ms": 5000}) == {
        "now_ms": T0 + 5000, "frozen": True}
    assert dates(raw_response(e, "GET", "/user/ME")[1]) == [
        "Tue, 14 Nov 2023 22:13:25 GMT"]
    # real time again
    c = e.control("POST", "clock", {"real": True})
    assert c["frozen"] is False and abs(c["now_ms"] - time.time() * 1000) < 5000
    from email.utils import parsedate_to_datetime
    d = parsedate_to_datetime(dates(raw_response(e, "GET", "/user/ME")[1])[0])
    assert abs(d.timestamp() - time.time()) < 5
    # advance a running clock: it keeps running, an hour ahead
    c = e.control("POST", "clock", {"advance_ms": 3600 * 1000})
    assert c["frozen"] is False
    assert abs(c["now_ms"] - time.time() * 1000 - 3600 * 1000) < 5000
    time.sleep(0.05)
    assert e.control("GET", "clock")["now_ms"] > c["now_ms"]
    d = parsedate_to_datetime(dates(raw_response(e, "GET", "/user/ME")[1])[0])
    assert abs(d.timestamp() - time.time() - 3600) < 5
    # reset restores real time, frozen or moved
    e.control("POST", "reset")
    c = e.control("GET", "clock")
    assert c["frozen"] is False and abs(c["now_ms"] - time.time() * 1000) < 5000
    e.control("POST", "clock", {"freeze_ms": 0})
    assert dates(raw_response(e, "GET", "/user/ME")[1]) == [
        "Thu, 01 Jan 1970 00:00:00 GMT"]
    e.control("POST", "reset")
    assert e.control("GET", "clock")["frozen"] is False
    # bad bodies
    for bad in (b"", b"{not json", b"{}", b'{"freeze_ms": -1}',
                b'{"freeze_ms": "1"}', b'{"freeze_ms": 1.5}',
                b'{"advance_ms": -5}', b'{"real": false}',
                b'{"freeze_ms": 1, "real": true}', b'{"speed": 2}',
                b'{"freeze_ms": 253402300800000}'):
        st, _, body = e.request("POST", "/_emulator/clock", bad, token=None)
        assert st == 400 and "error" in json.loads(body), bad
    assert e.control("GET", "clock")["frozen"] is False
    # the control plane is not delayed by latency
    e.control("POST", "latency", {"ms": 600})
    t0 = time.monotonic()
    e.control("POST", "clock", {"freeze_ms": T0})
    e.control("GET", "clock")
    assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    assert dates(raw_response(e, "GET", "/user/ME")[1]) == [
        "Tue, 14 Nov 2023 22:13:20 GMT"]
    assert time.monotonic() - t0 >= 0.58


def test_updated_at_repeats_within_a_second(fresh):
    e = fresh()
    with frozen_clock(e, 1700000000200) as clock:
        s = e.control("POST", "seed", {"project": "Rep", "items": ["c.jpg"]})
        pid, fid, iid = s["project_id"], s["folder_id"], s["items"]["c.jpg"]
        part = [(quoted("c.jpg"), b'{"data":{"k":1}}')]
        assert upload(e, pid, fid, part, ["c.jpg"])[0] == 200
        u1 = item_ts(e, iid)[1]
        clock.advance(500)
        part = [(quoted("c.jpg"), b'{"data":{"k":2}}')]
        assert upload(e, pid, fid, part, ["c.jpg"])[0] == 200
        u2 = item_ts(e, iid)[1]
        e.json("PUT", "/image/updateAnnotationStatusBulk?project_id=%d" % pid,
               {"folder_id": fid, "annotation_status": 3,
                "image_names": ["c.jpg"]})
        u3 = item_ts(e, iid)[1]
        assert u1 == u2 == u3 == T0_SEC
        # the content did change: only the time cannot tell
        assert e.stream(pid, [iid]) == (
            b'{"metadata":{"status":"QualityCheck"},"k":2}' + DELIM)
        clock.advance(400)                      # 22:13:21.100
        part = [(quoted("c.jpg"), b'{"data":{"k":3}}')]
        assert upload(e, pid, fid, part, ["c.jpg"])[0] == 200
        assert item_ts(e, iid) == (T0_SEC, "2023-11-14T22:13:21.000Z")


def v301(emu, pid, iid):
    st, _, body = emu.request(
        "POST", "/api/v3.01/items/%d/annotations/download?project_id=%d"
        "&annotation_type=MAIN&version=V1.00" % (iid, pid))
    assert st == 200
    return body


def test_status_filled_on_download(emu):
    docs = {
        # metadata.status present: replaced in place, the value token only
        "rep.jpg": '{"metadata": {"name": "rep.jpg", "status": "Completed", '
                   '"w": 1.50}, "instances": []}',
        # no status: appended as metadata's last member
        "app.jpg": '{\n    "metadata": {\n        "name": "app.jpg",\n'
                   '        "h": 1E3\n    },\n    "instances": []\n}',
        # no metadata: created as the first member
        "none.jpg": '{"instances": [], "n": 1.10}',
        # already right: byte for byte
        "same.jpg": '{"metadata":{"status":"In\\u0050rogress"},"x":1E5}',
    }
    s = emu.control("POST", "seed", {"project": "Fill", "raw_documents": docs})
    pid, fid, ids = s["project_id"], s["folder_id"], s["items"]
    want = {
        "rep.jpg": b'{"metadata": {"name": "rep.jpg", "status": "InProgress", '
                   b'"w": 1.50}, "instances": []}',
        "app.jpg": b'{\n    "metadata": {\n        "name": "app.jpg",\n'
                   b'        "h": 1E3,"status":"InProgress"\n    },\n'
                   b'    "instances": []\n}',
        "none.jpg": b'{"metadata":{"status":"InProgress"},"instances": [], '
                    b'"n": 1.10}',
        "same.jpg": docs["same.jpg"].encode(),
    }
    order = ["rep.jpg", "app.jpg", "none.jpg", "same.jpg"]
    assert emu.stream(pid, [ids[n] for n in order]) == b"".join(
        want[n] + DELIM for n in order)
    for n in order:
        assert v301(emu, pid, ids[n]) == want[n]
    # a status change changes what is served
    emu.json("PUT", "/image/updateAnnotationStatusBulk?project_id=%d" % pid,
             {"folder_id": fid, "annotation_status": 5,
              "image_names": ["rep.jpg", "app.jpg", "none.jpg"]})
    assert v301(emu, pid, ids["rep.jpg"]) == docs["rep.jpg"].encode()
    assert parse_stream(emu.stream(pid, [ids["app.jpg"]]))[0]["metadata"] == {
        "name": "app.jpg", "h": 1000.0, "status": "Completed"}
    assert v301(emu, pid, ids["none.jpg"]) == (
        b'{"metadata":{"status":"Completed"},"instances": [], "n": 1.10}')
    assert emu.stream(pid, [ids["same.jpg"]]) == want["same.jpg"] + DELIM
    # an upload keeps the status; what the client sent comes back with it
    doc = b'{"metadata":{"name":"app.jpg","status":"NotStarted"},"tags":["t"]}'
    assert upload(emu, pid, fid, [(quoted("app.jpg"), b'{"data":' + doc + b'}')],
                  ["app.jpg"])[0] == 200
    assert v301(emu, pid, ids["app.jpg"]) == (
        b'{"metadata":{"name":"app.jpg","status":"Completed"},"tags":["t"]}')
    # a custom workflow's names; the demo's generated documents follow too
    c = emu.control("POST", "seed", {
        "project": "FillC", "workflow": 2,
        "raw_documents": {"r.jpg": '{"metadata":{"status":"NotStarted"}}'},
        "statuses": {"r.jpg": 7}})
    assert emu.stream(c["project_id"], [c["items"]["r.jpg"]]) == (
        b'{"metadata":{"status":"Review"}}' + DELIM)
    v = emu.project("Demo Vector")
    vi = emu.search(v["id"], v["folder_id"])["data"][0]
    old = vi["annotation_status"]
    try:
        emu.json("PUT", "/image/updateAnnotationStatusBulk?project_id=%d"
                 % v["id"], {"folder_id": v["folder_id"], "annotation_status": 6,
                             "image_names": [vi["name"]]})
        d = parse_stream(emu.stream(v["id"], [vi["id"]]))[0]
        assert d["metadata"]["status"] == "Skipped" and d["instances"]
    finally:
        emu.json("PUT", "/image/updateAnnotationStatusBulk?project_id=%d"
                 % v["id"], {"folder_id": v["folder_id"],
                             "annotation_status": old,
                             "image_names": [vi["name"]]})


def test_stream_limit(emu):
    emu.control("DELETE", "faults")
    p = emu.project("Demo Vector")
    ids = [i["id"] for i in emu.search(p["id"], p["folder_id"])["data"]]
    assert len(ids) == 3
    full = emu.stream(p["id"], ids)
    docs = full.split(DELIM)[:-1]
    assert len(docs) == 3
    # the method call under the same prefix does not use the fault up
    emu.control("POST", "faults", {"path": STREAM, "stream_limit": 1})
    m = emu.json("POST", STREAM + "/method", {"project_id": p["id"],
                                              "item_ids": ids})
    assert len(m["small"]["0"]["data"]) == 3
    st, hdrs, body = raw_response(emu, "POST", STREAM + "?project_id=%d&limit=3"
                                  % p["id"], {"image_ids": ids})
    assert st == 200 and body == docs[0] + DELIM   # ended cleanly
    assert emu.stream(p["id"], ids) == full        # count 1: used up
    # two uses of 2; ids that are skipped do not count
    emu.control("POST", "faults", {"path": STREAM, "method": "POST",
                                   "stream_limit": 2, "count": 2})
    f = emu.control("GET", "faults")["faults"]
    assert f[0]["stream_limit"] == 2 and f[0]["count"] == 2
    assert emu.stream(p["id"], [424242] + ids) == docs[0] + DELIM + docs[1] + DELIM
    assert emu.stream(p["id"], ids[1:]) == docs[1] + DELIM + docs[2] + DELIM
    assert emu.stream(p["id"], ids) == full
    # 0: an empty 200 body; more than there are: everything
    emu.control("POST", "faults", {"path": STREAM, "stream_limit": 0})
    assert emu.stream(p["id"], ids) == b""
    emu.control("POST", "faults", {"path": STREAM, "stream_limit": 10})
    assert emu.stream(p["id"], ids) == full
    assert emu.control("GET", "faults")["faults"] == []
    for bad in (-1, "2", 1.5):
        st, _, _ = emu.request("POST", "/_emulator/faults",
                               {"path": STREAM, "stream_limit": bad}, token=None)
        assert st == 400


def test_fault_empty_200_body(emu):
    emu.control("DELETE", "faults")
    p = emu.project("Demo Vector")
    ids = [i["id"] for i in emu.search(p["id"], p["folder_id"])["data"]]
    # exact: the method call (same prefix) passes it by
    emu.control("POST", "faults", {"path": STREAM, "exact": True,
                                   "status": 200, "body": ""})
    assert emu.control("GET", "faults")["faults"][0]["exact"] is True
    emu.json("POST", STREAM + "/method", {"project_id": p["id"], "item_ids": ids})
    st, hdrs, body = emu.request("POST", STREAM + "?project_id=%d" % p["id"],
                                 {"image_ids": ids})
    assert st == 200 and body == b"" and hdrs["content-length"] == "0"
    assert len(parse_stream(emu.stream(p["id"], ids))) == 3
    # any route
    emu.control("POST", "faults", {"path": "/user/ME", "status": 200,
                                   "body": ""})
    st, hdrs, body = emu.request("GET", "/user/ME")
    assert st == 200 and body == b""
    assert emu.json("GET", "/user/ME")["id"]
