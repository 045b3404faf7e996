#!/usr/bin/python3
"""client/frames.c against the Python reference frames_ref.py (run by meson).

usage: frames_vs_ref.py FRAMES_CLI WORKDIR [N_RANDOM]

1. Hand-derived expectations (values worked out from api.md §12 by hand,
   written below as Python literals) check the reference itself, and the C
   port against them.
2. Crafted documents hitting each rule of §12/§12.1: C == reference, byte
   for byte, or both refuse.
3. A randomized differential test (fixed seed).
"""
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import frames_ref  # noqa: E402

CLI, WORK = sys.argv[1], sys.argv[2]
N_RANDOM = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
os.makedirs(WORK, exist_ok=True)
failures = 0


def fail(msg):
    global failures
    failures += 1
    if failures <= 15:
        print("FAIL:", msg)


def run_c(doc_bytes, fps):
    path = os.path.join(WORK, "doc.json")
    with open(path, "wb") as f:
        f.write(doc_bytes)
    p = subprocess.run([CLI, path, repr(float(fps))], capture_output=True, timeout=60)
    if p.returncode == 0:
        return p.stdout.decode("utf-8")
    if p.returncode == 1 and p.stdout.startswith(b"ERROR: "):
        return None
    raise SystemExit(f"frames_cli crashed (rc {p.returncode}): {p.stderr[-2000:]!r}")


def dumps(x):
    return json.dumps(x, indent=4, ensure_ascii=False) + "\n"


def compare(name, doc, fps, want=None, expect_error=False):
    data = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    ref = frames_ref.render_or_error(data, fps)
    got = run_c(data, fps)
    if want is not None and ref != want:
        fail(f"{name}: the REFERENCE differs from the hand-derived result\nref:\n{ref}\nwant:\n{want}")
    if expect_error and ref is not None:
        fail(f"{name}: the reference should refuse it")
    if got != ref:
        fail(f"{name} @ {fps} fps: C and reference differ\ndoc: {data[:400]!r}\n"
             f"C:\n{(got or 'ERROR')[:1500]}\nref:\n{(ref or 'ERROR')[:1500]}")
    return ref


# ---------------------------------------------------------------- 1. by hand
def kf(iid, typ, geo, attrs="absent", cname=None, cid=-1, key=True):
    a = {"instanceId": iid, "type": typ}
    if cname is not None:
        a["className"] = cname
    if cid is not None:
        a["classId"] = cid
    a.update(geo)
    if attrs != "absent" and attrs is not None:
        a["attributes"] = attrs
    a["keyframe"] = key
    return a


# A: bbox 0 s (frame 0 -> 1) and 3 s (frame 3) at 1 fps: n = 2, steps
# round(3/2)=1.5, round(3.5/2)=1.75, 1.5, round(6/2)=3.0; a comment consumes
# id 1; a point at 1.5 s (frame 2) and 4.2 s (frame 5): steps 0.5, -2/3.
doc_a = {"metadata": {"duration": 5000000, "name": "v.mp4"}, "instances": [
    {"meta": {"type": "bbox", "className": "car", "classId": 3}, "parameters": [
        {"start": 0, "end": 4000000, "timestamps": [
            {"timestamp": 0, "points": {"x1": 1, "y1": 2, "x2": 10, "y2": 20}, "attributes": []},
            {"timestamp": 3000000, "points": {"x1": 4, "y1": 5.5, "x2": 13, "y2": 26},
             "attributes": [{"id": 1, "name": "a"}]}]}]},
    {"meta": {"type": "comment"}},
    {"meta": {"type": "point"}, "parameters": [{"timestamps": [
        {"timestamp": 1500000, "x": 1, "y": 2, "attributes": []},
        {"timestamp": 4200000, "x": 2.5, "y": 0}]}]}]}
