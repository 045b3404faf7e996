#!/usr/bin/python3
"""Reference implementation of get_annotations_per_frame, written from the
prose of docs/api.md §12 and §12.1 only (not from client/frames.c), in plain
Python so that Python's own arithmetic, round(), float repr and exceptions
(TypeError, KeyError, OverflowError, ...) decide what the C port must match.

usage: frames_ref.py FILE FPS   -> the rendering on stdout, or "ERROR: ..."
                                   (exit 1)

Choices the prose leaves open, shared with the C port (documented there):
  * NaN/Infinity in the input are not JSON: an error;
  * classId lax conversion: bool -> 0/1, integral float -> int, a string of
    ASCII digits with an optional sign and surrounding ASCII whitespace ->
    int; anything else an error;
  * safs' limits: more than 10,000,000 frames, or a frame number whose
    magnitude reaches 4.6e18, is an error;
  * the interpolated bbox's points are written x1, y1, x2, y2 (the SDK's
    order).
"""
import json
import math
import re
import sys

MAX_FRAMES = 10_000_000
MAX_FRAME_NO = 4.6e18


class RefError(Exception):
    pass


def _no_const(c):
    raise RefError(f"{c} is not JSON")


def lax_int(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if not math.isfinite(v) or v != math.floor(v):
            raise RefError("classId is not an integer")
        return int(v)
    if isinstance(v, str):
        s = v.strip(" \t\n\r\f\v")
        if re.fullmatch(r"[+-]?[0-9]+", s):
            return int(s)
    raise RefError("classId is not an integer")


def make_annotation(instance_id, typ, class_name, class_id, keyframe, attributes, geometry):
    """§12 step 6 and §12.1 point 5: checked fields, nulls omitted."""
    if not isinstance(typ, str):
        raise RefError("type must be a string")
    if class_name is not None and not isinstance(class_name, str):
        raise RefError("className must be a string or null")
    class_id = lax_int(class_id)
    if attributes is not None and not isinstance(attributes, list):
        raise RefError("attributes must be a list or null")
    a = {"instanceId": instance_id, "type": typ}
    if class_name is not None:
        a["className"] = class_name
    if class_id is not None:
        a["classId"] = class_id
    for k in ("x", "y", "points"):
        if geometry.get(k) is not None:
            a[k] = geometry[k]
    if attributes is not None:
        a["attributes"] = attributes
    a["keyframe"] = keyframe
    return a


def interpolated_geometry(typ, S, E, n, k):
    """§12 step 5c, interpolation of frame a+k between S and E."""
    if typ == "bbox" and S.get("points") and E.get("points"):
        step = {c: round((E["points"][c] - S["points"][c]) / n, 2) for c in ("x1", "x2", "y1", "y2")}
        return {"points": {c: round(S["points"][c] + step[c] * k, 2) for c in ("x1", "y1", "x2", "y2")}}
    if typ == "point":
        sx = (E["x"] - S["x"]) / n
        sy = (E["y"] - S["y"]) / n
        return {"x": round(S["x"] + sx * k, 2), "y": round(S["y"] + sy * k, 2)}
    if typ == "event":
        return {}
    if typ in ("polygon", "polyline"):
        sp, ep = S["points"], E["points"]
        if len(sp) == len(ep):
            steps = [(e - s) / n for s, e in zip(sp, ep)]
        else:
            steps = [0] * len(sp)
        return {"points": [sp[i] + k * steps[i] for i in range(len(sp))]}
    # any other type (and a bbox lacking points at either end): only an
    # empty start geometry survives (§12.1 point 3)
    sp = S["points"]
    if len(sp) == 0:
        return {"points": []}
    raise RefError(f"type {typ!r} cannot be interpolated over a gap")


def key_geometry(s):
    return {"x": s.get("x"), "y": s.get("y"), "points": s.get("points")}


def render(text, fps):
    doc = json.loads(text, parse_constant=_no_const)
    D = doc["metadata"]["duration"]
    if not D:
        D = 0
    if fps == 0:
        raise RefError("fps 0")
    frames_count = math.ceil((D / 1e6) * fps)
    if frames_count > MAX_FRAMES:
        raise RefError("too many frames")
    R = 1e6 / fps
    per_frame = {}
    for instance_id, inst in enumerate(doc["instances"]):
        meta = inst["meta"]
        typ = meta["type"]
        if typ == "comment":
            continue
        class_name = meta.get("className")
        class_id = meta.get("classId", -1)

        def ann(keyframe, attributes, geometry):
            return make_annotation(instance_id, typ, class_name, class_id, keyframe, attributes,
                                   geometry)

        for param in inst.get("parameters", []):
            buckets = {}
            for ts in param["timestamps"]:
                f = math.ceil(ts["timestamp"] / R)
                if abs(f) >= MAX_FRAME_NO:
                    raise RefError("frame number out of range")
                buckets.setdefault(f, []).append(ts)
            if 0 in buckets:
                buckets[1] = buckets.pop(0) + buckets.get(1, [])
            frames = sorted(buckets)
            out = {}
            if len(frames) == 1:
                first = buckets[frames[0]][0]
                out[frames[0]] = ann(True, first["attributes"], key_geometry(first))
            for a, b in zip(frames, frames[1:]):
                n = b - a
                if n > 1:
                    S, E = buckets[a][-1], buckets[b][0]
                    for k in range(1, n):
                        out[a + k] = ann(False, S.get("attributes"),
                                         interpolated_geometry(typ, S, E, n, k))
                for f in (a, b):
                    first = buckets[f][0]
                    out[f] = ann(True, first.get("attributes"), key_geometry(first))
            for f in sorted(out):
                per_frame.setdefault(f, []).append(out[f])
    result = [{"frame": f, "annotations": per_frame.get(f, [])} for f in range(1, frames_count + 1)]
    return json.dumps(result, indent=4, ensure_ascii=False) + "\n"


def render_or_error(data, fps):
    """The rendering, or None if the SDK (per the prose) raises."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return render(text, fps)
    except (RefError, KeyError, TypeError, ValueError, IndexError, OverflowError,
            ZeroDivisionError, AttributeError, RecursionError):
        return None


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    try:
        sys.stdout.write(render(data.decode("utf-8"), float(sys.argv[2])))
    except Exception as e:  # noqa: BLE001 - the CLI reports any failure
        print(f"ERROR: {type(e).__name__}: {e}")
        sys.exit(1)
