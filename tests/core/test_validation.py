"""The shared validation layer: any input either works or raises the toolkit's own error naming the problem."""

import math

import numpy as np
import pytest
from eagle_widgets.core import EagleError, EvidenceScorer, InputError, RegionSet, attribute, validation
from eagle_widgets.core.images import as_rgb_uint8
from eagle_widgets.display.figures import explanation_figure, figure_png
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

anything = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                     st.text(max_size=5), st.lists(st.integers(-20, 20), max_size=4),
                     st.lists(st.floats(-20, 20), max_size=3), st.lists(st.booleans(), max_size=3),
                     st.just(np.int64(3)), st.just(np.float32(1.5)), st.just(np.bool_(True)))


@settings(max_examples=300, deadline=None)
@given(tokens=anything, n=st.integers(1, 12))
def test_token_indices_accept_only_integer_indices(tokens, n):
    try:
        picked = validation.token_indices(tokens, n)
    except InputError as err:
        assert str(err)
        return
    assert picked == sorted(set(picked)) and all(0 <= t < n for t in picked)
    given_ = [tokens] if isinstance(tokens, (int, np.integer)) else list(tokens)
    assert all(isinstance(t, (int, np.integer)) and not isinstance(t, (bool, np.bool_)) for t in given_)


@pytest.mark.parametrize("bad", [[1.7], [True], [1.0], "1", [np.bool_(True)], [], [None]])
def test_selections_that_used_to_mean_token_1_are_refused(bad):
    with pytest.raises(InputError):
        validation.token_indices(bad, 5)


@settings(max_examples=200, deadline=None)
@given(l1=anything, l2=anything)
def test_lambdas_are_numbers_or_a_clear_error(l1, l2):
    try:
        a, b = validation.lambdas(l1, l2)
    except InputError as err:
        assert "lambda" in str(err)
        return
    assert math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0 and a + b > 0


@settings(max_examples=100, deadline=None)
@given(l1=anything, batch=anything)
def test_the_engine_never_raises_an_internal_error_on_parameters(l1, batch):
    regions = RegionSet.grid((8, 8), rows=2, cols=2)
    try:
        attribute(EvidenceScorer(4, [0]), regions, lambda1=l1, batch_size=batch)
    except EagleError:
        pass


def test_region_counts_have_an_explicit_limit():
    assert validation.region_count(36) == 36
    for bad in (1, 2.5, True, "36"):
        with pytest.raises(InputError, match="regions"):
            validation.region_count(bad)
    with pytest.raises(InputError, match="EAGLE_WIDGETS_MAX_REGIONS"):
        validation.region_count(validation.MAX_REGIONS + 1)


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_wide_pil_modes_are_refused_not_clipped(mode):
    image = Image.new(mode, (8, 8), 1000)
    with pytest.raises(InputError, match=mode.replace(";", ";")):
        as_rgb_uint8(image)


def test_truncated_and_closed_images_raise_input_errors(tmp_path):
    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match="could not be read"):
        as_rgb_uint8(Image.open(path))
    closed = Image.new("RGB", (4, 4))
    closed.close()
    with pytest.raises(InputError):
        as_rgb_uint8(closed)


def test_dollar_signs_are_drawn_as_written():
    image = np.zeros((16, 16, 3), np.uint8)
    for text in ("what does $\\x$ mean ?", "$5 or $6", "$"):
        fig = explanation_figure(image, [text, " $"], [0.5, 0.1], title=text)
        assert figure_png(fig).startswith(b"\x89PNG")
        shown = [t.get_text() for ax in fig.axes for t in ax.texts] + [fig._suptitle.get_text()]
        assert all("$" not in t.replace("\\$", "") for t in shown)  # every dollar escaped: no mathtext
