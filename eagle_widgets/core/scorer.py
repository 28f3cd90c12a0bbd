"""The `Scorer` protocol between the engine and a model, and synthetic scorers with known answers.

A scorer maps a batch of visibility masks over the N regions to the probability of each of the T
target tokens when exactly those regions are shown (the rest black):

    scorer(visible: torch.BoolTensor[B, N]) -> torch.FloatTensor[B, T]
    scorer.num_tokens == T
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Scorer(Protocol):
    num_tokens: int

    def __call__(self, visible: torch.Tensor) -> torch.Tensor: ...


class LogisticScorer:
    """A synthetic model: p_t = sigmoid(bias_t + sum_r w[t, r] v_r + sum_{r<s} q[t, r, s] v_r v_s).

    With `pairwise=None` it is additive; the pairwise terms make greedy order non-trivial.
    """

    def __init__(self, weights: torch.Tensor, bias: torch.Tensor | None = None,
                 pairwise: torch.Tensor | None = None):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.weights.ndim != 2:
            raise ValueError("weights must be [T, N]")
        t, n = self.weights.shape
        self.bias = torch.zeros(t, dtype=torch.float64) if bias is None else torch.as_tensor(bias, dtype=torch.float64)
        self.pairwise = None if pairwise is None else torch.as_tensor(pairwise, dtype=torch.float64)
        if self.pairwise is not None and self.pairwise.shape != (t, n, n):
            raise ValueError("pairwise must be [T, N, N]")
        self.num_tokens = t
        self.num_regions = n
        self.calls = 0

    @classmethod
    def random(cls, num_regions: int, num_tokens: int = 3, *, seed: int = 0, pairwise: bool = True,
               scale: float = 3.0) -> LogisticScorer:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(num_tokens, num_regions, generator=g, dtype=torch.float64) * scale / num_regions ** 0.5
        b = torch.randn(num_tokens, generator=g, dtype=torch.float64)
        q = None
        if pairwise:
            q = torch.randn(num_tokens, num_regions, num_regions, generator=g, dtype=torch.float64)
            q = torch.triu(q, diagonal=1) * scale / num_regions
        return cls(w, b, q)

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        v = visible.to(torch.float64)
        z = self.bias + v @ self.weights.T
        if self.pairwise is not None:
            z = z + torch.einsum("br,trs,bs->bt", v, self.pairwise, v)
        return torch.sigmoid(z).to(torch.float32)


class EvidenceScorer:
    """Token t is likely exactly when its evidence region `evidence[t]` is visible.

    `prior[t]` is its probability with no evidence (a high prior mimics a language-prior token).
    Other regions add a little noise-free distraction so ranking is not trivial.
    """

    def __init__(self, num_regions: int, evidence: list[int | None], *, prior: list[float] | None = None,
                 distraction: float = 0.02, seed: int = 0):
        self.num_regions = num_regions
        self.num_tokens = len(evidence)
        self.evidence = list(evidence)
        self.prior = torch.tensor(prior if prior is not None else [0.05] * self.num_tokens, dtype=torch.float32)
        g = torch.Generator().manual_seed(seed)
        self.distraction = torch.rand(self.num_tokens, num_regions, generator=g) * distraction
        self.calls = 0

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        v = visible.to(torch.float32)
        p = self.prior.expand(v.shape[0], -1).clone()
        for t, r in enumerate(self.evidence):
            if r is not None:
                p[:, t] = torch.where(visible[:, r], torch.tensor(0.95), p[:, t])
        p = p + v @ self.distraction.T / self.num_regions
        return p.clamp(0.0, 1.0)
