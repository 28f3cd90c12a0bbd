"""Compose the model's pixel input of any masked image on the device, with the published semantics.

EAGLE masks the original image (removed pixels black) and then runs the processor. Running the processor
for every masked image is what makes the published pipeline slow, so two composers reproduce it instead:

`ResamplingComposer` (exact): most processors (every Pillow-backed Hugging Face image processor) resize the
image with `PIL.Image.resize` and then only crop, tile, pad, flatten and normalise. The composer traces the
resize calls, finds where every model-input element comes from by substituting index images for the
resized ones, and reproduces Pillow's two fixed-point passes, rounding and clipping included (see
`resampling`). The first pass is linear in the visibility vector, so it is stored as a sparse basis over the
regions ([rows x columns x 3, N], about one entry per resized element), the second as Pillow's taps. For the
0/1 masks the search uses, each element is moreover a polynomial in the visibility of the few regions under
its footprint (`RegionPolynomial`): composing a batch is then one sparse product, still exact. Memory grows
with the resized image and the regions under each footprint (capped), not with the number of regions, and
masks are composed in chunks.

`RegionComposer` (general, up to rounding): a processor that is affine in the pixel values except for its
final uint8 rounding and clipping gives

    processed(image * mask(v)) = processed(black) + gain * clip(sum_r v_r W_r, 0, 255)

with W_r region r's response in levels (0..255 units), measured by running the processor on probes. Probes
sit on a grey offset and carry each pixel value in two halves, so filter lobes never clip inside a probe;
regions whose filter footprints cannot overlap share a probe. It cannot reproduce a clip between two
resampling passes, so scorers accept it only when `check` finds it within MAX_LEVEL_ERROR levels of the
processor on masked images, and otherwise run the processor on every masked image (and say so).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from ..core.errors import NotComposable
from .fixed_point import FixedPointPass, RegionFirstPass, RegionPolynomial, csr_bytes, csr_parts, resize_dense
from .resampling import FILTERS, axis_matrix, coefficients, resize_hook, rows_first, trace_resizes

GREY = 64  # probe offset: leaves 63 levels of head room for filter overshoot on both sides
HALF = 128  # each probe carries at most this much of a pixel value
# Largest |composed - processed| in levels accepted: each region sharing an element adds its probes' rounding
# (+-1) and the processor's two-pass resampling rounds once more in between.
MAX_LEVEL_ERROR = 4.0
PROBE_PIXELS = 24_000_000  # pixels per processor call while probing (bounds the probing memory)
COMPOSE_BYTES = 256 << 20  # resized float64 images held at once while composing a batch


PixelValues = Callable[[list[np.ndarray]], torch.Tensor]


class Composer:
    """Model pixel inputs for visibility masks over `labels` (HxW ints 0..n-1) of `image` (HxWx3 uint8).

    `pixel_values(images)` runs the model's image processor on a list of equal-size RGB images and returns
    their pixel inputs concatenated along the first dimension (equal parts per image).
    """

    method = ""
    error_units = "levels"  # what `check` measures its largest difference in

    def __init__(self, pixel_values: PixelValues, image: np.ndarray, labels: np.ndarray, num_regions: int):
        self.pixel_values = pixel_values
        self.image = image
        self.labels = labels
        self.num_regions = int(num_regions)
        self.processor_calls = 0
        self._elements = 1
        black, white = self._run([np.zeros_like(image), np.full_like(image, 255)])
        self.shape = tuple(black.shape)
        self._elements = black.numel()
        self.base = black.reshape(-1).double()
        gain = (white.reshape(-1).double() - self.base) / 255.0
        self.active = gain.abs() > 1e-12 * max(1.0, float(gain.abs().max()))  # elements that come from the image
        if not bool(self.active.any()):
            raise NotComposable("the processor's output does not depend on the image")
        self.gain = torch.where(self.active, gain, torch.ones_like(gain))
        self.device = torch.device("cpu")

    def _run(self, images: list[np.ndarray]) -> list[torch.Tensor]:
        """The processor's outputs for `images`, in chunks that bound the memory held at once."""
        per_call = max(1, PROBE_PIXELS // max(images[0].shape[0] * images[0].shape[1], self._elements // 3))
        outs = []
        for start in range(0, len(images), per_call):
            part = images[start:start + per_call]
            pv = self.pixel_values(part)
            self.processor_calls += 1
            if pv.shape[0] % len(part):
                raise NotComposable(f"the processor returned {pv.shape[0]} rows for {len(part)} images")
            outs += list(pv.detach().float().cpu().chunk(len(part)))
        return outs

    def levels(self, pv: torch.Tensor) -> torch.Tensor:
        """Processor output -> levels (0..255 units) per element; 0 where the element is not from the image."""
        out = (pv.reshape(-1).double() - self.base) / self.gain
        return torch.where(self.active, out, torch.zeros_like(out))

    def to(self, device: torch.device) -> Composer:
        self.device = torch.device(device)
        self._base_f = self.base.float().to(device)
        self._gain_f = torch.where(self.active, self.gain, torch.zeros_like(self.gain)).float().to(device)
        return self

    def _levels(self, visible: torch.Tensor) -> torch.Tensor:
        """[B, elements] levels (0..255) of the masked images, on the device."""
        raise NotImplementedError

    def compose(self, visible: torch.Tensor) -> torch.Tensor:
        """Pixel inputs for a batch of visibility masks [B, N] (bool or weights in [0, 1]): [B * rows, ...]."""
        if not hasattr(self, "_base_f"):
            self.to(self.device)
        levels = self._levels(visible.to(self.device))
        pv = torch.addcmul(self._base_f, self._gain_f, levels.float())
        return pv.reshape(visible.shape[0] * self.shape[0], *self.shape[1:])

    def traced_sources(self, sizes: list[int], substituted) -> torch.Tensor:
        """Where each model-input element comes from in the concatenated outputs of the processor's resizes
        (`sizes` elements each): under `substituted(codes)` the k-th resize returns `codes(k, shape)`, its
        elements' own indices one byte plane at a time, which the processor's affine part lets us read back.
        -1 for elements that do not come from the image."""
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        planes = max(1, math.ceil(math.log2(offsets[-1] + 2) / 8))
        source = torch.zeros(self._elements, dtype=torch.int64)
        for plane in range(planes):
            def codes(k, shape, plane=plane):
                index = offsets[k] + 1 + np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
                return ((index >> (8 * plane)) & 255).astype(np.uint8)

            with substituted(codes):
                (pv,) = self._run([np.zeros_like(self.image)])
            source += torch.round(self.levels(pv)).to(torch.int64) << (8 * plane)
        source -= 1
        source[~self.active] = -1
        if bool(((source < 0) | (source >= offsets[-1]))[self.active].any()):
            raise NotComposable("some model-input elements depend on the image but on no resized pixel")
        return source

    def check(self, encode: Callable[[np.ndarray], torch.Tensor], masks: np.ndarray) -> float:
        """Largest |composed - processed| in levels over `masks` ([K, N] bool), each processed by `encode`."""
        worst = 0.0
        composed = self.compose(torch.as_tensor(masks)).cpu().double()
        per = composed.shape[0] // len(masks)
        for i, vis in enumerate(masks):
            masked = np.where(vis[self.labels][:, :, None], self.image, 0).astype(np.uint8)
            expected = encode(masked)
            self.processor_calls += 1
            if tuple(expected.shape) != self.shape:
                raise NotComposable(f"the processor lays a masked image out as {tuple(expected.shape)}, "
                                    f"the composition as {self.shape}")
            diff = (composed[i * per:(i + 1) * per].reshape(-1) - expected.reshape(-1).double()) / self.gain
            worst = max(worst, float(diff[self.active].abs().max()))
        return worst


class ResamplingComposer(Composer):
    """Exact: the processor's Pillow resizes reproduced on the device, then its own element arrangement."""

    method = "Pillow resampling reproduced on the device"

    def __init__(self, pixel_values: PixelValues, image: np.ndarray, labels: np.ndarray, num_regions: int):
        calls = trace_resizes(lambda im: pixel_values([im]), image)
        if not calls:
            raise NotComposable("the processor does not resize the image with Pillow")
        for call in calls:
            if call.source is None or not call.plain or call.resample not in FILTERS:
                raise NotComposable(f"a Pillow resize this composer does not reproduce ({call})")
            if rows_first(call.in_size, call.size, call.resample) is None:
                raise NotComposable(f"neither pass order reproduces this Pillow resize ({call})")
        super().__init__(pixel_values, image, labels, num_regions)
        self.processor_calls += 1
        self.calls = calls
        self.source = self._sources()
        direct = [self._first_pass(call) for call in calls if call.source == -1]
        self.lookup = None
        if len(direct) == len(calls):
            try:
                self.lookup = RegionPolynomial(direct, self.source.numpy(), self.num_regions)
            except RegionPolynomial.TooWide:
                pass  # the fixed-point passes below: exact too, slower
        # Fractional masks, and 0/1 masks without the polynomial, run Pillow's passes.
        first_pass = FixedPointPass if self.lookup is not None else RegionFirstPass
        direct, self._passes = iter(direct), []
        for call in calls:
            if call.source == -1:
                first, second, frame = next(direct)
                self._passes.append((first_pass(first), FixedPointPass(second, 255.0), frame))
            else:
                self._passes.append(self._chained_pass(call))

    def _sources(self) -> torch.Tensor:
        """Index of each model-input element in the concatenated resized images (-1: not from the image)."""
        def substituted(codes):
            index = iter(range(len(self.calls)))

            def substitute(original, im, size, kwargs):
                k = next(index, None)
                if k is None or size != self.calls[k].size:
                    raise NotComposable("the processor resized differently on a second run")
                w, h = size
                return Image.fromarray(codes(k, (h, w, 3)))

            return resize_hook(substitute)

        return self.traced_sources([c.size[0] * c.size[1] * 3 for c in self.calls], substituted)

    def _first_pass(self, call):
        """Pillow's first pass as a sparse basis over regions, [H * w * 3, N], and its second pass's taps, [h, H]
        (scipy CSR), with the pass frame (h, w, transposed).

        Written for columns first; when Pillow runs rows first the image is transposed and so is the result."""
        transposed = rows_first(call.in_size, call.size, call.resample)
        (W, H), (w, h) = call.in_size, call.size
        img, labels = self.image.astype(np.float64), self.labels
        if transposed:
            (W, H), (w, h) = (H, W), (h, w)
            img, labels = img.transpose(1, 0, 2), labels.T
        xmin, taps = coefficients(W, w, call.resample)
        n = self.num_regions
        rows_per_block = max(1, 8_000_000 // (w * 3 * taps.shape[1]))
        from scipy.sparse import coo_matrix, vstack

        blocks = []
        for y0 in range(0, H, rows_per_block):
            y1 = min(H, y0 + rows_per_block)
            elements, regions, vals = [], [], []
            for t in range(taps.shape[1]):
                use = (taps[:, t] != 0) & (xmin + t < W)
                cols = np.flatnonzero(use)
                xs = xmin[cols] + t
                element = ((np.arange(y1 - y0)[:, None] * w + cols[None, :]) * 3)[:, :, None] + np.arange(3)
                elements.append(element.ravel())
                regions.append(np.broadcast_to(labels[y0:y1, xs][:, :, None], element.shape).ravel())
                vals.append((img[y0:y1, xs, :] * taps[cols, t][None, :, None]).ravel())
            # Converting to CSR sums each (element, region)'s taps.
            blocks.append(coo_matrix((np.concatenate(vals), (np.concatenate(elements), np.concatenate(regions))),
                                     shape=((y1 - y0) * w * 3, n)).tocsr())
        first = vstack(blocks).tocsr()
        first.eliminate_zeros()
        return first, axis_matrix(H, h, call.resample), (h, w, transposed)

    def _chained_pass(self, call) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int, bool]]:
        """A resize of an earlier resize's output: both passes' taps, applied to the dense earlier result."""
        transposed = rows_first(call.in_size, call.size, call.resample)
        (W, H), (w, h) = call.in_size, call.size
        return (FixedPointPass(axis_matrix(W, w, call.resample), 255.0),
                FixedPointPass(axis_matrix(H, h, call.resample), 255.0), (h, w, transposed))

    def to(self, device: torch.device) -> ResamplingComposer:
        super().to(device)
        self._passes = [(a.to(device), b.to(device), hw) for a, b, hw in self._passes]
        if self.lookup is not None:
            self.lookup.to(device)
        self._source = self.source.clamp(min=0).to(device)
        self._active = self.active.to(device)
        return self

    def _levels(self, visible: torch.Tensor) -> torch.Tensor:
        if self.lookup is not None and visible.dtype == torch.bool:
            return self.lookup(visible.T.to(torch.float32)).T
        resized_elements = sum(a.shape[0] for a, _, _ in self._passes)
        per_chunk = max(1, COMPOSE_BYTES // (12 * resized_elements))
        out = []
        for start in range(0, visible.shape[0], per_chunk):
            v = visible[start:start + per_chunk].to(torch.float32).T.contiguous()  # [N, b]
            resized = []
            for call, (first, second, (h, w, transposed)) in zip(self.calls, self._passes):
                if call.source == -1:
                    once = first(v)  # [H * w * 3, b]
                    twice = second(once.reshape(second.shape[1], -1))  # [h, w * 3 * b]
                    if transposed:  # [w, h] of the original orientation -> [h, w]
                        twice = twice.reshape(h, w, 3, -1).transpose(0, 1)
                else:
                    twice = resize_dense(resized[call.source], call.in_size, first, second, transposed)
                resized.append(twice.reshape(h * w * 3, -1))
            resized = torch.cat(resized)
            out.append((resized[self._source] * self._active[:, None]).T)
        return torch.cat(out)

    @property
    def nbytes(self) -> int:
        return (sum(a.nbytes + b.nbytes for a, b, _ in self._passes) + self.source.numel() * 8
                + (self.lookup.nbytes if self.lookup is not None else 0))


class RegionComposer(Composer):
    """General: a region basis measured through the processor, exact up to its rounding and clipping.

    `layout(labels)` is the adapter's nearest-neighbour map of model-input elements to a label map.
    """

    method = "region basis measured through the processor"

    def __init__(self, pixel_values: PixelValues, layout: Callable[[np.ndarray], torch.Tensor], image: np.ndarray,
                 labels: np.ndarray, num_regions: int):
        super().__init__(pixel_values, image, labels, num_regions)
        h, w = labels.shape
        grey, step_x, step_y = self._run([np.full_like(image, GREY), _step(image, 1), _step(image, 0)])
        grey_levels = self.levels(grey)
        if float((grey_levels - GREY)[self.active].abs().max()) > 0.01:
            raise NotComposable("a uniform grey image does not come out uniform: the processor is not affine in "
                                "the pixel values")
        self.source_y, self.source_x = self._sources(layout, h, w)
        self.radius = self._footprint_radius(step_x, step_y, h, w)
        self.margin = int(math.ceil(self.radius)) + 2
        self.classes = self._colour_classes(self.margin)
        self.matrix = self._measure(grey_levels)

    def _sources(self, layout, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """The image row and column each model-input element samples (nearest), -1 where none."""
        ys = np.repeat(np.arange(h, dtype=np.int64)[:, None], w, axis=1)
        xs = np.repeat(np.arange(w, dtype=np.int64)[None, :], h, axis=0)
        sy = layout(ys).reshape(-1).numpy()
        sx = layout(xs).reshape(-1).numpy()
        if sy.shape[0] != self.base.shape[0]:
            raise NotComposable(f"the layout has {sy.shape[0]} elements, the processor output {self.base.shape[0]}")
        inactive = ~self.active.numpy()
        sy[inactive], sx[inactive] = -1, -1
        if ((sy < 0) & ~inactive).any():
            raise NotComposable("some model-input elements depend on the image but sample no pixel of it")
        return sy, sx

    def _footprint_radius(self, step_x: torch.Tensor, step_y: torch.Tensor, h: int, w: int) -> float:
        """How far (image pixels) from an element's sampled pixel the processor's filters reach."""
        radius = 1.0
        for pv, coord, edge in ((step_x, self.source_x, w // 2), (step_y, self.source_y, h // 2)):
            lv = self.levels(pv).numpy()
            mixed = self.active.numpy() & (np.abs(lv - GREY) > 0.5) & (np.abs(lv - GREY - HALF) > 0.5)
            if mixed.any():
                radius = max(radius, float(np.abs(coord[mixed] + 0.5 - edge).max()))
        return radius

    def _colour_classes(self, margin: int) -> list[np.ndarray]:
        """Regions grouped so that no two of a group come within 2 * margin pixels (bounding boxes)."""
        from scipy import ndimage

        n = self.num_regions
        boxes = ndimage.find_objects(self.labels + 1, max_label=n)
        box = np.array([[s[0].start, s[0].stop, s[1].start, s[1].stop] if s is not None else [0, 0, 0, 0]
                        for s in boxes], dtype=np.int64)
        box[:, [0, 2]] -= margin
        box[:, [1, 3]] += margin
        colour = np.full(n, -1, dtype=np.int64)
        for r in np.argsort(-(box[:, 1] - box[:, 0]) * (box[:, 3] - box[:, 2]), kind="stable"):  # large first
            clash = ((box[:, 0] < box[r, 1]) & (box[r, 0] < box[:, 1])
                     & (box[:, 2] < box[r, 3]) & (box[r, 2] < box[:, 3]))
            used = set(colour[clash & (colour >= 0)].tolist())
            colour[r] = next(c for c in range(n + 1) if c not in used)
        self._boxes = box
        return [np.flatnonzero(colour == c) for c in range(int(colour.max()) + 1)]

    def _measure(self, grey_levels: torch.Tensor) -> torch.Tensor:
        """The sparse basis [elements, regions] in levels."""
        image = self.image.astype(np.int16)
        low = np.minimum(image, HALF)
        high = image - low
        grey = grey_levels.numpy()
        active = self.active.numpy()
        rows, cols, vals = [], [], []
        h, w = self.labels.shape
        per_call = max(1, PROBE_PIXELS // max(h * w, self._elements // 3) // 2)
        for start in range(0, len(self.classes), per_call):
            group = self.classes[start:start + per_call]
            probes = []
            for members in group:
                inside = np.isin(self.labels, members)[:, :, None]
                probes += [np.where(inside, GREY + part, GREY).astype(np.uint8) for part in (low, high)]
            outs = self._run(probes)
            for k, members in enumerate(group):
                self._add_class(members, outs[2 * k], outs[2 * k + 1], grey, active, rows, cols, vals)
        rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
        order = np.lexsort((cols, rows))
        return torch.sparse_csr_tensor(*csr_parts(rows[order], cols[order], vals[order].astype(np.float32),
                                             self.base.shape[0]), size=(self.base.shape[0], self.num_regions),
                                       check_invariants=True)

    def _add_class(self, members, lo, hi, grey, active, rows, cols, vals) -> None:
        """Split one class probe's response between its members (each element has one owner)."""
        h, w = self.labels.shape
        response = (self.levels(lo).numpy() - grey) + (self.levels(hi).numpy() - grey)
        if np.abs(response - np.rint(response)).max() < 0.01:
            response = np.rint(response)  # whole levels (uint8 resampling): drop the float noise of the inversion
        hit = np.flatnonzero(active & (response != 0))
        if len(members) == 1:
            owner = np.full(len(hit), members[0], dtype=np.int64)
        else:
            owners = np.full((h, w), -1, dtype=np.int64)
            for r in members:  # dilated boxes of one class never overlap
                y0, y1, x0, x1 = self._boxes[r]
                owners[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = r
            owner = owners[self.source_y[hit], self.source_x[hit]]
            if (owner < 0).any():
                raise NotComposable("a probe reached model-input elements farther from its regions than the "
                                    "measured filter footprint")
        rows.append(hit)
        cols.append(owner)
        vals.append(response[hit])

    def to(self, device: torch.device) -> RegionComposer:
        super().to(device)
        self.matrix = self.matrix.to(device)
        return self

    def _levels(self, visible: torch.Tensor) -> torch.Tensor:
        v = visible.to(dtype=torch.float32)
        return torch.sparse.mm(self.matrix, v.T.contiguous()).T.clamp_(0.0, 255.0)

    @property
    def nbytes(self) -> int:
        return csr_bytes(self.matrix)


def _step(image: np.ndarray, axis: int) -> np.ndarray:
    """Grey image with one half raised by HALF levels: a step edge across `axis` (1: columns, 0: rows)."""
    out = np.full_like(image, GREY)
    h, w = image.shape[:2]
    if axis == 1:
        out[:, : w // 2] = GREY + HALF
    else:
        out[: h // 2] = GREY + HALF
    return out
