"""The README's first command, scripts/demo.sh: it installs what is missing,
builds, starts the emulator with the demo data, mounts the team and prints
what to try; `scripts/demo.sh stop` undoes it. Run from this checkout (in CI a
clean clone), exactly as the README says."""
import json
import os
import subprocess

from harness import REPO, SUFFIX, run


def mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path.replace(" ", "\\040") for line in f)


def test_demo_start_try_stop(tmp_path):
    mnt = str(tmp_path / "demo mnt")
    demo = os.path.join(REPO, "scripts", "demo.sh")
    try:
        r = run(["bash", demo, mnt], timeout=600)
        assert mounted(mnt), r.stdout + r.stderr
        assert "scripts/demo.sh stop" in r.stdout
        assert "setfattr -n user.superannotate.status" in r.stdout
        projects = os.listdir(mnt)
        for p in ("Demo Vector", "Demo Video", "Demo Pixel"):
            assert p in projects, projects
        files = [n for n in os.listdir(os.path.join(mnt, "Demo Vector", "train"))
                 if n.endswith(SUFFIX)]
        assert len(files) >= 25
        doc = json.loads(open(os.path.join(mnt, "Demo Vector", "train", files[0]), "rb").read())
        assert "instances" in doc
        # idempotent: a second start keeps the same emulator and mount
        run(["bash", demo, mnt], timeout=300)
        assert mounted(mnt)
    finally:
        r = subprocess.run(["bash", demo, "stop"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not mounted(mnt)
    pid_file = os.path.join(REPO, "build", "demo", "emulator.pid")
    assert not os.path.exists(pid_file)
