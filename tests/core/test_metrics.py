import numpy as np
import pytest
from eagle_widgets.core import (
    InputError,
    auc,
    correction_summary,
    minimal_correction_ratio,
    pointing_game,
    reliance_scores,
    sensitive_tokens,
)


def test_auc_trapezoids():
    assert auc([0, 1], [0, 1]) == 0.5
    assert auc([1, 1, 1], [0, 0.3, 1]) == pytest.approx(1.0)
    assert auc([0.2, 0.6, 1.0], [0, 0.5, 1]) == pytest.approx(0.6)
    with pytest.raises(InputError):
        auc([0, 1], [0, 0.5, 1])


def test_reliance_matches_the_papers_definition():
    areas = np.array([0, 0.25, 0.5, 1.0])
    curves = np.array([[0.9, 0.1], [0.9, 0.8], [0.95, 0.9], [0.95, 0.95]])
    rel = reliance_scores(curves, areas)
    expected_prior = auc(curves[:, 0], areas) - 0.9
    expected_vision = auc(curves[:, 1], areas) - 0.1
    np.testing.assert_allclose(rel, [expected_prior, expected_vision])
    assert rel[0] < 0.1 < 0.5 < rel[1]


def test_sensitive_rule():
    assert list(sensitive_tokens([0.9, 0.9, 0.5], [0.1, 0.8, 0.3])) == [True, False, False]


def test_pointing_game_box_mask_ties_and_constant():
    sal = np.zeros((10, 10))
    sal[2, 3] = 1.0
    assert pointing_game(sal, box=(3, 2, 4, 3))
    assert not pointing_game(sal, box=(0, 0, 3, 3))
    mask = np.zeros((10, 10), bool)
    mask[2, 3] = True
    assert pointing_game(sal, mask=mask)
    sal[8, 8] = 1.0  # a tie at the maximum: a hit if any peak is inside
    assert pointing_game(sal, mask=mask)
    assert not pointing_game(np.ones((4, 4)), box=(0, 0, 4, 4))
    with pytest.raises(InputError, match="exactly one"):
        pointing_game(sal)
    with pytest.raises(InputError, match="x1 > x0"):
        pointing_game(sal, box=(5, 5, 1, 1))


def test_mcr_removes_least_supportive_regions_first():
    fractions = np.array([0.1, 0.2, 0.3, 0.4])
    order = [2, 0, 3, 1]  # least supportive is 1, then 3

    def correct_once_3_removed(vis):
        return ~vis[:, 3]

    c = minimal_correction_ratio(order, fractions, correct_once_3_removed, batch_size=1)
    assert c.corrected and c.removed_regions == 2 and c.mcr == pytest.approx(0.6)
    never = minimal_correction_ratio(order, fractions, lambda vis: np.zeros(len(vis), bool))
    assert not never.corrected and never.mcr == 1.0
    at_once = minimal_correction_ratio(order, fractions, lambda vis: np.ones(len(vis), bool))
    assert at_once.mcr == 0.0
    s = correction_summary([c, never, at_once])
    assert s["amcr"] == pytest.approx((0.6 + 1.0 + 0.0) / 3)
    assert s["csr"] == pytest.approx(1 / 3)
    assert s["csr_reference"] == pytest.approx(1 / 2)
    with pytest.raises(InputError, match="permutation"):
        minimal_correction_ratio([0, 0, 1, 2], fractions, correct_once_3_removed)
