#!/usr/bin/python3
"""A seeded, model-checked stress test of a safs mount (issue 10).

    /usr/bin/python3 tests/stress/stress.py --seconds 600 --threads 8 --files 50 --seed S

Starts an emulator, seeds project "Stress" with FILES items, mounts it twice
(mount A: writers and readers; mount B: a second mount of the same project,
readers only) and runs THREADS writer threads plus READERS reader threads
for SECONDS. The README's "Reliability / Stress" section describes it.

The model is exact despite the concurrency because every file has one owner:
file i belongs to writer thread i % THREADS, and only its owner writes,
truncates, renames onto, unlinks or sets the status of it. So what the
platform must hold for a file (its content = instances and tags, and its
status) follows sequentially from its owner's operations and their results.

Every other read (a writer reading another thread's file on mount A, the
readers on mount B) must return ONE whole version: the parsed document's
content is one of the versions the model knows for that file whose lifetime
overlaps the read (a version lives from the start of the operation that made
it to the end of the operation that replaced it), never a mix; the bytes read
equal fstat's size on that descriptor; a read on mount A may be ENOENT only
while the file is unlinked, a read on mount B never. The owner's own reads
must return exactly the model's current content and status.

Afterwards: both mounts unmounted (pending deletes sent), the platform
(through the API) and a fresh mount must equal the model for every file,
every invalid save's bytes must be in the recovery folder, and no daemon log
may hold a sanitizer report. Exit status 0 only if everything held; on
failure the seed is printed again so the run can be repeated.
"""
import argparse
import errno
import json
import os
import random
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import (SUFFIX, Emulator, Mount, recovered_bytes,  # noqa: E402
                     sanitizer_report)

PROJECT = "Stress"
STATUS_XATTR = "user.superannotate.status"
STATUSES = ("NotStarted", "InProgress", "QualityCheck", "Returned", "Completed", "Skipped")
# the platform's document after a delete_annotations: empty (emulator: doc NULL, status 1)
EMPTY = (("instances", ()), ("tags", ()))
# a delete is sent about 1 s after rm (FS_DELETE_GRACE); after this much more
# a reader may no longer see the pre-delete document
DELETE_BOUND = 15.0
# a re-create this soon after the start of rm is certainly inside the grace period
SURE_GRACE = 0.6
CLASSES = ("car", "person", "tree", "sign", "bus")
TAGS = ("day", "night", "weather:rain", "ünïcode ✓", "tag \"quoted\"", "a\\b")


def freeze(v):
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(freeze(x) for x in v)
    return v


def content_of(doc):
    """The part of a document the model tracks: instances and tags, frozen."""
    return (("instances", freeze(doc.get("instances", []))), ("tags", freeze(doc.get("tags", []))))


def is_empty(c):
    return c == EMPTY


# ---------------------------------------------------------------------------
def gen_content(rng):
    """A new (instances, tags) pair, sometimes empty."""
    if rng.random() < 0.05:
        return [], []
    inst = []
    for _ in range(rng.randint(0, 6)):
        x1, y1 = rng.randint(0, 500), round(rng.uniform(0, 400), 2)
        inst.append({"type": "bbox", "className": rng.choice(CLASSES),
                     "points": {"x1": x1, "y1": y1, "x2": x1 + rng.randint(1, 300),
                                "y2": round(y1 + rng.uniform(1, 200), 3)},
                     "creationType": rng.choice(("Manual", "Preannotation")),
                     "probability": 100, "attributes": [],
                     "nonce": rng.getrandbits(48)})
    tags = rng.sample(TAGS, rng.randint(0, 3))
    if not inst and not tags:
        tags = ["t%d" % rng.getrandbits(32)]
    return inst, tags


def render(rng, name, inst, tags):
    """Document bytes in one of the formats programs write."""
    doc = {"metadata": {"name": name, "width": 1024, "height": 768},
           "instances": inst, "tags": tags, "comments": []}
    if rng.random() < 0.2:  # server-owned metadata the upload ignores
        doc["metadata"]["status"] = rng.choice(STATUSES)
    fmt = rng.choice(("indent2", "compact", "crlf", "nonl", "indent4", "tabs", "ascii"))
    if fmt == "indent2":
        s = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    elif fmt == "compact":
        s = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    elif fmt == "crlf":
        s = (json.dumps(doc, indent=4, ensure_ascii=False) + "\n").replace("\n", "\r\n")
    elif fmt == "nonl":
        s = json.dumps(doc, indent=4, ensure_ascii=False)
    elif fmt == "tabs":
        s = json.dumps(doc, indent="\t", ensure_ascii=False) + "\n"
    elif fmt == "ascii":
        s = json.dumps(doc) + "\n"
    else:
        s = json.dumps(doc, indent=4, ensure_ascii=False) + "\n"
    return s.encode("utf-8"), fmt


