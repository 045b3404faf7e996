"""Mounting like a real filesystem (docs/filesystem.md §7): the command line,
credentials, pre-flight failures, mount(8)/mount.safs/fstab, and --probe.

Run: /usr/bin/python3 -m pytest tests/integration/test_mount.py
Every subprocess has a timeout; every mount is unmounted in a finally.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from harness import BUILD, SAFS, TOKEN, run, sanitizer_report

MOUNT_SAFS = os.path.join(BUILD, "mount-helper", "mount.safs")
BAD_TOKEN = "wrongkey=1"


# ---------------------------------------------------------------------------
# helpers

def need_safs():
    if not os.access(SAFS, os.X_OK):
        pytest.fail("safs binary missing: %s (ninja -C %s)" % (SAFS, BUILD))


def mounts_text():
    with open("/proc/mounts") as f:
        return f.read()


def in_mount_table(path):
    esc = str(path).replace("\\", "\\134").replace(" ", "\\040")
    return any(line.split(" ")[1] == esc for line in mounts_text().splitlines() if line)


def daemon_pids(path):
    """Processes whose command line names @path (the safs daemon of a mount)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if str(path).encode() in args and any(a.endswith(b"safs") for a in args[:1]):
            out.append(int(d))
    return out


def unmount(path):
    """fusermount3 -u, then -uz; wait for the daemon to go (kill it after 30 s)."""
    path = str(path)
    if os.path.ismount(path) or in_mount_table(path):
        r = subprocess.run(["fusermount3", "-u", path], capture_output=True, timeout=60)
        if r.returncode != 0:
            subprocess.run(["fusermount3", "-uz", path], capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while daemon_pids(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in daemon_pids(path):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def clean_env(home, **extra):
    """The environment of a safs run: HOME=@home, no SA_* / VERIFY_SSL leaking in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SA_") and k not in ("VERIFY_SSL", "XDG_CACHE_HOME")}
    env["HOME"] = str(home)
    env["XDG_CACHE_HOME"] = os.path.join(str(home), ".cache")
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def write_token_file(path, token=TOKEN, mode=0o600):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (token + "\n").encode())
    os.close(fd)
    os.chmod(str(path), mode)
    return str(path)


class Attempt:
    """One `safs SOURCE MNT -o opts` run in daemon mode (the user's way)."""

    def __init__(self, rc, out, elapsed, mounted, listing):
        self.rc, self.out, self.elapsed, self.mounted, self.listing = rc, out, elapsed, mounted, listing

    def lines(self):
        return [l for l in self.out.splitlines() if l.strip()]


def attempt(tmp_path, source, opts, env, name="mnt", extra_args=(), timeout=60, probe_file=None):
    """Run safs (detaching), record the exit code, its output, whether it
    mounted and what the mount root lists; always unmount afterwards."""
    need_safs()
    mnt = tmp_path / name
    mnt.mkdir(exist_ok=True)
    logf = tmp_path / (name + ".out")
    cmd = [SAFS] + ([source] if source is not None else []) + [str(mnt)]
    if opts:
        cmd += ["-o", opts]
    cmd += list(extra_args)
    t0 = time.monotonic()
    proc = None
    try:
        with open(str(logf), "w") as lf:
            if "-f" in extra_args:  # foreground: wait for the mount (or the exit)
                proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env)
                deadline = time.monotonic() + timeout
                while (proc.poll() is None and not os.path.ismount(str(mnt))
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
                r = subprocess.CompletedProcess(cmd, proc.returncode if proc.poll() is not None else 0)
            else:
                r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, env=env,
                                   timeout=timeout)
        elapsed = time.monotonic() - t0
        mounted = os.path.ismount(str(mnt))
        listing = None
        if mounted:
            listing = sorted(os.listdir(str(mnt)))
            if probe_file:
                listing = (listing, open(os.path.join(str(mnt), probe_file), "rb").read())
        if proc is not None:
            unmount(mnt)
            proc.wait(30)
        with open(str(logf), errors="replace") as lf:
            out = lf.read()
        rep = sanitizer_report(out)
        assert not rep, "sanitizer report from %s:\n%s" % (cmd, rep)
        return Attempt(r.returncode, out, elapsed, mounted, listing)
    finally:
        unmount(mnt)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)


def emu_opts(emulator, token_file=None, **kw):
    o = ["url=%s/" % emulator.base_url]
    if token_file:
        o.append("token_file=%s" % token_file)
    o += ["%s=%s" % (k, v) if v is not True else k for k, v in kw.items()]
    return ",".join(o)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------
# command line, no server needed

HELP_OPTIONS = ["url=", "item_url=", "wm_url=", "assets_url=", "token_file=", "cafile=",
                "insecure", "keep_status", "suffix=", "cache_timeout=", "timeout=", "max_doc=",
                "fps=", "list_frames", "recovery_dir=", "cache_dir=", "cache_max=", "mem_max=", "max_threads=", "uid=",
                "gid=", "umask=", "ro", "allow_other", "loglevel=", "--probe", "--version",
                "-f", "-d", "-s", "_netdev", "nofail", "x-systemd.", "attr_timeout"]


def test_help_lists_every_option_with_its_default(tmp_path):
    need_safs()
    r = run([SAFS, "--help"], timeout=10, env=clean_env(tmp_path))
    assert r.returncode == 0
    text = r.stdout
    for o in HELP_OPTIONS:
        assert o in text, "--help does not mention %s" % o
    # the defaults, each on its option's line
    defaults = {"cache_timeout=": "default: 5)", "max_doc=": "default: 256M",
                "umask=": "default: 022", "max_threads=": "default: 64",
                "suffix=": "default: ___objects.json", "fps=": "default: 1",
                "timeout=": "default: 1", "cache_max=": "default: 512M",
                "mem_max=": "default: 64M"}
    for opt, d in defaults.items():
        line = next(l for l in text.splitlines() if l.strip().startswith(opt))
        assert d in line, "%s: %r has no %r" % (opt, line, d)
    assert "https://api.superannotate.com" in text
    assert ".cache/safs/recovery" in text
    # every option line says its default (or is a flag/action documented as such)
    for l in text.splitlines():
        m = re.match(r"^    ([a-z_]+)=", l)
        if m:
            block = text[text.index(l):].split("\n    ", 2)
            assert "default" in l or "default" in block[1], "no default given for %s" % m.group(1)


def test_version(tmp_path):
    need_safs()
    r = run([SAFS, "--version"], timeout=10, env=clean_env(tmp_path))
    assert r.returncode == 0
    assert re.match(r"^safs \d+\.\d+\.\d+", r.stdout), r.stdout


@pytest.mark.parametrize("args,needle", [
    ([], "MOUNTPOINT"),
    (["-o", "bogus_option=1"], "bogus_option"),
    (["-o", "token=abc=1"], "token_file"),
    (["-o", "suffix=.txt"], "suffix"),
    (["-o", "fps=0"], "fps"),
    (["-o", "max_doc=12X"], "max_doc"),
    (["-o", "loglevel=loud"], "loglevel"),
    (["-o", "umask=999"], "umask"),
    (["--bogus"], "--bogus"),
    (["a", "b", "c"], "too many"),
    (["Demo Vector/a/b", "MNT"], "SOURCE"),
    (["/nonexistent/mountpoint/x"], "nonexistent"),
])
def test_usage_errors_exit_1_with_one_line(tmp_path, args, needle):
    need_safs()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    args = [str(mnt) if a == "MNT" else a for a in args]
    if args and args[0].startswith("-"):
        args = [str(mnt)] + args
    env = clean_env(tmp_path, SA_TOKEN=TOKEN)
    try:
        r = run([SAFS] + args, timeout=20, check=False, env=env)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
        assert len(lines) == 1, lines
        assert needle.lower() in lines[0].lower(), lines
        assert TOKEN not in r.stdout + r.stderr
        assert not os.path.ismount(str(mnt))
    finally:
        unmount(mnt)


def test_token_on_command_line_is_refused_and_not_echoed(tmp_path):
    need_safs()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    secret = "topsecretkey=1"
    r = run([SAFS, str(mnt), "-o", "token=" + secret], timeout=20, check=False,
            env=clean_env(tmp_path))
    assert r.returncode == 1
    assert "SA_TOKEN" in r.stderr and "token_file" in r.stderr
    assert secret not in r.stdout + r.stderr


def test_no_token_anywhere_says_where_to_put_it(tmp_path):
    need_safs()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run([SAFS, str(mnt)], timeout=20, check=False, env=clean_env(tmp_path))
    assert r.returncode == 1
    assert "token" in r.stderr.lower() and "SA_TOKEN" in r.stderr
    assert not os.path.ismount(str(mnt))


# ---------------------------------------------------------------------------
# credentials

def test_token_file_0600_mounts(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, tf), clean_env(tmp_path))
    assert a.rc == 0, a.out
    assert a.mounted
    assert "train" in a.listing and any(n.endswith("___objects.json") for n in a.listing)


