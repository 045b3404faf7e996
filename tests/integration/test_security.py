"""Issue 10, security: TLS verified by default, the token kept out of
everything a user or another process can read, allow_other, names that
cannot leave their folder, an emulator on loopback only.

The HTTPS server is the emulator's own TLS (libmicrohttpd over GnuTLS,
--tls-cert/--tls-key) with a self-signed certificate made here with openssl.
"""
import errno
import json
import os
import shutil
import ssl
import subprocess
import urllib.request

import pytest

import harness
from harness import SUFFIX, TOKEN, Emulator, Mount, read, run
from saapi import SA
from test_mount import attempt, clean_env, write_ini, write_token_file

V = "Demo Vector"


def wait_mounted(p, mnt):
    """Wait (30 s at most) until the daemon @p has mounted @mnt; fails with
    its output if it exits first."""
    for _ in range(300):
        if os.path.ismount(str(mnt)):
            return
        assert p.poll() is None, p.stdout.read()
        subprocess.run(["sleep", "0.1"])


def make_cert(d, cn="127.0.0.1", san="IP:127.0.0.1"):
    key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + san], timeout=60)
    return cert, key


class TlsEmulator(Emulator):
    """The emulator serving HTTPS; its control plane reached with the cert as CA."""

    def __init__(self, workdir, cert, key):
        super().__init__(workdir, ["--seed", "demo", "--tls-cert", cert, "--tls-key", key],
                         name="tls-emulator")
        self.base_url = "https://127.0.0.1:%d" % self.port
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False  # the wrong-host test's certificate, too
        urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx)))
        self.api = SA(self.base_url, TOKEN)