want_a = dumps([
    {"frame": 1, "annotations": [
        kf(0, "bbox", {"points": {"x1": 1, "y1": 2, "x2": 10, "y2": 20}}, [], "car", 3)]},
    {"frame": 2, "annotations": [
        kf(0, "bbox", {"points": {"x1": 2.5, "y1": 3.75, "x2": 11.5, "y2": 23.0}}, [], "car", 3, False),
        kf(2, "point", {"x": 1, "y": 2}, [])]},
    {"frame": 3, "annotations": [
        kf(0, "bbox", {"points": {"x1": 4, "y1": 5.5, "x2": 13, "y2": 26}}, [{"id": 1, "name": "a"}],
           "car", 3),
        kf(2, "point", {"x": 1.5, "y": 1.33}, [], key=False)]},
    {"frame": 4, "annotations": [kf(2, "point", {"x": 2.0, "y": 0.67}, [], key=False)]},
    {"frame": 5, "annotations": [kf(2, "point", {"x": 2.5, "y": 0})]},
])
compare("hand A", doc_a, 1, want_a)

# B: 2 fps (R = 500000), duration 1.5 s -> 3 frames. -0.1 s and 0 s land in
# frame 0 and merge into 1 (in JSON order); 1.4 s -> frame 3. The gap's start
# is the LAST of bucket 1 ([9], attributes null) and the vertex counts
# differ, so frame 2 copies [9] as an int, without attributes. classId "7".
doc_b = {"metadata": {"duration": 1500000}, "instances": [
    {"meta": {"type": "polygon", "classId": "7"}, "parameters": [{"timestamps": [
        {"timestamp": -100000, "points": [1, 2, 3, 4], "attributes": []},
        {"timestamp": 0, "points": [9], "attributes": None},
        {"timestamp": 1400000, "points": [5, 6], "attributes": []}]}]}]}
want_b = dumps([
    {"frame": 1, "annotations": [kf(0, "polygon", {"points": [1, 2, 3, 4]}, [], cid=7)]},
    {"frame": 2, "annotations": [kf(0, "polygon", {"points": [9]}, None, cid=7, key=False)]},
    {"frame": 3, "annotations": [kf(0, "polygon", {"points": [5, 6]}, [], cid=7)]},
])
compare("hand B", doc_b, 2, want_b)

# C: 280000 us at 25 fps: 0.28 * 25 = 7.000000000000001 -> 8 empty frames.
compare("hand C", {"metadata": {"duration": 280000}, "instances": []}, 25,
        dumps([{"frame": f, "annotations": []} for f in range(1, 9)]))

# D: ties. Steps round(0.25/2) = round(0.125) = 0.12 (exact tie, to even),
# 0.0, 0.0, 0.5; frame 2: 0.12, round(0.375) = 0.38, round(2.675) = 2.67
# (2.675 is below the tie in binary), 1.5. Same vertex count polygon: floats.
doc_d = {"metadata": {"duration": 3000000}, "instances": [
    {"meta": {"type": "bbox", "classId": None, "className": "t"}, "parameters": [{"timestamps": [
        {"timestamp": 0, "points": {"x1": 0, "y1": 0.375, "x2": 2.675, "y2": 1}, "attributes": []},
        {"timestamp": 3000000, "points": {"x1": 0.25, "y1": 0.375, "x2": 2.675, "y2": 2},
         "attributes": []}]}]},
    {"meta": {"type": "polyline"}, "parameters": [{"timestamps": [
        {"timestamp": 1, "points": [100, 0], "attributes": []},
        {"timestamp": 3000000, "points": [100, 1], "attributes": []}]}]}]}
want_d = dumps([
    {"frame": 1, "annotations": [
        kf(0, "bbox", {"points": {"x1": 0, "y1": 0.375, "x2": 2.675, "y2": 1}}, [], "t", None),
        kf(1, "polyline", {"points": [100, 0]}, [])]},
    {"frame": 2, "annotations": [
        kf(0, "bbox", {"points": {"x1": 0.12, "y1": 0.38, "x2": 2.67, "y2": 1.5}}, [], "t", None, False),
        kf(1, "polyline", {"points": [100.0, 0.5]}, [], key=False)]},
    {"frame": 3, "annotations": [
        kf(0, "bbox", {"points": {"x1": 0.25, "y1": 0.375, "x2": 2.675, "y2": 2}}, [], "t", None),
        kf(1, "polyline", {"points": [100, 1]}, [])]},
])
compare("hand D", doc_d, 1, want_d)
print("hand-derived cases checked")