def test_token_file_readable_by_others_is_refused(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok", mode=0o644)
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, tf), clean_env(tmp_path))
    assert a.rc == 1
    assert not a.mounted
    assert len(a.lines()) == 1, a.out
    assert "readable by group or others" in a.out and "0644" in a.out
    assert TOKEN not in a.out
    tf2 = write_token_file(tmp_path / "tok2", mode=0o640)
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, tf2), clean_env(tmp_path))
    assert a.rc == 1 and "readable by group or others" in a.out


def test_token_file_must_be_a_regular_file(emulator, tmp_path):
    d = tmp_path / "tokdir"
    d.mkdir(mode=0o700)
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, str(d)), clean_env(tmp_path))
    assert a.rc == 1 and not a.mounted
    assert "regular file" in a.out


def test_sa_token_env_mounts(emulator, tmp_path):
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator), clean_env(tmp_path, SA_TOKEN=TOKEN))
    assert a.rc == 0, a.out
    assert "train" in a.listing


def test_sa_url_env_gives_the_url(emulator, tmp_path):
    a = attempt(tmp_path, "Demo Vector", None,
                clean_env(tmp_path, SA_TOKEN=TOKEN, SA_URL=emulator.base_url + "/"))
    assert a.rc == 0, a.out
    assert "train" in a.listing


