"""The greedy region search of EAGLE: exact (the paper's), efficient (the reference's) and early stop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from . import validation
from .attribution import Attribution
from .errors import Cancelled, InputError, ScorerError
from .regions import RegionSet
from .spans import JointSet, PromptSpans

MODES = ("exact", "efficient", "early_stop")
# What the caller knows about the answer and puts on the result when it is built (never patched on later).
CONTEXT_FIELDS = ("token_labels", "image", "info", "context")
DEFAULT_PARAMS = {
    "exact": {},
    "efficient": {"search_scope": 10, "pending_samples": 8, "update_step": 5},
    "early_stop": {"window": 8, "patience": 5, "tol": 0.01},
}


@dataclass(frozen=True)
class ProgressUpdate:
    """What a progress callback receives after each greedy step."""

    mode: str
    step: int  # regions ranked so far
    total_steps: int  # regions in all
    evaluations: int  # scorer rows evaluated so far
    total_evaluations: int  # the expected total (an estimate outside exact mode)
    elapsed_s: float
    order: tuple[int, ...]  # the positive picks so far, most important first
    scores: tuple[float, ...] = ()  # F along `order` as far as measured (scores[k]: the first k regions)

    @property
    def fraction(self) -> float:
        return min(1.0, self.evaluations / max(1, self.total_evaluations))

    @property
    def eta_s(self) -> float | None:
        if self.evaluations == 0:
            return None
        return self.elapsed_s * max(0, self.total_evaluations - self.evaluations) / self.evaluations


class _Evaluator:
    """Calls the scorer in batches, validates what it returns, counts rows and time, honours cancel."""

    def __init__(self, scorer, num_regions: int, batch_size: int, cancel):
        self.scorer = scorer
        self.num_regions = num_regions
        self.num_tokens = int(scorer.num_tokens)
        self.batch_size = batch_size
        self.cancel = cancel
        self.evaluations = 0
        self.scorer_s = 0.0

    def cancelled(self) -> bool:
        if self.cancel is None:
            return False
        if hasattr(self.cancel, "is_set"):
            return bool(self.cancel.is_set())
        return bool(self.cancel())

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        outs = []
        for start in range(0, visible.shape[0], self.batch_size):
            if self.cancelled():
                raise Cancelled
            chunk = visible[start:start + self.batch_size]
            t0 = time.perf_counter()
            out = self.scorer(chunk)
            self.scorer_s += time.perf_counter() - t0
            outs.append(self._check(out, chunk.shape[0]))
            self.evaluations += chunk.shape[0]
        return torch.cat(outs) if outs else torch.zeros(0, self.num_tokens, dtype=torch.float64)

    def _check(self, out, rows: int) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise ScorerError(f"the scorer must return a torch.Tensor, got {type(out).__name__}")
        if out.shape != (rows, self.num_tokens):
            raise ScorerError(f"the scorer returned shape {tuple(out.shape)} for {rows} masks; "
                              f"expected ({rows}, {self.num_tokens}) (num_tokens={self.num_tokens})")
        out = out.detach().to(device="cpu", dtype=torch.float64)
        if not torch.isfinite(out).all():
            raise ScorerError("the scorer returned NaN or infinite probabilities")
        if out.min() < -1e-4 or out.max() > 1 + 1e-4:
            raise ScorerError(f"the scorer returned values outside [0, 1] ({out.min():.4g}..{out.max():.4g}); "
                              "it must return probabilities, not logits")
        return out.clamp_(0.0, 1.0)


class _Search:
    """State shared by the modes: the evaluator, measured points and the progress reporting."""

    def __init__(self, scorer, regions: RegionSet, mode, lambda1, lambda2, batch_size, progress, cancel):
        self.regions = regions
        self.n = regions.n
        self.mode = mode
        self.lam1, self.lam2 = float(lambda1), float(lambda2)
        self.ev = _Evaluator(scorer, self.n, batch_size, cancel)
        self.progress = progress
        self.t0 = time.perf_counter()
        self.known: dict[bytes, torch.Tensor] = {}  # visibility mask -> token probabilities
        self.total_evaluations = 0
        self.p_full = self.p_black = None
        self.context: dict = {}  # put on the result when it is built (see CONTEXT_FIELDS)
        self.prefix_scores: list[float] = []  # F of the first k picks, k = 0, 1, ... (for previews)
        self._prefix = torch.zeros(self.n, dtype=torch.bool)

    def objective(self, p_ins: torch.Tensor, p_del: torch.Tensor) -> torch.Tensor:
        return self.lam1 * p_ins.mean(dim=-1) + self.lam2 * (1.0 - p_del.mean(dim=-1))

    def remember(self, visible: torch.Tensor, probs: torch.Tensor) -> None:
        self.known[visible.numpy().tobytes()] = probs

    def score_with_each(self, base: torch.Tensor, candidates, order=None) -> tuple[torch.Tensor, ...]:
        """F, insertion and deletion probabilities of base ∪ {c} for each candidate label c. The masks are built
        a batch at a time, so memory follows the batch size, not N²; with `order`, progress is reported after
        each batch too (a first step over thousands of regions is not silent)."""
        candidates = torch.as_tensor(candidates, dtype=torch.long)
        step = max(1, self.ev.batch_size // 2)  # each set is scored with its complement
        parts = []
        for i in range(0, len(candidates), step):
            parts.append(self.score_sets(_with_each(base, candidates[i:i + step])))
            if order is not None and i + step < len(candidates):
                self.report(order)
        return tuple(torch.cat(p) for p in zip(*parts))

    def score_sets(self, sets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """F, insertion and deletion probabilities of each set (rows of a [M, N] bool tensor)."""
        p = self.ev(torch.cat([sets, ~sets]))
        m = sets.shape[0]
        return self.objective(p[:m], p[m:]), p[:m], p[m:]

    def endpoints(self) -> None:
        full = torch.ones(1, self.n, dtype=torch.bool)
        p = self.ev(torch.cat([full, ~full]))
        self.p_full, self.p_black = p[0], p[1]
        self.remember(full[0], p[0])
        self.remember(~full[0], p[1])

    def report(self, order) -> None:
        if self.progress is None:
            return
        while len(self.prefix_scores) <= len(order):  # extend F along the picks from what is measured
            k = len(self.prefix_scores)
            visible = self._prefix.clone()
            if k:
                visible[order[k - 1]] = True
            a, b = self.known.get(visible.numpy().tobytes()), self.known.get((~visible).numpy().tobytes())
            if a is None or b is None:
                break
            self._prefix = visible
            self.prefix_scores.append(float(self.objective(a[None], b[None])[0]))
        self.progress(ProgressUpdate(
            mode=self.mode, step=len(order), total_steps=self.n, evaluations=self.ev.evaluations,
            total_evaluations=max(self.total_evaluations, self.ev.evaluations),
            elapsed_s=time.perf_counter() - self.t0, order=tuple(int(r) for r in order),
            scores=tuple(self.prefix_scores)))

    def trajectory(self, order: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Insertion/deletion token probabilities along `order`, measuring only points not yet known."""
        prefix = torch.zeros(len(order) + 1, self.n, dtype=torch.bool)
        for k, r in enumerate(order, start=1):
            prefix[k] = prefix[k - 1]
            prefix[k, r] = True
        masks = torch.cat([prefix, ~prefix])
        missing = [i for i in range(masks.shape[0]) if masks[i].numpy().tobytes() not in self.known]
        if missing:
            probs = self.ev(masks[missing])
            for i, p in zip(missing, probs):
                self.remember(masks[i], p)
        allp = torch.stack([self.known[m.numpy().tobytes()] for m in masks])
        k1 = len(order) + 1
        return allp[:k1].numpy(), allp[k1:].numpy()

    def result(self, order: list[int], params: dict, complete: bool) -> Attribution:
        if self.p_full is None:  # cancelled before anything was measured
            raise Cancelled
        if complete:
            ins, dele = self.trajectory(order)
        else:
            # A partial result only uses points already measured: no new model calls after a cancel.
            ins, dele = self._known_prefix(order)
            order = order[: ins.shape[0] - 1]
        fr = self.regions.area_fractions
        areas = np.concatenate([[0.0], np.cumsum(fr[order])]) if order else np.zeros(1)
        if complete:
            areas[-1] = 1.0
        total = time.perf_counter() - self.t0
        return Attribution(
            regions=self.regions, order=order, areas=areas, insertion_tokens=ins, deletion_tokens=dele,
            p_full=self.p_full.numpy(), p_black=self.p_black.numpy(), lambda1=self.lam1, lambda2=self.lam2,
            mode=self.mode, params=params, evaluations=self.ev.evaluations, complete=complete,
            timings={"total_s": total, "scorer_s": self.ev.scorer_s, "engine_s": max(0.0, total - self.ev.scorer_s)},
            **self.context,
        )

    def _known_prefix(self, order):
        ins, dele = [], []
        vis = torch.zeros(self.n, dtype=torch.bool)
        steps = [None, *order]
        for r in steps:
            if r is not None:
                vis = vis.clone()
                vis[r] = True
            a, b = self.known.get(vis.numpy().tobytes()), self.known.get((~vis).numpy().tobytes())
            if a is None or b is None:
                break
            ins.append(a)
            dele.append(b)
        return torch.stack(ins).numpy(), torch.stack(dele).numpy()


