"""The common faithfulness protocol: score any saliency map with the same scorer as EAGLE (method §7).

Pixel protocol (the published one): rank the pixels by the map, then reveal (insertion) or remove
(deletion) the top i/steps of them on black, i = 1..steps. Region protocol (the fairer variant): each
region's score is the mean map value inside it, and the regions are revealed or removed in that order,
so that granularity does not decide the comparison. Both give an `Attribution` whose curves and
metrics are directly comparable with EAGLE's own.
"""

from __future__ import annotations

import numpy as np

from .attribution import Attribution
from .errors import InputError
from .regions import RegionSet
from .search import attribute_order

PIXEL_STEPS = 64


def _check_map(saliency, shape=None) -> np.ndarray:
    sal = np.asarray(saliency, dtype=np.float64)
    if sal.ndim != 2:
        raise InputError(f"a saliency map must be HxW, got shape {sal.shape}")
    if shape is not None and sal.shape != tuple(shape):
        raise InputError(f"the saliency map is {sal.shape[1]}x{sal.shape[0]} but the regions are "
                         f"{shape[1]}x{shape[0]}")
    if not np.all(np.isfinite(sal)):
        raise InputError("the saliency map holds NaN or infinite values")
    return sal


def pixel_bands(saliency, steps: int = PIXEL_STEPS, seed: int = 0) -> RegionSet:
    """`steps` regions of (nearly) equal area: band 0 holds the top 1/steps of pixels by saliency, and so on.

    Ties are broken by a fixed random permutation (not raster order, which would favour the top rows).
    """
    sal = _check_map(saliency)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 2 <= steps <= sal.size:
        raise InputError(f"steps must be an integer in 2..{sal.size}, got {steps!r}")
    flat = sal.ravel()
    tie_break = np.random.default_rng(seed).permutation(flat.size)
    rank = np.empty(flat.size, dtype=np.int64)
    rank[np.lexsort((tie_break, -flat))] = np.arange(flat.size)
    return RegionSet((rank * steps // flat.size).reshape(sal.shape), method=f"pixel bands({steps})")


def region_scores(regions: RegionSet, saliency) -> np.ndarray:
    """Mean saliency inside each region."""
    sal = _check_map(saliency, regions.shape)
    sums = np.bincount(regions.labels.ravel(), weights=sal.ravel(), minlength=regions.n)
    return sums / regions.areas


def order_by_scores(scores, seed: int = 0) -> list[int]:
    """Region labels from the highest score to the lowest (ties in a fixed random order)."""
    s = np.asarray(scores, dtype=np.float64)
    tie_break = np.random.default_rng(seed).permutation(len(s))
    return [int(i) for i in np.lexsort((tie_break, -s))]


def pixel_protocol(scorer_for, saliency, steps: int = PIXEL_STEPS, batch_size: int = 64) -> Attribution:
    """Insertion/deletion of the top i/steps pixels. `scorer_for(regions)` returns a Scorer over `regions`."""
    bands = pixel_bands(saliency, steps)
    return attribute_order(scorer_for(bands), bands, list(range(bands.n)), batch_size=batch_size,
                           mode="pixel protocol")


def region_protocol(scorer_for, regions: RegionSet, saliency, batch_size: int = 64, *, mode: str = "region protocol",
                    context: dict | None = None) -> Attribution:
    """Insertion/deletion of `regions` ordered by their mean saliency."""
    regions = RegionSet.coerce(regions)
    order = order_by_scores(region_scores(regions, saliency))
    return attribute_order(scorer_for(regions), regions, order, batch_size=batch_size, mode=mode, context=context)