def write_ini(home, token, url=None, key_case=str.upper, verify=None):
    d = home / ".superannotate"
    d.mkdir(exist_ok=True)
    lines = ["[DEFAULT]", "%s = %s" % (key_case("SA_TOKEN"), token)]
    if url:
        lines.append("%s = %s" % (key_case("SA_URL"), url))
    if verify is not None:
        lines.append("VERIFY_SSL = %s" % verify)
    lines.append("LOGGING_LEVEL = INFO")
    (d / "config.ini").write_text("\n".join(lines) + "\n")


def write_json(home, token, url=None):
    d = home / ".superannotate"
    d.mkdir(exist_ok=True)
    body = {"token": token}
    if url:
        body["main_endpoint"] = url
    (d / "config.json").write_text(json.dumps(body))


@pytest.mark.parametrize("key_case", [str.upper, str.lower])
def test_config_ini_token_and_url(emulator, tmp_path, key_case):
    home = tmp_path / "home"
    home.mkdir()
    write_ini(home, TOKEN, emulator.base_url + "/", key_case)
    a = attempt(tmp_path, "Demo Vector", None, clean_env(home))
    assert a.rc == 0, a.out
    assert "train" in a.listing


def test_config_json_token_and_main_endpoint(emulator, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write_json(home, TOKEN, emulator.base_url + "/")
    a = attempt(tmp_path, "Demo Vector", None, clean_env(home))
    assert a.rc == 0, a.out
    assert "train" in a.listing


def test_credential_precedence(emulator, tmp_path):
    """token_file > SA_TOKEN > config.ini > config.json: each pair once with
    the higher source good (mounts) and once bad (refused: the lower one was
    not consulted)."""
    home = tmp_path / "home"
    home.mkdir()
    url = emulator.base_url + "/"
    good_tf = write_token_file(tmp_path / "good", TOKEN)
    bad_tf = write_token_file(tmp_path / "bad", BAD_TOKEN)

    # token_file over SA_TOKEN
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, good_tf),
                clean_env(home, SA_TOKEN=BAD_TOKEN), name="m1")
    assert a.rc == 0, a.out
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, bad_tf),
                clean_env(home, SA_TOKEN=TOKEN), name="m2")
    assert a.rc == 1 and not a.mounted and "token" in a.out.lower(), a.out

    # SA_TOKEN over config.ini
    write_ini(home, BAD_TOKEN, url)
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator), clean_env(home, SA_TOKEN=TOKEN), name="m3")
    assert a.rc == 0, a.out
    write_ini(home, TOKEN, url)
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator), clean_env(home, SA_TOKEN=BAD_TOKEN), name="m4")
    assert a.rc == 1 and not a.mounted, a.out

    # config.ini over config.json
    write_ini(home, TOKEN, url)
    write_json(home, BAD_TOKEN, url)
    a = attempt(tmp_path, "Demo Vector", None, clean_env(home), name="m5")
    assert a.rc == 0, a.out
    write_ini(home, BAD_TOKEN, url)
    write_json(home, TOKEN, url)
    a = attempt(tmp_path, "Demo Vector", None, clean_env(home), name="m6")
    assert a.rc == 1 and not a.mounted, a.out

    # -o url and SA_URL win over the config file's URL
    write_ini(home, TOKEN, "http://127.0.0.1:%d/" % closed_port())
    (home / ".superannotate" / "config.json").unlink()
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator), clean_env(home), name="m7")
    assert a.rc == 0, a.out
    a = attempt(tmp_path, "Demo Vector", None, clean_env(home, SA_URL=url), name="m8")
    assert a.rc == 0, a.out


