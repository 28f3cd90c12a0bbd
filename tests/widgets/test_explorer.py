"""The Explorer's Python side with the real demo model: selection -> worker -> result traits."""

import threading
import time

import pytest
from eagle_widgets import Explorer
from eagle_widgets.core import InputError
from eagle_widgets.demo import CAPTION_PROMPT, UNBIASED, make_scene

SCENE = make_scene(10 ** 6 + 21, bias=UNBIASED, n_objects=2)


@pytest.fixture
def explorer(demo_session):
    return Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=16)


def content_index(ex):
    words = [t.strip() for t in ex.generation.tokens]
    return words.index(SCENE.objects[0].colour)


def test_answer_and_strip_exist_before_any_run(explorer):
    assert explorer.strip.tokens == explorer.generation.tokens
    assert len(explorer.strip.reliance) == len(explorer.generation.tokens)
    assert explorer.result is None and explorer.state == "idle"
    assert explorer.generation.tokens[-1] == "</s>" and explorer.strip.special[-1]


def test_select_runs_in_the_background_and_links_views(explorer):
    i = content_index(explorer)
    t0 = time.perf_counter()
    explorer.select([i])
    returned_after = time.perf_counter() - t0
    result = explorer.wait(timeout=60)
    assert explorer.state == "done" and result.complete and explorer.error is None
    assert returned_after < time.perf_counter() - t0  # select() did not block for the whole run
    assert explorer.chart.selection == [i]
    assert explorer.heatmap.order == result.order and len(explorer.heatmap.values) == result.num_regions
    assert explorer.curves.insertion_auc == pytest.approx(result.insertion_auc)
    assert explorer.progress.value == 1.0 and "Done" in explorer.status.value
    assert result.pointing_game(mask=SCENE.objects[0].mask)


def test_reselecting_is_served_from_the_cache(explorer):
    i = content_index(explorer)
    first = explorer.select([i]).wait(60)
    explorer.select([i + 1])
    explorer.wait(60)
    t0 = time.perf_counter()
    again = explorer.select([i]).wait(60)
    assert again is first and time.perf_counter() - t0 < 0.5
    assert "computed earlier" in explorer.status.value and explorer.progress.bar_style == "success"


def test_selecting_in_the_chart_selects_in_the_strip(explorer):
    explorer.chart.selection = [0, 1]
    assert explorer.strip.selection == [0, 1]
    assert explorer.wait(60).num_tokens == 2


def test_cancel_mid_run_leaves_a_consistent_partial_result(demo_session):
    ex = Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="exact", regions=64, batch_size=16)
    started = threading.Event()
    ex.heatmap.observe(lambda change: started.set() if change["new"] else None, names="order")
    ex.select([content_index(ex)])
    assert started.wait(30)
    ex.cancel()
    result = ex.wait(60)
    assert ex.state == "cancelled" and not result.complete
    assert 1 <= len(result.order) < result.num_regions
    assert ex.heatmap.order == result.order and "Cancelled" in ex.status.value
    assert ex.cancel_button.disabled and not ex.run_button.disabled
    ex.mode_control.value = "early_stop"
    ex.run()
    assert ex.wait(60).complete and ex.state == "done"


def test_errors_appear_in_the_widget(explorer, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("the model exploded")

    monkeypatch.setattr(explorer.session, "explain", broken)
    explorer.select([0]).wait(30)
    assert explorer.state == "error" and "the model exploded" in explorer.status.value
    assert explorer.error == "RuntimeError: the model exploded"


def test_bad_selections(explorer):
    n = len(explorer.generation.tokens)
    with pytest.raises(InputError, match="out of range"):
        explorer.select([n])
    with pytest.raises(InputError, match="token indices"):
        explorer.select(["red"])
    explorer.run()  # nothing selected
    assert "Select at least one token" in explorer.status.value and explorer.state == "idle"


def test_bad_construction_arguments(demo_session):
    with pytest.raises(InputError, match="mode must be one of"):
        Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="fast")
    with pytest.raises(InputError, match="non-empty string"):
        Explorer(demo_session, SCENE.image, "")
    with pytest.raises(InputError, match="PIL.Image.Image or a numpy array"):
        Explorer(demo_session, "scene.png", CAPTION_PROMPT)


def test_repr_and_saved_picture(explorer):
    explorer.select([content_index(explorer)]).wait(60)
    text = repr(explorer)
    assert text.startswith("Explorer(model=") and "state='done'" in text and "selection=[" in text
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    import base64

    assert base64.b64decode(data["image/png"]).startswith(b"\x89PNG")
    assert data["text/plain"] == text


@pytest.mark.parametrize("kwargs, match", [({"regions": 1}, "regions"), ({"regions": 2.5}, "regions"),
                                           ({"lambda1": -1}, "lambda1"), ({"lambda2": "1"}, "lambda2"),
                                           ({"lambda1": 0, "lambda2": 0}, "both be 0")])
def test_explorer_refuses_parameters_instead_of_clamping_them(demo_session, kwargs, match):
    with pytest.raises(InputError, match=match):
        Explorer(demo_session, SCENE.image, CAPTION_PROMPT, **kwargs)


def test_explorer_needs_a_session():
    with pytest.raises(InputError, match="model session"):
        Explorer(None, SCENE.image, CAPTION_PROMPT)


def test_select_refuses_non_integer_tokens(explorer):
    for bad in ([1.7], [True], 1.0):
        with pytest.raises(InputError):
            explorer.select(bad)
    assert explorer.selection == []


def test_a_failed_run_never_reports_the_previous_result(explorer, monkeypatch):
    i = content_index(explorer)
    explorer.select([i]).wait(60)
    assert explorer.result is not None

    def broken(*args, **kwargs):
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(explorer.session, "explain", broken)
    explorer.select([i + 1])
    assert explorer.wait(60) is None and explorer.state == "error"
    assert "fell over" in explorer.error and explorer.heatmap.values == []
    assert (i + 1,) not in explorer.explanations()  # nothing is filed under the failed selection


def test_the_saved_picture_follows_the_shown_map(explorer):
    import io

    import numpy as np
    from PIL import Image as PILImage

    explorer.select([content_index(explorer)]).wait(60)
    spot = np.asarray(PILImage.open(io.BytesIO(explorer.snapshot_png())).convert("RGB")).astype(int)
    explorer.heatmap.map_style = "colour"
    colour = np.asarray(PILImage.open(io.BytesIO(explorer.snapshot_png())).convert("RGB")).astype(int)
    assert spot.shape == colour.shape and np.abs(spot - colour).mean() > 1  # the style reaches the picture
