"""The partition of an image into sub-regions, kept as one integer label map."""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .images import as_rgb_uint8


class RegionSet:
    """A partition of an HxW image into N regions labelled 0..N-1.

    Only the label map is stored (never N full-resolution masks); masks are made on demand.
    """

    __slots__ = ("_labels", "_areas", "method")

    def __init__(self, labels: np.ndarray, *, method: str = "labels"):
        labels = np.asarray(labels)
        if labels.ndim != 2:
            raise InputError(f"a label map must be 2-D (HxW), got shape {labels.shape}")
        if labels.size == 0:
            raise InputError(f"the label map is empty (shape {labels.shape})")
        if not np.issubdtype(labels.dtype, np.integer):
            raise InputError(f"a label map must hold integers, got dtype {labels.dtype}")
        # Dense relabelling drops labels that cover no pixel and keeps the original label order.
        uniq, dense = np.unique(labels, return_inverse=True)
        dense = dense.reshape(labels.shape).astype(np.int32)
        self._labels = dense
        self._labels.setflags(write=False)
        self._areas = np.bincount(dense.ravel(), minlength=len(uniq)).astype(np.int64)
        self.method = method

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def slic(cls, image, n_segments: int = 64, *, max_side: int | None = None) -> RegionSet:
        """SLICO superpixels (scikit-image `slic(..., slic_zero=True)`), about `n_segments - 1` regions.

        `max_side` computes the superpixels on a downscaled copy (faster on large images) and
        upsamples the labels with nearest-neighbour.
        """
        from skimage.segmentation import slic

        rgb = as_rgb_uint8(image)
        _check_count(n_segments, "n_segments")
        h, w = rgb.shape[:2]
        work = rgb
        if max_side is not None and max(h, w) > max_side:
            from PIL import Image

            scale = max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
        labels = slic(work, n_segments=int(n_segments), slic_zero=True, start_label=0, channel_axis=-1)
        if work is not rgb:
            labels = _resize_nearest(labels, h, w)
        return cls(labels, method=f"slic(n_segments={int(n_segments)})")

    @classmethod
    def grid(cls, image_or_shape, n: int | None = None, *, rows: int | None = None,
             cols: int | None = None) -> RegionSet:
        """A regular grid of `rows` x `cols` cells (or about `n` near-square cells)."""
        h, w = _shape_of(image_or_shape)
        if rows is None or cols is None:
            if n is None:
                raise InputError("grid needs either n or both rows and cols")
            _check_count(n, "n")
            rows = max(1, round(math.sqrt(n * h / w)))
            cols = max(1, round(n / rows))
        if rows < 1 or cols < 1 or rows * cols < 2:
            raise InputError(f"a grid needs at least 2 cells, got rows={rows}, cols={cols}")
        rows, cols = min(rows, h), min(cols, w)
        r = (np.arange(h) * rows) // h
        c = (np.arange(w) * cols) // w
        return cls(r[:, None] * cols + c[None, :], method=f"grid({rows}x{cols})")

    @classmethod
    def coerce(cls, regions) -> RegionSet:
        """A RegionSet from a RegionSet or an integer label map."""
        if isinstance(regions, RegionSet):
            return regions
        if isinstance(regions, np.ndarray):
            return cls(regions)
        try:
            import torch

            if isinstance(regions, torch.Tensor):
                return cls(regions.detach().cpu().numpy())
        except ImportError:  # pragma: no cover
            pass
        raise InputError(f"regions must be a RegionSet or an integer label map, got {type(regions).__name__}")

    # -- properties ---------------------------------------------------------------------------
    @property
    def labels(self) -> np.ndarray:
        """The int32 HxW label map (read-only), labels 0..N-1."""
        return self._labels

    @property
    def n(self) -> int:
        return len(self._areas)

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, int]:
        return self._labels.shape

    @property
    def areas(self) -> np.ndarray:
        """Pixel count of each region."""
        return self._areas

    @property
    def area_fractions(self) -> np.ndarray:
        return self._areas / float(self._labels.size)

    def __repr__(self) -> str:
        return f"RegionSet(n={self.n}, shape={self.shape}, method={self.method!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RegionSet) and np.array_equal(self._labels, other._labels)

    __hash__ = None

    # -- masks --------------------------------------------------------------------------------
    def mask(self, regions) -> np.ndarray:
        """Boolean HxW mask of the union of `regions` (a label, a list of labels, or a bool vector of length N)."""
        return self.visible_vector(regions)[self._labels]

    def visible_vector(self, regions) -> np.ndarray:
        """A bool vector of length N from a label, a list of labels or a bool vector."""
        arr = np.asarray(regions)
        if arr.dtype == np.bool_:
            if arr.shape != (self.n,):
                raise InputError(f"a visibility vector must have length {self.n}, got shape {arr.shape}")
            return arr
        arr = np.atleast_1d(arr)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise InputError(f"region labels must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= self.n):
            raise InputError(f"region labels must lie in 0..{self.n - 1}, got {arr.min()}..{arr.max()}")
        vec = np.zeros(self.n, dtype=bool)
        vec[arr.astype(np.int64)] = True
        return vec

    def apply(self, image, visible, baseline=0) -> np.ndarray:
        """`image` with the regions not in `visible` replaced by `baseline` (black by default)."""
        rgb = as_rgb_uint8(image)
        if rgb.shape[:2] != self.shape:
            raise InputError(f"the image is {rgb.shape[1]}x{rgb.shape[0]} but the regions are "
                             f"{self.shape[1]}x{self.shape[0]}")
        keep = self.mask(visible)
        base = np.broadcast_to(np.asarray(baseline, dtype=np.uint8), rgb.shape)
        return np.where(keep[:, :, None], rgb, base)

    def values_to_pixels(self, values) -> np.ndarray:
        """Per-region values (length N) painted onto the pixels, float32 HxW."""
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self.n,):
            raise InputError(f"expected {self.n} region values, got shape {values.shape}")
        return values[self._labels]

    def boundaries(self) -> np.ndarray:
        """Bool HxW map of pixels that touch another region (for drawing borders)."""
        lab = self._labels
        edge = np.zeros(lab.shape, dtype=bool)
        edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
        edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        return edge

    def centroids(self) -> np.ndarray:
        """(N, 2) array of region centroids as (row, col)."""
        h, w = self.shape
        rr, cc = np.mgrid[0:h, 0:w]
        flat = self._labels.ravel()
        cy = np.bincount(flat, weights=rr.ravel(), minlength=self.n) / self._areas
        cx = np.bincount(flat, weights=cc.ravel(), minlength=self.n) / self._areas
        return np.stack([cy, cx], axis=1)


def _check_count(value, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer, got {value!r}")
    if value < 2:
        raise InputError(f"{name} must be at least 2, got {value}")


def _shape_of(image_or_shape) -> tuple[int, int]:
    if isinstance(image_or_shape, tuple) and len(image_or_shape) >= 2 and all(
        isinstance(v, (int, np.integer)) for v in image_or_shape[:2]
    ):
        h, w = int(image_or_shape[0]), int(image_or_shape[1])
        if h <= 0 or w <= 0:
            raise InputError(f"an image shape must be positive, got {image_or_shape}")
        return h, w
    return as_rgb_uint8(image_or_shape).shape[:2]


def _resize_nearest(labels: np.ndarray, h: int, w: int) -> np.ndarray:
    rows = (np.arange(h) * labels.shape[0]) // h
    cols = (np.arange(w) * labels.shape[1]) // w
    return labels[rows[:, None], cols[None, :]]
