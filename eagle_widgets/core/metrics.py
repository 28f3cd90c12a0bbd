"""Faithfulness and localisation metrics (method section 7). Plain numpy, usable on any method's curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

SENSITIVE_THRESHOLD = 0.2


def auc(values, areas) -> float:
    """Trapezoidal area under `values` over `areas` (both 1-D, same length)."""
    y = np.asarray(values, dtype=np.float64)
    x = np.asarray(areas, dtype=np.float64)
    if y.shape != x.shape or y.ndim != 1:
        raise InputError(f"auc needs two 1-D arrays of the same length, got {y.shape} and {x.shape}")
    if len(y) < 2:
        return 0.0
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) * 0.5))


def insertion_auc(insertion, areas) -> float:
    """AUC of the insertion curve [f(black), f(S_1), ..., f(x)] over areas [0, a_1, ..., 1] (higher is better)."""
    return auc(insertion, areas)


def deletion_auc(deletion, areas) -> float:
    """AUC of the deletion curve [f(x), f(x without S_1), ..., f(black)] over removed area (lower is better)."""
    return auc(deletion, areas)


def reliance_scores(insertion_tokens, areas) -> np.ndarray:
    """Per-token reliance on the image, I_t = AUC(area, c_t) - min(c_t) (method section 6).

    `insertion_tokens` is [K+1, T]: each token's probability along the insertion path.
    """
    c = np.asarray(insertion_tokens, dtype=np.float64)
    x = np.asarray(areas, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != len(x):
        raise InputError(f"insertion_tokens must be [len(areas), T], got {c.shape} for {len(x)} areas")
    dx = (x[1:] - x[:-1])[:, None]
    area_under = np.sum(dx * (c[1:] + c[:-1]) * 0.5, axis=0)
    return area_under - c.min(axis=0)


def sensitive_tokens(p_full, p_black, threshold: float = SENSITIVE_THRESHOLD) -> np.ndarray:
    """A token is sensitive to the image when p_t(x) - p_t(black) > threshold."""
    return (np.asarray(p_full, dtype=np.float64) - np.asarray(p_black, dtype=np.float64)) > threshold


def pixel_box(box, shape) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in whole pixels of an image of `shape` (H, W), checked: not empty, not outside the
    image, and not a normalised box (values in [0, 1]) mistaken for pixels."""
    values = [float(v) for v in box]
    h, w = shape[:2]
    if len(values) != 4:
        raise InputError(f"box must be (x0, y0, x1, y1), got {box}")
    if all(0.0 <= v <= 1.0 for v in values) and any(v != int(v) for v in values) and max(h, w) > 2:
        raise InputError(f"box {list(box)} looks normalised (every value within [0, 1]); boxes are in pixels "
                         f"of the {w}x{h} image: multiply by the image size (a manifest can say "
                         "\"box_units\": \"fraction\")")
    x0, y0, x1, y1 = (int(round(v)) for v in values)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"box must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0 in whole pixels, got {box}")
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        raise InputError(f"box {list(box)} lies outside the {w}x{h} image")
    return x0, y0, x1, y1


def pointing_game(saliency, *, box=None, mask=None) -> bool:
    """Hit when the global maximum of `saliency` lies inside the box (x0, y0, x1, y1; exclusive ends) or mask.

    Ties at the maximum count as hits (reference semantics), but a constant map never hits:
    it points nowhere.
    """
    sal = np.asarray(saliency, dtype=np.float64)
    if sal.ndim != 2:
        raise InputError(f"saliency must be an HxW map, got shape {sal.shape}")
    if (box is None) == (mask is None):
        raise InputError("pointing_game needs exactly one of box= or mask=")
    peak = sal.max()
    if not np.isfinite(peak) or peak == sal.min():
        return False
    at_peak = sal == peak
    if mask is not None:
        region = np.asarray(mask, dtype=bool)
        if region.shape != sal.shape:
            raise InputError(f"mask shape {region.shape} differs from the map's {sal.shape}")
    else:
        x0, y0, x1, y1 = pixel_box(box, sal.shape)
        region = np.zeros(sal.shape, dtype=bool)
        region[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    return bool(np.any(at_peak & region))


@dataclass(frozen=True)
class Correction:
    """Result of the hallucination-correction search for one sample."""

    mcr: float  # removed area fraction at the first corrected prefix; 1.0 when never corrected
    corrected: bool
    removed_regions: int


def minimal_correction_ratio(order, area_fractions, answers_correct, *, batch_size: int = 16) -> Correction:
    """Remove the lowest-ranked regions first, from the full image down, until the answer is correct.

    `answers_correct(visible: bool ndarray [B, N]) -> bool sequence [B]` regenerates the answer for each
    visibility mask and says whether it is correct. Prefixes are checked in batches, in order.
    """
    order = [int(r) for r in order]
    fr = np.asarray(area_fractions, dtype=np.float64)
    n = len(fr)
    if sorted(order) != list(range(n)):
        raise InputError(f"order must be a permutation of the {n} regions")
    removal = order[::-1]  # least supportive first
    removed_area = np.concatenate([[0.0], np.cumsum(fr[removal])])
    removed_area[-1] = 1.0
    for start in range(0, n + 1, batch_size):
        js = range(start, min(start + batch_size, n + 1))
        vis = np.ones((len(js), n), dtype=bool)
        for row, j in enumerate(js):
            vis[row, removal[:j]] = False
        ok = np.asarray(answers_correct(vis), dtype=bool)
        if ok.shape != (len(js),):
            raise InputError(f"answers_correct returned shape {ok.shape}, expected ({len(js)},)")
        if ok.any():
            j = js[int(np.argmax(ok))]
            return Correction(float(removed_area[j]), True, j)
    return Correction(1.0, False, n)


def correction_summary(corrections, threshold: float = 0.1) -> dict:
    """AMCR and CSR@threshold over all samples, and the reference's CSR over corrected samples only."""
    corrections = list(corrections)
    if not corrections:
        raise InputError("correction_summary needs at least one sample")
    mcr = np.array([c.mcr for c in corrections])
    corrected = np.array([c.corrected for c in corrections])
    hit = (mcr <= threshold) & corrected
    return {
        "samples": len(corrections),
        "amcr": float(mcr.mean()),
        "csr": float(hit.mean()),
        "csr_reference": float(hit[corrected].mean()) if corrected.any() else float("nan"),
        "corrected": int(corrected.sum()),
    }
