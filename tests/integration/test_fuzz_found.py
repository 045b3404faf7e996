"""Bugs the fuzz targets found (tests/fuzz/), checked through a real mount.

fuzz_names: an item's file name minus its suffix was unescaped with the
directory rule (`．` stands for `.`), so a save to `．___objects.json` for an
item named `．` (U+FF0E) that the mount had not listed yet searched the
platform for an item named `.`, and failed with ENOENT ("no item named")."""
import json
import os

import subprocess

from harness import SUFFIX, read

V = "Demo Vector"
FW_DOT = "\uff0e"


def sh(script, *args):
    r = subprocess.run(["sh", "-c", script, "sh"] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, (script, args, r.stderr)


def test_save_to_an_item_named_fullwidth_dot_listed_after_the_mount(mount, emulator, api, tmp_path):
    emulator.seed(V, folder="dots", items=["seed.jpg"])
    m = mount(V, opts={"cache_timeout": "600"})
    assert os.listdir(m.p("dots")) == ["seed.jpg" + SUFFIX]   # the folder is listed (and cached)
    for name in ("plain.jpg", FW_DOT, FW_DOT * 2):
        emulator.seed(V, folder="dots", items=[name])          # new on the platform, not in the listing
        doc = {"metadata": {"name": name}, "instances": [], "tags": ["fuzz"], "comments": []}
        src = tmp_path / "doc.json"
        src.write_text(json.dumps(doc, indent=2) + "\n")
        dst = m.p("dots", name + SUFFIX)
        # the shell's `>` (O_CREAT|O_TRUNC); cp's O_CREAT|O_EXCL into an item
        # the listing lacks has a bug of its own (reported, not fixed here)
        sh('cat "$1" > "$2"', src, dst)
        platform = json.loads(api.folder_documents(V, "dots")[name])
        assert platform["tags"] == ["fuzz"], platform
        assert platform["metadata"]["name"] == name
        assert json.loads(read(dst))["tags"] == ["fuzz"]
    assert "no item named" not in m.log(), m.log()
