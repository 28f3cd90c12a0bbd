"""Replay the processor's own resizes on masked images, then place every element where the processor put it.

An image processor resizes the image (Pillow's `Image.resize` in the Pillow backends, torchvision's `resize`
on uint8 tensors in the torchvision backends, transformers' default) and then only crops, tiles, pads,
flattens, rescales and normalises. So for a masked image, the model input is

    pixel_values[e] = base[e] + gain[e] * resized(masked)[source[e]]

where `resized` are the outputs of the processor's resize calls on the masked image, computed by the same
library function with the same arguments (so bit for bit the processor's), and `source`, `base` and `gain`
are read off the processor once: the resize outputs are replaced by images whose pixels encode their own
index (one byte plane per run), and an all-black and an all-white image give the affine part.

This needs a few processor calls to set up (trace, black, white, one per index byte) and memory for one
index per model-input element; a masked image then costs its resizes and one pass over its elements (tiles that
are a crop of a resize output are read as a strided view, others through the index). Torchvision resizes run on
the whole batch at once, on the model's device; Pillow resizes run in a thread pool, one masked image per thread
(Pillow releases the GIL while it resamples).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..core.errors import NotComposable
from .composition import Composer, PixelValues
from .resampling import image_digest, resize_hook


@dataclass
class ReplayedCall:
    source: int | None  # -1: the processor's input image; k: the output of call k; None: anything else
    in_shape: tuple[int, ...]  # one image: (H, W, 3) for Pillow, (3, H, W) for torchvision
    out_shape: tuple[int, ...]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return math.prod(self.out_shape)


class PillowResizes:
    """The processor's `PIL.Image.resize` calls, traced and replayed per image in a thread pool."""

    name = "Pillow"

    def __init__(self):
        self.calls: list[ReplayedCall] = []
        self.workers = max(1, min(8, os.cpu_count() or 1))
        self._pool = ThreadPoolExecutor(max_workers=self.workers)

    def trace(self, run: Callable[[np.ndarray], object], image: np.ndarray) -> None:
        made = {image_digest(image): -1}

        def record(original, im, size, kwargs):
            arr = np.asarray(im)
            source = made.get(image_digest(arr)) if im.mode == "RGB" else None
            out = original(im, size, **kwargs)
            self.calls.append(ReplayedCall(source, arr.shape, np.asarray(out).shape, (size,), dict(kwargs)))
            made.setdefault(image_digest(np.asarray(out)), len(self.calls) - 1)
            return out

        with resize_hook(record):
            run(image)

    @contextmanager
    def substituted(self, outputs: Callable[[int, tuple[int, ...]], np.ndarray]):
        """Replace call k's output by `outputs(k, shape)` (uint8 of that one-image shape)."""
        index = iter(range(len(self.calls)))

        def substitute(original, im, size, kwargs):
            k = next(index, None)
            if k is None or np.asarray(im).shape != self.calls[k].in_shape:
                raise NotComposable("the processor resized differently on a second run")
            return Image.fromarray(outputs(k, self.calls[k].out_shape))

        with resize_hook(substitute):
            yield

    def replay(self, image: np.ndarray, keep: np.ndarray, device) -> torch.Tensor:
        """[B, sum of call sizes] uint8: every call's output for each masked image (`keep` [B, H, W] bool)."""
        def one(mask):
            # A multiply by the mask repeated per channel: a quarter of np.where's time on a 1080p photo.
            outs = [Image.fromarray(image * np.repeat(mask[:, :, None].view(np.uint8), 3, axis=2))]
            for call in self.calls:
                src = outs[0] if call.source == -1 else outs[call.source + 1]
                outs.append(src.resize(*call.args, **call.kwargs))
            return np.concatenate([np.asarray(o).reshape(-1) for o in outs[1:]])

        rows = list(self._pool.map(one, keep))
        return torch.from_numpy(np.stack(rows)).to(device)