def attribute(scorer, regions, mode: str = "exact", lambda1: float = 1.0, lambda2: float = 1.0,
              batch_size: int = 64, progress: Callable[[ProgressUpdate], None] | None = None,
              cancel=None, context: dict | None = None, **mode_params) -> Attribution:
    """Order the regions by the EAGLE objective F(S) = λ1·mean p(only S) + λ2·(1 − mean p(S removed)).

    `scorer` follows the `Scorer` protocol; `regions` is a RegionSet or an integer label map; `mode` is
    "exact" (the paper's greedy), "efficient" (the reference's search_scope / pending_samples /
    update_step variant) or "early_stop" (lazy greedy over a sliding window of candidates that stops
    when F saturates; parameters window, patience, tol). `progress` is called after every step with a
    `ProgressUpdate`; `cancel` is a threading.Event or a callable returning True to stop. A cancelled
    run returns a consistent partial result with `complete=False`. `context` (token_labels, image, info) is
    put on the result when it is built.
    """
    regions = ground_set(regions)
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not hasattr(scorer, "num_tokens") or not callable(scorer):
        raise InputError("scorer must be callable and have a num_tokens attribute (see eagle_widgets.core.Scorer)")
    if int(scorer.num_tokens) < 1:
        raise InputError("the scorer has no target tokens (num_tokens < 1)")
    expected = getattr(scorer, "num_regions", None)
    if expected is not None and int(expected) != regions.n:
        raise InputError(f"the scorer scores {int(expected)} regions but the image is split into {regions.n}")
    if regions.n < 2:
        raise InputError(f"the image must be split into at least 2 regions, got {regions.n}")
    if regions.n > validation.MAX_REGIONS:
        raise InputError(f"the image is split into {regions.n} regions, more than the limit of "
                         f"{validation.MAX_REGIONS} (an exact search costs N(N+1) model calls and its candidate "
                         f"masks grow as N^2); merge regions or raise EAGLE_WIDGETS_MAX_REGIONS")
    lambda1, lambda2 = validation.lambdas(lambda1, lambda2)
    batch_size = validation.integer(batch_size, "batch_size", minimum=1)
    unknown = set(mode_params) - set(DEFAULT_PARAMS[mode])
    if unknown:
        allowed = ", ".join(DEFAULT_PARAMS[mode]) or "none"
        raise InputError(f"unknown parameter(s) {', '.join(sorted(unknown))} for mode {mode!r} (allowed: {allowed})")
    params = {**DEFAULT_PARAMS[mode], **mode_params}
    for key, value in params.items():
        if key == "tol":
            if validation.weight(value, "tol") >= 1:
                raise InputError(f"tol must lie in [0, 1), got {value}")
        else:
            validation.integer(value, key, minimum=1)

    unknown_context = set(context or {}) - set(CONTEXT_FIELDS)
    if unknown_context:
        raise InputError(f"context takes {', '.join(CONTEXT_FIELDS)}; got {', '.join(sorted(unknown_context))}")
    search = _Search(scorer, regions, mode, lambda1, lambda2, int(batch_size), progress, cancel)
    search.context = dict(context or {})
    run = {"exact": _exact, "efficient": _efficient, "early_stop": _early_stop}[mode]
    order: list[int] = []
    try:
        search.endpoints()
        run(search, order, **params)
        return search.result(order, params, complete=True)
    except Cancelled:
        if search.p_full is None:
            return _empty_result(search, params)
        return search.result(order, params, complete=False)


