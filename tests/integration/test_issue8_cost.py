"""Issue 8, cost and protocol: items 17, 18, 19 and the refusals of 20.

Contract: ../shared/design/filesystem.md §4 (mkdir), §5 (costs), §6 (every
error has one log line); the lead's spec, "Cost" and "Names and odd
operations".
"""
import errno
import json
import os
import subprocess
import time

import pytest

from harness import SUFFIX, Emulator, errno_of, pretty_tokens, run
from defects import V, LogMark, method_ids, platform_pretty, shows, stream_ids, wait_for

# the daemon must exit within this many seconds of fusermount3 -u, whatever
# is in flight (issue 8 item 17: "within a few seconds"; it lingered 5.4 s)
EXIT_BOUND = 10.0


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """An emulator of its own: a 6,000-item and a 5,000-item folder with
    generated 3-10 KB documents (--seed-items)."""
    em = Emulator(str(tmp_path_factory.mktemp("bigemu8")),
                  ["--seed-items", "Big6k/f=6000", "--seed-items", "Big5k/g=5000"], name="big8")
    yield em
    em.stop(check=True)


@pytest.fixture
def fresh_big(big):
    big.clear_faults()
    big.latency(0)
    big.reset_stats()
    big.reset_requests()
    yield big
    try:
        big.clear_faults()
        big.latency(0)
    except Exception:
        pass


# ---------------------------------------------------------------------------
# 17. one stat costs one batch; unmount is prompt; cp into a big folder

def test_17_stat_costs_one_batch_and_unmount_is_prompt(mount, fresh_big):
    big = fresh_big
    target = "img_003000.jpg"
    iid = big.api.item("Big6k", "f", target)["id"]
    want = pretty_tokens(big.api.document_bytes("Big6k", "f", target))
    # the listing cached (cache_timeout=60) so that the timing is the size miss's
    m = mount("Big6k", emu=big, opts={"cache_timeout": "60"})
    assert len(os.listdir(m.p("f"))) == 6000
    big.latency(1000)
    big.reset_requests()
    big.reset_stats()
    t0 = time.monotonic()
    st = os.stat(m.p("f", target + SUFFIX))
    t_stat = time.monotonic() - t0
    batches = stream_ids(big)
    # unmount right after: fusermount3 returns and the daemon exits promptly
    t0 = time.monotonic()
    r = subprocess.run(["fusermount3", "-u", m.path], capture_output=True, text=True, timeout=60)
    t_umount = time.monotonic() - t0
    try:
        m.proc.wait(60)
    except subprocess.TimeoutExpired:
        pass
    t_exit = time.monotonic() - t0
    if m.proc.poll() is not None:
        m.mounted = False
        m._log.close()
    big.latency(0)
    print("stat %.1fs, stream batches at its return %r, fusermount3 %.1fs, daemon exit %.1fs"
          % (t_stat, [len(b) for b in batches], t_umount, t_exit))
    assert r.returncode == 0, r.stderr
    assert m.proc.poll() is not None, "safs still running 60 s after fusermount3 -u"
    assert t_exit < EXIT_BOUND, (t_umount, t_exit)
    assert st.st_size == len(want)
    # the stat waited for one batch (<= 500 documents) holding the item
    assert batches, "no stream request"
    assert len(batches[0]) <= 500 and iid in batches[0], [len(b) for b in batches]
    assert iid not in [i for b in batches[1:] for i in b]
    # one batch at 1 s latency: a few round trips, not the whole folder
    assert t_stat < 6, t_stat
    routes = big.routes()
    assert big.writes(routes) == 0, routes