@pytest.fixture
def tls(tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    cert, key = make_cert(str(d))
    em = TlsEmulator(str(tmp_path / "emu"), cert, key)
    yield em, cert
    em.stop(check=True)
    urllib.request.install_opener(None)


def tls_attempt(tmp_path, em, opts="", env=None, name="mnt"):
    tf = tmp_path / "token"
    if not tf.exists():
        write_token_file(str(tf))
    o = "url=%s/,token_file=%s,recovery_dir=%s" % (em.base_url, tf, tmp_path / "rec")
    if opts:
        o += "," + opts
    return attempt(tmp_path, V, o, env or clean_env(tmp_path), name=name, extra_args=("-f",),
                   probe_file="train/" + em.api.names(V, "train")[0] + SUFFIX)


# ---------------------------------------------------------------------------
# TLS

def test_tls_self_signed_is_refused_by_default(tmp_path, tls):
    em, cert = tls
    a = tls_attempt(tmp_path, em)
    assert a.rc != 0 and not a.mounted, a.out
    assert "certificate" in a.out and "cafile" in a.out, a.out
    assert len([ln for ln in a.out.splitlines() if ln.startswith("safs:")]) == 1, a.out


def test_tls_cafile_mounts_reads_and_saves(tmp_path, tls, mount):
    em, cert = tls
    m = mount(V, opts={"cafile": cert}, emu=em)
    name = em.api.names(V, "train")[0]
    f = m.p("train", name + SUFFIX)
    data = read(f)
    assert os.stat(f).st_size == len(data)
    doc = json.loads(data)
    doc.setdefault("tags", []).append("over-tls")
    with open(f, "w") as fh:
        json.dump(doc, fh, indent=2)
    assert "over-tls" in em.api.document(V, "train", name).get("tags", [])
    assert "NOT verified" not in m.log()


@pytest.mark.parametrize("how", ["option", "config.ini"])
def test_tls_insecure_works_and_warns(tmp_path, tls, how):
    em, cert = tls
    if how == "option":
        a = tls_attempt(tmp_path, em, "insecure")
    else:
        # as the SDK spells it: VERIFY_SSL = False next to its own token and URL
        write_ini(tmp_path, TOKEN, url=em.base_url + "/", verify="False")
        a = attempt(tmp_path, V, "recovery_dir=%s" % (tmp_path / "rec"), clean_env(tmp_path),
                    extra_args=("-f",))
    assert a.rc == 0 and a.mounted, a.out
    assert "train" in (a.listing[0] if isinstance(a.listing, tuple) else a.listing)
    assert "TLS certificates are NOT verified" in a.out, a.out


def test_tls_certificate_for_another_host_is_refused(tmp_path, mount):
    d = tmp_path / "tls"
    d.mkdir()
    cert, key = make_cert(str(d), cn="other.invalid", san="DNS:other.invalid")
    em = TlsEmulator(str(tmp_path / "emu"), cert, key)
    try:
        a = tls_attempt(tmp_path, em, "cafile=" + cert)
        assert a.rc != 0 and not a.mounted, a.out
        assert "certificate" in a.out or "SSL" in a.out, a.out
    finally:
        em.stop(check=True)
        urllib.request.install_opener(None)


# ---------------------------------------------------------------------------
# the token

def token_places(pid):
    out = {}
    for f in ("cmdline", "environ"):
        with open("/proc/%d/%s" % (pid, f), "rb") as fh:
            out[f] = fh.read()
    return out


def test_token_from_env_is_wiped_from_proc_environ(emulator, tmp_path):
    """SA_TOKEN: read, then wiped from the environment block that
    /proc/PID/environ shows (unsetenv alone leaves it there)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = clean_env(tmp_path, SA_TOKEN=TOKEN, SA_URL=emulator.base_url + "/")
    p = subprocess.Popen([harness.SAFS, V, str(mnt), "-f"], env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_mounted(p, mnt)
        assert os.path.ismount(str(mnt))
        assert "train" in os.listdir(str(mnt))  # the token works
        places = token_places(p.pid)
        assert TOKEN.encode() not in places["environ"], "token in /proc/PID/environ"
        assert b"SA_TOKEN=" + TOKEN.encode() not in places["environ"]
        assert TOKEN.encode() not in places["cmdline"]
        assert b"HOME=" in places["environ"]  # the rest of the environment is untouched
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)])
        out = p.communicate(timeout=30)[0].decode(errors="replace")
    assert TOKEN not in out


def test_token_not_in_debug_log_nor_recovery(mount, api, emulator):
    m = mount(V, opts={"loglevel": "debug"})
    name = api.names(V, "train")[0]
    f = m.p("train", name + SUFFIX)
    read(f)
    os.unlink(f)  # the deleted document goes to the recovery folder
    m.unmount()
    log = m.log()
    assert "debug" in log and TOKEN not in log and "emulator-token" not in log
    rec = os.listdir(m.recovery_dir)
    assert rec, "no recovery file to check"
    for n in rec:
        with open(os.path.join(m.recovery_dir, n), "rb") as fh:
            assert b"emulator-token" not in fh.read(), n


NOPTRACE = ["setpriv", "--bounding-set", "-sys_ptrace", "--inh-caps", "-sys_ptrace"]


def gcore_noptrace(pid, out):
    """gcore by a process of the same user (root without CAP_SYS_PTRACE, like
    the target, so the kernel decides by the target's dumpable flag alone)."""
    return subprocess.run(NOPTRACE + ["gcore", "-o", out, str(pid)],
                          capture_output=True, text=True, timeout=120)


def test_no_core_dump_of_the_daemon(emulator, tmp_path):
    """The daemon is not dumpable (prctl PR_SET_DUMPABLE 0): no core file on a
    crash, and another process of its user cannot gcore it; the same gcore
    works on an ordinary process started the same way (so the check can fail)."""
    if shutil.which("gcore") is None:
        pytest.fail("gcore (gdb) is missing")
    ctl = subprocess.Popen(NOPTRACE + ["sleep", "60"])
    try:
        subprocess.run(["sleep", "0.3"])
        r = gcore_noptrace(ctl.pid, str(tmp_path / "ctl"))
        made = [n for n in os.listdir(str(tmp_path)) if n.startswith("ctl.")]
        assert made, "the control gcore made no dump: %s" % r.stderr[-500:]
    finally:
        ctl.kill()
        ctl.wait()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    tf = tmp_path / "token"
    write_token_file(str(tf))
    p = subprocess.Popen(NOPTRACE + [harness.SAFS, V, str(mnt), "-f", "-o",
                                     "url=%s/,token_file=%s" % (emulator.base_url, tf)],
                         env=clean_env(tmp_path), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_mounted(p, mnt)
        assert "train" in os.listdir(str(mnt / "train")) or os.listdir(str(mnt / "train"))
        r = gcore_noptrace(p.pid, str(tmp_path / "safs"))
        dumps = [n for n in os.listdir(str(tmp_path)) if n.startswith("safs.")]
        for n in dumps:
            with open(str(tmp_path / n), "rb") as fh:
                assert b"emulator-token" not in fh.read(), "the token is in a core dump"
        assert not dumps, (dumps, r.stdout[-500:], r.stderr[-500:])
        assert "ptrace" in r.stderr or "not permitted" in r.stderr, r.stderr[-500:]
        assert os.listdir(str(mnt / "train"))  # the daemon carries on
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)])
        out = p.communicate(timeout=30)[0].decode(errors="replace")
    assert "emulator-token" not in out