# ---------------------------------------------------------------------------
class Version:
    __slots__ = ("content", "t0", "t1")

    def __init__(self, content, t0, t1=float("inf")):
        self.content, self.t0, self.t1 = content, t0, t1


class FileModel:
    """What the platform must hold for one item, and every version a reader
    may see with the time it may be seen."""

    def __init__(self, name, raw, status):
        self.name = name
        self.raw = raw              # [instances, tags] as last written
        content = content_of({"instances": raw[0], "tags": raw[1]})
        self.fname = name + SUFFIX
        self.content = content
        self.status = status
        self.deleted = False        # unlinked on mount A, not re-created
        self.rm_t0 = 0.0
        self.rm_unsure = False      # -o writeback: rm may have cancelled an unlanded save
        self.rm_before = False      # an earlier rm (whose delete may have landed) before this one
        self.rm_ever = False
        self.versions = [Version(content, 0.0)]
        self.absent = []            # [t0, t1] intervals in which mount A may say ENOENT
        self.tainted = None         # an unexpected result made the model unsure
        self.ops = []               # [t0, t1, kind] of the owner's recent operations
        self.history = []           # every version: (content, t0)
        self.initial = content


class Stress:
    def __init__(self, emulator, workdir, seed, seconds, threads, files, readers, log=print,
                 mount_factory=None, writeback=False, mount_factory_a=None):
        self.em, self.workdir, self.seed = emulator, workdir, seed
        # -o writeback on mount A (the writers'): its saves land later, in
        # batches; mount B (default mode) sees the platform
        self.writeback = writeback
        self.mount_factory_a = mount_factory_a or (
            (lambda d: Mount(emulator, d, PROJECT, {"writeback": True, "loglevel": os.environ.get("STRESS_LOGLEVEL", "info")})) if writeback else None)
        self.seconds, self.nthreads, self.nfiles, self.nreaders = seconds, threads, files, readers
        self.log = log
        self.mount_factory = mount_factory or (lambda d: Mount(emulator, d, PROJECT))
        self.lock = threading.Lock()
        self.tls = threading.local()   # .op: the owner's operation running in this thread
        self.errors = []
        self.counts = {}
        self.invalid_payloads = []
        self.stop_at = 0.0
        self.t_base = time.monotonic()

    # -- bookkeeping --------------------------------------------------------
    def now(self):
        return time.monotonic() - self.t_base

    def count(self, kind):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            op = getattr(self.tls, "op", None)
            if op is not None:
                op.append(kind)   # what the owner's operation turned out to be

    def error(self, msg):
        with self.lock:
            self.errors.append("[%.3f s] %s" % (self.now(), msg))
            if len(self.errors) <= 20:
                self.log("STRESS ERROR (seed %d): %s" % (self.seed, msg))

    def begin(self, f, content):
        """The owner is about to make @content the file's document: readers may
        see it from now on."""
        v = Version(content, self.now())
        with self.lock:
            f.versions.append(v)
        return v

    def abort(self, f, v):
        with self.lock:
            f.versions.remove(v)

    def commit(self, f, v, t1):
        """The owner's operation that began @v ended at t1 and succeeded: @v is
        the file's document; every other version may be seen until t1 only."""
        with self.lock:
            for x in f.versions:
                if x is not v:
                    x.t1 = min(x.t1, t1)
            if f.absent and f.absent[-1][1] == float("inf"):
                f.absent[-1][1] = t1
            f.history.append((v.content, v.t0, t1))
            if len(f.history) > 2000:
                del f.history[:1000]
            if len(f.versions) > 64:  # old versions end long before any read in flight
                f.versions = [x for x in f.versions if x.t1 > v.t0 - 120]
            f.content = v.content
            f.deleted = False

    def taint(self, f, why):
        f.tainted = f.tainted or why

    # -- setup --------------------------------------------------------------
    def setup(self):
        rng = random.Random(self.seed)
        names = ["s%03d.jpg" % i for i in range(self.nfiles)]
        docs, statuses = {}, {}
        self.files = []
        for n in names:
            inst, tags = gen_content(rng)
            raw, _ = render(rng, n, inst, tags)
            docs[n] = json.loads(raw)
            st = rng.randint(1, 6)
            statuses[n] = st
            self.files.append(FileModel(n, [inst, tags], STATUSES[st - 1]))
        self.em.ctl("POST", "seed", {"project": PROJECT, "type": 1, "workflow": 1,
                                     "items": names, "documents": docs, "statuses": statuses})
        self.a = (self.mount_factory_a or self.mount_factory)(os.path.join(self.workdir, "a"))
        self.b = self.mount_factory(os.path.join(self.workdir, "b"))

    # -- reads ----------------------------------------------------------------
    def read_fd_all(self, path):
        """open, fstat, read to EOF, fstat, close: (bytes, sizes) or raises
        OSError with .stage set to the call that failed."""
        st = ["open"]
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                st[0] = "fstat"
                s1 = os.fstat(fd).st_size
                out = []
                st[0] = "read"
                while True:
                    b = os.read(fd, 1 << 16)
                    if not b:
                        break
                    out.append(b)
                st[0] = "second fstat"
                s2 = os.fstat(fd).st_size
            finally:
                if st[0] == "second fstat":
                    st[0] = "close"
                os.close(fd)
        except OSError as e:
            e.stage = st[0]
            raise
        return b"".join(out), (s1, s2)

    def check_read(self, mnt, which, f, rng):
        """A read of a file someone else may be changing: one whole version."""
        path = mnt.p(f.fname)
        t0 = self.now()
        try:
            data, sizes = self.read_fd_all(path)
            err = 0
        except OSError as e:
            err, data, sizes, stage = e.errno, b"", (0, 0), e.stage
        t1 = self.now()
        self.count("read-" + which)
        with self.lock:
            versions = [v for v in f.versions if v.t0 <= t1 and v.t1 >= t0]
            absent = any(a <= t1 and b >= t0 for a, b in f.absent)
        if err:
            if err == errno.ENOENT and which == "A" and absent:
                self.count("~read-A-enoent-unlinked")
                return
            if err == errno.ESTALE and which == "A" and stage == "open" and self.replaced_twice(f, t0, t1):
                # libfuse's node table (README "Known limits"): the open's
                # node was replaced, and so was the one the kernel's retry found
                self.count("~read-A-estale-name-replaced-twice")
                return
            self.error("read of %s on mount %s in [%.3f, %.3f]: %s failed: %s (unlinked in that time: %s)%s"
                       % (f.fname, which, t0, t1, stage, os.strerror(err), absent, self.around(f, t0, t1)))
            return
        busy = self.busy(f, t0, t1)
        if absent:
            # a delete is sent about a second after rm, with no operation
            # of the owner's running then
            busy = busy or ["a delete landing"]
        if self.writeback and which == "B":
            # the platform changes when a batch lands, not during the
            # owner's operation: B's view may change at any time
            busy = busy or ["a write-back landing"]
        if sizes[0] != len(data) or sizes[1] != len(data):
            if busy:
                # FUSE's getattr has no file handle: an fstat while the file
                # changes (or another descriptor has unsaved writes) answers the
                # file's current length (docs/fs-choices.md "Attributes")
                self.count("~read-%s-fstat-differs-while-changing" % which)
            else:
                self.error("read of %s on mount %s: fstat sizes %r, %d bytes read, "
                           "no operation on the file meanwhile%s"
                           % (f.fname, which, sizes, len(data), self.around(f, t0, t1)))
        try:
            doc = json.loads(data)
        except ValueError as e:
            self.error("read of %s on mount %s: not JSON (%s): %r" % (f.fname, which, e, data[:200]))
            return
        c = content_of(doc)
        if self.writeback and which == "B":
            # with write-back a version lands after the operation that made
            # it (and one replaced before its batch never does): B may see
            # any version the owner ever made, whole, never a mix
            with self.lock:
                made = {x for x, _a, _b in f.history} | {v.content for v in f.versions}
                made |= {f.initial, EMPTY}
            if c in made:
                self.count("~read-B-ok")
            else:
                self.error("read of %s on mount B (write-back on A): a content the owner never "
                           "made: %r" % (f.fname, data[:200]))
            return
        if not any(v.content == c for v in versions):
            with self.lock:
                seen = [(i, round(a, 3), round(b, 3)) for i, (x, a, b) in enumerate(f.history) if x == c]
                nh = len(f.history)
            self.error("read of %s on mount %s in [%.3f, %.3f]: a content the model does not "
                       "allow then (%d possible); it is version(s) %r of %d (index, start, end "
                       "of the op that made it)%s"
                       % (f.fname, which, t0, t1, len(versions), seen, nh, self.around(f, t0, t1)))
        else:
            self.count("~read-%s-ok" % which)

    def busy(self, f, t0, t1):
        with self.lock:
            return [o for o in f.ops if o[0] <= t1 and o[1] >= t0]

    def replaced_twice(self, f, t0, t1):
        """Did the owner change which file the name is at least twice during
        [t0, t1]: two operations that rename onto it or rm it (an rm's own
        re-create is part of the rm)?"""
        return len([o for o in self.busy(f, t0, t1) if o[2] in ("op_rename", "op_rm")]) >= 2

    def around(self, f, t0, t1):
        with self.lock:
            near = [(o[2], round(o[0], 3), round(o[1], 3)) for o in f.ops
                    if o[0] <= t1 + 0.3 and o[1] >= t0 - 0.5]
        return "; owner's ops near: %r" % near

    def check_own(self, mnt, f):
        """The owner's read: exactly the model's content and status."""
        if f.deleted or f.tainted:
            return
        try:
            data, sizes = self.read_fd_all(mnt.p(f.fname))
            st = os.getxattr(mnt.p(f.fname), STATUS_XATTR).decode()
        except OSError as e:
            self.error("owner's read of %s: %s" % (f.fname, os.strerror(e.errno)))
            return
        self.count("read-own")
        if sizes != (len(data), len(data)):
            self.error("owner's read of %s: fstat sizes %r, %d bytes" % (f.fname, sizes, len(data)))
        try:
            doc = json.loads(data)
        except ValueError:
            self.error("owner's read of %s: not JSON: %r" % (f.fname, data[:200]))
            return
        if content_of(doc) != f.content:
            self.error("owner's read of %s: content differs from the model: %r" % (f.fname, data[:300]))
        if st != f.status:
            self.error("owner's read of %s: status %r, model %r%s" % (f.fname, st, f.status,
                                                                      self.last_ops(f)))
        ms = doc.get("metadata", {}).get("status")
        if ms != f.status:
            self.error("owner's read of %s: metadata.status %r, model %r" % (f.fname, ms, f.status))

    def last_ops(self, f, n=8):
        with self.lock:
            return "; owner's last ops: %r" % [(o[2:], round(o[0], 3), round(o[1], 3))
                                               for o in f.ops[-n:]]

    # -- the owner's operations ---------------------------------------------
    def new_content(self, rng, f):
        """(instances, tags, same): sometimes the current content again (in
        another format: nothing to upload); after an rm always content that
        differs from the pre-delete one and is not empty, so the result does
        not depend on whether the delete was already sent."""
        if not f.deleted and rng.random() < 0.15:
            inst, tags = json.loads(json.dumps(f.raw))
            return inst, tags, True
        while True:
            inst, tags = gen_content(rng)
            c = content_of({"instances": inst, "tags": tags})
            if c != f.content and not (f.deleted and is_empty(c)):
                return inst, tags, False

    def after_save(self, f, inst, tags, pending, v, t1):
        """Model of a save that succeeded: the status is the pending one, else
        InProgress when the document changed (an upload), else kept. A
        re-create always changes it (new_content)."""
        if pending:
            f.status = pending
        elif v.content != f.content or f.deleted:
            f.status = "InProgress"
        f.raw = [inst, tags]
        self.commit(f, v, t1)

    def op_write(self, rng, mnt, f):
        """open(O_TRUNC) or O_RDWR+ftruncate, write in chunks, maybe fsync, close."""
        inst, tags, same = self.new_content(rng, f)
        raw, fmt = render(rng, f.name, inst, tags)
        kind = rng.choice(("trunc", "trunc", "rdwr-ftruncate", "fsync"))
        pending = rng.choice(STATUSES) if rng.random() < 0.2 else None
        recreate = f.deleted
        v = self.begin(f, content_of({"instances": inst, "tags": tags}))
        path = mnt.p(f.fname)
        try:
            if kind == "rdwr-ftruncate" and not recreate:
                fd = os.open(path, os.O_RDWR)
                os.ftruncate(fd, 0)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC | (os.O_CREAT if recreate else 0), 0o644)
            try:
                pos = 0
                while pos < len(raw):
                    n = rng.choice((len(raw), 1, 7, 4096, 100))
                    pos += os.write(fd, raw[pos:pos + n])
                if pending:
                    os.setxattr(path, STATUS_XATTR, pending.encode())
                if kind == "fsync":
                    os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self.error("save (%s, %s, recreate=%s) of %s: %s" % (kind, fmt, recreate, f.fname,
                                                                os.strerror(e.errno)))
            self.taint(f, "failed save")
            self.abort(f, v)
            return
        self.count("save-" + kind + ("-same" if same else "") + ("-recreate" if recreate else "")
                   + ("-status" if pending else ""))
        self.after_save(f, inst, tags, pending, v, self.now())

    def op_rename(self, rng, mnt, f):
        """Write a scratch file in the folder, maybe set its status, rename it onto the file."""
        inst, tags, same = self.new_content(rng, f)
        raw, fmt = render(rng, f.name, inst, tags)
        tmp = mnt.p(rng.choice((".%s.%06x.tmp", "%s~%06x", ".#%s.%06x")) % (f.fname, rng.getrandbits(24)))
        pending = rng.choice(STATUSES) if rng.random() < 0.25 else None
        recreate = f.deleted
        try:
            with open(tmp, "wb") as o:
                o.write(raw)
            if pending:
                os.setxattr(tmp, STATUS_XATTR, pending.encode())
        except OSError as e:
            self.error("scratch %s: %s" % (tmp, os.strerror(e.errno)))
            return
        v = self.begin(f, content_of({"instances": inst, "tags": tags}))
        try:
            os.rename(tmp, mnt.p(f.fname))
        except OSError as e:
            self.error("rename scratch onto %s (%s): %s" % (f.fname, fmt, os.strerror(e.errno)))
            self.taint(f, "failed rename")
            self.abort(f, v)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        self.count("save-rename" + ("-same" if same else "") + ("-recreate" if recreate else "")
                   + ("-status" if pending else ""))
        self.after_save(f, inst, tags, pending, v, self.now())

    def op_truncate(self, rng, mnt, f):
        """truncate(2) as a save: to size-1 (the final newline: same document,
        nothing uploaded) or to a short prefix (invalid: EINVAL, unchanged)."""
        path = mnt.p(f.fname)
        try:
            size = os.stat(path).st_size
        except OSError as e:
            self.error("stat %s: %s" % (f.fname, os.strerror(e.errno)))
            return
        short = rng.random() < 0.4
        n = rng.randint(0, min(size - 2, 40)) if short else size - 1
        try:
            os.truncate(path, n)
            err = 0
        except OSError as e:
            err = e.errno
        want = errno.EINVAL if short else 0
        if err != want:
            self.error("truncate(%s, %d) of %d bytes: %s, want %s"
                       % (f.fname, n, size, os.strerror(err) if err else "ok",
                          os.strerror(want) if want else "ok"))
            self.taint(f, "truncate")
            return
        self.count("truncate-invalid" if short else "truncate-same")
        if not short:
            f.status = f.status  # same document: nothing uploaded, status kept

    def op_invalid(self, rng, mnt, f):
        """A save of invalid JSON: EINVAL at close, the platform unchanged, the
        bytes in the recovery folder."""
        nonce = "%016x" % rng.getrandbits(64)
        raw = rng.choice((b'{"instances": [{"nonce": "%s"' % nonce.encode(),
                          b'{"instances": [], "tags": ["%s"]} trailing' % nonce.encode(),
                          b'{"instances": NaN, "x": "%s"}' % nonce.encode()))
        try:
            fd = os.open(mnt.p(f.fname), os.O_WRONLY | os.O_TRUNC)
        except OSError as e:
            self.error("open %s for an invalid save: %s" % (f.fname, os.strerror(e.errno)))
            return
        err = 0
        try:
            os.write(fd, raw)
        except OSError as e:
            err = e.errno
        try:
            os.close(fd)
        except OSError as e:
            err = err or e.errno
        if err != errno.EINVAL:
            self.error("invalid save of %s: %s, want EINVAL"
                       % (f.fname, os.strerror(err) if err else "success"))
            self.taint(f, "invalid save")
            return
        self.count("save-invalid")
        with self.lock:
            self.invalid_payloads.append((f.fname, raw))

    def op_status(self, rng, mnt, f):
        s = rng.choice(STATUSES)
        try:
            os.setxattr(mnt.p(f.fname), STATUS_XATTR, s.encode())
        except OSError as e:
            self.error("setxattr status %s on %s: %s" % (s, f.fname, os.strerror(e.errno)))
            self.taint(f, "status")
            return
        self.count("status")
        f.status = s

    def op_rm(self, rng, mnt, f):
        """rm; then maybe a re-create at once (inside the grace period): a
        save, or a bare touch that leaves the annotations."""
        # -o writeback: unlink cancels a save not uploaded yet (the platform
        # keeps the one before it). Only the owner saves this file, so a
        # "clean" here stays clean until the unlink; "pending" may land first.
        f.rm_unsure = False
        f.rm_before, f.rm_ever = f.rm_ever, True
        if self.writeback:
            try:
                f.rm_unsure = os.getxattr(mnt.p(f.fname), "user.safs.sync") != b"clean"
            except OSError as e:
                self.error("getxattr user.safs.sync of %s: %s" % (f.fname, os.strerror(e.errno)))
                f.rm_unsure = True
        t0 = self.now()
        with self.lock:
            f.absent.append([t0, float("inf")])
            f.versions.append(Version(EMPTY, t0))
            if f.rm_unsure:
                # the platform keeps the last save that landed: any the owner
                # made (until DELETE_BOUND after the unlink, as below)
                cands = self.landed_candidates(f)
                f.versions.extend(Version(c, t0) for c in cands)
        try:
            os.unlink(mnt.p(f.fname))
        except OSError as e:
            self.error("unlink %s: %s" % (f.fname, os.strerror(e.errno)))
            self.taint(f, "unlink")
            return
        t1 = self.now()
        with self.lock:
            for x in f.versions:
                if x.content != EMPTY:
                    x.t1 = min(x.t1, t1 + DELETE_BOUND)
            f.deleted = True
            f.rm_t0 = t0
            f.pre_delete = (f.content, f.status)
        self.count("unlink")
        r = rng.random()
        if r < 0.25:
            self.op_write(rng, mnt, f)
        elif r < 0.4:
            self.op_rename(rng, mnt, f)
        elif r < 0.5:
            self.op_touch(rng, mnt, f)

    def touch(self, mnt, f):
        """open(O_CREAT) + close; the time of the open, or None on error."""
        try:
            fd = os.open(mnt.p(f.fname), os.O_WRONLY | os.O_CREAT, 0o644)
            t = self.now()
            os.close(fd)
        except OSError as e:
            self.error("re-create (touch) of %s: %s" % (f.fname, os.strerror(e.errno)))
            self.taint(f, "touch")
            return None
        return t

    def op_touch(self, rng, mnt, f):
        """open(O_CREAT) without a write, right after rm: the delete is
        cancelled and the platform keeps the document (fs-choices.md)."""
        if f.rm_unsure:
            return self.op_touch_unsure(rng, mnt, f)
        t = self.touch(mnt, f)
        if t is None:
            return
        if t - f.rm_t0 < SURE_GRACE:
            self.count("unlink-touch")
            c, s = f.pre_delete
            f.status = s
            v = Version(c, f.rm_t0)
            with self.lock:
                f.versions.append(v)
            self.commit(f, v, self.now())
        else:
            # too late to be sure which side of the grace period it fell on:
            # a plain save makes the model exact again
            self.count("unlink-touch-late")
            self.op_write(rng, mnt, f)

    @staticmethod
    def landed_candidates(f):
        """What the platform may hold when an rm cancelled a save that may
        not have landed: any version the owner made, or the empty document
        an earlier rm's delete left (a re-create's save cancelled before it
        landed)."""
        cands = {x for x, _a, _b in f.history} | {f.initial}
        if f.rm_before:
            cands.add(EMPTY)
        return cands

    def op_touch_unsure(self, rng, mnt, f):
        """The touch after an rm that cancelled a save which may not have
        landed (-o writeback): the platform keeps the last save that landed,
        one of the versions the owner made (op_rm lets readers see any of
        them meanwhile); the owner reads which one it is."""
        with self.lock:
            cands = self.landed_candidates(f)
        t = self.touch(mnt, f)
        if t is None:
            return
        if t - f.rm_t0 >= SURE_GRACE:
            self.count("unlink-touch-late")
            self.op_write(rng, mnt, f)
            return
        try:
            data, sizes = self.read_fd_all(mnt.p(f.fname))
            st = os.getxattr(mnt.p(f.fname), STATUS_XATTR).decode()
            doc = json.loads(data)
        except (OSError, ValueError) as e:
            self.error("owner's read of %s after rm + touch: %s" % (f.fname, e))
            self.taint(f, "touch")
            return
        c = content_of(doc)
        if c not in cands:
            self.error("owner's read of %s after rm + touch (a save cancelled): a content the "
                       "owner never made: %r" % (f.fname, data[:300]))
            self.taint(f, "touch")
            return
        self.count("unlink-touch-unsure")
        f.status = st
        f.raw = [doc.get("instances", []), doc.get("tags", [])]
        v = Version(c, f.rm_t0)
        with self.lock:
            f.versions.append(v)
        self.commit(f, v, self.now())

    def finish_delete(self, f):
        """The file is still unlinked at the end: the platform's document is
        empty, and a delete that was sent reset the status."""
        if f.deleted:
            c, s = f.pre_delete
            if not is_empty(c):
                f.status = "NotStarted"
            f.content = EMPTY
            f.deleted = False

    # -- threads ------------------------------------------------------------
    def writer(self, tid):
        rng = random.Random(self.seed * 1009 + tid)
        mine = [f for i, f in enumerate(self.files) if i % self.nthreads == tid]
        others = [f for f in self.files if f not in mine]
        ops = ((self.op_write, 30), (self.op_rename, 18), (self.op_status, 14), (self.op_rm, 8),
               (self.op_truncate, 8), (self.op_invalid, 5))
        fns, weights = zip(*ops)
        while self.now() < self.stop_at:
            f = rng.choice(mine)
            if f.tainted:
                if all(x.tainted for x in mine):
                    break
                continue
            if f.deleted and self.now() - f.rm_t0 < 1.5 and rng.random() < 0.7:
                # leave it unlinked a while; read someone else's file
                if others:
                    self.check_read(self.a, "A", rng.choice(others), rng)
                else:
                    time.sleep(0.05)
                continue
            fn = rng.choices(fns, weights)[0]
            if f.deleted and fn not in (self.op_write, self.op_rename):
                fn = self.op_write  # the next operation on an unlinked file re-creates it
            op = [self.now(), float("inf"), fn.__name__]
            with self.lock:
                f.ops.append(op)
                if len(f.ops) > 400:
                    del f.ops[:200]
            self.tls.op = op
            try:
                fn(rng, self.a, f)
                op[1] = self.now()
            except Exception:
                op[1] = self.now()
                self.error("writer %d crashed on %s:\n%s" % (tid, f.fname, traceback.format_exc()))
                self.taint(f, "crash")
            self.tls.op = None
            if rng.random() < 0.3:
                self.check_own(self.a, f)
            for _ in range(rng.randint(0, 2)):
                if others:
                    self.check_read(self.a, "A", rng.choice(others), rng)

    def reader(self, rid):
        rng = random.Random(self.seed * 7919 + rid)
        while self.now() < self.stop_at:
            try:
                self.check_read(self.b, "B", rng.choice(self.files), rng)
            except Exception:
                self.error("reader %d crashed:\n%s" % (rid, traceback.format_exc()))
                return

    # -- run and verify ---------------------------------------------------
    def run(self):
        self.log("stress: seed %d, %d s, %d writer threads, %d readers (second mount), %d files"
                 % (self.seed, self.seconds, self.nthreads, self.nreaders, self.nfiles))
        t_start = time.monotonic()
        self.setup()
        try:
            self.t_base = time.monotonic()
            self.stop_at = self.seconds
            ts = [threading.Thread(target=self.writer, args=(i,), daemon=True)
                  for i in range(self.nthreads)]
            ts += [threading.Thread(target=self.reader, args=(i,), daemon=True)
                   for i in range(self.nreaders)]
            for t in ts:
                t.start()
            hang_at = time.monotonic() + self.seconds + 120
            for t in ts:
                t.join(max(0.0, hang_at - time.monotonic()))
            hung = [t for t in ts if t.is_alive()]
            if hung:
                self.error("%d threads still running 120 s after the end (a hang)" % len(hung))
                raise RuntimeError("hang")
            for f in self.files:
                self.finish_delete(f)
            self.a.unmount()  # sends the pending deletes (and drains write-back)
            self.b.unmount()
            self.verify()
        finally:
            for m in (getattr(self, "a", None), getattr(self, "b", None), getattr(self, "c", None)):
                if m is not None and m.mounted:
                    m.cleanup()
        self.elapsed = time.monotonic() - t_start
        self.report()
        return not self.errors

    def verify(self):
        api = self.em.api
        docs = api.folder_documents(PROJECT)
        items = {i["name"]: i for i in api.items(PROJECT)}
        statuses = api.statuses(PROJECT)
        for f in self.files:
            if f.tainted:
                self.log("not compared (model unsure after %s): %s" % (f.tainted, f.fname))
                continue
            got = content_of(json.loads(docs[f.name]))
            if got != f.content:
                self.error("platform: %s holds %r, model %r" % (f.fname, docs[f.name][:300], f.content))
            st = statuses[items[f.name]["annotation_status"]]
            if st != f.status:
                self.error("platform: %s status %s, model %s" % (f.fname, st, f.status))
        self.c = self.mount_factory(os.path.join(self.workdir, "c"))
        for f in self.files:
            if f.tainted:
                continue
            try:
                data, sizes = self.read_fd_all(self.c.p(f.fname))
                st = os.getxattr(self.c.p(f.fname), STATUS_XATTR).decode()
            except OSError as e:
                self.error("fresh mount: %s: %s" % (f.fname, os.strerror(e.errno)))
                continue
            if sizes != (len(data), len(data)) or os.stat(self.c.p(f.fname)).st_size != len(data):
                self.error("fresh mount: %s sizes %r, %d bytes" % (f.fname, sizes, len(data)))
            if content_of(json.loads(data)) != f.content or st != f.status:
                self.error("fresh mount: %s shows %s / %r, model %s / %r"
                           % (f.fname, st, data[:200], f.status, f.content))
        self.c.unmount()
        rec = set(recovered_bytes(self.a.recovery_dir))
        for name, raw in self.invalid_payloads:
            if raw not in rec:
                self.error("an invalid save of %s is not in the recovery folder: %r" % (name, raw))
        for m in (self.a, self.b, self.c):
            rep = sanitizer_report(m.log())
            if rep:
                self.error("sanitizer report in %s:\n%s" % (m.log_path, rep))

    def summary(self):
        """Operations by kind ('~' counters are outcomes of reads, not operations)."""
        kinds = {}
        for k, v in self.counts.items():
            if k.startswith("~"):
                continue
            g = ("save (rename of a scratch file)" if k.startswith("save-rename")
                 else "save (invalid JSON: EINVAL)" if k == "save-invalid"
                 else "save (open/write/close)" if k.startswith("save-")
                 else "truncate(2)" if k.startswith("truncate")
                 else "unlink" if k == "unlink"
                 else "re-create by touch after rm" if k.startswith("unlink-touch")
                 else "setxattr status" if k == "status"
                 else "read (owner)" if k == "read-own"
                 else "read (other thread, mount A)" if k == "read-A"
                 else "read (second mount B)" if k == "read-B" else k)
            kinds[g] = kinds.get(g, 0) + v
        return kinds

    def report(self):
        kinds = self.summary()
        self.log("stress: seed %d: %d operations in %.0f s (%.1f s with setup and checks)"
                 % (self.seed, sum(kinds.values()), self.seconds, self.elapsed))
        for k in sorted(kinds):
            self.log("  %-36s %7d" % (k, kinds[k]))
        self.log("  details:")
        for k in sorted(self.counts):
            self.log("    %-40s %7d" % (k, self.counts[k]))
        if self.errors:
            self.log("stress FAILED, seed %d: %d errors; repeat: /usr/bin/python3 tests/stress/stress.py "
                     "--seed %d --seconds %d --threads %d --files %d --readers %d%s"
                     % (self.seed, len(self.errors), self.seed, self.seconds, self.nthreads,
                        self.nfiles, self.nreaders, " --writeback" if self.writeback else ""))
            for e in self.errors[:50]:
                self.log("  " + e)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--files", type=int, default=12)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--writeback", action="store_true", help="mount A (the writers') with -o writeback")
    ap.add_argument("--workdir", default=None, help="kept afterwards (default: a temporary one, removed on success)")
    a = ap.parse_args()
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 1 << 31)
    print("stress: seed %d" % seed, flush=True)
    wd = a.workdir or tempfile.mkdtemp(prefix="safs-stress-")
    em = Emulator(os.path.join(wd, "emulator"), [])
    ok = False
    try:
        s = Stress(em, wd, seed, a.seconds, a.threads, a.files, a.readers,
                   log=lambda m: print(m, flush=True), writeback=a.writeback)
        ok = s.run()
    finally:
        em.stop(check=False)
        rep = sanitizer_report(em.log())
        if rep:
            print("sanitizer report in the emulator's log:\n" + rep)
            ok = False
    print("stress: %s (seed %d, logs in %s)" % ("ok" if ok else "FAILED", seed, wd), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
