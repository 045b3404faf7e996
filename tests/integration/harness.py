"""Shared machinery of the integration tests: the emulator process, safs
mounts, and a subprocess runner that always has a timeout.

Modelled on libfuse/sshfs's test/util.py: poll ismount every 0.1 s for 30 s
and fail if the daemon died; unmount with fusermount3 -u and require exit 0
within 30 s; on any failure lazy-unmount, terminate, kill.
"""
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from saapi import SA

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("SAFS_BUILD", os.path.join(REPO, "build")))
SAFS = os.path.join(BUILD, "fs", "safs")
EMULATOR = os.path.join(BUILD, "tests", "emulator", "sa-emulator")
TOKEN = "emulator-token=1"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                   "ERROR: ThreadSanitizer", "ERROR: UndefinedBehaviorSanitizer")
PROGRAMS = ("jq", "rsync", "vim", "perl", "setfattr", "getfattr", "fusermount3", "sed", "find")

STATUS_XATTR = "user.superannotate.status"
ID_XATTR = "user.superannotate.id"
SUFFIX = "___objects.json"


def sanitizer_report(text):
    for m in SANITIZER_MARKS:
        i = text.find(m)
        if i >= 0:
            return text[max(0, i - 200):i + 3000]
    return None


def run(cmd, timeout=60, check=True, **kw):
    """subprocess.run with a timeout always, text output captured by default."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    r = subprocess.run(cmd, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%r exited %d\nstdout: %s\nstderr: %s"
                             % (cmd, r.returncode, (r.stdout or "")[-3000:], (r.stderr or "")[-3000:]))
    return r


def sh(script, timeout=60, check=True, **kw):
    return run(["bash", "-c", script], timeout=timeout, check=check, **kw)


def terminate(proc, grace):
    """SIGTERM, then SIGKILL if @proc has not exited within @grace seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def need_programs():
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.fail("required programs missing: %s" % " ".join(missing))
    if not os.path.exists("/dev/fuse"):
        pytest.fail("/dev/fuse is missing")


# ---------------------------------------------------------------------------
class Emulator:
    """A running sa-emulator and its control plane (tests/emulator/README.md)."""

    def __init__(self, workdir, args=(), name="emulator"):
        if not os.access(EMULATOR, os.X_OK):
            pytest.fail("emulator binary missing: %s (build it: ninja -C %s)" % (EMULATOR, BUILD))
        os.makedirs(workdir, exist_ok=True)
        self.port_file = os.path.join(workdir, name + ".port")
        self.log_path = os.path.join(workdir, name + ".log")
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.cmd = [EMULATOR, "--port", "0", "--port-file", self.port_file, "--quiet"] + list(args)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + float(os.environ.get("SAFS_EMULATOR_START", "60" if args else "10"))
        while True:
            if self.proc.poll() is not None:
                pytest.fail("emulator died at start (exit %s): %s\n%s"
                            % (self.proc.returncode, self.cmd, self.log()))
            try:
                with open(self.port_file) as f:
                    txt = f.read()
                if txt.endswith("\n"):
                    self.port = int(txt)
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.stop(check=False)
                pytest.fail("emulator did not write its port file in time: %s\n%s" % (self.cmd, self.log()))
            time.sleep(0.05)
        self.base_url = "http://127.0.0.1:%d" % self.port
        self.api = SA(self.base_url, TOKEN)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, check=True):
        terminate(self.proc, 10)
        self._log.close()
        if check:
            rep = sanitizer_report(self.log())
            if rep:
                pytest.fail("sanitizer report in the emulator's log:\n" + rep)

    # -- control plane ----------------------------------------------------
    def ctl(self, method, path, body=None, timeout=120):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + "/_emulator/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            txt = r.read()
        return json.loads(txt) if txt.strip() else None

    def stats(self):
        return self.ctl("GET", "stats")

    def routes(self):
        return dict(self.stats().get("routes", {}))

    def reset_stats(self):
        self.ctl("POST", "reset-stats", {})

    def reset(self):
        self.ctl("POST", "reset", {})

    def faults(self, faults):
        for f in faults if isinstance(faults, list) else [faults]:
            self.ctl("POST", "faults", f)

    def clear_faults(self):
        self.ctl("DELETE", "faults")

    def seed(self, project, type=1, folder=None, items=(), documents=None, raw_documents=None,
             workflow=1):
        body = {"project": project, "type": type, "workflow": workflow, "items": list(items)}
        if folder:
            body["folder"] = folder
        if documents:
            body["documents"] = documents
        if raw_documents:
            body["raw_documents"] = raw_documents
        return self.ctl("POST", "seed", body)

    def latency(self, ms):
        self.ctl("POST", "latency", {"ms": ms})

    def requests(self):
        return self.ctl("GET", "requests")["requests"]

    def reset_requests(self):
        self.ctl("POST", "reset-requests", {})

    # -- request accounting -----------------------------------------------
    def count(self, pred, routes=None):
        """Requests whose 'METHOD /path' key equals pred (str) or satisfies pred (callable)."""
        routes = self.routes() if routes is None else routes
        if callable(pred):
            return sum(n for k, n in routes.items() if pred(k))
        return routes.get(pred, 0)

    def uploads(self, routes=None):
        """Upload requests: small multipart uploads + large-path starts."""
        return self.count(lambda k: k == "POST /api/v4/items/annotations/upload"
                          or (k.startswith("POST /api/v3.01/items/") and k.endswith("/multipart/start")),
                          routes)

    def downloads(self, routes=None):
        """Requests that fetch documents: download/method, the stream, the large path."""
        return self.count(is_download, routes)

    def status_changes(self, routes=None):
        return self.count("PUT /image/updateAnnotationStatusBulk", routes)

    def deletes(self, routes=None):
        return self.count("POST /annotations/remove", routes)

    def writes(self, routes=None):
        """Every request that changes the platform."""
        return self.count(is_write, routes)


