import numpy as np
import pytest
from eagle_widgets.core import AnswerContext, InputError, LogisticScorer, RegionSet, attribute, minimal_correction_ratio
from eagle_widgets.display import attribution_figure


@pytest.fixture
def result():
    rs = RegionSet.grid((40, 60), rows=3, cols=4)
    r = attribute(LogisticScorer.random(rs.n, 1, seed=2), rs, mode="exact")
    r.image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    r.token_labels = [" no"]
    r.context = AnswerContext(generated_tokens=("yes", "</s>"), generated_ids=(5, 2), targets=(0,), target_ids=(6,))
    return r


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_figure_saves_each_format(tmp_path, result, suffix):
    path = tmp_path / f"fig{suffix}"
    fig = attribution_figure(result, path, reliance=[0.1, 0.0])
    assert path.stat().st_size > 1000
    head = path.read_bytes()[:8]
    assert {".png": b"\x89PNG", ".svg": b"<?xml", ".pdf": b"%PDF"}[suffix] in head
    texts = [ax.get_title(loc) for ax in fig.axes for loc in ("left", "center")]
    assert any("model answered 'yes'" in t for t in texts)  # the hallucination variant names both answers
    assert any("support for the correct" in t for t in texts)


def test_figure_with_the_correction(result):
    correction = minimal_correction_ratio(result.order, result.regions.area_fractions,
                                          lambda vis: (~vis).sum(axis=1) >= 2)
    fig = attribution_figure(result, correction=correction)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("corrected after removing") for t in titles)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images and ax.get_title().startswith("corrected")][0]
    assert (np.asarray(shown).reshape(-1, 3) == 0).all(axis=1).sum() > 0  # removed regions are black


def test_figure_errors(tmp_path, result):
    with pytest.raises(InputError, match=r"\.png, \.svg, \.pdf"):
        attribution_figure(result, tmp_path / "fig.jpg")
    with pytest.raises(InputError, match="reliance has 3 values for 2 tokens"):
        attribution_figure(result, reliance=[0, 0, 0])
    result.image = None
    with pytest.raises(InputError, match="carries no image"):
        attribution_figure(result)
