#!/usr/bin/env python3
"""Writes the seed corpus, tests/fuzz/corpus/<target>/ (run from anywhere;
the files are committed, this is how they were made). Documents in the forms
real programs write: jq's 2-space indent, Python's json.dump (default and
compact), 4-space pretty (what safs serves), CRLF, no final newline, empty."""
import json
import os

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
FW_SLASH, RQ = "\uff0f", "\u201b"


def put(target, name, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


vector = {
    "metadata": {"name": "img 1.jpg", "width": 1024, "height": 768, "status": "InProgress",
                 "pinned": False, "isPredicted": False, "projectId": 7, "id": 101,
                 "annotatorEmail": None, "qaEmail": None,
                 "lastAction": {"email": "a@b.c", "timestamp": 1700000000000}},
    "instances": [
        {"type": "bbox", "classId": 1, "className": "car", "probability": 100,
         "points": {"x1": 12.3, "y1": 4.56, "x2": 100.0, "y2": 1e-05},
         "attributes": [{"id": 3, "groupId": 2, "name": "red", "groupName": "color"}],
         "creationType": "Manual", "locked": False, "visible": True},
        {"type": "polygon", "classId": 2, "points": [1, 2, 3.5, 4, 5, 6]},
        {"type": "point", "x": -0.0, "y": 123456789012345678901234567890},
    ],
    "tags": ["night", "rain \u00e9\u4e2d"],
    "comments": [{"x": 1, "y": 2, "resolved": False,
                  "correspondence": [{"text": "quote \" back \\ tab\t", "email": "q@a"}]}],
}
video = {
    "metadata": {"name": "clip.mp4", "duration": 3000000, "width": 640, "height": 480,
                 "status": "NotStarted"},
    "instances": [
        {"meta": {"type": "bbox", "classId": 1, "className": "car", "start": 0, "end": 2000000},
         "parameters": [{"start": 0, "end": 2000000, "timestamps": [
             {"timestamp": 0, "points": {"x1": 1, "y1": 2, "x2": 30, "y2": 40}},
             {"timestamp": 1500000, "points": {"x1": 11, "y1": 12.5, "x2": 31, "y2": 41},
              "attributes": [{"id": 1, "name": "a", "groupName": "g"}]}]}]},
        {"meta": {"type": "event", "classId": 2, "start": 500000, "end": 900000},
         "parameters": [{"start": 500000, "end": 900000,
                         "timestamps": [{"timestamp": 500000}, {"timestamp": 900000}]}]},
        {"meta": {"type": "point", "start": 0, "end": 1000000},
         "parameters": [{"start": 0, "end": 1000000, "timestamps": [
             {"timestamp": 0, "x": 1, "y": 1}, {"timestamp": 1000000, "x": 5.25, "y": 9}]}]},
    ],
    "tags": ["t"],
}
empty = {"metadata": {"name": "e.jpg", "status": "NotStarted", "id": 5},
         "instances": [], "tags": [], "comments": []}


def forms(doc):
    yield "jq", json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    yield "py", json.dumps(doc)
    yield "pycompact", json.dumps(doc, separators=(",", ":"))
    yield "pretty4", json.dumps(doc, indent=4, ensure_ascii=False) + "\n"
    yield "crlf", json.dumps(doc, indent=2).replace("\n", "\r\n") + "\r\n"
    yield "ascii", json.dumps(doc, indent="\t", ensure_ascii=True)


# ---- doc: byte 0 selects project type (b % 6), status, name
sel = "ABCDEFGHIJKL"
k = 0
for dname, doc in (("vector", vector), ("video", video), ("empty", empty)):
    for form, text in forms(doc):
        put("doc", f"{dname}-{form}", sel[k % len(sel)] + text)
        k += 1
put("doc", "empty-file", "A")
put("doc", "ws-only", "B \r\n\t")
put("doc", "dup-keys", 'C{"metadata":{"status":"A","status":"B"},"instances":[],"instances":[{}]}')
put("doc", "no-metadata", 'D{"instances":[{"type":"bbox"}]}\n')
put("doc", "bad-trailing-comma", 'E{"a":[1,2,],}')
put("doc", "bad-nan", 'F{"a":NaN}')
put("doc", "bad-utf8", b'G{"a":"\xff\xfe"}')
put("doc", "escapes", 'H{"s":"\\u00e9\\ud83d\\ude00\\ud800\\n\\/","n":-1.5E+300}')
put("doc", "deep", "I" + '{"a":' * 40 + "1" + "}" * 40)
put("doc", "bom", "J\ufeff{}")

# ---- frames: byte 0 selects fps
for i, (form, text) in enumerate(forms(video)):
    put("frames", f"video-{form}", chr(0x30 + i) + text)
put("frames", "no-duration", '0{"metadata":{"name":"v"},"instances":[]}')
put("frames", "fps-zero", '6' + json.dumps(video))
put("frames", "fps-negative", '7' + json.dumps(video))
put("frames", "string-instances", '0{"metadata":{"duration":1000000},"instances":"ab"}')
put("frames", "bool-arith", '0{"metadata":{"duration":true},"instances":[{"meta":{"start":false,'
    '"end":true},"parameters":[{"start":0,"end":1,"timestamps":[{"timestamp":true,"x":1}]}]}]}')
put("frames", "empty-file", "0")

# ---- stream: byte 0 seeds chunk sizes; body is objects separated by \n;)\n
D = "\\n;)\\n"
docs = [json.dumps(vector, separators=(",", ":")), json.dumps(empty), json.dumps(video)]
put("stream", "three", "\x05" + D.join(docs) + D)
put("stream", "one-no-delim", "\x01" + docs[1])
put("stream", "error-object", "\x03" + docs[1] + D + '{"error":"Item not found"}' + D)
put("stream", "no-metadata", "\x02" + '{"instances":[]}' + D)
put("stream", "truncated", "\x07" + docs[0][: len(docs[0]) // 2])
put("stream", "bad-delim", "\x04" + docs[1] + "\\n;(\\n" + docs[1])
put("stream", "whitespace", "\x09" + " \r\n" + docs[1] + D + "\n" + docs[1] + D + "  ")
put("stream", "braces-in-strings", "\x0b" + '{"metadata":{"name":"}{\\"]["},"x":"\\\\"}' + D)
put("stream", "empty", "\x00")
put("stream", "pretty", "\x11" + json.dumps(empty, indent=4) + D)

# ---- names: one or two platform names, NUL-separated
for i, n in enumerate(["img.jpg", "a/b.jpg", "a" + FW_SLASH + "b", RQ + FW_SLASH, RQ + RQ + RQ,
                       "x" + RQ, ".", "..", "", "\uff0e", "\uff0e\uff0e\uff0e",
                       "caf\u00e9 \u4e2d\u6587 \U0001f600", "/" * 30,
                       "\u00e9" * 130, "a" * 300]):
    put("names", f"name-{i:02d}", n)
put("names", "invalid-utf8", b"bad\xff\xe2\x80name\xef\xbc")
put("names", "partial-escape", b"\xe2\x80\x9b\xef\xbc")
put("names", "pair-slash", "a/b\0a" + FW_SLASH + "b")
put("names", "pair-quote", RQ + "\0" + RQ + RQ)
put("names", "pair-dots", ".\0\uff0e")
put("names", "pair-long", "a" * 250 + "1\0" + "a" * 250 + "2")

# ---- config: config.ini, then NUL-separated arguments
ini = "[DEFAULT]\nSA_TOKEN = abc=123\nSA_URL = https://api.example.com\n"
put("config", "ini-plain", ini)
put("config", "ini-crlf", ini.replace("\n", "\r\n"))
put("config", "ini-colon-comments",
    "# comment\n; another\n[DEFAULT]\nsa_token: tok\nverify_ssl = False\n[other]\nSA_TOKEN = no\n")
put("config", "ini-no-final-newline", "[DEFAULT]\nSA_TOKEN=  spaced token \t")
put("config", "ini-empty-token", "[DEFAULT]\nSA_TOKEN =\n")
put("config", "ini-no-default", "[default]\nSA_TOKEN = x\n")
put("config", "empty", "")
put("config", "args-options", ini + "\0proj/fold\0mnt\0-o\0ro,fps=2.5,max_doc=10M,umask=027,"
    "uid=1000,gid=1000,cache_timeout=0,timeout=2,loglevel=debug,suffix=.json,allow_other")
put("config", "args-fstab", ini + "\0safs#proj\0mnt\0-o\0_netdev,nofail,x-systemd.automount,"
    "comment=x,noatime,fsname=x,subtype=y")
put("config", "args-bad", ini + "\0a/b/c\0mnt\0-o\0max_threads=0,umask=999")
put("config", "args-token", ini + "\0mnt\0-o\0token=secret")
put("config", "args-probe", ini + "\0--probe\0team\0-d\0-s")
put("config", "args-help", ini + "\0--help")
put("config", "args-version", ini + "\0-V")
put("config", "args-repeat", ini + "\0mnt\0-o\0url=a,url=b,cafile=x,cafile=y,recovery_dir=r,"
    "recovery_dir=s,cache_dir=c,cache_dir=d")
put("config", "args-sizes", ini + "\0mnt\0-o\0max_doc=17179869184G")

# ---- multipart: Content-Type, "\n", body
doc = json.dumps(empty).encode()
bd = "0123456789abcdef0123456789abcdef"
sdk = (b"--" + bd.encode() + b"\r\nContent-Disposition: form-data; name=\"a \\\"q\\\" \\\\.jpg\"; "
       b"filename=\"a.jpg\"\r\nContent-Type: application/json\r\n\r\n{\"data\": " + doc +
       b"}\r\n--" + bd.encode() + b"--\r\n")
put("multipart", "sdk", b"multipart/form-data; boundary=" + bd.encode() + b"\n" + sdk)
put("multipart", "quoted-boundary", b'multipart/form-data; boundary="' + bd.encode() + b'"\n' + sdk)
put("multipart", "two-parts", b"multipart/form-data;boundary=XX\n--XX\r\n"
    b"Content-Disposition: form-data; name=one\r\n\r\n{\"data\":{}}\r\n--XX\r\n"
    b"content-disposition: form-data; name*=UTF-8''%E2%80%9B%2F.jpg\r\n\r\n"
    b"{\"data\":{\"metadata\":{}}}\r\n--XX--\r\n")
put("multipart", "preamble", b"multipart/form-data; boundary=B\nignored\r\n--B\r\n"
    b"Content-Disposition: form-data; filename=\"f\"\r\n\r\nx\r\n--B--")
put("multipart", "no-name", b"multipart/form-data; boundary=B\n--B\r\n\r\nx\r\n--B--\r\n")
put("multipart", "unterminated", b"multipart/form-data; boundary=B\n--B\r\nContent-Disposition: "
    b"form-data; name=\"a\r\n")
put("multipart", "not-multipart", b"application/json\n{}")
put("multipart", "empty", b"")
