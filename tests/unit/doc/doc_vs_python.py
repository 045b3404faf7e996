#!/usr/bin/python3
"""Compare client/doc.c with Python's json module (run by meson test).

usage: doc_vs_python.py DOC_CLI WORKDIR

1. pretty: for generated documents whose tokens are already in Python's own
   spelling (so "verbatim" and "re-serialized" agree), doc_cli pretty must
   equal json.dumps(json.loads(x), indent=4, ensure_ascii=False) + "\n"
   byte for byte, whatever whitespace the input had.
2. validity: random byte mutations of valid documents must be accepted by
   doc_cli validate exactly when Python's strict reading accepts them
   (UTF-8 decode, json.loads without NaN/Infinity, an object, the shape
   rules of sa/doc.h, nesting <= 512).
3. equal: a document and a shuffled, re-spelled copy are equal; a copy with
   one value changed is not.
4. status (sa_doc_with_status): the output read by json.loads with number
   tokens kept as text and key order kept is the input's reading with
   metadata.status set (appended last, or metadata first); where nothing was
   replaced, removing the inserted bytes gives the input back; where the
   status was already right, the output is the input.
5. empty (sa_doc_is_empty): agrees with Python on documents in json.dump,
   jq-style 2-space, 4-space, tab, CRLF, with and without a final newline,
   and gives -1 exactly where Python cannot read an object.
Fixed seed; every run of doc_cli has a timeout.
"""
import json
import os
import random
import subprocess
import sys

CLI, WORK = sys.argv[1], sys.argv[2]
os.makedirs(WORK, exist_ok=True)
rng = random.Random(20240611)
failures = 0


def run(*args):
    p = subprocess.run([CLI, *args], capture_output=True, timeout=60)
    return p.returncode, p.stdout


def put(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


CHARS = "abcxyz é€😀\"\\/\n\t\u0001\u001f\u007f\u2028ü中"


def rstr():
    return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 8)))


def rnum():
    k = rng.random()
    if k < 0.4:
        return rng.randint(-10**6, 10**6)
    if k < 0.5:
        return rng.randint(-10**30, 10**30)  # beyond int64: must pass through
    if k < 0.9:
        return round(rng.uniform(-2000, 2000), rng.randint(0, 6))
    return rng.choice([1e-05, 1.5e+16, 1e300, -0.0, 0.0, 5e-324, 2.5])


def rval(depth):
    k = rng.random()
    if depth > 5 or k < 0.5:
        return rng.choice([rnum, rstr, lambda: rng.choice([True, False, None])])()
    if k < 0.75:
        return [rval(depth + 1) for _ in range(rng.randint(0, 5))]
    return {rstr() + str(i): rval(depth + 1) for i in range(rng.randint(0, 5))}


def rdoc():
    d = {}
    if rng.random() < 0.8:
        d["metadata"] = {"name": rstr() + ".jpg", "width": rnum(), "height": rnum()}
    if rng.random() < 0.8:
        d["instances"] = [rval(1) if rng.random() < 0.1 else
                          {"type": "bbox", "points": {"x1": rnum(), "y1": rnum()},
                           "x": rval(2), "attributes": [rval(3)]}
                          for _ in range(rng.randint(0, 6))]
    for i in range(rng.randint(0, 4)):
        d[rstr() + "k" + str(i)] = rval(1)
    if rng.random() < 0.5:
        d["tags"] = [rstr() for _ in range(rng.randint(0, 3))]
    return d


WS = [" ", "\n", "\t", "\r\n", "  "]


def respace(text):
    """Insert random whitespace between tokens of a compact JSON text."""
    out, in_str, esc = [], False, False
    for ch in text:
        out.append(ch)
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in ",:[]{}" and rng.random() < 0.3:
            out.append(rng.choice(WS))
    return "".join(out)


def expected(text):
    return (json.dumps(json.loads(text), indent=4, ensure_ascii=False) + "\n").encode()


def fail(msg):
    global failures
    failures += 1
    if failures < 20:
        print("FAIL:", msg)