def test_17_cp_into_5000_item_folder_downloads_at_most_one_batch(mount, fresh_big, tmp_path):
    big = fresh_big
    target = "img_000010.jpg"
    m = mount("Big5k", emu=big)
    d = json.loads(big.api.document_bytes("Big5k", "g", target))
    d["tags"] = ["cp-17"]
    src = tmp_path / "x.json"
    src.write_text(json.dumps(d, indent=4))
    big.reset_requests()
    big.reset_stats()
    run(["cp", str(src), m.p("g", target + SUFFIX)], timeout=120)
    # background work, if any, shows in the recorded requests within seconds
    # (the old daemon went on to fetch all 5,000 documents)
    def asked():
        return (sum(len(b) for b in stream_ids(big)), sum(len(b) for b in method_ids(big)))
    wait_for(lambda: max(asked()) > 501, 5, step=0.25)
    batches = stream_ids(big)
    methods = method_ids(big)
    routes = big.routes()
    ids = [i for b in batches for i in b]
    print("stream requests %r, download/method requests %r, routes %r"
          % ([len(b) for b in batches], [len(b) for b in methods], routes))
    assert len(ids) <= 501 and len(batches) <= 2, [len(b) for b in batches]
    assert sum(len(b) for b in methods) <= 501, [len(b) for b in methods]
    assert big.uploads(routes) == 1, routes
    assert big.api.document("Big5k", "g", target)["tags"] == ["cp-17"]
    assert shows(m.p("g", target + SUFFIX)) == platform_pretty(big.api, "g", target, project="Big5k")


# ---------------------------------------------------------------------------
# 18. a folder create whose answer is lost

def test_18_mkdir_with_lost_answer_creates_one_folder(mount, emulator, api):
    m = mount(V)
    emulator.faults({"method": "POST", "path": "/folder", "drop": True})
    emulator.reset_stats()
    r = run(["mkdir", m.p("lost answer")], check=False, timeout=120)
    assert r.returncode == 0, r.stderr
    names = [f["name"] for f in api.folders(V)]
    assert names.count("lost answer") == 1, names
    assert os.path.isdir(m.p("lost answer")) and "lost answer" in os.listdir(m.path)
    assert os.listdir(m.p("lost answer")) == []
    assert emulator.count("POST /folder") <= 2, emulator.routes()


# ---------------------------------------------------------------------------
# 19. mkdir of a name that is not UTF-8

def test_19_mkdir_non_utf8_is_einval_with_a_log_line(mount, emulator, api):
    m = mount(V)
    before = sorted(f["name"] for f in api.folders(V))
    emulator.reset_stats()
    mark = LogMark(m)
    bad = os.path.join(os.fsencode(m.path), b"bad\xff")
    assert errno_of(lambda: os.mkdir(bad)) == errno.EINVAL
    r = run([b"mkdir", bad], check=False, text=False)
    assert r.returncode != 0 and b"Invalid argument" in r.stderr, r.stderr
    lines = [ln for ln in mark.lines() if "bad" in ln or "utf" in ln.lower()]
    assert lines, m.log()[mark.at:][-3000:]
    assert emulator.writes() == 0, emulator.routes()
    assert sorted(f["name"] for f in api.folders(V)) == before
    assert b"bad\xff" not in os.listdir(os.fsencode(m.path))


# ---------------------------------------------------------------------------
# 20. refusals: each fails with EPERM and one log line

REFUSED = {
    "mkfifo": lambda new, target: ["mkfifo", new],
    "mknod": lambda new, target: ["mknod", new, "c", "1", "3"] if os.geteuid() == 0 else ["mknod", new, "p"],
    "ln": lambda new, target: ["ln", target, new],
    "ln -s": lambda new, target: ["ln", "-s", target, new],
}


@pytest.mark.parametrize("op", sorted(REFUSED))
def test_20_refusal_is_eperm_with_one_log_line(mount, emulator, api, op):
    m = mount(V)
    target = api.names(V, "train")[0] + SUFFIX
    new = "refused-" + op.replace(" ", "")
    d = m.p("train")
    before = shows(os.path.join(d, target))
    emulator.reset_stats()
    mark = LogMark(m)
    r = run(REFUSED[op](new, target), check=False, cwd=d, timeout=60)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, (r.returncode, r.stderr)
    assert len(mark.lines(new)) == 1, m.log()[mark.at:][-3000:]
    assert not os.path.lexists(os.path.join(d, new))
    assert new not in os.listdir(d)
    assert emulator.writes() == 0, emulator.routes()
    assert shows(os.path.join(d, target)) == before == platform_pretty(api, "train", target[:-len(SUFFIX)])
