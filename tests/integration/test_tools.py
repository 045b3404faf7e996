"""The tool matrix (issue 8): every program people save annotations with leaves
the platform right, reports what it reports on a local disk, and leaves the
mount showing what a fresh mount would read.

Every case asserts three things:
 1. what the program reported: its exit status equals the one the same command
    gives on a local copy (run first, in tmp_path), and where the test drives
    the syscalls itself, the result of close();
 2. what the platform holds (through `api`): the document (parsed, modulo
    server-owned metadata and the upload's own additions), the status, and
    the exact number of upload and delete requests - also after unmount, so a
    delete that a re-create should have cancelled cannot hide behind the
    grace period (spec "unlink": a delete still pending is sent at unmount);
 3. what the mount shows now: the bytes equal pretty_tokens() of what the
    platform serves (= what a fresh mount reads) and st_size equals their
    length.

Everything runs twice: under the tests' TTL-0 mounts and under the kernel's
default attr/entry/negative timeouts.

Where the syscalls matter, what `strace -f -e trace=file,desc` shows on a local
directory (Debian 12: coreutils 9.1, GNU tar 1.34, UnZip 6.00, rsync 3.5.0,
vim 9.0, Emacs 28.2, nano 7.2, jq 1.6) is written at the case.
"""
import copy
import errno
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from harness import SUFFIX, errno_of, read, recovered_bytes, strip_server_meta, write
from toolkit import (Pty, as_compact, as_crlf, as_jq, document, editor_env, mount_shows,
                     platform_holds, rich_doc, served, wait_for)

V = "Demo Vector"
FOLDER = "train"
ITEM = "car 01.jpg"            # a name with a space: every tool's quoting is exercised
TOOL_TIMEOUT = 10              # a single-file tool takes milliseconds; today's `tar x` loops forever
TOOLS_NEEDED = ("emacs", "nano", "tar", "zip", "unzip", "install", "dd", "tee", "cp", "mv", "jq",
                "rsync", "vim", "perl", "sed")

TTL_MODES = {
    "ttl0": {},
    "kernel_ttl": {"attr_timeout": None, "entry_timeout": None, "negative_timeout": None},
}


@pytest.fixture(params=sorted(TTL_MODES))
def ttl(request):
    return dict(TTL_MODES[request.param])


@pytest.fixture(scope="module", autouse=True)
def _tools_installed():
    missing = [p for p in TOOLS_NEEDED if shutil.which(p) is None]
    if missing:
        pytest.fail("programs missing (scripts/deps.sh installs them): %s" % " ".join(missing))


# ---------------------------------------------------------------------------
def upload_form(doc):
    """The document as the platform holds it after safs uploaded @doc: on a
    Vector item, instances without creationType get "Preannotation" and
    without probability 100 (filesystem.md "Upload rules"), server-owned
    metadata ignored."""
    d = copy.deepcopy(doc)
    for inst in d.get("instances", []):
        if isinstance(inst, dict):
            inst.setdefault("creationType", "Preannotation")
            inst.setdefault("probability", 100)
    return strip_server_meta(d)