# 1. pretty vs Python
N = 600
for i in range(N):
    d = rdoc()
    style = i % 3
    if style == 0:
        text = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
    elif style == 1:
        text = respace(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
    else:
        text = json.dumps(d, ensure_ascii=False, indent=rng.choice([1, 2, 4, "\t"]))
    path = put("p.json", text.encode())
    rc, out = run("pretty", path)
    want = expected(text)
    if rc != 0 or out != want:
        fail(f"pretty #{i}: rc={rc}\ninput: {text[:300]!r}\n got: {out[:300]!r}\nwant: {want[:300]!r}")
# one big document (a few MB)
big = {"metadata": {"name": "big"}, "instances": [rdoc() for _ in range(3000)]}
text = json.dumps(big, ensure_ascii=False)
rc, out = run("pretty", put("big.json", text.encode()))
if rc != 0 or out != expected(text):
    fail("pretty of the big document differs")
print(f"pretty: {N + 1} documents compared with Python ({len(text) / 1e6:.1f} MB largest)")


# 2. validity under mutation
def py_valid(data):
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if s.startswith("\ufeff"):
        return False

    def no_const(c):
        raise ValueError(c)
    try:
        v = json.loads(s, parse_constant=no_const)
    except (ValueError, RecursionError):
        return False
    return isinstance(v, dict)


def depth_of(v):
    if isinstance(v, dict):
        return 1 + max((depth_of(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth_of(x) for x in v), default=0)
    return 0


MUT = [b"", b",", b"]", b"}", b"[", b"{", b"\"", b"\\", b"0", b"-", b".", b"e", b"NaN", b"\x00",
       b"\x1f", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\\u", b"\\ud800",
       b"tru", b"null", b"//", b"/*", b" ", b"\n", b":", b"01", b"1e5", b"\xef\xbb\xbf", b"\\x"]
agree = 0
nvalid = 0
M = 2000
for i in range(M):
    base = json.dumps(rdoc(), ensure_ascii=rng.random() < 0.3).encode()
    b = bytearray(base)
    for _ in range(rng.randint(1, 2)):
        pos = rng.randrange(len(b) + 1)
        k = rng.random()
        if k < 0.4:
            b[pos:pos + rng.randint(1, 3)] = b""
        elif k < 0.8:
            b[pos:pos] = rng.choice(MUT)
        else:
            b[pos:pos + 1] = rng.choice(MUT)
    data = bytes(b)
    want = py_valid(data)
    if want:
        # the shape rules on the real value
        v = json.loads(data.decode())
        for key, t in (("metadata", dict), ("instances", list), ("tags", list), ("comments", list)):
            if key in v and not isinstance(v[key], t):
                want = False
        if want and depth_of(v) > 512:
            want = False
        # duplicate shaped keys: only the last is visible to json.loads; we
        # check every occurrence, so leave such inputs out
        pairs = json.loads(data.decode(), object_pairs_hook=lambda p: p)
        names = [k for k, _ in pairs]
        if any(names.count(k) > 1 for k in ("metadata", "instances", "tags", "comments")):
            continue
    nvalid += want
    rc, out = run("validate", put("m.json", data))
    got = rc == 0
    if got != want:
        fail(f"validity #{i}: C says {got} ({out.decode(errors='replace').strip()}), "
             f"Python {want}: {data[:200]!r}")
    else:
        agree += 1
    if rc == 1 and not out.startswith(b"line "):
        fail(f"reason without position: {out!r}")
print(f"validity: {agree} mutated documents agree with Python ({nvalid} valid)")


# 3. equal
def respell(v):
    """Same value, other spelling: shuffled keys, ints as floats, escapes."""
    if isinstance(v, dict):
        items = list(v.items())
        rng.shuffle(items)
        return {k: respell(x) for k, x in items}
    if isinstance(v, list):
        return [respell(x) for x in v]
    return v


def spell(v):
    s = json.dumps(v, ensure_ascii=rng.random() < 0.5)
    return s


E = 300
for i in range(E):
    d = rdoc()
    a = json.dumps(d, ensure_ascii=False)
    b = spell(respell(d))
    b = b.replace(": 100,", ": 1.0e2,")
    pa, pb = put("a.json", a.encode()), put("b.json", b.encode())
    rc, out = run("equal", pa, pb, "4")
    if out.strip() != b"1":
        fail(f"equal #{i}: {out!r}\n{a[:300]}\n{b[:300]}")
    # change one leaf
    c = json.loads(a)
    c.setdefault("zz", 0)
    c["zz"] = [c["zz"], 1]
    rc, out = run("equal", pa, put("c.json", json.dumps(c).encode()), "4")
    if out.strip() != b"0":
        fail(f"unequal #{i}: {out!r}")
print(f"equal: {E} pairs")



# 4. status
def pairs(text):
    """Key order and number spelling kept: objects as lists of pairs."""
    return json.loads(text, object_pairs_hook=list, parse_float=str, parse_int=str,
                      parse_constant=str)


def with_status_ref(v, q):
    """v as read by pairs(); q the status (a str). What the splice must give."""
    if not any(k == "metadata" for k, _ in v):
        return [("metadata", [("status", q)])] + v
    out = []
    for k, x in v:
        if k == "metadata":
            if any(mk == "status" for mk, _ in x):
                x = [(mk, q if mk == "status" else mv) for mk, mv in x]
            else:
                x = x + [("status", q)]
        out.append((k, x))
    return out


S = 500
kinds = {"same": 0, "replace": 0, "append": 0, "create": 0}
for i in range(S):
    d = rdoc()
    status = rng.choice(["NotStarted", "InProgress", "Completed", "Review", rstr().replace("\n", "")])
    k = rng.random()
    if "metadata" in d and k < 0.25:
        d["metadata"]["status"] = status
    elif "metadata" in d and k < 0.5:
        d["metadata"]["status"] = rng.choice(["NotStarted", "Skipped", None, 5, [1], {"a": 1}])
        if rng.random() < 0.5:  # status first, in the middle or last
            m = d["metadata"]
            items = list(m.items())
            rng.shuffle(items)
            d["metadata"] = dict(items)
    style = i % 4
    if style == 0:
        text = json.dumps(d, ensure_ascii=False, separators=(",", ":"))
    elif style == 1:
        text = respace(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
    elif style == 2:
        text = json.dumps(d, ensure_ascii=rng.random() < 0.5, indent=rng.choice([2, 4, "\t"]))
    else:
        text = json.dumps(d, ensure_ascii=False, indent=4).replace("\n", "\r\n") + "\r\n"
    data = text.encode()
    rc, out = run("status", put("s.json", data), status)
    if rc != 0:
        fail(f"status #{i}: rc={rc} {out[:200]!r}")
        continue
    try:
        got = pairs(out.decode())
    except ValueError as e:
        fail(f"status #{i}: output is not JSON ({e}): {out[:300]!r}")
        continue
    want = with_status_ref(pairs(text), status)
    if got != want:
        fail(f"status #{i}:\ninput: {text[:300]!r}\n got: {out[:300]!r}")
        continue
    q = json.dumps(status, ensure_ascii=False).encode()
    meta = d.get("metadata")
    if meta is not None and meta.get("status", object()) == status:
        kinds["same"] += 1
        if out != data:
            fail(f"status #{i}: already {status!r} but changed:\n{text[:300]!r}\n{out[:300]!r}")
    elif meta is not None and "status" in meta:
        kinds["replace"] += 1
    else:
        ins = [b'"metadata":{"status":' + q + b'},', b'"metadata":{"status":' + q + b'}'] \
            if meta is None else [b',"status":' + q, b'"status":' + q]
        kinds["create" if meta is None else "append"] += 1
        if not any(ins_ in out and out.replace(ins_, b"", 1) == data for ins_ in ins):
            fail(f"status #{i}: not the input plus one insertion:\n{text[:300]!r}\n{out[:300]!r}")
print(f"status: {S} documents ({kinds})")


# 5. empty
def py_empty(data):
    if not py_valid(data):
        return -1
    v = json.loads(data.decode())
    return int(all(v[k] in ([], {}, None, "") and not isinstance(v[k], bool)
                   for k in v if k not in ("metadata", "version")))


EMPTY = [[], {}, None, ""]
T = 600
counts = {-1: 0, 0: 0, 1: 0}
for i in range(T):
    d = {}
    if rng.random() < 0.8:
        d["metadata"] = {"name": rstr(), "status": "NotStarted", "x": rval(2)}
    if rng.random() < 0.3:
        d["version"] = rng.choice(["1.0", [1], {"a": 1}])
    full = rng.random() < 0.4
    for key in rng.sample(["instances", "tags", "comments", "freeText", "x" + rstr()],
                          rng.randint(0, 5)):
        d[key] = rng.choice(EMPTY)
    if full:
        key = rng.choice(["instances", "tags", "comments", "freeText", "z"])
        d[key] = rng.choice([[{"type": "bbox"}], ["tag"], [None], "text", 0, False, {"a": None},
                             [[]], " "])
    items = list(d.items())
    rng.shuffle(items)
    d = dict(items)
    style = i % 6
    if style == 0:
        text = json.dumps(d)                       # json.dump, ", " and ": "
    elif style == 1:
        text = json.dumps(d, separators=(",", ":"))
    elif style == 2:
        text = json.dumps(d, indent=2, ensure_ascii=False) + "\n"  # jq
    elif style == 3:
        text = json.dumps(d, indent=4) + "\n"
    elif style == 4:
        text = (json.dumps(d, indent=2) + "\n").replace("\n", "\r\n")
    else:
        text = respace(json.dumps(d, indent="\t"))
    data = text.encode()
    if i % 5 == 4:  # a mutation now and then: -1 exactly when Python fails
        b = bytearray(data)
        pos = rng.randrange(len(b) + 1)
        b[pos:pos + rng.randint(0, 2)] = rng.choice(MUT)
        data = bytes(b)
    want = py_empty(data)
    rc, out = run("empty", put("e.json", data))
    counts[want] += 1
    if out.strip() != str(want).encode():
        fail(f"empty #{i}: C {out.strip()!r}, Python {want}: {data[:300]!r}")
print(f"empty: {T} documents (Python says {counts})")

print("failures:", failures)
sys.exit(1 if failures else 0)
