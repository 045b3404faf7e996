"""Helpers of the issue-8 defect tests (test_issue8_*.py): what the mount
shows, the daemon's new log lines, the emulator's clock, polling."""
import errno
import json
import os
import time

from harness import SUFFIX, errno_of, pretty_tokens, read

V = "Demo Vector"
STATUS = "user.superannotate.status"
STREAM = "/api/v4/items/annotations/download"
UPLOAD = "/api/v4/items/annotations/upload"
# the kernel's default attr/entry/negative timeouts (1 s), not the fixture's 0
DEFAULT_TTLS = {"attr_timeout": None, "entry_timeout": None, "negative_timeout": None}


def annotated(api, folder=None, project=V):
    """Names of the folder's items whose document has instances, in listing order."""
    docs = api.folder_documents(project, folder)
    return [i["name"] for i in api.items(project, folder)
            if json.loads(docs[i["name"]]).get("instances")]


def plain(names):
    """Only names a log line prints as they are (ASCII letters, digits, ' ._-')."""
    ok = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-")
    return [n for n in names if set(n) <= ok]


def platform_pretty(api, folder, name, project=V):
    """What any mount must serve for the item now: the platform's document
    pretty-printed (filesystem.md §2)."""
    return pretty_tokens(api.document_bytes(project, folder, name))


def shows(path):
    """The bytes the mount serves at @path; asserts st_size == their length."""
    data = read(path)
    st = os.stat(path)
    assert st.st_size == len(data), (path, st.st_size, len(data))
    return data


def read_fd(fd):
    out = []
    while True:
        b = os.read(fd, 1 << 16)
        if not b:
            return b"".join(out)
        out.append(b)


def doc_bytes(name, tags, instances=(), indent=4):
    d = {"metadata": {"name": name}, "instances": list(instances), "tags": list(tags), "comments": []}
    return (json.dumps(d, indent=indent) + "\n").encode()


def close_errno(f):
    try:
        f.close()
    except OSError as e:
        return e.errno
    return 0


def hidden(m, *parts):
    """The name is gone from this mount: stat ENOENT and not listed."""
    p = m.p(*parts)
    return (errno_of(lambda: os.stat(p)) == errno.ENOENT
            and parts[-1] not in os.listdir(os.path.dirname(p)))


class LogMark:
    """The daemon's log lines written after this point."""

    def __init__(self, m):
        self.m = m
        self.at = len(m.log())

    def lines(self, *words):
        return [ln for ln in self.m.log()[self.at:].splitlines() if all(w in ln for w in words)]


def wait_for(pred, timeout, step=0.1):
    """Poll @pred until true; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


GRACE = 3.0  # the unlink grace period is about a second: wait well past it


def clock(emulator, **body):
    """POST /_emulator/clock: freeze_ms=N, advance_ms=N or real=True."""
    return emulator.ctl("POST", "clock", body)


def freeze_clock(emulator):
    """Freeze the emulator's clock 300 ms into the current second: every
    change until clock(real=True) has the same whole-second updatedAt."""
    now = emulator.ctl("GET", "clock")["now_ms"]
    at = now - now % 1000 + 300
    clock(emulator, freeze_ms=at)
    return at


def recorded(emulator, path, method="POST"):
    """The emulator's recorded requests to exactly @path."""
    r = emulator.ctl("GET", "requests?path=%s&method=%s" % (path, method))["requests"]
    return [q for q in r if q["path"] == path and q["method"] == method]


def stream_ids(emulator):
    """[image_ids of each recorded stream request], oldest first."""
    return [json.loads(q["body"])["image_ids"] for q in recorded(emulator, STREAM)]


def method_ids(emulator):
    """[item_ids of each recorded download/method request] (the request that
    precedes a stream download), oldest first."""
    return [json.loads(q["body"])["item_ids"] for q in recorded(emulator, STREAM + "/method")]


def sfx(name):
    return name + SUFFIX


def same_instances(got, want):
    """The platform's instances equal @want's, but for what an upload adds
    where an instance has none: creationType "Preannotation" and, on image
    projects, probability 100 (filesystem.md §2 upload rules)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        g = dict(g)
        for k, v in (("creationType", "Preannotation"), ("probability", 100)):
            if k not in w and g.get(k) == v:
                g.pop(k)
        if g != w:
            return False
    return True