def run_tool(script, env, cwd, timeout=TOOL_TIMEOUT):
    """bash -c @script in its own process group; on timeout the whole group is
    killed (a looping `tar` under `bash -c` would outlive a plain kill)."""
    p = subprocess.Popen(["bash", "-c", script], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        return "timeout after %ds" % timeout, out, err


class Bench:
    """One item of Demo Vector holding a realistic document, a mount (with the
    parametrized TTLs), and a local directory holding the same bytes the
    mount served, so every command can be run on both."""

    def __init__(self, mount, emulator, api, tmp_path, ttl, opts=None, status="NotStarted",
                 folder=FOLDER, item=ITEM, doc=None):
        self.emulator, self.api, self.folder, self.item = emulator, api, folder, item
        self.tmp = tmp_path
        api.upload(V, folder, item, doc or rich_doc(item))
        api.set_status(V, folder, [item], status)
        self.status_before = status
        o = dict(ttl)
        o.update(opts or {})
        self.m = mount(V, opts=o)
        self.dir = self.m.p(folder)
        self.f = self.m.p(folder, item + SUFFIX)
        self.before = read(self.f)            # the user looked at it first
        assert self.before == served(api, V, folder, item), "the mount does not serve the seeded document"
        self.local_dir = str(tmp_path / "local" / folder)
        os.makedirs(self.local_dir)
        self.local_f = os.path.join(self.local_dir, item + SUFFIX)
        write(self.local_f, self.before)
        self.names = api.names(V, folder)
        emulator.reset_stats()

    # -- the source files a tool copies from --------------------------------
    def src(self, data, name="src.json"):
        p = str(self.tmp / name)
        write(p, data)
        return p

    def archive(self, data, kind, name=None):
        """A tar or zip archive holding one member named like the item, with
        @data, mtime 2024-01-02 (so a kept mtime is visible)."""
        d = self.tmp / ("arc-" + kind)
        d.mkdir(exist_ok=True)
        member = d / (self.item + SUFFIX)
        member.write_bytes(data)
        os.utime(member, (1704196800, 1704196800))
        out = str(self.tmp / ("a." + kind))
        if kind == "tar":
            subprocess.run(["tar", "cf", out, "-C", str(d), self.item + SUFFIX], check=True, timeout=30)
        else:
            subprocess.run(["zip", "-qX", out, self.item + SUFFIX], cwd=str(d), check=True, timeout=30)
        return out

    # -- check 1 -----------------------------------------------------------
    def run(self, script, **env):
        """Run @script with F (the item's file), D (its directory), T (a fresh
        scratch directory outside the mount) and @env, first on the local
        copy, then on the mount; their exit statuses must agree."""
        results = {}
        for where, d, f in (("local", self.local_dir, self.local_f), ("mount", self.dir, self.f)):
            t = self.tmp / ("T-" + where)
            t.mkdir(exist_ok=True)
            e = dict(os.environ, F=f, D=d, T=str(t), LC_ALL="C.UTF-8")
            e.update({k: str(v) for k, v in env.items()})
            results[where] = run_tool(script, e, cwd=d)
        (lrc, _, lerr), (mrc, _, merr) = results["local"], results["mount"]
        assert mrc == lrc, ("%s: on the mount it exited %s, on a local disk %s\nmount stderr: %s\n"
                            "local stderr: %s" % (script, mrc, lrc, merr[-2000:], lerr[-2000:]))
        self.result = results["mount"]
        return results

    def local_result(self):
        return json.loads(read(self.local_f))

    # -- checks 2 and 3 ----------------------------------------------------
    def routes(self):
        return self.emulator.routes()

    def listing_ok(self, extra=()):
        want = sorted([n + SUFFIX for n in self.names] + list(extra))
        got = sorted(os.listdir(self.dir))
        assert got == want, "listing of %s: %s, want %s" % (self.folder, got, want)

    def check_changed(self, want_doc=None, status="InProgress", status_changes=None, extra=()):
        """One changed save happened: exactly one upload, no delete, the
        platform holds @want_doc (default: what the same command left on the
        local disk) in its uploaded form, the status, the mount shows what a
        fresh mount reads, and after unmount still no delete."""
        routes = self.routes()
        assert self.emulator.uploads(routes) == 1, "uploads: %s" % routes
        assert self.emulator.deletes(routes) == 0, "deletes: %s" % routes
        if status_changes is not None:
            assert self.emulator.status_changes(routes) == status_changes, routes
        want = upload_form(want_doc if want_doc is not None else self.local_result())
        got = platform_holds(self.api, V, self.folder, self.item, want)
        assert strip_server_meta(got) == want
        assert self.api.status(V, self.folder, self.item) == status
        mount_shows(self.api, V, self.m, self.folder, self.item)
        self.listing_ok(extra)
        self.mtime_kept()
        self.after_unmount(uploads=1)

    def check_unchanged(self, extra=()):
        """A save that changed nothing: no write request of any kind (now and
        after unmount), the status as before, the mount shows what it showed."""
        routes = self.routes()
        assert self.emulator.writes(routes) == 0, "write requests for an unchanged save: %s" % routes
        assert self.api.status(V, self.folder, self.item) == self.status_before
        mount_shows(self.api, V, self.m, self.folder, self.item)
        assert read(self.f) == self.before, "the mount shows other bytes than before the unchanged save"
        self.listing_ok(extra)
        self.after_unmount(uploads=0, writes=0)

    def mtime_kept(self):
        """A tool that set the mtime (utimens: tar, unzip, rsync) sees it kept."""
        lm = os.stat(self.local_f).st_mtime
        if abs(lm - time.time()) > 3600:
            assert int(os.stat(self.f).st_mtime) == int(lm), "mtime set by the tool not kept"

    def after_unmount(self, uploads, writes=None):
        self.m.unmount()
        routes = self.routes()
        assert self.emulator.uploads(routes) == uploads, "after unmount: %s" % routes
        assert self.emulator.deletes(routes) == 0, "a delete was sent (at unmount): %s" % routes
        if writes is not None:
            assert self.emulator.writes(routes) == writes, "after unmount: %s" % routes


@pytest.fixture
def bench(mount, emulator, api, tmp_path, ttl):
    def make(**kw):
        return Bench(mount, emulator, api, tmp_path, ttl, **kw)
    return make


def new_doc():
    """The edited document a tool writes whole: a class renamed, a number
    moved, a tag added."""
    d = rich_doc(ITEM, marker="truck", x=13.75)
    d["tags"].append("edited")
    return d


# ---------------------------------------------------------------------------
# Shell tools that write the whole file (or a part of it) in place or via a
# scratch name. {S}: source file, {A}: archive, {OFF}: offset of the "12.3" token.

# python3: the system interpreter, as a user's script would run
PY_OPEN_W = r'''/usr/bin/python3 - "$F" "$S" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[2]))
with open(sys.argv[1], "w") as f:          # compact json.dump, no final newline
    json.dump(doc, f)
EOF'''

# tempfile.NamedTemporaryFile(dir=...) + fsync + os.replace: a scratch name
# "tmpXXXXXXXX" beside the file, renamed onto it
PY_TEMPFILE = r'''/usr/bin/python3 - "$F" "$S" <<'EOF'
import json, os, sys, tempfile
doc = json.load(open(sys.argv[2]))
target = sys.argv[1]
with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(target), delete=False) as t:
    json.dump(doc, t, indent=2)
    t.flush()
    os.fsync(t.fileno())
os.replace(t.name, target)
EOF'''

# VS Code-like save: the whole buffer (CRLF, no final newline) to "<f>.tmp"
# beside it, fsync, close, rename onto f
PY_VSCODE = r'''/usr/bin/python3 - "$F" "$S" <<'EOF'
import os, sys
data = open(sys.argv[2], "rb").read()
tmp = sys.argv[1] + ".tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
os.fsync(fd)
os.close(fd)
os.rename(tmp, sys.argv[1])
EOF'''

# name -> (script, layout of {S} or None, archive kind or None)
CHANGED = {
    "cp": ('cp "$S" "$F"', as_jq, None),
    "cat_redirect": ('cat "$S" > "$F"', as_compact, None),
    "tee": ('tee "$F" < "$S" > /dev/null', as_crlf, None),
    # dd conv=notrunc: open(O_WRONLY|O_CREAT) without O_TRUNC, lseek, 4 bytes
    "dd_notrunc": ('printf %s 45.6 | dd of="$F" bs=1 seek="$OFF" conv=notrunc status=none', None, None),
    # sed -i: open(f), open("sedXXXXXX", O_CREAT|O_EXCL), rename(sedXXXXXX, f)
    "sed_i": ('sed -i \'s/"className": "car"/"className": "truck"/\' "$F"', None, None),
    # perl -pi: open(f), open("XXXXXXXX", O_CREAT|O_EXCL), renameat(XXXXXXXX, f)
    "perl_pi": ('perl -pi -e \'s/"y1": 0\\.1,/"y1": 0.15,/\' "$F"', None, None),
    "jq_mv_same_dir": ('jq \'.tags += ["jq"]\' "$F" > "$D/t" && mv "$D/t" "$F"', None, None),
    # mv from /tmp: renameat2(RENAME_NOREPLACE) and renameat() -> EXDEV (from the
    # kernel), unlinkat(f), openat(f, O_WRONLY|O_CREAT|O_EXCL, 0600), FICLONE and
    # copy_file_range -> EXDEV, read/write, utimensat, flistxattr on the source,
    # fsetxattr(system.posix_acl_access), close, unlink the source
    "jq_mv_from_tmp": ('jq \'.tags += ["jq"]\' "$F" > "$T/t" && mv "$T/t" "$F"', None, None),
    "python_open_w": (PY_OPEN_W, as_compact, None),
    "python_tempfile_replace": (PY_TEMPFILE, as_jq, None),
    "vscode_tmp_rename": (PY_VSCODE, as_crlf, None),
    # tar x: openat(f, O_WRONLY|O_CREAT|O_EXCL) -> EEXIST, unlinkat(f), openat(f,
    # O_CREAT|O_EXCL) again; then fchown, fchmod, utimensat. Today the second
    # O_EXCL fails again and tar loops (unlink, create) forever.
    "tar_x": ('tar xf "$A" -C "$D"', as_jq, "tar"),
    # tar --overwrite: openat(f, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW), no unlink.
    # Both tar modes set the times on the open descriptor BEFORE close:
    # write, utimensat(fd, NULL, [UTIME_OMIT, mtime]), fchown(fd), close - so
    # the member's mtime must survive the upload that close() makes.
    "tar_x_overwrite": ('tar --overwrite -xf "$A" -C "$D"', as_jq, "tar"),
    # install: unlinkat(f), openat(f, O_WRONLY|O_CREAT|O_EXCL, 0600), fchmodat(0644)
    "install": ('install -m 644 "$S" "$F"', as_jq, None),
    # cp --remove-destination: unlinkat(f), openat(f, O_WRONLY|O_CREAT|O_EXCL, 0644)
    "cp_remove_destination": ('cp --remove-destination "$S" "$F"', as_jq, None),
    # unzip -o: stat, unlink(f), openat(f, O_RDWR|O_CREAT|O_TRUNC, 0666), write,
    # close, utimensat(path). unzip ignores close()'s result: a refused save
    # still exits 0 (today: the delete goes out, the save is ESTALE, exit 0).
    "unzip_o": ('unzip -oq "$A" -d "$D"', as_crlf, "zip"),
}


def prepare(b, name, table):
    script, layout, arc = table[name]
    env = {}
    if layout is not None:
        data = layout(new_doc())
        env["S"] = b.src(data)
        if arc:
            env["A"] = b.archive(data, arc)
    if "$OFF" in script:
        env["OFF"] = b.before.index(b"12.3")
    return script, env


@pytest.mark.parametrize("tool", sorted(CHANGED))
def test_changed_save(bench, tool):
    """One changed save by @tool: exit status as on a local disk, one upload,
    no delete (a re-create inside the grace period is a plain save), status
    InProgress, the mount shows the platform's document."""
    b = bench()
    script, env = prepare(b, tool, CHANGED)
    b.run(script, **env)
    if tool in ("sed_i", "perl_pi", "dd_notrunc"):
        assert b.local_result() != json.loads(b.before), "the edit did not change the document"
    b.check_changed(status_changes=1)


# ---------------------------------------------------------------------------
# The same tools writing exactly what the platform already holds.
# {S} is the mount's own bytes (or the same content in another layout); the
# archives hold the mount's own file.

UNCHANGED = {
    "cp_same_bytes": ('cp "$S" "$F"', "served", None),
    "cp_jq_layout": ('jq . "$F" > "$T/t" && cp "$T/t" "$F"', None, None),
    "cat_compact": ('jq -c . "$F" > "$T/t" && cat "$T/t" > "$F"', None, None),
    "tar_x": ('tar xf "$A" -C "$D"', "served", "tar"),
    "tar_x_overwrite": ('tar --overwrite -xf "$A" -C "$D"', "served", "tar"),
    "unzip_o": ('unzip -oq "$A" -d "$D"', "served", "zip"),
    "install": ('install -m 644 "$S" "$F"', "served", None),
    "cp_remove_destination": ('cp --remove-destination "$S" "$F"', "served", None),
    "mv_from_tmp": ('cp "$F" "$T/t" && mv "$T/t" "$F"', None, None),
    "jq_mv_same_dir": ('jq . "$F" > "$D/t" && mv "$D/t" "$F"', None, None),
    "sed_i_no_match": ('sed -i s/NO_SUCH_TEXT/x/ "$F"', None, None),
    "perl_pi_no_match": ("perl -pi -e s/NO_SUCH_TEXT/x/ \"$F\"", None, None),
    "python_open_w": (PY_OPEN_W, "compact", None),
    "python_tempfile_replace": (PY_TEMPFILE, "compact", None),
    # rsync -c of a tree holding the same document in jq's layout: checksums
    # differ, so rsync sends the file (temp ".<f>.XXXXXX" + rename), content equal
    "rsync_c_other_layout": ('mkdir -p "$T/tree" && jq . "$F" > "$T/tree/$(basename "$F")" && '
                             'rsync -c "$T/tree/$(basename "$F")" "$F"', None, None),
    # rsync -c of the mount's own bytes: checksums equal, nothing sent
    "rsync_c_same_bytes": ('rsync -c "$S" "$F"', "served", None),
}


def prepare_unchanged(b, name):
    script, src, arc = UNCHANGED[name]
    env = {}
    if src == "served":
        env["S"] = b.src(b.before)
        if arc:
            env["A"] = b.archive(b.before, arc)
    elif src == "compact":
        env["S"] = b.src(as_compact(json.loads(b.before)))
    return script, env


@pytest.mark.parametrize("tool", sorted(UNCHANGED))
def test_unchanged_save_sends_nothing(bench, tool):
    """(b) A save of the platform's own content sends no write request at all:
    no upload, no status change, no delete (not even at unmount); the status
    (QualityCheck) stays."""
    b = bench(status="QualityCheck")
    script, env = prepare_unchanged(b, tool)
    b.run(script, **env)
    b.check_unchanged()


KEEP_CHANGED = ("cp", "tar_x", "jq_mv_from_tmp", "sed_i", "python_tempfile_replace", "install",
                "unzip_o")
KEEP_UNCHANGED = ("tar_x", "tar_x_overwrite", "cp_same_bytes", "rsync_c_other_layout", "mv_from_tmp",
                  "unzip_o")


@pytest.mark.parametrize("tool", KEEP_CHANGED)
def test_keep_status_changed_save(bench, tool):
    """-o keep_status: a changed save on a Completed item is one upload and no
    status request; Completed stays."""
    b = bench(opts={"keep_status": True}, status="Completed")
    script, env = prepare(b, tool, CHANGED)
    b.run(script, **env)
    b.check_changed(status="Completed", status_changes=0)


@pytest.mark.parametrize("tool", KEEP_UNCHANGED)
def test_keep_status_unchanged_save(bench, tool):
    """(c) -o keep_status, Completed item, an unchanged save: nothing sent, Completed stays."""
    b = bench(opts={"keep_status": True}, status="Completed")
    script, env = prepare_unchanged(b, tool)
    b.run(script, **env)
    b.check_unchanged()


# ---------------------------------------------------------------------------
# rm: the name goes at once, the delete a second later.

def test_rm_hides_at_once_deletes_later(bench, emulator, api):
    b = bench(status="Completed")
    old = document(api, V, FOLDER, ITEM)
    b.run('rm "$F"')
    assert not os.path.exists(b.f), "the name still shows right after rm"
    assert ITEM + SUFFIX not in os.listdir(b.dir)
    with pytest.raises(FileNotFoundError):
        os.stat(b.f)
    # the delete waits about a second for a re-create, then goes
    assert wait_for(lambda: emulator.deletes() == 1, timeout=3.5), emulator.routes()
    time.sleep(0.5)
    routes = emulator.routes()
    assert emulator.deletes(routes) == 1 and emulator.uploads(routes) == 0, routes
    doc = document(api, V, FOLDER, ITEM)
    assert doc["instances"] == [] and doc.get("tags", []) == []
    assert api.status(V, FOLDER, ITEM) == "NotStarted"
    assert any(r.strip().startswith(b"{") and json.loads(r) == old
               for r in recovered_bytes(b.m.recovery_dir)), "the deleted document is not in the recovery folder"
    # the name stays hidden: the item's version is what the delete left
    assert ITEM + SUFFIX not in os.listdir(b.dir)
    b.m.unmount()
    assert emulator.deletes() == 1


# ---------------------------------------------------------------------------
# Editors on a pty.
#
# Both vim and Emacs skip backups of files under /tmp (vim's 'backupskip'
# starts with /tmp/*, Emacs' normal-backup-enable-predicate skips
# temporary-file-directory), and the test mounts live under /tmp; in a home
# directory they make them, so the cases turn that back on: that is what a
# user's ~/mnt sees.
#
# vim -N -u DEFAULTS -i NONE, backups on: open(f), .f.swp (O_CREAT|O_EXCL,
# .swx probe), at :w  open("4913", O_CREAT|O_EXCL) + unlink (can it rename?),
# rename(f, "f~"), open(f, O_WRONLY|O_CREAT, 0644), ftruncate(0), write, fsync,
# fchmod, close, setxattr(system.posix_acl_access), unlink("f~"); at exit
# unlink(.f.swp). With the backup skipped: open(f, O_WRONLY|O_CREAT) + ftruncate
# directly.

VIM = ["vim", "-N", "-u", "DEFAULTS", "-i", "NONE", "--cmd", "set backupskip="]


def vim_session(b, tmp_path):
    return Pty(VIM + [b.f], env=editor_env(tmp_path / "home"), cwd=b.dir)


def swap_name():
    return "." + ITEM + SUFFIX + ".swp"


@pytest.mark.parametrize("cmd", ["w", "wq", "x"])
def test_vim(bench, tmp_path, cmd):
    b = bench()
    (tmp_path / "home").mkdir()
    want = json.loads(b.before.replace(b'"car"', b'"truck"'))
    with vim_session(b, tmp_path) as p:
        p.expect(r"car 01\.jpg___objects\.json")
        p.settle()
        assert swap_name() in os.listdir(b.dir), "vim's swap file is not in the folder"
        p.send(':%s/"car"/"truck"/g\r')
        p.send(':echo "SUBST=" . &modified\r')     # 2 changes print no message ('report')
        p.expect(r"SUBST=1")
        b.emulator.reset_stats()
        p.send(":%s\r" % cmd)
        if cmd == "w":
            p.expect(r"written")
            p.settle()
            # vim is still running: its swap file is there, the item is saved
            assert swap_name() in os.listdir(b.dir)
            routes = b.routes()
            assert b.emulator.uploads(routes) == 1, routes
            mount_shows(b.api, V, b.m, FOLDER, ITEM)
            p.send(":q\r")
        rc = p.wait()
        assert rc == 0, "vim exited %s:\n%s" % (rc, p.text()[-2000:])
        assert "E212" not in p.text() and "E667" not in p.text(), p.text()[-2000:]
    b.check_changed(want_doc=want, status_changes=1)


# Emacs 28.2, -Q, with write-region-inhibit-fsync nil (so it fsyncs) and lock
# files on. On a local disk, the first change of the buffer makes the lock
# symlink(".#f" -> "user@host.pid"); the save is open(f, O_WRONLY|O_CREAT|
# O_TRUNC), write, fsync, fstat, close, then open(f, O_WRONLY) + fstat + close
# (the modtime check), then unlink(.#f). On safs symlink gives EPERM, and
# Emacs falls back to a regular-file lock: a scratch file made with mkostemp,
# renamed with RENAME_NOREPLACE onto ".#<name>___objects.json". fsync's EINVAL
# is ignored by Emacs (fileio.c), close's error is what it reports.

def emacs_session(b, tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    argv = ["emacs", "-nw", "-Q",
            "--eval", "(setq write-region-inhibit-fsync nil)",
            "--eval", "(setq create-lockfiles t)",
            "--eval", "(setq backup-enable-predicate (lambda (_name) t))",
            "--eval", "(setq xterm-query-timeout nil)",
            b.f]
    return Pty(argv, env=editor_env(home), cwd=b.dir)


def emacs_eval(p, expr, expect=None, timeout=20):
    """M-: EXPR RET; with @expect, wait for that text in the echo area."""
    p.send("\x1b:")
    p.expect(r"Eval:")
    p.send(expr + "\r")
    if expect:
        return p.expect(expect, timeout=timeout)
    p.settle()
    return None


def emacs_messages(p, tmp_path):
    out = tmp_path / "emacs-messages.txt"
    emacs_eval(p, '(with-current-buffer "*Messages*" (write-region nil nil %s))'
               % json.dumps(str(out)), r"Wrote .*emacs-messages")
    return out.read_text()


LOCK = ".#" + ITEM + SUFFIX


def test_emacs(bench, tmp_path):
    b = bench()
    want = json.loads(b.before.replace(b'"car"', b'"truck"'))
    with emacs_session(b, tmp_path) as p:
        p.expect(r"car 01\.jpg___objects\.json")
        p.settle(0.5)
        emacs_eval(p, '(progn (goto-char (point-min)) (while (search-forward "\\"car\\"" nil t) '
                      '(replace-match "\\"truck\\"")) (message "EDITED"))', r"EDITED")
        # the buffer is modified: Emacs holds its lock, a regular file
        assert LOCK in os.listdir(b.dir), "no Emacs lock file: %s" % os.listdir(b.dir)
        assert os.path.isfile(b.m.p(FOLDER, LOCK)) and not os.path.islink(b.m.p(FOLDER, LOCK))
        emacs_eval(p, '(message "LOCKED=%S" (file-locked-p buffer-file-name))', r"LOCKED=t")
        b.emulator.reset_stats()
        p.send("\x18\x13")                                  # C-x C-s
        p.expect(r"Wrote ")
        emacs_eval(p, '(message "MOD=%S VERIFY=%S" (buffer-modified-p) (verify-visited-file-modtime))',
                   r"MOD=nil VERIFY=t")
        assert LOCK not in os.listdir(b.dir), "the lock outlived the save"
        msgs = emacs_messages(p, tmp_path)
        for bad in ("rror", "denied", "annot", "Lock", "lock"):
            assert bad not in msgs, "Emacs reported a problem:\n" + msgs
        p.send("\x18\x03")                                  # C-x C-c
        rc = p.wait()
        assert rc == 0, p.text()[-2000:]
    # the first save made the backup by renaming f to "f~" (a scratch copy)
    b.check_changed(want_doc=want, status_changes=1, extra=[ITEM + SUFFIX + "~"])


# nano 7.2 with Debian's /etc/nanorc (set locking): a lock ".f.swp" while
# editing, the save is open(f, O_WRONLY|O_CREAT|O_TRUNC) + write + close.

def test_nano(bench, tmp_path):
    b = bench()
    (tmp_path / "home").mkdir()
    want = json.loads(b.before.replace(b'"car"', b'"truck"'))
    with Pty(["nano", b.f], env=editor_env(tmp_path / "home"), cwd=b.dir) as p:
        p.expect(r"car 01\.jpg___objects\.json")
        p.settle()
        p.send("\x1c")                                     # ^\ replace
        p.expect(r"Search \(to replace\)")
        p.send('"car"\r')
        p.expect(r"Replace with")
        p.send('"truck"\r')
        p.expect(r"this instance\?")
        p.send("a")
        p.expect(r"\d+ occurrences")
        b.emulator.reset_stats()
        p.send("\x0f")                                     # ^O write out
        p.expect(r"File Name to Write")
        p.send("\r")
        p.expect(r"Wrote \d+ lines")
        p.send("\x18")                                     # ^X exit
        rc = p.wait()
        assert rc == 0, p.text()[-2000:]
    b.check_changed(want_doc=want, status_changes=1)


# ---------------------------------------------------------------------------
# (a) A refused save fails close(), not only fsync().

BAD = b'{"metadata": {"name": "car 01.jpg"}, "instances": [{"type": "bbox",, }]\n'


def recovered_count(m, data):
    return sum(1 for r in recovered_bytes(m.recovery_dir) if r == data)


def check_refused(b, data):
    routes = b.routes()
    assert b.emulator.uploads(routes) == 0 and b.emulator.writes(routes) == 0, routes
    assert recovered_count(b.m, data) == 1, ("the refused bytes are in the recovery folder %d times"
                                             % recovered_count(b.m, data))
    assert b.api.status(V, FOLDER, b.item) == b.status_before
    mount_shows(b.api, V, b.m, FOLDER, b.item)
    assert read(b.f) == b.before


def test_refused_save_fails_close_python(bench):
    b = bench()
    fd = os.open(b.f, os.O_WRONLY | os.O_TRUNC)
    os.write(fd, BAD)
    e = errno_of(lambda: os.fsync(fd))
    assert e == errno.EINVAL, "fsync() of invalid JSON: errno %d, want EINVAL" % e
    e = errno_of(lambda: os.close(fd))   # the descriptor is closed either way
    assert e == errno.EINVAL, "close() after the refused fsync: errno %d, want EINVAL" % e
    check_refused(b, BAD)


def test_refused_save_cp_reports_it(bench, tmp_path):
    """cp checks close(): the refusal is its exit status and message."""
    b = bench()
    src = b.src(BAD, "bad.json")
    rc, out, err = run_tool('cp "$S" "$F"', dict(os.environ, S=src, F=b.f), cwd=b.dir)
    assert rc == 1 and "Invalid argument" in err, (rc, err)
    check_refused(b, BAD)


def test_refused_save_emacs(bench, tmp_path):
    """Emacs with fsync on: fsync's EINVAL it ignores, close's it reports; the
    buffer stays modified; the bytes are recovered once."""
    b = bench()
    with emacs_session(b, tmp_path) as p:
        p.expect(r"car 01\.jpg___objects\.json")
        p.settle(0.5)
        emacs_eval(p, '(progn (goto-char (point-max)) (insert "garbage\\n") (message "EDITED"))', r"EDITED")
        b.emulator.reset_stats()
        p.send("\x18\x13")                                  # C-x C-s
        said = p.expect(r"Wrote |[Ww]rite error|Invalid argument").group(0)
        p.settle(0.5)
        assert said != "Wrote ", "Emacs reported the refused save as written (close() returned 0)"

        emacs_eval(p, '(message "MOD=%S" (buffer-modified-p))', r"MOD=t")
        check_refused(b, b.before + b"garbage\n")
        emacs_eval(p, "(progn (set-buffer-modified-p nil) (kill-emacs 0))")
        assert p.wait() == 0


# ---------------------------------------------------------------------------
# rsync out of the mount and back into it.

RSYNC = {
    "a": ["-a"],
    "aX": ["-aX"],
    "inplace": ["-a", "--inplace"],
    "c": ["-ac"],
    "delete": ["-a", "--delete"],
}


def rsync(opts, src, dst, timeout=120):
    return subprocess.run(["rsync", "-i"] + opts + [src, dst], capture_output=True, text=True,
                          timeout=timeout)


def transfers(r):
    """rsync -i lines that sent file data ('>f...' or 'cf...')."""
    return [ln for ln in r.stdout.splitlines() if ln[:2] in (">f", "<f", "cf")]


@pytest.mark.parametrize("variant", sorted(RSYNC))
def test_rsync(mount, emulator, api, tmp_path, ttl, variant):
    opts = RSYNC[variant]
    folder = "val"
    statuses = {n: api.status(V, folder, n) for n in api.names(V, folder)}
    m = mount(V, opts=ttl)
    mdir = m.p(folder) + "/"
    out = str(tmp_path / "out") + "/"
    # a stale local file: --delete out of the mount removes it
    os.makedirs(out)
    write(out + "stale.txt", b"x")

    # 1. out of the mount: the tree is what a fresh mount reads; nothing written
    emulator.reset_stats()
    r = rsync(opts, mdir, out)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert emulator.writes() == 0, emulator.routes()
    for n in statuses:
        assert read(out + n + SUFFIX) == served(api, V, folder, n), n
    assert os.path.exists(out + "stale.txt") == (variant != "delete")
    if os.path.exists(out + "stale.txt"):
        os.unlink(out + "stale.txt")

    # 2. straight back: nothing transferred, nothing written
    emulator.reset_stats()
    r = rsync(opts, out, mdir)
    assert r.returncode == 0, "rsync %s back into the mount exited %d: %s" % (opts, r.returncode, r.stderr)
    assert transfers(r) == [], r.stdout
    assert emulator.writes() == 0, emulator.routes()

    if variant == "aX":
        # 2b. -aX from a tree without xattrs (copied out with -a): rsync makes the
        # destination's attributes match, i.e. fremovexattr(user.superannotate.status)
        # on every file (strace; itemized ".f........x"). Removing the status
        # succeeds and changes nothing (spec "Extended attributes").
        plain = str(tmp_path / "plain") + "/"
        r = rsync(["-a"], mdir, plain)
        assert r.returncode == 0, (r.returncode, r.stderr)
        emulator.reset_stats()
        r = rsync(opts, plain, mdir)
        assert r.returncode == 0, ("rsync -aX from a tree without xattrs exited %d: %s"
                                   % (r.returncode, r.stderr[-1500:]))
        assert emulator.writes() == 0, emulator.routes()
        for n, st in statuses.items():
            assert api.status(V, folder, n) == st, n

    # 3. one file edited outside (jq's layout, in place, so xattrs stay): one upload
    edited = "val_002.jpg"
    p = out + edited + SUFFIX
    d = json.loads(read(p))
    d["tags"] = d.get("tags", []) + ["rsync-edit"]
    d["instances"][0]["points"]["x1"] = 77.125
    with open(p, "r+b") as fh:
        fh.truncate(0)
        fh.write(as_jq(d))
    emulator.reset_stats()
    r = rsync(opts, out, mdir)
    assert r.returncode == 0, "rsync %s back into the mount exited %d: %s" % (opts, r.returncode, r.stderr)
    routes = emulator.routes()
    assert emulator.uploads(routes) == 1, routes
    assert emulator.deletes(routes) == 0, routes
    platform_holds(api, V, folder, edited, upload_form(d))
    # -aX carried the status xattr onto rsync's temp file: it applies after the upload
    want_status = statuses[edited] if variant == "aX" else "InProgress"
    assert api.status(V, folder, edited) == want_status
    for n, st in statuses.items():
        if n != edited:
            assert api.status(V, folder, n) == st, n
    mount_shows(api, V, m, folder, edited)
    assert int(os.stat(mdir + edited + SUFFIX).st_mtime) == int(os.stat(p).st_mtime), "rsync's mtime not kept"

    # 4. the same rsync again: it may re-send (the mount shows another layout), uploads nothing
    emulator.reset_stats()
    r = rsync(opts, out, mdir)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert emulator.writes() == 0, emulator.routes()
    mount_shows(api, V, m, folder, edited)

    if variant == "delete":
        # 5. a file gone from the source: its name goes at once, the delete a second later
        gone = "val_003.jpg"
        os.unlink(out + gone + SUFFIX)
        emulator.reset_stats()
        r = rsync(opts, out, mdir)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert gone + SUFFIX not in os.listdir(mdir)
        assert wait_for(lambda: emulator.deletes() == 1, timeout=3.5), emulator.routes()
        assert emulator.uploads() == 0
        assert document(api, V, folder, gone)["instances"] == []
    # unmount: nothing left to send
    emulator.reset_stats()
    m.unmount()
    assert emulator.writes() == 0, emulator.routes()


# ---------------------------------------------------------------------------
# cp -r / cp -a of a folder into another folder of the project, and back.

@pytest.mark.parametrize("flag", ["-r", "-a"])
def test_cp_folder_into_another_and_back(mount, emulator, api, tmp_path, ttl, flag):
    src, dst = "val", "val_copy"
    names = api.names(V, src)
    emulator.seed(V, folder=dst, items=names)          # same item names, no documents
    docs = {n: json.loads(raw) for n, raw in api.folder_documents(V, src).items()}
    src_status = {n: api.status(V, src, n) for n in names}
    changed = [n for n in names if docs[n].get("instances") or docs[n].get("tags")]
    m = mount(V, opts=ttl)
    emulator.reset_stats()
    r = subprocess.run(["cp", flag, m.p(src) + "/.", m.p(dst) + "/"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr)
    routes = emulator.routes()
    assert emulator.uploads(routes) == len(changed), routes
    assert emulator.deletes(routes) == 0, routes
    for n in names:
        assert strip_server_meta(document(api, V, dst, n)) == upload_form(docs[n]), n
        if flag == "-a":      # cp -a copied user.superannotate.status
            assert api.status(V, dst, n) == src_status[n], n
        else:
            assert api.status(V, dst, n) == ("InProgress" if n in changed else "NotStarted"), n
        mount_shows(api, V, m, dst, n)
    assert sorted(os.listdir(m.p(dst))) == sorted(n + SUFFIX for n in names)
    # cp -r out of this mount and out of a fresh one give byte-identical trees
    m2 = mount(V, opts=ttl)
    a, b = tmp_path / "fromA", tmp_path / "fromB"
    subprocess.run(["cp", "-r", m.p(dst), str(a)], check=True, timeout=120)
    subprocess.run(["cp", "-r", m2.p(dst), str(b)], check=True, timeout=120)
    for n in names:
        assert read(a / (n + SUFFIX)) == read(b / (n + SUFFIX)), n
    m2.unmount()

    # and back: the content is already there, nothing is written
    emulator.reset_stats()
    r = subprocess.run(["cp", flag, m.p(dst) + "/.", m.p(src) + "/"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert emulator.writes() == 0, emulator.routes()
    for n in names:
        assert api.status(V, src, n) == src_status[n], n
        mount_shows(api, V, m, src, n)

    # out to a local disk and back in, unchanged: nothing written
    local = tmp_path / "local"
    subprocess.run(["cp", flag, m.p(src), str(local)], check=True, timeout=120)
    emulator.reset_stats()
    r = subprocess.run(["cp", flag, str(local) + "/.", m.p(src) + "/"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert emulator.writes() == 0, emulator.routes()
    m.unmount()
    assert emulator.writes() == 0, emulator.routes()
