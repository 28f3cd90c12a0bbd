"""Pillow's 8-bit resampling, reproduced as sparse matrices, and a tracer of a processor's resize calls.

Pillow resizes an RGB image in two separable passes (columns, then rows), each with fixed-point
coefficients (22 fractional bits) and each rounded and clipped to uint8. The coefficients below follow
Pillow's `precompute_coeffs` and `normalize_coeffs_8bpc` (libImaging/Resample.c); tests check the result
against `PIL.Image.resize` bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

PRECISION_BITS = 22  # 32 - 8 - 2 in Pillow


def _bicubic(x):
    a = -0.5
    x = np.abs(x)
    return np.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1,
                    np.where(x < 2.0, (((x - 5) * x + 8) * x - 4) * a, 0.0))


def _sinc(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.sin(x * np.pi) / (x * np.pi)
    return np.where(x == 0.0, 1.0, y)


_HAMMING_A, _HAMMING_B = float(np.float32(0.54)), float(np.float32(0.46))


def _hamming(x):
    x = np.abs(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        # Pillow writes the constants as C floats (0.54f, 0.46f): their float32 values, to the last bit.
        y = np.sin(x * np.pi) / (x * np.pi) * (_HAMMING_A + _HAMMING_B * np.cos(x * np.pi))
    return np.where(x == 0.0, 1.0, np.where(x >= 1.0, 0.0, y))


FILTERS = {  # Pillow's resampling constant -> (filter, support)
    int(Image.Resampling.BOX): (lambda x: np.where((x > -0.5) & (x <= 0.5), 1.0, 0.0), 0.5),
    int(Image.Resampling.BILINEAR): (lambda x: np.maximum(0.0, 1.0 - np.abs(x)), 1.0),
    int(Image.Resampling.HAMMING): (_hamming, 1.0),
    int(Image.Resampling.BICUBIC): (_bicubic, 2.0),
    int(Image.Resampling.LANCZOS): (lambda x: np.where((x >= -3.0) & (x < 3.0), _sinc(x) * _sinc(x / 3.0), 0.0), 3.0),
}


def coefficients(in_size: int, out_size: int, resample: int) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's fixed-point taps for one axis: (first input index [out], int64 weights [out, ksize])."""
    filt, support = FILTERS[int(resample)]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = support * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    center = (np.arange(out_size) + 0.5) * scale
    xmin = np.maximum(np.trunc(center - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - xmin
    taps = np.arange(ksize)
    # As Pillow computes them, to the last bit: times the reciprocal scale, then summed in tap order.
    w = filt((taps[None, :] + xmin[:, None] - center[:, None] + 0.5) * (1.0 / filterscale))
    w = np.where(taps[None, :] < xmax[:, None], w, 0.0)
    total = np.add.accumulate(w, axis=1)[:, -1:]
    w = np.where(total != 0.0, w / np.where(total == 0.0, 1.0, total), w)
    fixed = np.where(w < 0, np.trunc(-0.5 + w * (1 << PRECISION_BITS)), np.trunc(0.5 + w * (1 << PRECISION_BITS)))
    return xmin, fixed.astype(np.int64)


def axis_matrix(in_size: int, out_size: int, resample: int):
    """scipy CSR [out, in] of the fixed-point taps of one pass."""
    from scipy.sparse import csr_matrix

    xmin, k = coefficients(in_size, out_size, resample)
    rows = np.repeat(np.arange(out_size), k.shape[1])
    cols = (xmin[:, None] + np.arange(k.shape[1])[None, :]).ravel()
    keep = (k.ravel() != 0) & (cols < in_size)
    return csr_matrix((k.ravel()[keep].astype(np.float64), (rows[keep], cols[keep])), shape=(out_size, in_size))


def round_pass(acc):
    """Pillow's end of a pass on fixed-point sums: add half, shift, clip to uint8 (works on numpy and torch)."""
    scaled = (acc + (1 << (PRECISION_BITS - 1))) / (1 << PRECISION_BITS)
    return scaled.floor().clip(0, 255) if hasattr(scaled, "floor") else np.clip(np.floor(scaled), 0, 255)


def emulate(image: np.ndarray, size: tuple[int, int], resample: int, rows_first: bool) -> np.ndarray:
    """Pillow's resize of an HxWx3 uint8 image to `size` (width, height), one pass order, in numpy."""
    (h_in, w_in), (w, h) = image.shape[:2], size
    across, down = axis_matrix(w_in, w, resample), axis_matrix(h_in, h, resample)
    out = []
    for c in range(3):
        x = image[:, :, c].astype(np.float64)
        if rows_first:
            out.append(round_pass((across @ round_pass(down @ x).T).T))
        else:
            out.append(round_pass(down @ round_pass((across @ x.T).T)))
    return np.stack(out, axis=-1).astype(np.uint8)


ORDER_PROBES = 16  # probes before two orders that never disagree are taken as equivalent


@cache
def rows_first(in_size: tuple[int, int], size: tuple[int, int], resample: int) -> bool | None:
    """Which pass Pillow runs first for this resize (versions differ), found by resizing probes: one that clips
    between passes both ways, then noise, whose rounding after the first pass differs between the orders even
    where nothing clips (a box filter never overshoots), until one order is left; None if neither reproduces
    Pillow. Where both always agree, either is right."""
    w, h = in_size
    rng = np.random.default_rng(0)
    clipping = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    cells = (np.add.outer(np.arange(h) // 3, np.arange(w) // 3) % 2).astype(bool)
    clipping[cells & (rng.random((h, w)) < 0.7)] = 0
    clipping[~cells & (rng.random((h, w)) < 0.7)] = 255
    orders = [False, True]
    for k in range(ORDER_PROBES):
        probe = clipping if k == 0 else rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        actual = np.asarray(Image.fromarray(probe).resize(size, resample=resample))
        orders = [o for o in orders if np.array_equal(emulate(probe, size, resample, o), actual)]
        if len(orders) < 2:
            break
    return orders[0] if orders else None


@dataclass
class ResizeCall:
    source: int | None  # -1: the processor's input image; k: the output of call k; None: anything else
    in_size: tuple[int, int]  # (width, height), Pillow's order
    size: tuple[int, int]
    resample: int
    plain: bool  # no box, no reducing gap, RGB


_hook_lock = threading.Lock()


def image_digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


@contextmanager
def resize_hook(handler):
    """Route `PIL.Image.Image.resize` calls made by this thread through `handler(original, image, size, kwargs)`.

    Other threads, and identity resizes (Pillow returns a copy), keep Pillow's own resize while the hook is set."""
    original = Image.Image.resize
    owner = threading.get_ident()

    def resize(self, size, resample=None, box=None, reducing_gap=None):
        kwargs = {"resample": resample, "box": box, "reducing_gap": reducing_gap}
        identity = tuple(size) == self.size and (box is None or tuple(box) == (0, 0, *self.size))
        if threading.get_ident() != owner or identity:  # Pillow returns a copy for an identity resize
            return original(self, size, **kwargs)
        return handler(original, self, tuple(size), kwargs)

    with _hook_lock:
        Image.Image.resize = resize
        try:
            yield
        finally:
            Image.Image.resize = original


def trace_resizes(run, image: np.ndarray) -> list[ResizeCall]:
    """The resize calls the processor makes while `run(image)` processes `image`."""
    made = {image_digest(image): -1}  # content -> where it came from
    calls: list[ResizeCall] = []

    def record(original, im, size, kwargs):
        box, gap = kwargs["box"], kwargs["reducing_gap"]
        plain = im.mode == "RGB" and gap is None and (box is None or tuple(box) == (0, 0, *im.size))
        resample = Image.Resampling.BICUBIC if kwargs["resample"] is None else kwargs["resample"]
        calls.append(ResizeCall(made.get(image_digest(np.asarray(im))), im.size, size, int(resample), plain))
        out = original(im, size, **kwargs)
        made.setdefault(image_digest(np.asarray(out)), len(calls) - 1)
        return out

    with resize_hook(record):
        run(image)
    return calls
