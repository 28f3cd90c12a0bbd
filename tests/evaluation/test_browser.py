"""The dataset browser: sorting and filtering in the traitlets, a click opens the stored explanation."""

import pytest
from eagle_widgets.core import InputError
from eagle_widgets.evaluation import DatasetBrowser, evaluate, make_demo_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_session):
    folder = tmp_path_factory.mktemp("browse")
    manifest = make_demo_dataset(folder / "data", captions=2, words=2, hallucinations=1, session=demo_session)
    with open(manifest, "a") as f:
        f.write('{"id": "broken", "image": "nowhere.png", "prompt": "describe the image ."}\n')
    evaluate(manifest, folder / "run", progress=False, mode="efficient", regions=12)
    return folder / "run"


def test_the_table_sorts_and_filters(run):
    browser = DatasetBrowser(run)
    table = browser.table
    assert table.total == 6 and len(table.visible_rows) == 6
    table.sort_by, table.descending = "insertion_auc", True
    values = [r["insertion_auc"] for r in table.visible_rows]
    assert values[:5] == sorted(values[:5], reverse=True) and values[5] is None  # the error row goes last
    table.filter_metric, table.filter_min = "pointing_mask", 0.5
    assert {r["protocol"] for r in table.visible_rows} == {"word"}
    table.filter_min, table.filter_max = None, -1.0
    assert table.visible_rows == []


def test_a_click_shows_the_stored_explanation_without_recomputing(run, demo_session, monkeypatch):
    browser = DatasetBrowser(run, session=demo_session)

    def no_explain(*args, **kwargs):
        raise AssertionError("the stored explanation must not be recomputed")

    monkeypatch.setattr(demo_session, "explain", no_explain)
    browser.table.selected = "word-001"
    explorer = browser.explorer
    stored = browser.folder.load("word-001")
    assert explorer.wait(10) is not None and explorer.state == "done"
    assert explorer.result.order == stored.order and explorer.selection == list(stored.context.targets)
    assert explorer.heatmap.values and "Shown again" in explorer.status.value
    assert "stored, not recomputed" in browser.status.value
    browser.table.selected = "broken"
    assert "no such image file" in browser.status.value and browser.detail.children == ()


def test_without_a_session_the_map_and_curves_are_shown(run):
    browser = DatasetBrowser(run)
    heatmap = browser.show_sample("caption-000")
    assert heatmap.values and heatmap.phase == "done"
    with pytest.raises(InputError, match="no sample 'nope'"):
        browser.show_sample("nope")


def test_a_session_reached_through_the_browser_offers_every_method():
    # A fresh process that never imports eagle_widgets.baselines itself (as a notebook using only the browser).
    import subprocess
    import sys

    code = ("from eagle_widgets.evaluation import DatasetBrowser\nfrom eagle_widgets.demo import load_demo_session\n"
            "print(load_demo_session(cache=False).methods())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(m in out for m in ("'eagle'", "'random'", "'occlusion'", "'llava_cam'", "'tam'")), out