def test_token_never_in_argv_ps_or_log(emulator, mount, tmp_path):
    m = mount("Demo Vector", args=("-d",))
    with open("/proc/%d/cmdline" % m.pid, "rb") as f:
        cmdline = f.read()
    assert TOKEN.encode() not in cmdline
    assert b"emulator-token" not in cmdline
    ps = run(["ps", "-ww", "-eo", "pid,args"], timeout=10).stdout
    assert "emulator-token" not in ps
    # do some work so the debug log has requests in it
    names = os.listdir(m.path)
    files = [n for n in names if n.endswith("___objects.json")]
    assert files
    with open(m.p(files[0]), "rb") as f:
        assert f.read(1) == b"{"
    os.listdir(m.p("train"))
    m.unmount()
    log = m.log()
    assert log.strip(), "-d produced no log at all"
    assert "emulator-token" not in log
    assert TOKEN not in log


# ---------------------------------------------------------------------------
# pre-flight failures: seconds, one line, nothing mounted

def check_preflight(a, needles):
    assert a.rc == 1, (a.rc, a.out)
    assert not a.mounted
    assert a.elapsed < 20, "took %.1f s" % a.elapsed
    lines = a.lines()
    assert len(lines) == 1, lines
    assert any(n.lower() in lines[0].lower() for n in needles), lines[0]
    assert TOKEN not in a.out and BAD_TOKEN not in a.out


def test_preflight_bad_token(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok", BAD_TOKEN)
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, tf), clean_env(tmp_path))
    check_preflight(a, ["token"])
    assert not in_mount_table(tmp_path / "mnt")