# ---------------------------------------------------------------- 2. crafted
def vid(instances, duration=10000000, extra_meta=None):
    m = {"name": "v.mp4", "duration": duration}
    m.update(extra_meta or {})
    return {"metadata": m, "instances": instances}


def inst(typ, params, **meta):
    m = {"type": typ}
    m.update(meta)
    return {"meta": m, "parameters": params}


def ts(t, **kw):
    d = {"timestamp": t}
    d.update(kw)
    return d


BB = lambda a, b, c, d: {"x1": a, "y1": b, "x2": c, "y2": d}  # noqa: E731

crafted = [
    ("each type with gaps", vid([
        inst("bbox", [{"timestamps": [ts(0, points=BB(1, 2, 3, 4), attributes=[]),
                                      ts(5000000, points=BB(11.11, 2.22, 30, 4), attributes=[1])]}]),
        inst("point", [{"timestamps": [ts(1000000, x=1, y=1, attributes=[]),
                                       ts(7000000, x=2.333, y=-5, attributes=[])]}]),
        inst("polygon", [{"timestamps": [ts(0, points=[0, 0, 10, 10], attributes=[]),
                                         ts(4000000, points=[3, 3, 13, 17.5], attributes=[])]}]),
        inst("polyline", [{"timestamps": [ts(0, points=[0, 0], attributes=[]),
                                          ts(4000000, points=[3, 3, 4, 4], attributes=[])]}]),
        inst("event", [{"timestamps": [ts(0, attributes=[{"a": None}]), ts(9000000, attributes=[])]}]),
        inst("cuboid", [{"timestamps": [ts(0, points={"f1": {"x": 1}}, attributes=[]),
                                        ts(1000000, points={}, attributes=[])]}]),
    ])),
    ("cuboid with a gap raises", vid([inst("cuboid", [{"timestamps": [
        ts(0, points={"f1": 1}, attributes=[]), ts(5000000, points={}, attributes=[])]}])])),
    ("cuboid empty start is fine", vid([inst("ellipse", [{"timestamps": [
        ts(0, points={}, attributes=[]), ts(5000000, points={"a": 1}, attributes=[])]}])])),
    ("bbox without end points raises", vid([inst("bbox", [{"timestamps": [
        ts(0, points=BB(1, 2, 3, 4), attributes=[]), ts(5000000, attributes=[])]}])])),
    ("bbox empty start points", vid([inst("bbox", [{"timestamps": [
        ts(0, points=[], attributes=[]), ts(5000000, points=BB(1, 2, 3, 4), attributes=[])]}])])),
    ("bbox string empty start", vid([inst("bbox", [{"timestamps": [
        ts(0, points="", attributes=[]), ts(5000000, points=BB(1, 2, 3, 4), attributes=[])]}])])),
    ("bbox null start points raises", vid([inst("bbox", [{"timestamps": [
        ts(0, points=None, attributes=[]), ts(5000000, points=BB(1, 2, 3, 4), attributes=[])]}])])),
    ("adjacent frames only", vid([inst("cuboid", [{"timestamps": [
        ts(0, points={"f1": 1}, attributes=[]), ts(1000000, points={"f1": 2}, attributes=[]),
        ts(2000000, points={"f1": 3})]}])])),
    ("two parameter ranges", vid([inst("bbox", [
        {"timestamps": [ts(0, points=BB(0, 0, 10, 10), attributes=[]),
                        ts(2000000, points=BB(2, 2, 12, 12), attributes=[])]},
        {"timestamps": [ts(5000000, points=BB(5, 5, 15, 15), attributes=[]),
                        ts(8000000, points=BB(8, 8, 18, 18), attributes=[])]}])])),
    ("several in one frame", vid([inst("point", [{"timestamps": [
        ts(100, x=1, y=1, attributes=["first"]), ts(200, x=2, y=2, attributes=["second"]),
        ts(3000000, x=10, y=10, attributes=[]), ts(2500000, x=7, y=7, attributes=["mid"])]}])])),
    ("frame 0 and frame 1 merge", vid([inst("point", [{"timestamps": [
        ts(500000, x=5, y=5, attributes=["f1"]), ts(0, x=0, y=0, attributes=["f0"]),
        ts(4000000, x=9, y=9, attributes=[])]}])])),
    ("negative timestamps", vid([inst("point", [{"timestamps": [
        ts(-2500000, x=-5, y=0, attributes=[]), ts(-999999, x=-1, y=0, attributes=[]),
        ts(3000000, x=3, y=3, attributes=[])]}])])),
    ("very negative only", vid([inst("point", [{"timestamps": [
        ts(-5000000, x=-5, y=0, attributes=[]), ts(-3000000, x=-3, y=0, attributes=[])]}])])),
    ("beyond the duration", vid([inst("bbox", [{"timestamps": [
        ts(1000000, points=BB(0, 0, 1, 1), attributes=[]),
        ts(60000000, points=BB(59, 59, 60, 60), attributes=[])]}])], duration=3000000)),
    ("single beyond", vid([inst("bbox", [{"timestamps": [
        ts(60000000, points=BB(0, 0, 1, 1), attributes=[])]}])], duration=3000000)),
    ("null duration", vid([inst("point", [{"timestamps": [ts(0, x=1, y=1, attributes=[])]}])],
                          duration=None)),
    ("zero duration", vid([], duration=0)),
    ("fractional duration", vid([inst("point", [{"timestamps": [ts(0, x=1, y=1, attributes=[])]}])],
                                duration=2500000.5)),
    ("false duration", vid([], duration=False)),
    ("true duration", vid([], duration=True)),
    ("string duration raises", vid([], duration="5")),
    ("empty string duration", vid([], duration="")),
    ("1000000 us at 29 fps", vid([inst("point", [{"timestamps": [
        ts(0, x=0, y=0, attributes=[]), ts(1000000, x=29, y=29, attributes=[])]}])],
        duration=1000000)),
    ("ints stay ints", vid([inst("polygon", [{"timestamps": [
        ts(0, points=[1, 2.0, True, -0, -0.0, 1e3, 12.30, 1E5], attributes=[]),
        ts(3000000, points=[1, 2], attributes=[])]}])])),
    ("polygon same count floats", vid([inst("polygon", [{"timestamps": [
        ts(0, points=[100, 200, True, 0.1], attributes=[]),
        ts(3000000, points=[100, 203, False, 0.7], attributes=[])]}])])),
    ("polygon string start raises", vid([inst("polygon", [{"timestamps": [
        ts(0, points="ab", attributes=[]), ts(3000000, points=[1, 2], attributes=[])]}])])),
    ("polygon missing end points raises", vid([inst("polygon", [{"timestamps": [
        ts(0, points=[1, 2], attributes=[]), ts(3000000, attributes=[])]}])])),
    ("polygon empty start", vid([inst("polygon", [{"timestamps": [
        ts(0, points=[], attributes=[]), ts(3000000, points=[1, 2], attributes=[])]}])])),
    ("empty start points", vid([inst("polyline", [{"timestamps": [
        ts(0, points={}, attributes=[]), ts(3000000, points={}, attributes=[])]}])])),
    ("missing parameters", vid([{"meta": {"type": "bbox"}}])),
    ("null parameters raises", vid([{"meta": {"type": "bbox"}, "parameters": None}])),
    ("missing timestamps raises", vid([inst("bbox", [{"start": 0}])])),
    ("missing timestamp raises", vid([inst("bbox", [{"timestamps": [{"points": []}]}])])),
    ("string timestamp raises", vid([inst("bbox", [{"timestamps": [ts("0", attributes=[])]}])])),
    ("bool timestamp", vid([inst("point", [{"timestamps": [ts(True, x=1, y=2, attributes=[])]}])])),
    ("missing metadata raises", {"instances": []}),
    ("missing duration raises", {"metadata": {"name": "x"}, "instances": []}),
    ("missing instances raises", {"metadata": {"duration": 1000000}}),
    ("empty object instances", {"metadata": {"duration": 1000000}, "instances": {}}),
    ("missing meta raises", vid([{"parameters": []}])),
    ("missing type raises", vid([{"meta": {}, "parameters": []}])),
    ("comment consumes an id", vid([
        {"meta": {"type": "comment"}, "parameters": None},
        inst("point", [{"timestamps": [ts(0, x=1, y=1, attributes=[])]}])])),
    ("classId lax", vid([
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId="12"),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=3.0),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=True),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=None),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=" -0012 "),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=12345678901234567890123),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=1e20),
        inst("event", [{"timestamps": [ts(0, attributes=[])]}], className=None)])),
    ("classId 3.5 raises", vid([inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId=3.5)])),
    ("classId abc raises", vid([inst("event", [{"timestamps": [ts(0, attributes=[])]}], classId="abc")])),
    ("classId unused is not checked", vid([inst("event", [], classId="abc")])),
    ("className number raises", vid([inst("event", [{"timestamps": [ts(0, attributes=[])]}],
                                          className=5)])),
    ("type number raises", vid([inst(5, [{"timestamps": [ts(0, attributes=[])]}])])),
    ("attributes dict raises", vid([inst("event", [{"timestamps": [ts(0, attributes={})]}])])),
    ("single frame needs attributes", vid([inst("event", [{"timestamps": [ts(0)]}])])),
    ("pair without attributes", vid([inst("event", [{"timestamps": [ts(0), ts(3000000)]}])])),
    ("nulls kept inside", vid([inst("bbox", [{"timestamps": [
        ts(0, points={"x1": None, "q": [None]}, attributes=[{"id": None}], x=None)]}])])),
    ("unicode and escapes", json.dumps(vid([inst("point", [{"timestamps": [
        ts(0, x=1, y=1, attributes=[{"name": "é\"\\/\n\t\u0001\u2028😀"}])]}], className="ü\u007f")]),
        ensure_ascii=True).encode()),
    ("verbatim-insensitive numbers", b'{"metadata":{"duration":3E6},"instances":[{"meta":{"type":'
     b'"point","classId":-0},"parameters":[{"timestamps":[{"timestamp":0,"x":12.30,"y":1E5,'
     b'"attributes":[1.0e-7,-0,-0.0,123456789012345678901234567890,1e22,1e16,9999999999999998.0]},'
     b'{"timestamp":2000000,"x":-0.005,"y":0.015,"attributes":[]}]}]}]}'),
    ("duplicate keys", b'{"metadata":{"duration":2000000,"duration":3000000},"instances":[{"meta":'
     b'{"type":"event","type":"point"},"parameters":[{"timestamps":[{"timestamp":0,"x":1,"y":1,'
     b'"x":2,"attributes":[{"a":1,"b":2,"a":3}]},{"timestamp":2000000,"x":4,"y":4,"attributes":[]}]}]}]}'),
    ("NaN is not JSON", b'{"metadata":{"duration":NaN},"instances":[]}'),
    ("not an object", b'[1, 2]'),
    ("invalid JSON", b'{"metadata":'),
]
for fps in (1, 2, 25, 29, 29.97, 0.5, 7, 1000):
    for name, doc in crafted:
        compare(name, doc, fps)
