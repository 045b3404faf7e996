"""-o log_file=PATH (docs/safs.1): the daemon's log lines are appended to
PATH (created 0600), detached or not, in the foreground's stderr format. The
file is opened before the daemon detaches, so a bad path fails the mount
with a one-line reason and exit code 1, and nothing is mounted."""
import errno
import os
import re
import stat
import subprocess
import time

import pytest

from harness import SAFS, TOKEN, errno_of, run, sanitizer_report

V = "Demo Vector"
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} safs (emerg|alert|crit|error|warning|notice|info|debug): ")


def token_file(d):
    p = os.path.join(d, "token")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (TOKEN + "\n").encode())
    os.close(fd)
    return p


def opts(emulator, d, **extra):
    o = {"url": emulator.base_url + "/", "token_file": token_file(d),
         "attr_timeout": "0", "entry_timeout": "0", "negative_timeout": "0",
         "cache_timeout": "0", "recovery_dir": os.path.join(d, "recovery"),
         # the document cache too stays in the test's directory, not ~/.cache
         "cache_dir": os.path.join(d, "cache")}
    o.update(extra)
    return ",".join("%s=%s" % kv for kv in o.items())


def daemon_pid(mnt):
    """The pid of the safs process serving @mnt (this test's own daemon: the
    mountpoint is a fresh temporary directory)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"safs" and mnt.encode() in argv:
            return int(pid)
    return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def read_text(p):
    with open(p, errors="replace") as f:
        return f.read()


def wait_for(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def test_detached_mount_logs_refusals_to_the_file(emulator, tmp_path, programs):
    d = str(tmp_path)
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    log = os.path.join(d, "safs.log")
    # a relative path, resolved against the directory safs was started in
    r = run([SAFS, V, mnt, "-o", opts(emulator, d, log_file="safs.log")], cwd=d, timeout=60,
            check=False)
    pid = None
    try:
        assert r.returncode == 0, r.stderr
        assert r.stderr == "", r.stderr   # detached: nothing on the terminal
        assert wait_for(lambda: os.path.ismount(mnt)), read_text(log)
        pid = daemon_pid(mnt)
        assert pid, "no safs process for %s" % mnt
        assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
        assert errno_of(lambda: os.mkdir(os.path.join(mnt, "train", "deeper"))) == errno.EPERM
        assert wait_for(lambda: "folders are one level deep" in read_text(log), 5), read_text(log)
        text = read_text(log)
        assert "mounted %s on %s" % (V, mnt) in text
        for line in text.splitlines():
            assert LINE.match(line), line
        assert [l for l in text.splitlines() if "folders are one level deep" in l
                and "/train/deeper" in l and " safs error: " in l], text
    finally:
        if os.path.ismount(mnt):
            u = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True, timeout=60)
            if u.returncode != 0:
                subprocess.run(["fusermount3", "-uz", mnt], capture_output=True, timeout=60)
        if pid and not wait_for(lambda: not alive(pid), 30):
            os.kill(pid, 9)
            pytest.fail("the detached daemon did not exit within 30 s of unmount")
    assert not os.path.ismount(mnt)
    text = read_text(log)
    assert "unmounting %s" % mnt in text, text
    rep = sanitizer_report(text)   # stderr of the detached daemon went there too
    assert not rep, rep


@pytest.mark.parametrize("bad, reason", [
    ("/nonexistent-dir/safs.log", "No such file or directory"),
    ("{d}", "Is a directory"),
    ("", "expected a path"),
])
def test_bad_log_file_refuses_to_mount(emulator, tmp_path, programs, bad, reason):
    d = str(tmp_path)
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    bad = bad.format(d=d)
    r = run([SAFS, V, mnt, "-o", opts(emulator, d, log_file=bad)], timeout=60, check=False)
    try:
        assert r.returncode == 1, (r.returncode, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("safs: ") and reason in lines[0], r.stderr
        assert ("log_file" in lines[0]), lines
        assert not os.path.ismount(mnt)
        assert daemon_pid(mnt) is None
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["fusermount3", "-uz", mnt], capture_output=True, timeout=60)


def test_usage_error_creates_no_log_file(emulator, tmp_path, programs):
    d = str(tmp_path)
    mnt = os.path.join(d, "mnt")
    os.makedirs(mnt)
    log = os.path.join(d, "x.log")
    r = run([SAFS, V, mnt, "-o", opts(emulator, d, log_file=log, fps="0")], timeout=60, check=False)
    assert r.returncode == 1 and "fps" in r.stderr, r.stderr
    assert not os.path.exists(log)


def test_foreground_with_log_file_writes_the_file_only(mount, tmp_path):
    """With -f and log_file both, lines go to the file (appended to what it
    held), not to stderr."""
    log = str(tmp_path / "fg.log")
    with open(log, "w") as f:
        f.write("an older line\n")
    os.chmod(log, 0o640)
    m = mount(V, opts={"log_file": log})
    assert errno_of(lambda: os.mkdir(m.p("train", "deeper"))) == errno.EPERM
    text = read_text(log)
    assert text.startswith("an older line\n"), text
    assert "mounted %s on %s" % (V, m.path) in text
    assert "folders are one level deep" in text
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o640   # an existing file keeps its mode
    assert "folders are one level deep" not in m.log()
    assert " safs info: " not in m.log(), m.log()


def test_help_lists_log_file():
    out = run([SAFS, "--help"]).stdout
    block = out[out.index("    log_file=PATH"):]
    block = block[:block.index("\n\n")]
    assert "(default:" in block and "syslog" in block, block
