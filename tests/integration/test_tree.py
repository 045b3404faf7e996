"""The tree: team / project / folder levels, one file per item, listing costs."""
import os

from harness import SUFFIX, sh

V = "Demo Vector"


def folder_names(api, project):
    return sorted(f["name"] for f in api.folders(project) if not f.get("is_root"))


def test_team_level_lists_projects(mount, api):
    m = mount(source=None)
    names = sorted(p["name"] for p in api.projects())
    assert sorted(os.listdir(m.path)) == names
    for n in names:
        assert os.path.isdir(m.p(n)), n


def test_project_level_lists_folders_and_root_items(mount, api):
    m = mount(V)
    want = sorted(folder_names(api, V) + [i + SUFFIX for i in api.names(V)])
    got = sorted(os.listdir(m.path))
    assert got == want
    for f in folder_names(api, V):
        assert os.path.isdir(m.p(f))
    for i in api.names(V):
        assert os.path.isfile(m.p(i + SUFFIX))


def test_project_folder_entries_match_platform(mount, api):
    """Every folder of the project has one file per item, odd names included."""
    m = mount(V)
    for f in folder_names(api, V):
        names = api.names(V, f)
        assert names, "demo folder %s has no items" % f
        got = sorted(os.listdir(m.p(f)))
        assert got == sorted(n + SUFFIX for n in names), f
        assert len(got) == len(names)


def test_folder_level_mount(mount, api):
    m = mount(V + "/train")
    names = api.names(V, "train")
    assert sorted(os.listdir(m.path)) == sorted(n + SUFFIX for n in names)
    odd = [n for n in names if any(c in n for c in " %#?&+") or not n.isascii()]
    assert len(odd) >= 5, "demo seed should have odd names: %r" % names


def test_team_mount_reaches_items(mount, api):
    m = mount(source=None)
    assert sorted(os.listdir(m.p(V, "val"))) == sorted(n + SUFFIX for n in api.names(V, "val"))


def test_pixel_project_suffix(mount, api):
    m = mount("Demo Pixel")
    names = api.names("Demo Pixel")
    assert names
    assert sorted(os.listdir(m.path)) == sorted(
        [n + "___pixel.json" for n in names] + folder_names(api, "Demo Pixel"))


def test_ls_wc_and_find_cost_only_listing(mount, api, emulator):
    m = mount(V)
    n_train = len(api.names(V, "train"))
    n_all = sum(len(api.names(V, f)) for f in [None] + folder_names(api, V))
    emulator.reset_stats()
    r = sh("ls %s | wc -l" % q(m.p("train")))
    assert int(r.stdout) == n_train
    r = sh("find %s -name '*%s' | wc -l" % (q(m.path), SUFFIX))
    assert int(r.stdout) == n_all
    r = sh("find %s -type f | wc -l" % q(m.path))
    assert int(r.stdout) == n_all
    routes = emulator.routes()
    assert emulator.downloads(routes) == 0, routes
    assert emulator.writes(routes) == 0, routes


def test_suffix_json(mount, api):
    m = mount(V + "/train", opts={"suffix": ".json"})
    names = api.names(V, "train")
    assert sorted(os.listdir(m.path)) == sorted(n + ".json" for n in names)
    assert not any(n.endswith(SUFFIX) for n in os.listdir(m.path))


def test_missing_names_are_enoent(mount):
    m = mount(V)
    assert not os.path.exists(m.p("no-such-item.jpg" + SUFFIX))
    assert not os.path.exists(m.p("no-such-folder"))


def q(s):
    import shlex
    return shlex.quote(s)
