"""Helpers of test_tools.py: interactive programs driven through a pty, and
the three checks every tool case makes (what the program reported, what the
platform holds, what the mount shows).

Only the standard library and harness.py; nothing here changes the daemon,
the emulator or the shared fixtures.
"""
import errno
import fcntl
import json
import os
import re
import select
import signal
import struct
import termios
import time

from harness import SUFFIX, pretty_tokens, read, strip_server_meta
from saapi import DELIM


# ---------------------------------------------------------------------------
# A program on a pseudo-terminal (vim, emacs, nano), the way a person runs it.

class Pty:
    """@argv on a fresh pty (80x24, TERM=xterm), stdout/stderr merged.

    expect() waits for a regular expression in what the program printed since
    the last match (ANSI escapes removed, so a status line can be matched as
    text); send() types keys. Every wait has a deadline; close() always
    reaps the child (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, env=None, cwd=None, rows=24, cols=80):
        self.argv = list(argv)
        pid, fd = os.forkpty()
        if pid == 0:  # child
            try:
                if cwd:
                    os.chdir(cwd)
                os.execvpe(argv[0], argv, env or os.environ)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        self.raw = b""        # everything printed
        self.pos = 0          # expect() searches self.text()[pos:]
        self.status = None    # wait status once reaped

    def _pump(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError as e:  # EIO: the child closed its side
            if e.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._reap(block=True)
            return None
        self.raw += data
        return True

    def text(self):
        t = self.raw.decode("utf-8", "replace")
        t = re.sub(r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]", " ", t)   # CSI
        t = re.sub(r"\x1b\][^\x07\x1b]*(\x07|\x1b\\)", "", t)  # OSC
        t = re.sub(r"\x1b[()][0-9A-Za-z]", "", t)              # charset
        t = re.sub(r"\x1b[=>78DEHMc]", "", t)
        return t

    def expect(self, pattern, timeout=10):
        """Wait until @pattern (regex) appears after the previous match; return the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text(), self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or self.status is not None:
                raise AssertionError("%s: no %r within %ss (exited: %r); screen text tail:\n%s"
                                     % (self.argv[0], pattern, timeout, self.status,
                                        self.text()[-3000:]))
            if self._pump(min(left, 0.2)) is None and not rx.search(self.text(), self.pos):
                raise AssertionError("%s exited (%r) before printing %r; screen text tail:\n%s"
                                     % (self.argv[0], self.status, pattern, self.text()[-3000:]))

    def settle(self, quiet=0.3, timeout=10):
        """Read until the program has printed nothing for @quiet seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._pump(quiet):
                return

    def send(self, keys, delay=0.05):
        if isinstance(keys, str):
            keys = keys.encode()
        os.write(self.fd, keys)
        time.sleep(delay)
        self._pump(0)

    def _reap(self, block):
        if self.status is not None:
            return True
        pid, st = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        if pid == 0:
            return False
        self.status = st
        return True

    def wait(self, timeout=30):
        """The exit status (as subprocess gives it) once the program ended by itself."""
        deadline = time.monotonic() + timeout
        while not self._reap(block=False):
            if time.monotonic() > deadline:
                raise AssertionError("%s did not exit within %ss; screen text tail:\n%s"
                                     % (self.argv[0], timeout, self.text()[-3000:]))
            self._pump(0.1)
        return os.waitstatus_to_exitcode(self.status)

    def close(self):
        if self.status is None:
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and not self._reap(block=False):
                    time.sleep(0.05)
                if self.status is not None:
                    break
        try:
            os.close(self.fd)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def editor_env(home):
    """A clean environment for an interactive editor: its own HOME (no user
    config, no history under /root), a real terminal type."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIM", "EMACS", "NANO"))}
    env.update(HOME=str(home), TERM="xterm", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    env.pop("DISPLAY", None)
    return env


# ---------------------------------------------------------------------------
# Realistic documents, written the way programs write them.

def rich_doc(name, marker="car", x=12.3):
    """A Vector document: bbox + polygon + point, attributes, tags, a comment,
    numbers like 12.3 / 0.1 / 1e-7, no server-owned metadata."""
    return {
        "metadata": {"name": name, "width": 933, "height": 655},
        "instances": [
            {"type": "bbox", "classId": 10101, "className": marker, "probability": 90,
             "creationType": "Manual", "visible": True, "groupId": 0,
             "attributes": [{"id": 101011, "groupId": 101001, "name": "red", "groupName": "color"}],
             "points": {"x1": x, "y1": 0.1, "x2": 340.55, "y2": 201.0}},
            {"type": "polygon", "classId": 10102, "className": "person", "probability": 100,
             "creationType": "Preannotation", "attributes": [],
             "points": [137.05, 534.52, 150.5, 540.25, 160.0, 1e-7]},
            {"type": "point", "classId": 10101, "className": marker, "attributes": [],
             "x": 1.5, "y": 2.5},
        ],
        "tags": ["tool-matrix", "street"],
        "comments": [{"x": 10.5, "y": 20.25, "resolved": False,
                      "correspondence": [{"text": "check this", "email": "qa@example.com"}]}],
    }


def as_jq(doc):
    """jq's layout: 2-space indent, final newline."""
    return (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()


def as_compact(doc):
    """Python's json.dump(doc, f): compact with ', ' / ': ', no final newline."""
    return json.dumps(doc, ensure_ascii=False).encode()


def as_crlf(doc):
    """A Windows editor's file: 4-space indent, CRLF line endings, no final newline."""
    return json.dumps(doc, indent=4, ensure_ascii=False).replace("\n", "\r\n").encode()


# ---------------------------------------------------------------------------
# The checks.

def document_bytes(api, project, folder, name):
    """The platform's document of one item, fetched by that item's id alone.

    saapi.SA.document_bytes() maps stream documents to items by their
    metadata.id, and a document copied from another item (cp -r of one folder
    into another) carries the source item's id, which the emulator stores as
    sent; asking for one id at a time needs no mapping."""
    p, f = api._pf(project, folder)
    it = [i for i in api.search(p["id"], f["id"], [{"name": {"$eq": name}}]) if i["name"] == name]
    assert it, "no item %r in %s/%s" % (name, project, folder)
    iid = it[0]["id"]
    m = api.call("POST", "api/v4/items/annotations/download/method", {"limit": 1},
                 {"project_id": p["id"], "item_ids": [iid]})
    if m.get("large"):
        return api.raw("POST", "api/v3.01/items/%d/annotations/download" % iid,
                       {"project_id": p["id"], "annotation_type": "MAIN", "version": "V1.00"})
    body = api.raw("POST", "api/v4/items/annotations/download", {"project_id": p["id"], "limit": 1},
                   {"image_ids": [iid]})
    docs = [d for d in body.split(DELIM) if d]
    assert len(docs) == 1, "the stream gave %d documents for item %d" % (len(docs), iid)
    return docs[0]


def document(api, project, folder, name):
    return json.loads(document_bytes(api, project, folder, name))


def served(api, project, folder, name):
    """What a fresh mount reads for the item: the platform's document pretty-printed."""
    return pretty_tokens(document_bytes(api, project, folder, name))


def mount_shows(api, project, m, folder, name, path=None):
    """Check 3: the file's bytes equal what a fresh mount would read, and
    st_size equals their length (stat before and after the read)."""
    p = path or (m.p(folder, name + SUFFIX) if folder else m.p(name + SUFFIX))
    size_before = os.stat(p).st_size
    got = read(p)
    want = served(api, project, folder, name)
    if got != want:
        i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
        line = want.count(b"\n", 0, i) + 1
        raise AssertionError(
            "the mount does not show the platform's document for %r: %d bytes, a fresh mount reads %d; "
            "first difference at byte %d (line %d):\n  mount: %r\n  fresh: %r"
            % (name, len(got), len(want), i, line, got[max(0, i - 60):i + 60], want[max(0, i - 60):i + 60]))
    assert size_before == len(got), "st_size %d before the read, %d bytes read" % (size_before, len(got))
    assert os.stat(p).st_size == len(got), "st_size %d after the read, %d bytes read" % (
        os.stat(p).st_size, len(got))


def platform_holds(api, project, folder, name, doc):
    """Check 2 (document): parsed, modulo server-owned metadata."""
    got = document(api, project, folder, name)
    want = doc if isinstance(doc, dict) else json.loads(doc)
    assert strip_server_meta(got) == strip_server_meta(want), (
        "platform document of %r differs:\n got %s\nwant %s"
        % (name, json.dumps(strip_server_meta(got))[:1500], json.dumps(strip_server_meta(want))[:1500]))
    assert got["metadata"]["name"] == name
    return got


def wait_for(pred, timeout=10, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(every)