def test_preflight_unknown_project(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    a = attempt(tmp_path, "No Such Project", emu_opts(emulator, tf), clean_env(tmp_path))
    check_preflight(a, ["No Such Project"])
    assert not in_mount_table(tmp_path / "mnt")


def test_preflight_unknown_folder(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    a = attempt(tmp_path, "Demo Vector/nosuchfolder", emu_opts(emulator, tf), clean_env(tmp_path))
    check_preflight(a, ["nosuchfolder"])
    assert not in_mount_table(tmp_path / "mnt")


def test_preflight_unreachable_server(tmp_path):
    tf = write_token_file(tmp_path / "tok")
    port = closed_port()
    a = attempt(tmp_path, "Demo Vector", "url=http://127.0.0.1:%d/,token_file=%s" % (port, tf),
                clean_env(tmp_path))
    check_preflight(a, ["connect", "unreachable", "refused", "127.0.0.1", "network"])
    assert not in_mount_table(tmp_path / "mnt")


def test_fstab_only_options_accepted(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    opts = emu_opts(emulator, tf) + ",_netdev,nofail,noauto,auto,x-systemd.automount," \
        "x-systemd.idle-timeout=60,defaults,rw,users,comment=x"
    a = attempt(tmp_path, "Demo Vector", opts, clean_env(tmp_path))
    assert a.rc == 0, a.out
    assert "train" in a.listing


def test_source_forms(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    env = clean_env(tmp_path)
    team = attempt(tmp_path, "team", emu_opts(emulator, tf), env, name="t")
    assert team.rc == 0, team.out
    assert "Demo Vector" in team.listing
    only_mnt = attempt(tmp_path, None, emu_opts(emulator, tf), env, name="t2")
    assert only_mnt.rc == 0 and only_mnt.listing == team.listing
    folder = attempt(tmp_path, "Demo Vector/train", emu_opts(emulator, tf), env, name="f")
    assert folder.rc == 0, folder.out
    assert any(n.endswith("___objects.json") for n in folder.listing)
    assert "train" not in folder.listing


# ---------------------------------------------------------------------------
# mount(8), mount.safs, mount.fuse3, fstab

@pytest.fixture
def sbin_helper():
    """/sbin/mount.safs -> the built helper, removed afterwards."""
    if not os.access(MOUNT_SAFS, os.X_OK):
        pytest.fail("mount.safs missing: %s" % MOUNT_SAFS)
    dst = "/sbin/mount.safs"
    if os.path.lexists(dst):
        pytest.fail("%s already exists; not touching an installed helper" % dst)
    os.symlink(MOUNT_SAFS, dst)
    try:
        yield dst
    finally:
        os.unlink(dst)


@pytest.fixture
def safs_on_path():
    """/usr/local/sbin/safs -> the built safs, for mount.fuse3, removed afterwards."""
    need_safs()
    dst = "/usr/local/sbin/safs"
    if os.path.lexists(dst):
        pytest.fail("%s already exists; not touching an installed safs" % dst)
    os.makedirs("/usr/local/sbin", exist_ok=True)
    os.symlink(SAFS, dst)
    try:
        yield dst
    finally:
        os.unlink(dst)


def mount8(args, mnt, timeout=60):
    try:
        r = run(["mount"] + args, timeout=timeout, check=False)
        mounted = os.path.ismount(str(mnt))
        listing = sorted(os.listdir(str(mnt))) if mounted else None
        return r, mounted, listing
    finally:
        unmount(mnt)


def test_mount_t_safs(emulator, tmp_path, sbin_helper):
    need_safs()
    tf = write_token_file(tmp_path / "tok")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r, mounted, listing = mount8(["-t", "safs", "Demo Vector", str(mnt), "-o",
                                  emu_opts(emulator, tf) + ",_netdev,nofail"], mnt)
    assert r.returncode == 0, r.stderr
    assert mounted and "train" in listing
    assert not in_mount_table(mnt)


def test_mount_t_safs_exit_codes(emulator, tmp_path, sbin_helper):
    need_safs()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    bad = write_token_file(tmp_path / "bad", BAD_TOKEN)
    good = write_token_file(tmp_path / "good")
    # mount failure (bad token): 32
    r, mounted, _ = mount8(["-t", "safs", "Demo Vector", str(mnt), "-o", emu_opts(emulator, bad)], mnt)
    assert r.returncode == 32, (r.returncode, r.stderr)
    assert not mounted and "token" in r.stderr.lower()
    # bad usage (unknown option): 1
    r, mounted, _ = mount8(["-t", "safs", "Demo Vector", str(mnt), "-o",
                            emu_opts(emulator, good) + ",no_such_opt"], mnt)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert not mounted and "no_such_opt" in r.stderr
    # the helper directly: usage, sloppy, fake
    r = run([MOUNT_SAFS], timeout=10, check=False)
    assert r.returncode == 1 and "usage" in r.stderr
    try:
        r = run([MOUNT_SAFS, "Demo Vector", str(mnt), "-s", "-o",
                 emu_opts(emulator, good) + ",no_such_opt"], timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        assert os.path.ismount(str(mnt))
    finally:
        unmount(mnt)
    r = run([MOUNT_SAFS, "Demo Vector", str(mnt), "-f", "-o", emu_opts(emulator, good) + ",_netdev"],
            timeout=10, check=False)
    assert r.returncode == 0 and "would run" in r.stderr and "_netdev" not in r.stderr
    assert not os.path.ismount(str(mnt))


def test_mount_t_fuse_safs(emulator, tmp_path, safs_on_path):
    tf = write_token_file(tmp_path / "tok")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r, mounted, listing = mount8(["-t", "fuse.safs", "Demo Vector", str(mnt), "-o",
                                  emu_opts(emulator, tf) + ",_netdev,nofail"], mnt)
    assert r.returncode == 0, r.stderr
    assert mounted and "train" in listing


@pytest.mark.parametrize("fstype", ["safs", "fuse.safs"])
def test_fstab_line(emulator, tmp_path, sbin_helper, safs_on_path, fstype):
    """`Demo\\040Vector DIR TYPE opts 0 0` in an fstab, mounted with mount -T."""
    tf = write_token_file(tmp_path / "tok")
    mnt = tmp_path / "mnt dir"
    mnt.mkdir()
    fstab = tmp_path / "fstab"
    fstab.write_text("# test fstab\nDemo\\040Vector %s %s noauto,_netdev,nofail,%s 0 0\n"
                     % (str(mnt).replace(" ", "\\040"), fstype, emu_opts(emulator, tf)))
    r, mounted, listing = mount8(["-T", str(fstab), str(mnt)], mnt)
    assert r.returncode == 0, r.stderr
    assert mounted and "train" in listing


# ---------------------------------------------------------------------------
# --probe

def probe(emulator, tmp_path, source=None, timeout=120):
    need_safs()
    tf = write_token_file(tmp_path / "tok")
    cmd = [SAFS, "--probe"] + ([source] if source else []) + ["-o", emu_opts(emulator, tf)]
    r = run(cmd, timeout=timeout, check=False, env=clean_env(tmp_path))
    rep = sanitizer_report(r.stdout + r.stderr)
    assert not rep, "sanitizer report from --probe:\n" + rep
    return r


@pytest.mark.parametrize("source", [None, "Demo Vector", "Demo Vector/train"])
def test_probe_ok_against_the_emulator(emulator, tmp_path, source):
    before = emulator.writes()
    r = probe(emulator, tmp_path, source)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [l for l in r.stdout.splitlines() if re.match(r"^(ok  |FAIL|skip) ", l)]
    assert not [l for l in lines if l.startswith("FAIL")]
    oks = [l for l in lines if l.startswith("ok")]
    for what in ("user/ME", "team", "projects list page shape and count", "root folder",
                 "/folders includes the root", "items/search page shape and count",
                 "workflow statuses", "download method", "updatedAt"):
        assert any(what in l for l in oks), "no ok line for %s:\n%s" % (what, r.stdout)
    assert emulator.writes() == before, "--probe changed the platform"
    assert TOKEN not in r.stdout + r.stderr


def test_probe_reports_skeleton(emulator, tmp_path):
    emulator.seed("Probe Skel", items=["blank.jpg"])
    r = probe(emulator, tmp_path, "Probe Skel")
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(l.startswith("ok") and "skeleton" in l for l in r.stdout.splitlines()), r.stdout


@pytest.mark.parametrize("fault,what", [
    ({"method": "GET", "path": "/api/v1/projects", "status": 200, "count": -1,
      "body": '{"data": []}'}, "projects list page shape and count"),
    ({"method": "POST", "path": "/api/v1/items/search", "status": 200, "count": -1,
      "body": '{"data": []}'}, "items/search page shape and count"),
])
def test_probe_fails_on_a_wrong_shape(emulator, tmp_path, fault, what):
    emulator.faults(fault)
    r = probe(emulator, tmp_path, "Demo Vector")
    assert r.returncode == 1, r.stdout + r.stderr
    fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
    assert any(what in l and "count" in l for l in fails), r.stdout


# Every option --help says is passed to libfuse (or ignored) must really
# mount: fuse_new refuses what it does not know.
PASSED_OR_IGNORED = ["attr_timeout=1", "entry_timeout=1", "negative_timeout=1", "ac_attr_timeout=1",
                     "remember=1", "noforget", "kernel_cache", "auto_cache", "noauto_cache",
                     "allow_root", "auto_unmount", "dev", "nodev", "suid",
                     "nosuid", "exec", "noexec", "async", "sync", "dirsync", "atime", "noatime",
                     "relatime", "norelatime", "strictatime", "nostrictatime", "diratime",
                     "nodiratime", "lazytime", "nolazytime", "ro", "allow_other", "fsname=x",
                     "subtype=y", "keep_status", "list_frames", "suffix=.json", "max_doc=1G",
                     "fps=2.5", "umask=027", "uid=0", "gid=0", "max_threads=8", "loglevel=3",
                     "timeout=2", "cache_timeout=0"]


def test_every_documented_option_mounts(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    env = clean_env(tmp_path)
    failed = []
    for i, o in enumerate(PASSED_OR_IGNORED):
        a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, tf) + "," + o, env, name="o%d" % i)
        if a.rc != 0 or not a.mounted or "train" not in a.listing:
            failed.append("%s: exit %d: %s" % (o, a.rc, a.out.strip()))
    assert not failed, "\n".join(failed)


def test_single_threaded_flag_mounts(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    a = attempt(tmp_path, "Demo Vector", emu_opts(emulator, tf), clean_env(tmp_path), extra_args=["-s"])
    assert a.rc == 0, a.out
    assert "train" in a.listing


def test_fsname_and_subtype_in_mount_table(emulator, tmp_path):
    tf = write_token_file(tmp_path / "tok")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        r = run([SAFS, "Demo Vector/train", str(mnt), "-o", emu_opts(emulator, tf)], timeout=60,
                check=False, env=clean_env(tmp_path))
        assert r.returncode == 0, r.stderr
        line = next(l for l in mounts_text().splitlines() if l.split(" ")[1] == str(mnt))
        dev, _, fstype = line.split(" ")[:3]
        dev = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), dev)
        assert dev == "safs#Demo Vector/train" and fstype == "fuse.safs", line
    finally:
        unmount(mnt)


@pytest.mark.parametrize("how", ["env", "ini", "json", "option", "none"])
def test_tls_verification_off_warns(emulator, tmp_path, how):
    """VERIFY_SSL=false (env or config.ini), ssl_verify false (config.json) or
    -o insecure turn TLS verification off, with a warning at start-up."""
    home = tmp_path / "home"
    home.mkdir()
    url = emulator.base_url + "/"
    env = clean_env(home)
    opts = None
    if how == "env":
        env = clean_env(home, SA_TOKEN=TOKEN, SA_URL=url, VERIFY_SSL="false")
    elif how == "ini":
        write_ini(home, TOKEN, url, verify="False")
    elif how == "json":
        (home / ".superannotate").mkdir()
        (home / ".superannotate" / "config.json").write_text(
            json.dumps({"token": TOKEN, "main_endpoint": url, "ssl_verify": False}))
    else:
        env = clean_env(home, SA_TOKEN=TOKEN, SA_URL=url)
        opts = "insecure" if how == "option" else None
    a = attempt(tmp_path, "Demo Vector", opts, env, extra_args=["-f"])
    assert a.rc == 0 and a.mounted, a.out
    warned = "not verified" in a.out.lower()
    assert warned == (how != "none"), a.out
