"""A 50,000-item folder (the platform's per-folder limit): listing and bulk costs, memory."""
import shlex
import time

import pytest

from harness import SUFFIX, Emulator, sh

pytestmark = pytest.mark.timeout(900)
N = 50000


def rss_limit_kb(pid):
    """600 MB; twice that when safs runs with AddressSanitizer (shadow memory
    and quarantine are the sanitizer's, not the daemon's)."""
    with open("/proc/%d/maps" % pid) as f:
        asan = "libasan" in f.read()
    return (1200 if asan else 600) * 1024


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    t = time.monotonic()
    em = Emulator(str(tmp_path_factory.mktemp("bigemu")), ["--seed-items", "Bench/f=%d" % N], name="big")
    print("seeded %d items in %.1fs" % (N, time.monotonic() - t))
    yield em
    em.stop(check=True)


def test_50k_listing_and_bulk(mount, big):
    # The default cache_timeout (a few seconds), not the harness's 0: this test
    # is about what one `ls -l` costs, with the listing cached as users have it.
    m = mount("Bench", emu=big, opts={"cache_timeout": None})
    d = shlex.quote(m.p("f"))
    big.reset_stats()
    t = time.monotonic()
    r = sh("ls %s | wc -l" % d, timeout=300)
    t_ls = time.monotonic() - t
    assert int(r.stdout) == N
    routes = big.routes()
    searches = big.count("POST /api/v1/items/search", routes)
    print("ls | wc -l: %.1fs, %d items/search, routes %s" % (t_ls, searches, routes))
    assert big.downloads(routes) == 0, routes
    assert big.writes(routes) == 0, routes
    assert N // 2000 <= searches <= N // 2000 + 1, routes

    big.reset_stats()
    t = time.monotonic()
    r = sh("ls -l %s | grep -c %s" % (d, shlex.quote(SUFFIX + "$")), timeout=600)
    t_ll = time.monotonic() - t
    assert int(r.stdout) == N
    routes = big.routes()
    print("ls -l: %.1fs, downloads %d, routes %s" % (t_ll, big.downloads(routes), routes))
    assert big.count("POST /api/v4/items/annotations/download", routes) <= N // 500 + 2, routes
    assert big.downloads(routes) <= N // 500 + N // 1000 + 5, routes
    rss = m.rss_kb()
    print("safs VmRSS after ls -l: %d MB" % (rss // 1024))
    assert rss < rss_limit_kb(m.pid)

    big.reset_stats()
    r = sh("find %s -type f -size +1k | wc -l" % d, timeout=600)
    assert int(r.stdout) == N
    routes = big.routes()
    assert big.downloads(routes) <= N // 500 + N // 1000 + 5, routes
    assert m.rss_kb() < rss_limit_kb(m.pid)
