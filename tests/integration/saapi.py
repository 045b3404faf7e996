"""A tiny client of the SuperAnnotate API as the emulator serves it.

Standard library only. All services on one base (docs/api.md §1 "One base"):
main API at B/, item service and work-management at B/api/v1/, assets at
B/api/v4/ and B/api/v3.01/. Tests use it to assert what the PLATFORM holds,
independently of the mount.
"""
import base64
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

DELIM = b"\\n;)\\n"  # the 6 bytes 5C 6E 3B 29 5C 6E (api.md §9.2)


class ApiError(Exception):
    def __init__(self, status, body, url):
        super().__init__("HTTP %s on %s: %r" % (status, url, body[:300]))
        self.status = status
        self.body = body


class SA:
    def __init__(self, base_url, token="emulator-token=1", timeout=60):
        self.base = base_url.rstrip("/") + "/"
        self.token = token
        self.team_id = int(token.rsplit("=", 1)[1])
        self.timeout = timeout

    # -- transport ---------------------------------------------------------
    def _url(self, path, query=None):
        url = self.base + path.lstrip("/")
        q = [("team_id", str(self.team_id))]
        if query:
            q += list(query.items()) if isinstance(query, dict) else list(query)
        return url + "?" + urllib.parse.urlencode(q, doseq=True)

    def raw(self, method, path, query=None, body=None, headers=None, ctype="application/json"):
        """One request; returns the response body as bytes (raises ApiError)."""
        url = self._url(path, query)
        h = {"Authorization": self.token, "authtype": "sdk"}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        req = urllib.request.Request(url, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read(), url) from None

    def call(self, method, path, query=None, body=None, headers=None):
        data = self.raw(method, path, query, body, headers)
        return json.loads(data) if data.strip() else None

    @staticmethod
    def context(**kw):
        return base64.b64encode(json.dumps(kw, separators=(",", ":")).encode()).decode()

    # -- projects and folders ---------------------------------------------
    def project(self, name):
        off = 0
        while True:
            r = self.call("GET", "api/v1/projects", {"name": name, "offset": off})
            for p in r["data"]:
                if p["name"] == name:
                    return p
            off += len(r["data"])
            if not r["data"] or off >= r.get("count", 0):
                raise KeyError("no project %r" % name)

    def projects(self):
        out, off = [], 0
        while True:
            r = self.call("GET", "api/v1/projects", {"offset": off})
            out += r["data"]
            off += len(r["data"])
            if not r["data"] or off >= r.get("count", 0):
                return out

    def folders(self, project):
        """All folders of a project (the root one included, is_root true)."""
        pid = self.project(project)["id"] if isinstance(project, str) else project
        out, off = [], 0
        while True:
            r = self.call("GET", "folders", {"project_id": pid, "offset": off})
            out += r["data"]
            off += len(r["data"])
            if not r["data"] or off >= r.get("count", 0):
                return out

    def folder(self, project, folder=None):
        """The folder object; folder None/"" /"root" = the project's root folder."""
        p = self.project(project) if isinstance(project, str) else project
        name = folder or "root"
        for f in self.folders(p["id"]):
            if (name == "root" and f.get("is_root")) or (f["name"] == name and not f.get("is_root")):
                return f
        raise KeyError("no folder %r in %r" % (name, p["name"]))

    def _pf(self, project, folder):
        """project: name or object; folder: name, None (root) or object."""
        p = self.project(project) if isinstance(project, str) else project
        f = folder if isinstance(folder, dict) else self.folder(p, folder)
        return p, f

    # -- items ------------------------------------------------------------
    def search(self, project_id, folder_id=None, search=None, limit=2000):
        ctx = {"team_id": self.team_id, "project_id": project_id}
        if folder_id is not None:
            ctx["folder_id"] = folder_id
        out, off = [], 0
        while True:
            q = {"limit": limit, "offset": off, "join": [{"field": "metadata", "select": ["path"]}]}
            if search:
                q["search"] = {"$and": search}
            r = self.call("POST", "api/v1/items/search", body={"query": q},
                          headers={"x-sa-entity-context": self.context(**ctx)})
            out += r["data"]
            off += len(r["data"])
            if not r["data"] or off >= r.get("count", r.get("total", 0)):
                return out

    def items(self, project, folder=None):
        """Items of one folder (root if None), ordered as the server lists them."""
        p, f = self._pf(project, folder)
        return self.search(p["id"], f["id"])

    def item(self, project, folder, name):
        p, f = self._pf(project, folder)
        r = self.search(p["id"], f["id"], [{"name": {"$eq": name}}])
        r = [i for i in r if i["name"] == name]
        if not r:
            raise KeyError("no item %r in %s/%s" % (name, project, folder))
        return r[0]

    def names(self, project, folder=None):
        return sorted(i["name"] for i in self.items(project, folder))

    # -- statuses ---------------------------------------------------------
    def statuses(self, project):
        p = self.project(project) if isinstance(project, str) else project
        r = self.call("GET", "api/v1/workflows/%d/workflowstatuses" % p["workflow_id"],
                      {"join": "status"},
                      headers={"x-sa-entity-context": self.context(team_id=str(self.team_id),
                                                                   project_id=p["id"])})
        return {s["value"]: s["status"]["name"] for s in r["data"]}

    def status(self, project, folder, name):
        """The item's annotation status by NAME."""
        return self.statuses(project)[self.item(project, folder, name)["annotation_status"]]

    def set_status(self, project, folder, names, status):
        p, f = self._pf(project, folder)
        values = {v: k for k, v in self.statuses(p).items()}
        if isinstance(names, str):
            names = [names]
        self.call("PUT", "image/updateAnnotationStatusBulk", {"project_id": p["id"]},
                  {"folder_id": f["id"], "annotation_status": values[status],
                   "image_names": list(names)})

    # -- documents ---------------------------------------------------------
    def documents_by_id(self, project_id, ids, names=None):
        """{item id: raw document bytes} through download/method + the stream
        (and the v3.01 path for large ones)."""
        out = {}
        ids = list(ids)
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            m = self.call("POST", "api/v4/items/annotations/download/method",
                          {"limit": len(chunk)}, {"project_id": project_id, "item_ids": chunk})
            for batch in (m.get("small") or {}).values():
                bids = [d["id"] for d in batch["data"]]
                body = self.raw("POST", "api/v4/items/annotations/download",
                                {"project_id": project_id, "limit": len(bids)},
                                {"image_ids": bids})
                docs = [d for d in body.split(DELIM) if d]
                assert len(docs) == len(bids), "stream gave %d docs for %d ids" % (len(docs), len(bids))
                by_name = {v: k for k, v in (names or {}).items() if k in bids}
                for pos, d in enumerate(docs):
                    md = json.loads(d)["metadata"]
                    # an uploader's document may lack metadata.id (the emulator
                    # stores the bytes as sent): fall back to its name, then order
                    if "id" in md:
                        iid = md["id"]
                    elif md.get("name") in by_name:
                        iid = by_name[md["name"]]
                    else:
                        iid = bids[pos]
                    out[iid] = d
            for large in m.get("large") or []:
                iid = large["id"]
                out[iid] = self.raw("POST", "api/v3.01/items/%d/annotations/download" % iid,
                                    {"project_id": project_id, "annotation_type": "MAIN",
                                     "version": "V1.00"})
        return out

    def document_bytes(self, project, folder, name):
        p, f = self._pf(project, folder)
        it = self.search(p["id"], f["id"], [{"name": {"$eq": name}}])
        it = [i for i in it if i["name"] == name][0]
        return self.documents_by_id(p["id"], [it["id"]], {it["id"]: name})[it["id"]]

    def document(self, project, folder, name):
        return json.loads(self.document_bytes(project, folder, name))

    def folder_documents(self, project, folder=None):
        """{item name: raw bytes} for every item of a folder."""
        p, f = self._pf(project, folder)
        items = self.search(p["id"], f["id"])
        docs = self.documents_by_id(p["id"], [i["id"] for i in items], {i["id"]: i["name"] for i in items})
        return {i["name"]: docs[i["id"]] for i in items}

    # -- writes as another user would -------------------------------------
    def upload(self, project, folder, name, doc):
        """Upload one document (dict, or exact str/bytes of JSON) the way the SDK
        does: multipart part {"data": <doc>}. Returns the server's answer."""
        p, f = self._pf(project, folder)
        if isinstance(doc, (dict, list)):
            doc = json.dumps(doc)
        if isinstance(doc, str):
            doc = doc.encode()
        boundary = uuid.uuid4().hex
        qname = name.replace("\\", "\\\\").replace('"', '\\"').encode()
        body = (b"--" + boundary.encode() + b"\r\n"
                b'Content-Disposition: form-data; name="' + qname + b'"; filename="' + qname + b'"\r\n'
                b"Content-Type: application/json\r\n\r\n"
                b'{"data": ' + doc + b"}\r\n"
                b"--" + boundary.encode() + b"--\r\n")
        r = json.loads(self.raw("POST", "api/v4/items/annotations/upload",
                                [("project_id", p["id"]), ("folder_id", f["id"]), ("image_names[]", name)],
                                body, ctype="multipart/form-data; boundary=" + boundary))
        assert r["failedItems"] == [], r
        return r

    def delete_annotations(self, project, folder, names):
        p, f = self._pf(project, folder)
        r = self.call("POST", "annotations/remove", {"project_id": p["id"], "folder_id": f["id"]},
                      {"image_names": list(names)})
        for _ in range(100):
            s = self.call("GET", "annotations/getRemoveStatus",
                          {"project_id": p["id"], "poll_id": r["poll_id"]})
            if s.get("process", -1) >= 100 or s.get("process") == 0:
                return
        raise AssertionError("delete never finished")
