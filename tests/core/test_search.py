import threading

import numpy as np
import pytest
import torch
from eagle_widgets.core import (
    MODES,
    EvidenceScorer,
    InputError,
    LogisticScorer,
    RegionSet,
    ScorerError,
    attribute,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def naive_exact_greedy(scorer, n, lam1=1.0, lam2=1.0):
    """The paper's algorithm written plainly: one scorer call per image, argmax recomputed each step."""

    def p(visible_labels):
        vis = torch.zeros(1, n, dtype=torch.bool)
        vis[0, list(visible_labels)] = True
        return scorer(vis)[0].double()

    chosen, order, scores = set(), [], []
    while len(chosen) < n:
        best, best_f = None, -np.inf
        for v in range(n):
            if v in chosen:
                continue
            s = chosen | {v}
            f = lam1 * p(s).mean() + lam2 * (1 - p(set(range(n)) - s).mean())
            if f > best_f:
                best, best_f = v, float(f)
        chosen.add(best)
        order.append(best)
        scores.append(best_f)
    return order, np.array(scores)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 9), t=st.integers(1, 4), seed=st.integers(0, 10_000),
       lam1=st.sampled_from([1.0, 0.5, 0.0, 2.0]), lam2=st.sampled_from([1.0, 0.3, 0.0]),
       batch=st.integers(1, 20))
def test_exact_matches_brute_force_oracle(n, t, seed, lam1, lam2, batch):
    if lam1 == 0 and lam2 == 0:
        lam2 = 1.0
    scorer = LogisticScorer.random(n, t, seed=seed)
    labels = np.arange(n).reshape(1, n)
    result = attribute(scorer, labels, mode="exact", lambda1=lam1, lambda2=lam2, batch_size=batch)
    order, scores = naive_exact_greedy(scorer, n, lam1, lam2)
    assert result.order == order
    np.testing.assert_allclose(result.scores[1:], scores, atol=1e-6)
    assert result.evaluations == n * (n + 1)


def test_ties_go_to_lowest_label():
    class Flat:
        num_tokens = 1

        def __call__(self, visible):
            return torch.full((visible.shape[0], 1), 0.5)

    result = attribute(Flat(), np.arange(6).reshape(2, 3))
    assert result.order == list(range(6))
    assert result.degenerate
    assert not result.pointing_game(box=(0, 0, 1, 1))


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 30), seed=st.integers(0, 1000))
def test_invariants(mode, n, seed):
    rs = RegionSet.grid((30, 40), n=n) if n >= 4 else RegionSet(np.arange(n).repeat(5).reshape(1, -1))
    n = rs.n
    scorer = LogisticScorer.random(n, 3, seed=seed)
    r = attribute(scorer, rs, mode=mode)
    assert sorted(r.order) == list(range(n))
    assert r.complete
    assert r.areas[0] == 0.0 and r.areas[-1] == 1.0
    assert np.all(np.diff(r.areas) > 0)
    for curve in (r.insertion_tokens, r.deletion_tokens):
        assert np.all((curve >= 0) & (curve <= 1))
    np.testing.assert_array_equal(r.insertion_tokens[-1], r.p_full)
    np.testing.assert_array_equal(r.deletion_tokens[-1], r.p_black)
    np.testing.assert_array_equal(r.insertion_tokens[0], r.p_black)
    np.testing.assert_array_equal(r.deletion_tokens[0], r.p_full)
    vals = r.region_values
    assert vals.max() <= 1 and vals.min() >= 0
    if not r.degenerate:
        assert vals[r.order[0]] == 1.0 and vals[r.order[-1]] == 0.0
        assert np.all(np.diff(vals[r.order]) <= 1e-12)  # non-increasing along the order
    assert r.pixel_map().shape == rs.shape and r.pixel_map().dtype == np.float32