def is_download(k):
    return (k in ("POST /api/v4/items/annotations/download/method",
                  "POST /api/v4/items/annotations/download")
            or (k.startswith("POST /api/v3.01/items/") and k.endswith("/annotations/download"))
            or ("/annotations/sync" in k and "upload" not in k))


def is_write(k):
    m, _, p = k.partition(" ")
    if p.startswith("/_emulator"):
        return False
    if p in ("/api/v1/items/search", "/api/v4/items/annotations/download/method",
             "/api/v4/items/annotations/download") or is_download(k):
        return False
    return m in ("POST", "PUT", "DELETE", "PATCH")


# ---------------------------------------------------------------------------
class Mount:
    """A foreground safs process mounted on a fresh directory."""

    def __init__(self, emulator, workdir, source="Demo Vector", opts=None, args=(), wait=True):
        if not os.access(SAFS, os.X_OK):
            pytest.fail("safs binary missing: %s (build it: ninja -C %s)" % (SAFS, BUILD))
        need_programs()
        self.emulator = emulator
        os.makedirs(workdir, exist_ok=True)
        self.path = os.path.join(workdir, "mnt")
        os.makedirs(self.path)
        self.recovery_dir = os.path.join(workdir, "recovery")
        os.makedirs(self.recovery_dir)
        self.cache_dir = os.path.join(workdir, "cache")
        os.makedirs(self.cache_dir)
        self.token_file = os.path.join(workdir, "token")
        fd = os.open(self.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (TOKEN + "\n").encode())
        os.close(fd)
        os.chmod(self.token_file, 0o600)
        o = {"url": emulator.base_url + "/", "token_file": self.token_file,
             "attr_timeout": "0", "entry_timeout": "0", "negative_timeout": "0",
             "recovery_dir": self.recovery_dir, "cache_timeout": "0"}
        o.update(opts or {})
        parts = []
        for k, v in o.items():
            if v is None or v is False:
                continue
            parts.append(k if v is True else "%s=%s" % (k, v))
        self.cmd = [SAFS] + ([source] if source is not None else []) + [self.path, "-f", "-o", ",".join(parts)] + list(args)
        self.log_path = os.path.join(workdir, "safs.log")
        self._log = open(self.log_path, "wb")
        # -o writeback's journal: one state directory per test, shared by
        # the mounts of that test (a remount replays what the first left)
        self.state_dir = os.path.join(os.path.dirname(workdir), "state")
        env = dict(os.environ, XDG_CACHE_HOME=self.cache_dir, XDG_STATE_HOME=self.state_dir)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid
        self.mounted = False
        if wait:
            self.wait_mounted()

    def wait_mounted(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.ismount(self.path):
                self.mounted = True
                return
            if self.proc.poll() is not None:
                pytest.fail("safs died before mounting (exit %s): %s\n--- safs log ---\n%s"
                            % (self.proc.returncode, " ".join(self.cmd), self.log()))
            time.sleep(0.1)
        self.cleanup()
        pytest.fail("safs did not mount within %ds: %s\n--- safs log ---\n%s"
                    % (timeout, " ".join(self.cmd), self.log()))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def p(self, *parts):
        return os.path.join(self.path, *parts)

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def unmount(self):
        """Clean unmount: fusermount3 -u must exit 0 and the daemon within 30 s."""
        if not self.mounted:
            return
        # a program the test just ended may not have released its cwd or
        # descriptors yet (a pty's editor): busy is retried for a few seconds
        deadline = time.monotonic() + 5
        while True:
            r = subprocess.run(["fusermount3", "-u", self.path], capture_output=True, text=True,
                               timeout=60)
            if r.returncode == 0 or "busy" not in r.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if r.returncode != 0:
            holders = self.holders()
            self.cleanup()
            pytest.fail("fusermount3 -u failed (%d): %s; holding the mount: %r"
                        % (r.returncode, r.stderr, holders))
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.cleanup()
            pytest.fail("safs did not exit within 30 s of unmount\n--- safs log ---\n" + self.log())
        self.mounted = False
        self._log.close()

    def holders(self):
        """Processes whose cwd or open files are under the mount."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                paths = [os.readlink("/proc/%s/cwd" % d)]
                paths += [os.readlink("/proc/%s/fd/%s" % (d, f)) for f in os.listdir("/proc/%s/fd" % d)]
                if any(x == self.path or x.startswith(self.path + "/") for x in paths):
                    with open("/proc/%s/cmdline" % d, "rb") as f:
                        out.append((int(d), f.read().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                continue
        return out

    def cleanup(self):
        """Forceful: lazy unmount, terminate, kill."""
        if os.path.ismount(self.path):
            subprocess.run(["fusermount3", "-uz", self.path], capture_output=True, timeout=60)
        terminate(self.proc, 5)
        self.mounted = False
        if not self._log.closed:
            self._log.close()


# ---------------------------------------------------------------------------
def xget(path, name):
    return os.getxattr(path, name).decode()


def xset(path, name, value):
    os.setxattr(path, name, value.encode() if isinstance(value, str) else value)


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def write(path, data, mode="wb"):
    with open(path, mode) as f:
        f.write(data)


def pretty(raw):
    """What safs must serve for a document whose platform text is @raw: see
    docs/filesystem.md §2 (4-space indent, ': ', tokens verbatim, final newline).
    Only used where tokens survive Python's round trip."""
    return (json.dumps(json.loads(raw), indent=4, ensure_ascii=False) + "\n").encode()


def strip_server_meta(doc):
    """A document as compared for 'changed': server-owned metadata removed."""
    doc = json.loads(json.dumps(doc))
    md = doc.get("metadata", {})
    for k in ("name", "lastAction", "status", "id", "projectId", "pinned", "annotatorEmail",
              "qaEmail", "isPredicted"):
        md.pop(k, None)
    return doc


def items_of(mnt_dir, suffix=SUFFIX):
    return sorted(n[:-len(suffix)] for n in os.listdir(mnt_dir) if n.endswith(suffix))


def errno_of(fn):
    """Run fn(); return the OSError errno it raised, or 0."""
    try:
        fn()
    except OSError as e:
        return e.errno
    return 0


def pretty_tokens(raw):
    """The bytes safs must serve for platform document text @raw (filesystem.md
    §2): Python's json.dumps(indent=4) layout (", " / ": ", empty containers as
    [] and {}) but every string and number token copied verbatim, plus a final
    newline. Written independently of the daemon's printer."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    out = []
    i, n, depth = 0, len(raw), 0
    ws = " \t\r\n"

    def skip(j):
        while j < n and raw[j] in ws:
            j += 1
        return j

    while i < n:
        c = raw[i]
        if c in ws:
            i += 1
            continue
        if c in "[{":
            close = "]" if c == "[" else "}"
            j = skip(i + 1)
            if j < n and raw[j] == close:
                out.append(c + close)
                i = j + 1
                continue
            depth += 1
            out.append(c + "\n" + "    " * depth)
            i += 1
        elif c in "]}":
            depth -= 1
            out.append("\n" + "    " * depth + c)
            i += 1
        elif c == ",":
            out.append(",\n" + "    " * depth)
            i += 1
        elif c == ":":
            out.append(": ")
            i += 1
        elif c == '"':
            j = i + 1
            while raw[j] != '"':
                j += 2 if raw[j] == "\\" else 1
            out.append(raw[i:j + 1])
            i = j + 1
        else:
            j = i
            while j < n and raw[j] not in ws + ",]}:":
                j += 1
            out.append(raw[i:j])
            i = j
    return ("".join(out) + "\n").encode("utf-8")


def parse_ts(s):
    """'YYYY-MM-DDTHH:MM:SS.mmmZ' -> epoch seconds (float)."""
    import datetime
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def recovered_bytes(recovery_dir):
    """Contents of every file under the recovery folder."""
    out = []
    for root, _, files in os.walk(recovery_dir):
        for f in files:
            out.append(read(os.path.join(root, f)))
    return out
