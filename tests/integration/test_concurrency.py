"""Many programs at once."""
import errno
import json
import os
import threading

from harness import SUFFIX, pretty_tokens, read, strip_server_meta

V = "Demo Vector"


def run_threads(fns):
    errors = [None] * len(fns)

    def wrap(i, fn):
        try:
            errors[i] = fn()
        except BaseException as e:  # noqa: B902
            errors[i] = e

    ts = [threading.Thread(target=wrap, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
        assert not t.is_alive(), "a thread hung on the mount"
    return errors


def test_eight_threads_read_write(mount, emulator, api):
    m = mount(V)
    names = api.names(V, "train")[:8]
    assert len(names) == 8

    def work(n):
        p = m.p("train", n + SUFFIX)
        json.loads(read(p))
        d = {"metadata": {"name": n}, "instances": [
            {"type": "point", "x": i + 0.5, "y": 1, "classId": 1, "className": "c",
             "probability": 100, "creationType": "Manual", "attributes": []} for i in range(50)],
            "tags": ["thread-" + n], "comments": []}
        data = (json.dumps(d, indent=4, ensure_ascii=False) + "\n").encode()
        with open(p, "wb") as f:
            f.write(data)
        shown = read(p)  # the platform's document now (filesystem.md §2), whole
        assert json.loads(shown)["tags"] == ["thread-" + n]
        assert os.stat(p).st_size == len(shown)
        return data

    results = run_threads([lambda n=n: work(n) for n in names])
    for n, r in zip(names, results):
        assert isinstance(r, bytes), (n, r)
        doc = api.document(V, "train", n)
        assert doc["tags"] == ["thread-" + n]
        assert strip_server_meta(doc) == strip_server_meta(json.loads(r))
        assert read(m.p("train", n + SUFFIX)) == pretty_tokens(api.document_bytes(V, "train", n))
    assert emulator.uploads() == 8


def test_two_writers_one_file(mount, emulator, api):
    m = mount(V)
    name = api.names(V, "val")[0]
    p = m.p("val", name + SUFFIX)

    def doc(tag):
        return {"metadata": {"name": name}, "instances": [
            {"type": "polygon", "points": [j * 1.25 for j in range(40)], "classId": 1,
             "className": tag, "probability": 100, "creationType": "Manual", "attributes": []}
            for _ in range(600)], "tags": [tag], "comments": []}

    docs = {t: (json.dumps(doc(t), indent=4) + "\n").encode() for t in ("A", "B")}
    assert len(docs["A"]) > 500000
    start = threading.Barrier(2)

    def writer(tag):
        data = docs[tag]
        f = open(p, "wb")
        start.wait(30)
        for i in range(0, len(data), 4096):
            f.write(data[i:i + 4096])
            f.flush()
        try:
            f.close()
        except OSError as e:
            return e.errno
        return 0

    res = run_threads([lambda: writer("A"), lambda: writer("B")])
    assert all(r in (0, errno.ESTALE) for r in res), res
    assert 0 in res, res
    got = strip_server_meta(api.document(V, "val", name))
    assert got in (strip_server_meta(doc("A")), strip_server_meta(doc("B")))
    winner = "A" if got == strip_server_meta(doc("A")) else "B"
    # the mount shows the winner, whole
    assert json.loads(read(p))["tags"] == [winner]
    assert not os.path.exists(p + ".fuse_hidden")
