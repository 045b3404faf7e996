"""filesystem.md §1: names are escaped reversibly. `/` shows as `／`
(U+FF0F), a literal `／` as `‛／` (U+201B U+FF0F), a literal `‛` as `‛‛`.
Items whose names differ only in those characters are listed once each,
under distinct names, and each file is that item's own document."""
import errno
import json
import os

from harness import SUFFIX, errno_of, read, write

V = "Demo Vector"
FW = "\uff0f"  # ／
RQ = "\u201b"  # ‛

# platform name -> the name the mount must show (without the suffix)
NAMES = {
    RQ + "/c.jpg": RQ + RQ + FW + "c.jpg",
    FW + "c.jpg": RQ + FW + "c.jpg",
    RQ + RQ + "x.jpg": RQ * 4 + "x.jpg",
    RQ + "x.jpg": RQ * 2 + "x.jpg",
    "a/b/c.jpg": "a" + FW + "b" + FW + "c.jpg",
    RQ + FW + "d.jpg": RQ * 3 + FW + "d.jpg",
    "x" + RQ + "y.jpg": "x" + RQ * 2 + "y.jpg",
    FW + FW + "f.jpg": (RQ + FW) * 2 + "f.jpg",
    "//f.jpg": FW * 2 + "f.jpg",
    "/" + FW + "g.jpg": FW + RQ + FW + "g.jpg",
    FW + "/g.jpg": RQ + FW + FW + "g.jpg",
    "c.jpg": "c.jpg",
}


def doc(name, i):
    return {"metadata": {"name": name, "width": 100 + i, "height": 50},
            "instances": [], "tags": ["item-%d" % i], "comments": []}


def seed(emulator, folder="esc"):
    names = list(NAMES)
    emulator.seed(V, folder=folder, items=names,
                  documents={n: doc(n, i) for i, n in enumerate(names)})
    return names


def test_lookalike_names_listed_once_each_and_reachable(mount, emulator, api):
    names = seed(emulator)
    m = mount(V)
    shown = sorted(os.listdir(m.p("esc")))
    assert len(shown) == len(names), shown
    assert len(set(shown)) == len(shown), shown
    assert shown == sorted(s + SUFFIX for s in NAMES.values()), shown
    platform = api.folder_documents(V, "esc")
    for i, (name, fname) in enumerate(NAMES.items()):
        p = m.p("esc", fname + SUFFIX)
        got = json.loads(read(p))
        assert got["metadata"]["name"] == name, (fname, got["metadata"])
        assert got["tags"] == ["item-%d" % i], (fname, got["tags"])
        assert got == json.loads(platform[name]), fname
        assert os.stat(p).st_size == len(read(p))
    # the log names the escaped ones (and only those)
    log = m.log()
    for name, fname in NAMES.items():
        line = 'item "%s" is shown as "%s"' % (name, fname + SUFFIX)
        assert (line in log) == (name != fname), (line, log[-3000:])


def test_write_reaches_its_own_item(mount, emulator, api):
    """A save through one of two look-alike names changes that item only."""
    seed(emulator)
    m = mount(V)
    a, b = RQ + "/c.jpg", FW + "c.jpg"  # once both shown as `‛／c.jpg`
    before_b = api.document_bytes(V, "esc", b)
    d = doc(a, 99)
    d["tags"] = ["written"]
    write(m.p("esc", NAMES[a] + SUFFIX), json.dumps(d).encode())
    assert api.document(V, "esc", a)["tags"] == ["written"]
    assert api.document_bytes(V, "esc", b) == before_b
    assert json.loads(read(m.p("esc", NAMES[b] + SUFFIX)))["tags"] == ["item-1"]


def test_unshown_spellings_are_not_found(mount, emulator):
    """Only the escaped spelling resolves: `‛／c.jpg` is the item `／c.jpg`,
    never `‛/c.jpg`; a name with a lone `‛` is no item's."""
    seed(emulator)
    m = mount(V)
    assert json.loads(read(m.p("esc", RQ + FW + "c.jpg" + SUFFIX)))["metadata"]["name"] == FW + "c.jpg"
    for bad in (RQ + "x.jpg", "x" + RQ + "y.jpg", RQ * 3 + "x.jpg"):
        assert errno_of(lambda: os.stat(m.p("esc", bad + SUFFIX))) == errno.ENOENT, bad
    # creating one is the "missing item" case, though item `x‛y.jpg` exists
    bad = m.p("esc", "x" + RQ + "y.jpg" + SUFFIX)
    assert errno_of(lambda: os.close(os.open(bad, os.O_CREAT | os.O_WRONLY, 0o644))) == errno.ENOENT
    assert sorted(os.listdir(m.p("esc"))) == sorted(s + SUFFIX for s in NAMES.values())


def test_folder_names_escape_too(mount, emulator, api):
    """Folders follow the same rule: a folder `‛x` lists as `‛‛x`; mkdir of
    the escaped spelling `‛‛y` creates the platform folder `‛y`."""
    emulator.seed(V, folder=RQ + "x", items=["i.jpg"])
    m = mount(V)
    assert RQ * 2 + "x" in os.listdir(m.path)
    assert os.listdir(m.p(RQ * 2 + "x")) == ["i.jpg" + SUFFIX]
    os.mkdir(m.p(RQ * 2 + "y"))
    assert RQ + "y" in [f["name"] for f in api.folders(V)]
    assert RQ * 2 + "y" in os.listdir(m.path)



def test_mkdir_with_a_lone_quote_is_einval(mount, emulator, api):
    """A `‛` that starts no escape would show differently (`a‛b` lists as
    `a‛‛b`): the program could not find what it created under the name it
    typed, so mkdir and a folder rename to such a name are EINVAL, with a
    log line, and create nothing; `mkdir "a‛‛b"` creates the folder `a‛b`."""
    m = mount(V)
    before = {f["name"] for f in api.folders(V)}
    assert errno_of(lambda: os.mkdir(m.p("a" + RQ + "b"))) == errno.EINVAL
    assert "would show differently" in m.log()
    assert {f["name"] for f in api.folders(V)} == before
    os.mkdir(m.p("a" + RQ * 2 + "b"))
    assert {f["name"] for f in api.folders(V)} - before == {"a" + RQ + "b"}
    shown = os.listdir(m.path)
    assert "a" + RQ * 2 + "b" in shown and "a" + RQ + "b" not in shown, shown
    assert os.path.isdir(m.p("a" + RQ * 2 + "b"))