for name, doc in crafted[:6]:
    compare(name + " (fps 0)", doc, 0)
    compare(name + " (fps -1)", doc, -1)
compare("fps 0 errors", vid([]), 0, expect_error=True)
compare("negative fps", vid([]), -2, "[]\n")
compare("280000 at 25", vid([], duration=280000), 25)
print(f"crafted: {len(crafted)} documents x 8 fps")

# ---------------------------------------------------------------- 3. random
rng = random.Random(1234567)


def rnum(ints=True):
    k = rng.random()
    if ints and k < 0.4:
        return rng.randint(-50, 2000)
    if k < 0.8:
        return round(rng.uniform(-100, 2000), rng.choice([0, 1, 2, 3, 5]))
    return rng.choice([0.125, 0.375, 2.675, 1.005, 0.5, -0.0, 0, 1e-7, 1e16, 5e-324, True, False])


def rgeom(typ):
    k = rng.random()
    if k < 0.02:
        return {}
    if k < 0.04:
        return {"points": rng.choice([[], {}, "", None, 0, [1], "x"])}
    if typ == "bbox":
        return {"points": {c: rnum() for c in ("x1", "y1", "x2", "y2")}}
    if typ == "point":
        return {"x": rnum(), "y": rnum()}
    if typ in ("polygon", "polyline"):
        return {"points": [rnum() for _ in range(rng.choice([0, 2, 4, 4, 6]))]}
    if typ == "event":
        return {}
    return {"points": rng.choice([{}, [], {"f1": {"x": 1, "y": 2}}])}


