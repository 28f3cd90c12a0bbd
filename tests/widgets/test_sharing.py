"""The disk cache through sessions and the Explorer, and the self-contained HTML export (Python side)."""

import json
import subprocess
import sys
import textwrap

import pytest
from eagle_widgets import Explorer
from eagle_widgets.core import CacheError, EagleError, InputError
from eagle_widgets.demo import CAPTION_PROMPT, load_demo_session, make_scene
from eagle_widgets.storage import ResultCache

SCENE = make_scene(10 ** 6 + 21, n_objects=2)


@pytest.fixture
def cached_session(tmp_path):
    return load_demo_session(cache=tmp_path / "cache")


def test_explain_is_reused_within_and_across_processes(tmp_path, cached_session):
    s = cached_session
    gen = s.generate(SCENE.image, CAPTION_PROMPT, max_new_tokens=20)
    first = s.explain(gen, [1], regions=12, mode="efficient")
    assert not first.from_cache and len(s.cache) == 1
    again = s.explain(gen, [1], regions=12, mode="efficient")
    assert again.from_cache and again.order == first.order
    other = s.explain(gen, [1], regions=12, mode="exact")  # another mode is another entry
    assert not other.from_cache and len(s.cache) == 2
    # A new kernel: another process loads the model again and finds the result on disk.
    script = textwrap.dedent(f"""
        import json
        from eagle_widgets.demo import CAPTION_PROMPT, load_demo_session, make_scene
        s = load_demo_session(cache={str(tmp_path / "cache")!r})
        gen = s.generate(make_scene({10 ** 6 + 21}, n_objects=2).image, CAPTION_PROMPT, max_new_tokens=20)
        r = s.explain(gen, [1], regions=12, mode="efficient")
        print(json.dumps({{"hit": r.from_cache, "order": r.order}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={"EAGLE_WIDGETS_CACHE": "off", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"hit": True, "order": first.order}


def test_changed_weights_do_not_reuse_results(tmp_path, cached_session):
    s = cached_session
    gen = s.generate(SCENE.image, CAPTION_PROMPT, max_new_tokens=20)
    s.explain(gen, [1], regions=12, mode="efficient")
    changed = load_demo_session(cache=tmp_path / "cache")
    import torch

    with torch.no_grad():
        next(changed.model.parameters()).mul_(1.01)
    gen2 = changed.generate(SCENE.image, CAPTION_PROMPT, max_new_tokens=20)
    assert not changed.explain(gen2, [1], regions=12, mode="efficient").from_cache


def test_cache_folder_problems(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match="not writable"):
        load_demo_session(cache=blocker)
    monkeypatch.setenv("EAGLE_WIDGETS_CACHE", str(blocker))  # the default folder is unusable: warn, go on
    with pytest.warns(UserWarning, match="will not be cached"):
        s = load_demo_session()
    assert s.cache is None
    with pytest.raises(InputError, match="cache must be True, False, a folder or a ResultCache"):
        load_demo_session(cache=3)
    assert isinstance(load_demo_session(cache=ResultCache(tmp_path / "c")).cache, ResultCache)


def test_explorer_reports_results_from_the_disk_cache(cached_session):
    words = None
    for _ in range(2):  # the second Explorer stands for a restarted kernel
        ex = Explorer(cached_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=12)
        words = [t.strip() for t in ex.generation.tokens]
        ex.select(words.index(SCENE.objects[0].shape))
        ex.wait(60)
        assert ex.state == "done"
    assert "From the disk cache" in ex.status.value


def test_export_html_holds_everything_and_no_remote_reference(tmp_path, demo_session):
    ex = Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=12)
    words = [t.strip() for t in ex.generation.tokens]
    for w in (SCENE.objects[0].colour, SCENE.objects[1].shape):
        ex.select(words.index(w))
        ex.wait(60)
    path = ex.export_html(tmp_path / "out" / "explorer.html")
    page = path.read_text()
    data = json.loads(page.split('id="eagle-data">')[1].split("</script>")[0])
    (question,) = data["questions"]
    assert sorted(e["selection"] for e in question["explanations"]) == sorted(
        [[words.index(SCENE.objects[0].colour)], [words.index(SCENE.objects[1].shape)]])
    assert question["strip"]["tokens"] == ex.generation.tokens
    assert "function renderHeatmap" in page  # the widgets' own module, inlined
    for remote in ("http://", "https://", "//cdn", "<link", 'src="http'):
        assert remote not in page.replace("http://www.w3.org/2000/svg", "")
    with pytest.raises(InputError, match="ending in .html"):
        ex.export_html(tmp_path / "explorer.png")
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(EagleError, match="cannot write"):
        ex.export_html(blocker / "x.html")
    assert path.read_text() == page  # nothing already saved is lost



def test_export_holds_every_question_and_every_result_named(tmp_path, demo_session):
    ex = Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=12)
    words = [t.strip() for t in ex.generation.tokens]
    colour = words.index(SCENE.objects[0].colour)
    ex.select(colour).wait(60)
    ex.method_control.value = "tam"
    ex.run()
    ex.wait(60)
    ex.ask(prompt="is there a star ?")
    ex.select(0).wait(60)
    ex.heatmap.show_borders = True
    data = json.loads(ex.export_html(tmp_path / "e.html").read_text().split('id="eagle-data">')[1]
                      .split("</script>")[0])
    first, second = data["questions"]
    assert data["current"] == 1 and second["prompt"] == "is there a star ?" and data["show_borders"] is True
    names = [e["name"] for e in first["explanations"]]
    assert [e["selection"] for e in first["explanations"]] == [[colour], [colour]]  # both results kept
    n = first["explanations"][0]["heatmap"]["gain"]["n_regions"]  # SLICO gives about 12
    assert names[0] == f"eagle, efficient · {n} regions · λ 1/1" and names[1].startswith("tam (its own map")
    assert first["explanations"][1]["heatmap"]["gain"]["legend"].startswith("TAM:")