class TorchvisionResizes:
    """The processor's torchvision `resize` calls, traced and replayed on the whole batch on the device."""

    name = "torchvision"

    def __init__(self):
        from torchvision.transforms.v2 import functional

        self.functional = functional
        self.calls: list[ReplayedCall] = []
        self._original = functional.resize

    @contextmanager
    def _hook(self, handler):
        """Route this thread's `torchvision.transforms.v2.functional.resize` calls through `handler`."""
        functional, original, owner = self.functional, self._original, threading.get_ident()

        def resize(inpt, *args, **kwargs):
            if threading.get_ident() != owner or not isinstance(inpt, torch.Tensor):
                return original(inpt, *args, **kwargs)
            out = original(inpt, *args, **kwargs)
            if out.shape == inpt.shape:  # an identity resize returns its input: nothing to replay
                return out
            return handler(inpt, out, args, kwargs)

        with _torchvision_lock:
            functional.resize = resize
            try:
                yield
            finally:
                functional.resize = original

    @staticmethod
    def _one(t: torch.Tensor) -> torch.Tensor | None:
        """A lone image [3, H, W] from a tensor that holds exactly one, else None."""
        t = t.reshape(-1, *t.shape[-3:]) if t.ndim >= 3 else t
        return t[0] if t.ndim == 4 and t.shape[0] == 1 else None

    def trace(self, run, image: np.ndarray) -> None:
        made = {image_digest(image.transpose(2, 0, 1)): -1}

        def record(inpt, out, args, kwargs):
            one_in, one_out = self._one(inpt), self._one(out)
            source = None
            if one_in is not None and one_in.dtype == torch.uint8:
                source = made.get(image_digest(one_in.cpu().numpy()))
            shape_in = tuple(one_in.shape) if one_in is not None else tuple(inpt.shape)
            shape_out = tuple(one_out.shape) if one_out is not None else tuple(out.shape)
            self.calls.append(ReplayedCall(source, shape_in, shape_out, args, dict(kwargs)))
            if one_out is not None and one_out.dtype == torch.uint8:
                made.setdefault(image_digest(one_out.cpu().numpy()), len(self.calls) - 1)
            return out

        with self._hook(record):
            run(image)

    @contextmanager
    def substituted(self, outputs):
        index = iter(range(len(self.calls)))

        def substitute(inpt, out, args, kwargs):
            k = next(index, None)
            if k is None or self._one(out) is None or tuple(self._one(out).shape) != self.calls[k].out_shape:
                raise NotComposable("the processor resized differently on a second run")
            return torch.from_numpy(outputs(k, self.calls[k].out_shape)).reshape(out.shape).to(out.device)

        with self._hook(substitute):
            yield

    def replay(self, image: torch.Tensor, keep: torch.Tensor, device) -> torch.Tensor:
        masked = image[None] * keep[:, None]  # [B, 3, H, W] uint8
        outs = []
        for call in self.calls:
            src = masked if call.source == -1 else outs[call.source]
            outs.append(self._original(src, *call.args, **call.kwargs))
        return torch.cat([o.reshape(o.shape[0], -1) for o in outs], dim=1)


_torchvision_lock = threading.Lock()


class ReplayComposer(Composer):
    """Exact: the processor's own resizes on each masked image, then its element placement and affine part."""

    def __init__(self, pixel_values: PixelValues, image: np.ndarray, labels: np.ndarray, num_regions: int,
                 backend: str):
        self.resizes = TorchvisionResizes() if backend == "torchvision" else PillowResizes()
        self.method = f"the processor's {self.resizes.name} resizes replayed on each masked image"
        self.resizes.trace(lambda im: pixel_values([im]), image)
        calls = self.resizes.calls
        if not calls:
            raise NotComposable(f"the processor does not resize the image with {self.resizes.name}")
        for call in calls:
            if call.source is None:
                raise NotComposable(f"the processor resizes something other than the image or its resizes "
                                    f"({call.in_shape} -> {call.out_shape})")
        super().__init__(pixel_values, image, labels, num_regions)
        self.processor_calls += 1
        self.source = self._sources()
        self.placement = self._placement()
        # Masked images whose resizes run at once (Pillow: one per pool thread; torchvision: the batch is one call).
        self.parallel_images = self.resizes.workers if isinstance(self.resizes, PillowResizes) else 1
        self.labels_t = self.image_t = None  # torchvision masks the batch on the device: labels and image there
        if isinstance(self.resizes, TorchvisionResizes):
            self.labels_t = torch.from_numpy(labels.astype(np.int64))
            self.image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    @property
    def resized_pixels(self) -> int:
        """Pixels of all the processor's resize outputs (3 channels each)."""
        return sum(c.size for c in self.resizes.calls) // 3

    def _sources(self) -> torch.Tensor:
        """Index of each model-input element in the concatenated resize outputs (-1: not from the image)."""
        return self.traced_sources([c.size for c in self.resizes.calls], self.resizes.substituted)

    def to(self, device: torch.device) -> ReplayComposer:
        super().to(device)
        # Indices go to the device only for tiles that are gathered (-1, from nowhere: index 0 with gain 0).
        self._blocks = [(start, end, self.source[start:end].clamp(min=0).to(device) if how is None else how)
                        for start, end, how in self.placement]
        if isinstance(self.resizes, TorchvisionResizes):
            self.labels_t, self.image_t = self.labels_t.to(device), self.image_t.to(device)
        return self

    def _resized(self, visible: torch.Tensor) -> torch.Tensor:
        """[B, resize outputs] uint8: the processor's resizes of each masked image."""
        if visible.dtype != torch.bool:
            if not bool(((visible == 0) | (visible == 1)).all()):
                raise NotComposable("replayed resizes compose 0/1 masks only")
            visible = visible.bool()
        if isinstance(self.resizes, TorchvisionResizes):
            return self.resizes.replay(self.image_t, visible[:, self.labels_t], self.device)
        return self.resizes.replay(self.image, visible.cpu().numpy()[:, self.labels], self.device)

    def compose(self, visible: torch.Tensor) -> torch.Tensor:
        """Each element placed where the processor put it and its affine part applied in one pass per tile."""
        if not hasattr(self, "_base_f"):
            self.to(self.device)
        resized = self._resized(visible.to(self.device))
        b = resized.shape[0]
        out = torch.empty(b, self._elements, dtype=torch.float32, device=resized.device)
        for start, end, how in self._blocks:
            base, gain, part = self._base_f[start:end], self._gain_f[start:end], out[:, start:end]
            if isinstance(how, torch.Tensor):  # an index per element (elements from nowhere: gain 0)
                torch.addcmul(base, gain, resized[:, how], out=part)
            else:  # a crop of one resize output, reordered: a strided view, no index to read
                shape, strides, offset = how
                view = resized.as_strided((b, *shape), (resized.stride(0), *strides), resized.storage_offset() + offset)
                torch.addcmul(base.view(shape), gain.view(shape), view, out=part.view(b, *shape))
        return out.reshape(b * self.shape[0], *self.shape[1:])

    def _placement(self) -> list[tuple[int, int, tuple | None]]:
        """How each tile of the model input (its last three dimensions) is filled from the resize outputs: where
        the processor only crops and reorders, the tile's sources are one strided view of a resize output, given
        as (shape, strides, offset) (read without an index: with the affine part in the same pass, 2-3x faster
        than a gather and then the affine part on a 2-core CPU, 448-px tiles); else None: by index."""
        tile = math.prod(self.shape[-3:]) if len(self.shape) >= 3 else self._elements
        blocks = []
        for start in range(0, self._elements, tile):
            src = self.source[start:start + tile]
            how = None
            if len(self.shape) >= 3 and bool(self.active[start:start + tile].all()):
                shape = self.shape[-3:]
                grid = src.reshape(shape)
                origin = int(grid[0, 0, 0])
                strides = tuple(int(grid[tuple(1 if d == k else 0 for d in range(3))]) - origin if shape[k] > 1 else 0
                                for k in range(3))
                index = [torch.arange(n, dtype=torch.int64).reshape([-1 if d == k else 1 for d in range(3)]) * st
                         for k, (n, st) in enumerate(zip(shape, strides))]
                if min(strides) >= 0 and torch.equal(grid, origin + index[0] + index[1] + index[2]):
                    how = (shape, strides, origin)
            blocks.append((start, start + tile, how))
        return blocks

    @property
    def nbytes(self) -> int:
        on_device = 0 if self.labels_t is None else self.labels_t.numel() * 8 + self.image_t.numel()
        return self.source.numel() * 8 + on_device