@pytest.mark.parametrize("mode", MODES)
def test_lambda_is_respected_in_the_map(mode):
    scorer = LogisticScorer.random(12, 2, seed=3)
    rs = RegionSet.grid((24, 32), rows=3, cols=4)
    for lam1, lam2 in [(1.0, 1.0), (1.0, 0.0), (0.0, 1.0), (2.0, 0.5)]:
        r = attribute(scorer, rs, mode=mode, lambda1=lam1, lambda2=lam2)
        assert (r.lambda1, r.lambda2) == (lam1, lam2)
        f = lam1 * r.insertion + lam2 * (1 - r.deletion)
        np.testing.assert_allclose(r.scores, f)
        a = -np.cumsum(np.abs(np.diff(f)))
        expected = (a - a[-1]) / (a[0] - a[-1])
        np.testing.assert_allclose(r.region_values[r.order], expected)
    only_ins = attribute(scorer, rs, mode="exact", lambda1=1.0, lambda2=0.0)
    assert only_ins.order == naive_exact_greedy(scorer, rs.n, 1.0, 0.0)[0]


@pytest.mark.parametrize("mode", MODES)
def test_known_evidence_region_is_ranked_first(mode):
    rs = RegionSet.grid((64, 64), rows=6, cols=6)
    target = 22
    scorer = EvidenceScorer(rs.n, [target], prior=[0.05])
    r = attribute(scorer, rs, mode=mode)
    assert r.order[0] == target
    ys, xs = np.nonzero(rs.mask(target))
    assert r.pointing_game(box=(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
    assert r.pointing_game(mask=rs.mask(target))
    assert not r.pointing_game(mask=rs.mask(0))


def test_reliance_separates_language_prior_from_evidence():
    rs = RegionSet.grid((32, 32), rows=4, cols=4)
    scorer = EvidenceScorer(rs.n, [None, 5, 9], prior=[0.97, 0.05, 0.05])
    r = attribute(scorer, rs)
    rel = r.reliance
    assert rel[0] < 0.05 and rel[1] > 0.5 and rel[2] > 0.5
    assert list(r.sensitive) == [False, True, True]


@pytest.mark.parametrize("mode", MODES)
def test_progress_and_cancel_leave_a_consistent_partial_result(mode):
    rs = RegionSet.grid((40, 40), rows=5, cols=5)
    scorer = EvidenceScorer(rs.n, [3, 7, 12, 20], distraction=0.2)  # F keeps rising for 4 steps
    updates = []
    stop = threading.Event()

    def progress(u):
        updates.append(u)
        if u.step == 2:
            stop.set()

    r = attribute(scorer, rs, mode=mode, progress=progress, cancel=stop, batch_size=8)
    assert not r.complete
    assert 1 <= len(r.order) <= 2
    steps = [u.step for u in updates]
    assert steps == sorted(steps) and steps[0] == 0 and 1 in steps and steps[-1] == 2  # 0: within the first step
    assert all(u.evaluations <= u.total_evaluations for u in updates)
    k = len(r.order)
    assert r.insertion_tokens.shape == (k + 1, 4) and r.areas.shape == (k + 1,)
    assert np.all(np.diff(r.areas) > 0) and r.areas[-1] < 1.0
    full = attribute(scorer, rs, mode=mode)
    assert r.order == full.order[:k]
    np.testing.assert_allclose(r.insertion_tokens, full.insertion_tokens[: k + 1])
    unranked = sorted(set(range(rs.n)) - set(r.order))
    assert np.all(r.region_values[unranked] == 0)


def test_cancel_before_start_returns_empty_result():
    rs = RegionSet.grid((10, 10), rows=2, cols=2)
    r = attribute(LogisticScorer.random(4, 1), rs, cancel=lambda: True)
    assert not r.complete and r.order == [] and r.evaluations == 0


def test_efficient_reference_semantics_small_case():
    # With update_step=1 every pick re-scores everything: the positive picks equal exact greedy's.
    rs = RegionSet.grid((30, 30), rows=3, cols=3)
    scorer = LogisticScorer.random(rs.n, 2, seed=11, pairwise=False)
    exact = attribute(scorer, rs)
    eff = attribute(scorer, rs, mode="efficient", update_step=1, pending_samples=100)
    assert eff.order == exact.order


def test_modes_use_fewer_evaluations_and_stay_faithful():
    rs = RegionSet.grid((80, 80), rows=8, cols=8)
    ratios = []
    for seed in range(5):
        scorer = LogisticScorer.random(rs.n, 3, seed=seed)
        exact = attribute(scorer, rs)
        assert exact.evaluations == 64 * 65
        for mode, fewer in (("efficient", 2.5), ("early_stop", 4)):
            r = attribute(scorer, rs, mode=mode)
            assert r.evaluations < exact.evaluations / fewer
            ratios.append(r.insertion_auc / exact.insertion_auc)
    assert np.mean(ratios) > 0.95


class BadScorer:
    num_tokens = 2

    def __init__(self, out):
        self.out = out

    def __call__(self, visible):
        return self.out(visible)


@pytest.mark.parametrize("out, message", [
    (lambda v: torch.zeros(v.shape[0], 3), "expected"),
    (lambda v: torch.full((v.shape[0], 2), float("nan")), "NaN"),
    (lambda v: torch.full((v.shape[0], 2), 4.0), "logits"),
    (lambda v: np.zeros((v.shape[0], 2)), "torch.Tensor"),
])
def test_bad_scorer_output_is_named(out, message):
    with pytest.raises(ScorerError, match=message):
        attribute(BadScorer(out), np.arange(4).reshape(2, 2))


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "fast"}, "mode must be one of"),
    ({"lambda1": -1}, "lambda1"),
    ({"lambda1": 0, "lambda2": 0}, "both be 0"),
    ({"batch_size": 0}, "batch_size"),
    ({"mode": "exact", "window": 3}, "unknown parameter"),
    ({"mode": "efficient", "search_scope": 0}, "search_scope"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(InputError, match=message):
        attribute(LogisticScorer.random(4, 1), np.arange(4).reshape(2, 2), **kwargs)


def test_single_region_and_bad_scorer_object_are_rejected():
    with pytest.raises(InputError, match="scores 5 regions"):
        attribute(LogisticScorer.random(5, 1), np.arange(4).reshape(2, 2))
    with pytest.raises(InputError, match="at least 2 regions"):
        attribute(LogisticScorer.random(1, 1), np.zeros((3, 3), dtype=int))
    with pytest.raises(InputError, match="num_tokens"):
        attribute(lambda v: v, np.arange(4).reshape(2, 2))
    with pytest.raises(InputError, match="RegionSet or an integer label map"):
        attribute(LogisticScorer.random(4, 1), [[0, 1], [2, 3]])


@pytest.mark.parametrize("mode", ["exact", "efficient", "early_stop"])
def test_candidate_masks_follow_the_batch_not_n_squared(mode, monkeypatch):
    from eagle_widgets.core import search

    built = []
    original = search._with_each
    monkeypatch.setattr(search, "_with_each", lambda base, c: built.append(len(c)) or original(base, c))
    rs = RegionSet.grid((30, 30), rows=6, cols=6)
    attribute(EvidenceScorer(rs.n, [3]), rs, mode=mode, batch_size=8)
    # At most batch_size / 2 candidates (each with its complement) at once; the efficient search's pending
    # samples are a fixed parameter, not N.
    assert built and max(built) <= max(4, search.DEFAULT_PARAMS[mode].get("pending_samples", 0))


def test_progress_comes_within_a_step_too():
    rs = RegionSet.grid((30, 30), rows=6, cols=6)
    updates = []
    attribute(EvidenceScorer(rs.n, [3]), rs, mode="exact", batch_size=8, progress=updates.append)
    first_step = [u for u in updates if u.step == 0]
    assert len(first_step) >= rs.n // 4 - 1  # 36 candidates, 4 per batch: reports before the first pick
    assert [u.evaluations for u in first_step] == sorted(u.evaluations for u in first_step)