def rattrs():
    k = rng.random()
    if k < 0.05:
        return "absent"
    if k < 0.1:
        return None
    if k < 0.103:
        return {"bad": 1}
    return [{"id": rng.randint(1, 9), "name": rng.choice(["a", "é", "x\"y"])}
            for _ in range(rng.randint(0, 2))]


TYPES = ["bbox"] * 6 + ["point"] * 4 + ["polygon"] * 4 + ["polyline", "polyline", "event", "event",
                                                           "comment", "cuboid", "ellipse"]


def rdoc():
    fps_ratio = 1e6
    dur = rng.choice([None, 0, rng.randint(1, 20) * 1000000, rng.randint(1, 20000000),
                      round(rng.uniform(0, 2e7), 1)])
    insts = []
    for _ in range(rng.randint(0, 5)):
        typ = rng.choice(TYPES)
        meta = {"type": typ}
        if rng.random() < 0.8:
            meta["className"] = rng.choice(["car", "ü", None])
        if rng.random() < 0.8:
            meta["classId"] = rng.choice([1, 7, -1, None, "3", 2.0, True] + ([3.5] if rng.random() < 0.05 else []))
        i = {"meta": meta}
        if rng.random() < 0.95:
            params = []
            for _ in range(rng.randint(0, 3)):
                tss = []
                for _ in range(rng.randint(0, 5)):
                    t = rng.choice([0, rng.randint(-2 * int(fps_ratio), 22 * int(fps_ratio)),
                                    rng.randint(0, 20) * 1000000, rng.randint(0, 200) * 100000,
                                    round(rng.uniform(-1e6, 2.2e7), 2)])
                    e = {"timestamp": t}
                    e.update(rgeom(typ))
                    a = rattrs()
                    if a != "absent":
                        e["attributes"] = a
                    tss.append(e)
                params.append({"start": 0, "end": 1, "timestamps": tss})
            i["parameters"] = params
        insts.append(i)
    return vid(insts, duration=dur)


agree = errors = 0
for n in range(N_RANDOM):
    d = rdoc()
    fps = rng.choice([1, 1, 2, 3, 5, 10, 24, 25, 29.97, 30, 60, 0.5, 1.5])
    before = failures
    r = compare(f"random #{n}", d, fps)
    if failures == before:
        agree += 1
        errors += r is None
print(f"random: {agree}/{N_RANDOM} agree ({errors} refused by both)")
print("failures:", failures)
sys.exit(1 if failures else 0)
