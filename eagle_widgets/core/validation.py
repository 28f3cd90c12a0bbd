"""One validation layer for what users pass in (the API, the Explorer and the CLI share it).

Every check either returns the value in its canonical form or raises `InputError` naming the argument and
what was wrong; none lets a bool, a float or a string stand in for an integer, or clamps silently.
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real

from .errors import InputError

# Limits that keep a run inside memory and time; each can be raised by the environment variable named.
MAX_REGIONS = int(os.environ.get("EAGLE_WIDGETS_MAX_REGIONS", 2048))
MAX_IMAGE_PIXELS = int(os.environ.get("EAGLE_WIDGETS_MAX_IMAGE_PIXELS", 64_000_000))
# Bytes of any one input file (image, mask, imported array) read or hashed.
MAX_FILE_BYTES = int(os.environ.get("EAGLE_WIDGETS_MAX_FILE_BYTES", 512 << 20))


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)  # numpy ints count; numpy bools are not Integral


def integer(value, name: str, *, minimum: int | None = None, maximum: int | None = None, hint: str = "") -> int:
    """An int (numpy ints too) within [minimum, maximum]; bools, floats and strings are refused."""
    if not _is_int(value):
        raise InputError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum or maximum is not None and value > maximum:
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise InputError(f"{name} must be {bounds}, got {value}{hint}")
    return value


def weight(value, name: str) -> float:
    """A finite real number >= 0 (a λ)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise InputError(f"{name} must be a number >= 0, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{name} must be a finite number >= 0, got {value}")
    return value


def lambdas(lambda1, lambda2) -> tuple[float, float]:
    l1, l2 = weight(lambda1, "lambda1"), weight(lambda2, "lambda2")
    if l1 == 0 and l2 == 0:
        raise InputError("lambda1 and lambda2 cannot both be 0: the objective would be constant")
    return l1, l2


def region_count(value, name: str = "regions") -> int:
    """How many SLICO regions to ask for."""
    value = integer(value, name, minimum=2)
    if value > MAX_REGIONS:
        raise InputError(f"{name} must be at most {MAX_REGIONS}, got {value} (an exact search costs N(N+1) model "
                         f"calls; raise the limit with the environment variable EAGLE_WIDGETS_MAX_REGIONS)")
    return value


def token_indices(tokens, n: int, *, name: str = "tokens", allow_negative: bool = True) -> list[int]:
    """Sorted distinct indices into an answer of `n` tokens (negative ones count from the end)."""
    if _is_int(tokens):
        tokens = [tokens]
    if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__iter__"):
        raise InputError(f"{name} must be a list of token indices, got {tokens!r}")
    picked = []
    for t in tokens:
        if not _is_int(t):
            raise InputError(f"{name} must hold integer token indices, got {t!r} ({type(t).__name__})")
        picked.append(int(t))
    if not picked:
        raise InputError(f"the {name} selection is empty: select at least one generated token")
    low = -n if allow_negative else 0
    bad = [t for t in picked if not low <= t < n]
    if bad:
        raise InputError(f"token index {bad[0]} is out of range: the answer has {n} tokens (0..{n - 1})")
    return sorted({t % n for t in picked})


def masks(visible, num_regions: int):
    """Visibility masks for a scorer: a [B, N] boolean tensor with N = `num_regions` (a tensor, array or list)."""
    import numpy as np
    import torch

    try:
        v = torch.as_tensor(np.asarray(visible.cpu() if isinstance(visible, torch.Tensor) else visible))
    except (TypeError, ValueError):
        raise InputError(f"masks must be a [B, {num_regions}] boolean array, got {type(visible).__name__}") from None
    if v.ndim != 2 or v.shape[1] != num_regions:
        raise InputError(f"masks must be [B, {num_regions}] (one column per region), got shape {tuple(v.shape)}")
    if v.dtype != torch.bool:
        if v.is_floating_point() or v.is_complex() or not bool(((v == 0) | (v == 1)).all()):
            raise InputError("masks must be boolean (True: the region is visible)")
        v = v.bool()
    return v
