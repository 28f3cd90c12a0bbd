import numpy as np
import pytest
from eagle_widgets.core import (
    InputError,
    LogisticScorer,
    RegionSet,
    attribute,
    attribute_order,
    pixel_bands,
    pixel_protocol,
    region_protocol,
    region_scores,
)


def test_given_order_reproduces_the_exact_greedy_trajectory():
    regions = RegionSet.grid((30, 40), rows=3, cols=4)
    scorer = LogisticScorer.random(regions.n, 3, seed=4)
    exact = attribute(scorer, regions, mode="exact")
    again = attribute_order(scorer, regions, exact.order)
    np.testing.assert_allclose(again.insertion_tokens, exact.insertion_tokens, atol=1e-7)
    np.testing.assert_allclose(again.deletion_tokens, exact.deletion_tokens, atol=1e-7)
    np.testing.assert_allclose(again.areas, exact.areas)
    assert again.evaluations == 2 * regions.n  # each prefix and its complement; the endpoints once


def test_pixel_bands_rank_pixels_into_equal_bands():
    rng = np.random.default_rng(0)
    sal = rng.random((24, 32))
    sal[:4, :4] = 5.0  # ties at the top
    bands = pixel_bands(sal, steps=8)
    assert bands.n == 8
    assert set(bands.areas.tolist()) == {24 * 32 // 8}
    means = region_scores(bands, sal)
    assert np.all(np.diff(means) < 0)  # band 0 holds the highest values
    assert np.all(bands.labels[:4, :4] == 0)
    with pytest.raises(InputError, match="steps must be an integer"):
        pixel_bands(sal, steps=1)
    with pytest.raises(InputError, match="NaN"):
        pixel_bands(np.full((4, 4), np.nan))


def test_a_perfect_map_beats_its_inverse_in_both_protocols():
    # Token probability rises with the visible share of the left half: a map on the left half is right.
    h, w = 20, 40
    left = np.zeros((h, w))
    left[:, : w // 2] = 1.0

    def scorer_for(regions):
        weight = np.bincount(regions.labels.ravel(), weights=left.ravel(), minlength=regions.n) / left.sum()

        class Share:
            num_tokens, num_regions = 1, regions.n

            def __call__(self, visible):
                return (visible.double() @ __import__("torch").tensor(weight)).float()[:, None]

        return Share()

    regions = RegionSet.grid((h, w), rows=2, cols=4)
    good, bad = pixel_protocol(scorer_for, left, steps=8), pixel_protocol(scorer_for, 1 - left, steps=8)
    assert good.insertion_auc > 0.7 > 0.3 > bad.insertion_auc
    assert good.deletion_auc < bad.deletion_auc
    good_r, bad_r = region_protocol(scorer_for, regions, left), region_protocol(scorer_for, regions, 1 - left)
    assert good_r.insertion_auc > bad_r.insertion_auc and sorted(good_r.order[:4]) == [0, 1, 4, 5]
    with pytest.raises(InputError, match="saliency map is 10x10"):
        region_protocol(scorer_for, regions, np.zeros((10, 10)))