def ground_set(elements):
    """What a search orders: a RegionSet (or a label map), PromptSpans, or a JointSet of both."""
    if isinstance(elements, (PromptSpans, JointSet)):
        return elements
    return RegionSet.coerce(elements)


def expected_evaluations(num_regions: int, mode: str = "exact", **mode_params) -> int:
    """How many masked images a search scores (exact for "exact" and "efficient"; a lower bound for
    "early_stop", whose window steps depend on the scores): what a paid API or a busy server is told first."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    n = validation.integer(num_regions, "num_regions", minimum=2)
    params = {**DEFAULT_PARAMS[mode], **mode_params}
    if mode == "exact":
        return n * (n + 1)
    if mode == "efficient":
        return _efficient_estimate(n, params["search_scope"], params["pending_samples"], params["update_step"])
    return 2 + 4 * n


def attribute_order(scorer, regions, order, *, batch_size: int = 64, mode: str = "given order",
                    context: dict | None = None) -> Attribution:
    """The insertion and deletion trajectories of a given region order (another method's ranking),
    measured with the same scorer, so its curves and metrics compare directly with EAGLE's. `context` as in
    `attribute`."""
    unknown_context = set(context or {}) - set(CONTEXT_FIELDS)
    if unknown_context:
        raise InputError(f"context takes {', '.join(CONTEXT_FIELDS)}; got {', '.join(sorted(unknown_context))}")
    regions = ground_set(regions)
    order = [int(r) for r in order]
    if sorted(order) != list(range(regions.n)):
        raise InputError(f"order must list each of the {regions.n} region labels once")
    if getattr(scorer, "num_regions", regions.n) != regions.n:
        raise InputError(f"the scorer scores {scorer.num_regions} regions but the image is split into {regions.n}")
    search = _Search(scorer, regions, mode, 1.0, 1.0, int(batch_size), None, None)
    search.context = dict(context or {})
    search.endpoints()
    return search.result(order, {}, complete=True)


def _empty_result(search: _Search, params: dict) -> Attribution:
    t = search.ev.num_tokens
    nan = np.full(t, np.nan)
    return Attribution(regions=search.regions, order=[], areas=np.zeros(1), insertion_tokens=nan[None],
                       deletion_tokens=nan[None], p_full=nan, p_black=nan, lambda1=search.lam1,
                       lambda2=search.lam2, mode=search.mode, params=params,
                       evaluations=search.ev.evaluations, complete=False,
                       timings={"total_s": time.perf_counter() - search.t0, "scorer_s": search.ev.scorer_s,
                                "engine_s": 0.0}, **search.context)


def _with_each(base: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Rows base ∪ {c} for each candidate label c."""
    sets = base.expand(len(candidates), -1).clone()
    sets[torch.arange(len(candidates)), candidates] = True
    return sets


def _exact(s: _Search, order: list[int]) -> None:
    s.total_evaluations = s.n * (s.n + 1)
    remaining = torch.arange(s.n)
    chosen = torch.zeros(s.n, dtype=torch.bool)
    while len(remaining) > 1:
        f, p_ins, p_del = s.score_with_each(chosen, remaining, order)
        j = int(torch.argmax(f))  # first maximum: ties go to the lowest label, `remaining` is sorted
        chosen = _with_each(chosen, remaining[j:j + 1])[0]
        s.remember(chosen, p_ins[j])
        s.remember(~chosen, p_del[j])
        order.append(int(remaining[j]))
        remaining = torch.cat([remaining[:j], remaining[j + 1:]])
        s.report(order)
    order.append(int(remaining[0]))  # its point is f(x) / f(black), already measured
    s.report(order)


def _efficient(s: _Search, order: list[int], search_scope: int, pending_samples: int, update_step: int) -> None:
    n = s.n
    s.total_evaluations = _efficient_estimate(n, search_scope, pending_samples, update_step)
    candidates = list(range(n))  # the (possibly stale) list, best first after each re-sort
    chosen = torch.zeros(n, dtype=torch.bool)
    opposite: list[int] = []
    removed = torch.zeros(n, dtype=torch.bool)  # O as a mask
    i = 0
    while len(candidates) > 1:
        full_update = not order or i % update_step == 0
        pool = candidates if full_update else candidates[:search_scope]
        f, p_ins, p_del = s.score_with_each(chosen, pool, order)
        if full_update:
            rank = torch.sort(f, descending=True, stable=True).indices.tolist()
            candidates = [pool[r] for r in rank]
            j_pool = rank[0]
        else:
            j_pool = int(torch.argmax(f))
        pick = pool[j_pool]
        chosen = _with_each(chosen, torch.tensor([pick]))[0]
        s.remember(chosen, p_ins[j_pool])
        s.remember(~chosen, p_del[j_pool])
        order.append(pick)
        candidates.remove(pick)
        if len(candidates) > 1:
            if i == 0:
                worst = candidates.pop()
                opposite.append(worst)
                removed[worst] = True
            elif len(candidates) > pending_samples:
                pending = torch.tensor(candidates[-pending_samples:])
                shown_only = _with_each(removed, pending)  # O ∪ {c}
                f_opp, p_rest, p_only = s.score_sets(~shown_only)  # insertion of V∖(O∪{c}), deletion of it
                j = int(torch.argmax(f_opp))
                worst = int(pending[j])
                removed = shown_only[j]
                s.remember(~shown_only[j], p_rest[j])
                s.remember(shown_only[j], p_only[j])
                opposite.append(worst)
                candidates.remove(worst)
        s.report(order)
        i += 1
    order.extend(candidates)
    order.extend(reversed(opposite))
    s.report(order)


def _efficient_estimate(n, scope, pending, update) -> int:
    total, remaining, i = 2, n, 0
    while remaining > 1:
        total += 2 * (remaining if i == 0 or i % update == 0 else min(scope, remaining))
        remaining -= 1
        if remaining > 1:
            if i == 0:
                remaining -= 1
            elif remaining > pending:
                total += 2 * pending
                remaining -= 1
        i += 1
    return total + 4


def _early_stop(s: _Search, order: list[int], window: int, patience: int, tol: float) -> None:
    """Lazy greedy over a sliding window, stopped when F stops rising.

    One round scores every single region; each step then re-scores only the `window` candidates with
    the highest last-known F and takes the best. The search stops once the last `patience` gains of F are
    all below `tol` × |F(V) − F(∅)|. Regions left are ordered by their last-known F; their curve points
    are then measured.
    """
    n = s.n
    f_all = float(s.objective(s.p_full[None], s.p_black[None]))
    f_empty = float(s.objective(s.p_black[None], s.p_full[None]))
    scale = max(abs(f_all - f_empty), 1e-12)
    s.total_evaluations = 2 + 2 * n + 2 * n  # one round plus the curve; the window steps add to it
    priority = torch.full((n,), -torch.inf, dtype=torch.float64)
    remaining = torch.ones(n, dtype=torch.bool)
    chosen = torch.zeros(n, dtype=torch.bool)
    pool = torch.arange(n)
    last_f, recent = f_empty, []
    while int(remaining.sum()) > 1:
        f, p_ins, p_del = s.score_with_each(chosen, pool, order)
        priority[pool] = f
        j = int(torch.argmax(f))
        pick = int(pool[j])
        chosen = _with_each(chosen, pool[j:j + 1])[0]
        s.remember(chosen, p_ins[j])
        s.remember(~chosen, p_del[j])
        remaining[pick] = False
        order.append(pick)
        s.total_evaluations += 2 * len(pool) if len(order) > 1 else 0
        s.report(order)
        f_now = float(f[j])
        recent = (recent + [f_now - last_f])[-patience:]
        last_f = f_now
        if len(recent) == patience and max(recent) < tol * scale:
            break
        left = torch.nonzero(remaining).flatten()
        top = torch.sort(priority[left], descending=True, stable=True).indices[:window]
        pool = left[top]
    left = torch.nonzero(remaining).flatten()
    rest = torch.sort(priority[left], descending=True, stable=True).indices
    order.extend(int(left[r]) for r in rest)
    s.report(order)