class DeviceProcessorComposer:
    """Exact by construction: the torchvision image processor itself on the batch of masked images, masked and
    kept as uint8 tensors on the device (no Pillow round trip, one processor call per batch)."""

    method = "the torchvision processor on the masked batch, on the device"
    error_units = "in the processor's output units"

    def __init__(self, image_processor, nested: bool, image: np.ndarray, labels: np.ndarray, num_regions: int):
        self.image_processor = image_processor
        self.nested = nested
        self.num_regions = int(num_regions)
        self.image_np, self.labels_np = image, labels  # what the processor is checked on
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        self.device = torch.device("cpu")
        self.processor_calls = 0
        self.shape = tuple(self._process(self.image[None]).shape)

    def _process(self, masked: torch.Tensor) -> torch.Tensor:
        images = [[im] for im in masked] if self.nested else list(masked)
        kwargs = {"device": self.device} if self.device.type != "cpu" else {}
        self.processor_calls += 1
        return self.image_processor(images=images, return_tensors="pt", **kwargs)["pixel_values"]

    def to(self, device) -> DeviceProcessorComposer:
        self.device = torch.device(device)
        self.labels, self.image = self.labels.to(device), self.image.to(device)
        return self

    def compose(self, visible: torch.Tensor) -> torch.Tensor:
        keep = visible.to(self.device).bool()[:, self.labels]
        pv = self._process(self.image[None] * keep[:, None]).to(self.device)
        return pv.reshape(visible.shape[0] * self.shape[0], *self.shape[1:])

    def check(self, encode, masks: np.ndarray) -> float:
        """Largest |composed - processed| over `masks`, in the processor's output units."""
        composed = self.compose(torch.as_tensor(masks)).cpu().double()
        per = composed.shape[0] // len(masks)
        worst = 0.0
        for i, vis in enumerate(masks):
            masked = np.where(vis[self.labels_np][:, :, None], self.image_np, 0).astype(np.uint8)
            expected = encode(masked).double()
            if tuple(expected.shape) != self.shape:
                raise NotComposable(f"the processor lays a masked image out as {tuple(expected.shape)}, "
                                    f"a batch as {self.shape}")
            worst = max(worst, float((composed[i * per:(i + 1) * per] - expected).abs().max()))
        return worst

    @property
    def nbytes(self) -> int:
        return self.labels.numel() * 8 + self.image.numel()
