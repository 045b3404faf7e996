"""Integration harness: a session emulator, a per-test mount factory.

Run: /usr/bin/python3 -m pytest tests/integration   (SAFS_BUILD=<build dir>, default build/)

A missing binary, /dev/fuse or required program is a FAILURE, never a skip.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import Emulator, Mount, need_programs, sanitizer_report  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (scale) test")


@pytest.fixture(scope="session")
def emulator(tmp_path_factory):
    """The session's emulator: --seed demo, port 0, stderr to a log file."""
    em = Emulator(str(tmp_path_factory.mktemp("emulator")), ["--seed", "demo"])
    yield em
    em.stop(check=True)  # fails the session on a sanitizer report


@pytest.fixture(scope="session")
def api(emulator):
    """saapi.SA bound to the session emulator (asserts what the platform holds)."""
    return emulator.api


@pytest.fixture(autouse=True)
def _fresh_emulator(request, emulator):
    """Every test starts from the seeded state, with zero stats and no faults."""
    emulator.clear_faults()
    emulator.latency(0)
    emulator.reset()
    emulator.reset_stats()
    yield
    try:
        emulator.clear_faults()
        emulator.latency(0)
    except Exception:  # the emulator died: the session teardown reports it
        pass


@pytest.fixture(scope="session")
def programs():
    need_programs()


@pytest.fixture
def mount(request, emulator, tmp_path, programs):
    """Factory: mount(source="Demo Vector", opts={...}, args=(), emu=None) -> Mount.

    Default options: url=<emulator>/, token_file=<0600 file>, attr/entry/negative
    timeouts 0, recovery_dir=<tmp>, cache_timeout=0. opts values: str, True (a
    flag), or None/False (drop a default). Teardown unmounts cleanly (fusermount3
    -u, exit 0, daemon exits within 30 s) and fails on a sanitizer report."""
    mounts = []
    request.node._safs_mounts = mounts

    def factory(source="Demo Vector", opts=None, args=(), emu=None, wait=True):
        m = Mount(emu or emulator, str(tmp_path / ("m%d" % len(mounts))), source, opts, args, wait)
        mounts.append(m)
        return m

    yield factory
    errors = []
    for em in {id(m.emulator): m.emulator for m in mounts}.values():
        try:
            em.clear_faults()  # so a clean unmount is possible
        except Exception:
            pass
    for m in mounts:
        try:
            m.unmount()
        except BaseException as e:  # noqa: B902 - pytest.fail raises an Exception subclass of BaseException
            errors.append(str(e))
            m.cleanup()
        rep = sanitizer_report(m.log())
        if rep:
            errors.append("sanitizer report in safs's log (%s):\n%s" % (m.path, rep))
    if errors:
        pytest.fail("\n".join(errors))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when in ("setup", "call") and rep.failed:
        for i, m in enumerate(getattr(item, "_safs_mounts", [])):
            rep.sections.append(("safs log %d (%s)" % (i, " ".join(m.cmd)), m.log()[-20000:]))
    if rep.when == "teardown" and rep.failed:
        for i, m in enumerate(getattr(item, "_safs_mounts", [])):
            rep.sections.append(("safs log %d" % i, m.log()[-20000:]))