# ---------------------------------------------------------------------------
# allow_other, loopback, names

def test_allow_other_implies_default_permissions(mount):
    m = mount(V, opts={"allow_other": True})
    with open("/proc/mounts") as f:
        line = [ln for ln in f if " %s " % m.path in ln]
    assert line, "not in /proc/mounts"
    opts = line[0].split()[3].split(",")
    assert "allow_other" in opts and "default_permissions" in opts, opts


def test_emulator_listens_on_loopback_only(emulator):
    port = "%04X" % emulator.port
    with open("/proc/net/tcp") as f:
        rows = [ln.split() for ln in f.readlines()[1:]]
    listening = [r[1] for r in rows if r[1].endswith(":" + port) and r[3] == "0A"]
    assert listening == ["0100007F:" + port], listening


def all_documents(api):
    return {f or "root": api.folder_documents(V, f) for f in [None] + [x["name"] for x in api.folders(V)]}


def test_names_never_leave_their_folder(mount, api):
    m = mount(V)
    before = all_documents(api)
    folders = sorted(f["name"] for f in api.folders(V))
    item = api.names(V, "train")[0]
    doc = json.dumps({"metadata": {"name": item}, "instances": [], "tags": ["escape"]})
    tries = {
        # the escaped '/' and '..' spell another folder's path: an item of that name
        # does not exist in val, so it is refused
        "‛／..‛／train‛／" + item + SUFFIX: (errno.ENOENT,),
        # a name with a leading dot that is no item's is a scratch file:
        # local to this mount, never uploaded
        "..‛／train‛／" + item + SUFFIX: (errno.ENOENT, 0),
        "x" * 300 + SUFFIX: (errno.ENAMETOOLONG,),
        "‛‛" + item + SUFFIX: (errno.ENOENT,),
    }
    for name, allowed in tries.items():
        try:
            with open(os.path.join(m.p("val"), name), "w") as fh:
                fh.write(doc)
            got = 0
        except OSError as e:
            got = e.errno
        assert got in allowed, (name, got)
    # invalid UTF-8: a file name the platform cannot hold
    bad = os.path.join(os.fsencode(m.p("val")), b"\xff\xfe" + SUFFIX.encode())
    with pytest.raises(OSError) as ei:
        with open(bad, "w") as fh:
            fh.write(doc)
    assert ei.value.errno in (errno.EINVAL, errno.ENOENT), ei.value
    # '..' in a path is the kernel's: it names train's file, written in train
    p = os.path.join(m.p("val"), "..", "train", item + SUFFIX)
    assert json.loads(read(p))["metadata"]["name"] == item
    after = all_documents(api)
    assert after == before, "a document changed"
    assert sorted(f["name"] for f in api.folders(V)) == folders, "a folder was created"
