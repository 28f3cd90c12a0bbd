"""Scorers that turn a model session into the engine's `Scorer`: a batched fast path and the reference path."""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..core import validation
from ..core.errors import ModelError
from ..core.regions import RegionSet
from .composition import MAX_LEVEL_ERROR, NotComposable, RegionComposer, ResamplingComposer
from .replay import DeviceProcessorComposer, ReplayComposer
from .resampling import image_digest, trace_resizes
from .tiles import TileFeatures


class TeacherForcedSequence:
    """The prompt plus the generated tokens up to (not including) the last target, with the target rows.

    `prompt_inputs` are the processor's outputs for the prompt with one image; its `pixel_values` are kept.
    Scorers encode the all-black image here (their baseline, so it is processed only once); methods that
    read the model's internals encode the real image.
    """

    def __init__(self, prompt_text: str, prompt_inputs: dict[str, torch.Tensor], generated_ids: list[int],
                 targets: list[int], target_ids: list[int], pixel_key: str = "pixel_values"):
        self.prompt_text = prompt_text
        self.pixel_key = pixel_key  # the model's argument for the pixels (Qwen's videos: pixel_values_videos)
        self.pixel_values = prompt_inputs[pixel_key]
        self.targets = list(targets)
        ids = prompt_inputs["input_ids"]
        self.prompt_len = ids.shape[1]
        fed = torch.tensor(generated_ids[: max(targets)], dtype=ids.dtype).unsqueeze(0)
        self.text_inputs = {}
        for key, value in prompt_inputs.items():
            if key == pixel_key:
                continue
            if value.shape == ids.shape:  # per-token tensors grow with the fed answer tokens
                fill = fed if key == "input_ids" else (
                    torch.ones_like(fed) if key == "attention_mask" else torch.zeros_like(fed))
                value = torch.cat([value, fill.to(value.dtype)], dim=1)
            self.text_inputs[key] = value
        self.keep = torch.tensor([self.prompt_len + t - 1 for t in targets], dtype=torch.long)
        self.target_ids = torch.tensor(target_ids, dtype=torch.long)

    def model_inputs(self, device, dtype) -> dict[str, torch.Tensor]:
        """The whole teacher-forced input (text and this sequence's image) on `device`."""
        inputs = {k: v.to(device) for k, v in self.text_inputs.items()}
        pv = self.pixel_values
        inputs[self.pixel_key] = pv.to(device, dtype=dtype if pv.is_floating_point() else pv.dtype)
        return inputs

    @property
    def length(self) -> int:
        return self.text_inputs["input_ids"].shape[1]


def _repeat(t: torch.Tensor, b: int) -> torch.Tensor:
    return t.repeat(b, *([1] * (t.ndim - 1)))


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, getattr(torch, "OutOfMemoryError", ())):
        return True
    msg = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg)


@dataclass(frozen=True)
class ModelHandle:
    """What a scorer needs of a model (and nothing else of the session): the module, its family adapter, the
    device it runs on and its floating dtype."""

    model: Any
    adapter: Any
    device: torch.device
    dtype: torch.dtype

    def auto_batch_size(self, seq_len: int, pixel_numel: int) -> int:
        return choose_batch_size(self.device, self.model.config, seq_len, pixel_numel,
                                 torch.finfo(self.dtype).bits // 8)


class ModelScorer:
    """Shared forward logic: batch, forward with `logits_to_keep`, read target probabilities, halve on OOM.

    `reuse_tiles` (the fast paths): where the family's vision encoder sees each tile alone, a tile's features are
    computed once per content and reused (see `tiles`)."""

    def __init__(self, handle: ModelHandle, sequence: TeacherForcedSequence, regions: RegionSet, batch_size,
                 reuse_tiles: bool = False):
        self.handle = handle
        self.sequence = sequence
        self.regions = regions
        self.num_tokens = len(sequence.target_ids)
        self.num_regions = regions.n
        self.device = handle.device
        self.text_inputs = {k: v.to(self.device) for k, v in sequence.text_inputs.items()}
        self.keep = sequence.keep.to(self.device)
        fixed = handle.adapter.fixed_forward_inputs(sequence.text_inputs)
        self.fixed_inputs = {k: (v.to(self.device), dim) for k, (v, dim) in fixed.items()}
        self.target_ids = sequence.target_ids.to(self.device)
        self.batch_size = batch_size
        # Masks prepared together where preparing several at once uses more cores than one (Pillow's resizes in a
        # thread pool, one image per thread) while the forwards stay `batch_size` at a time.
        self.prepare_batch = 1
        self.forward_s = 0.0
        self.tiles = (TileFeatures(handle.adapter, self.text_inputs)
                      if reuse_tiles and handle.adapter.encodes_tiles_apart and sequence.pixel_key == "pixel_values"
                      else None)

    def tile_reuse(self) -> dict:
        """What `describe()` says of the reused tile features (nothing where there is no reuse)."""
        return self.tiles.describe() if self.tiles is not None else {}

    def forward(self, pixel_values: torch.Tensor, batch: int, greedy: bool = False, rows: dict | None = None
                ) -> torch.Tensor:
        """`rows`: per-row text inputs ([batch, L] input ids or attention mask) in place of the shared ones."""
        inputs = {k: _repeat(v, batch) for k, v in self.text_inputs.items()}
        inputs.update(rows or {})
        for key, (value, dim) in self.fixed_inputs.items():
            shape = [-1] * value.ndim
            shape[dim] = batch
            inputs[key] = value.expand(*shape)
        t0 = time.perf_counter()
        with torch.inference_mode():
            if self.tiles is not None:
                inputs["mm_encoder_outputs"] = {"image": self.tiles.encoder_outputs(pixel_values, batch)}
            else:
                inputs[self.sequence.pixel_key] = pixel_values
            out = self.handle.model(**inputs, logits_to_keep=self.keep, use_cache=False)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.forward_s += time.perf_counter() - t0
        logits = out.logits.float()  # [B, T, V]
        if greedy:
            return logits.argmax(dim=-1)
        logp = torch.log_softmax(logits, dim=-1)
        picked = logp.gather(2, self.target_ids.view(1, -1, 1).expand(batch, -1, 1)).squeeze(2)
        return picked.exp()

    def _chunked(self, visible: torch.Tensor, prepare, score) -> torch.Tensor:
        """`score(prepare(chunk), chunk)` over chunks of `visible`, halving the chunk on out-of-memory errors.

        On a GPU, while one chunk runs through the model the next one's inputs are prepared in a worker thread
        on the CPU. On a CPU both would share the same cores: measured on 2 cores, torch-based preparation
        beside the forwards oversubscribed them (a torchvision SmolVLM input at 2.3x the time per image), so
        there it prepares and scores in turn."""
        visible = validation.masks(visible, self.regions.n)
        size = max(1, min(self.batch_size, visible.shape[0]))
        outs, start, ahead = [], 0, None  # ahead: (start, span, future) of the chunk prepared in advance
        while start < visible.shape[0]:
            span = max(size, self.prepare_batch)  # masks prepared at once, scored `size` at a time
            chunk = visible[start:start + span]
            if ahead is not None and ahead[:2] == (start, span):
                prepared = ahead[2].result()
            else:
                if ahead is not None:
                    ahead[2].cancel()
                prepared = prepare(chunk)
            ahead = None
            after = start + chunk.shape[0]
            if after < visible.shape[0] and self.device.type == "cuda":
                ahead = (after, span, _PREPARER.submit(prepare, visible[after:after + span]))
            try:
                per = prepared.shape[0] // chunk.shape[0]  # model-input rows per masked image
                parts = [score(prepared[i * per:(i + size) * per], chunk[i:i + size]).cpu()
                         for i in range(0, chunk.shape[0], size)]
                outs += parts
                start = after
            except Exception as err:
                if not _is_oom(err):
                    raise
                del prepared
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if size == 1:
                    raise ModelError("the model ran out of memory scoring a single image; use a smaller dtype "
                                     "(bfloat16), fewer image tiles, or a larger device") from None
                size = max(1, size // 2)
                self.batch_size = size
                self.prepare_batch = 1
        if ahead is not None:
            ahead[2].cancel()
        return torch.cat(outs)


_PREPARER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eagle-prepare")


class MaskedInputScorer(ModelScorer):
    """The fast path with the published semantics: regions are blacked out in the original image before the
    processor, but the processor runs only on a few images; every masked input is composed on the device
    (see `composition` and `replay`), in batches. Of the exact ways to compose that hold for this processor,
    image and regions, the one measured fastest per masked image is used, and only where it beats running the
    processor on each masked image (else `NotComposable`, and the session runs the processor per masked image
    with batched forwards: `BatchedPixelScorer`)."""

    def __init__(self, handle: ModelHandle, sequence, regions, image: np.ndarray, batch_size=None, prepared=None,
                 against_processor: bool = True):
        super().__init__(handle, sequence, regions, batch_size or 1, reuse_tiles=True)
        t0 = time.perf_counter()
        self.compose_s = 0.0
        self.against_processor = against_processor
        black = sequence.pixel_values
        if prepared is not None and tuple(black.shape) == prepared[0].shape:
            self.composer, self.max_level_error, self.rejected, self.measured = prepared  # checked when built
        else:
            self.composer, self.max_level_error, self.rejected, self.measured = self._composer(
                handle.adapter, sequence, regions, image)
        self.prepared = (self.composer, self.max_level_error, self.rejected, self.measured)
        self.setup_s = time.perf_counter() - t0
        self.pixel_dtype = handle.dtype if black.is_floating_point() else black.dtype
        self.batch_size = batch_size or handle.auto_batch_size(sequence.length, black.numel())
        if self.device.type == "cpu":
            self.prepare_batch = getattr(self.composer, "parallel_images", 1)

    def _composer(self, adapter, sequence, regions, image):
        """The cheapest exact composer, by measurement; the region basis where no exact one holds."""
        processed, processor_s = {}, []

        def encode(masked):  # the processor on one masked image, as the reference path runs it; kept for reuse
            key = image_digest(masked)
            if key not in processed:
                t0 = time.perf_counter()
                processed[key] = adapter.encode([masked], sequence.prompt_text)["pixel_values"]
                processor_s.append(time.perf_counter() - t0)
            return processed[key]

        masks = _check_masks(regions.n)
        labels, n, backend = regions.labels, regions.n, adapter.image_backend
        builders = [(lambda: ReplayComposer(adapter.pixel_values, image, labels, n, backend), 0.5)]
        if backend == "torchvision":  # outputs compared in the processor's units: float32 ulps, not levels
            builders.append((lambda: DeviceProcessorComposer(adapter.image_processor, adapter.nested_images, image,
                                                             labels, n), 1e-4))
        exact, rejected = self._checked(builders, sequence, encode, masks)
        replayed = next((c for c, _ in exact if isinstance(c, ReplayComposer)), None)
        if backend == "pillow" and _emulation_affordable(adapter, image, replayed):
            more, why = self._checked([(lambda: ResamplingComposer(adapter.pixel_values, image, labels, n), 0.5)],
                                      sequence, encode, masks)
            exact, rejected = exact + more, rejected + why
        if not exact:
            exact, more = self._checked([(lambda: RegionComposer(adapter.pixel_values, adapter.layout, image, labels,
                                                                 n), MAX_LEVEL_ERROR)], sequence, encode, masks)
            rejected += more
        if not exact:
            raise NotComposable("; ".join(rejected))
        processor_ms = 1000 * float(np.median(processor_s))
        timed = sorted((self._compose_ms(c, n), c, error) for c, error in exact)
        compose_ms, composer, error = timed[0]
        measured = {"processor_ms_per_image": round(processor_ms, 2),
                    "compose_ms_per_image": {c.method: round(ms, 2) for ms, c, _ in timed}}
        if compose_ms >= processor_ms and self.against_processor:
            raise NotComposable(f"composing ({composer.method}) takes {compose_ms:.1f} ms per masked image, the "
                                f"processor {processor_ms:.1f} ms")
        return composer, error, rejected, measured

    def _checked(self, builders, sequence, encode, masks):
        """The composers that build and agree with the processor on `masks`, with their largest errors."""
        held, rejected = [], []
        for build, limit in builders:
            try:
                composer = build()
                if tuple(sequence.pixel_values.shape) != composer.shape:
                    raise NotComposable(f"the processor lays out the prompt's image as "
                                        f"{tuple(sequence.pixel_values.shape)} but a lone image as {composer.shape}")
                composer.to(self.device)
                error = composer.check(encode, masks)
                if error > limit:
                    raise NotComposable(f"composed inputs differ from the processor's by {error:.3g} "
                                        f"{composer.error_units} (at most {limit:g} accepted)")
                held.append((composer, error))
            except NotComposable as err:
                rejected.append(str(err))
        return held, rejected

    def _compose_ms(self, composer, n: int, probes: int = 4) -> float:
        """Milliseconds per masked image to compose a batch of `probes` random masks (`check` warmed it up)."""
        masks = torch.as_tensor(np.random.default_rng(n + 1).random((probes, n)) < 0.5)
        t0 = time.perf_counter()
        composer.compose(masks)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return 1000 * (time.perf_counter() - t0) / probes

    def compose(self, visible: torch.Tensor) -> torch.Tensor:
        """Model pixel inputs for a batch of visibility masks, [B * pv.shape[0], ...]."""
        t0 = time.perf_counter()
        out = self.composer.compose(visible).to(self.pixel_dtype)
        self.compose_s += time.perf_counter() - t0
        return out

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        return self._chunked(visible, self.compose, lambda pv, chunk: self.forward(pv, chunk.shape[0]))

    def pixel_inputs(self, visible: torch.Tensor) -> torch.Tensor:
        """The model's pixel inputs of the masked images (a joint scorer adds text variants to them)."""
        return self.compose(visible)

    def greedy(self, visible: torch.Tensor) -> torch.Tensor:
        """The model's own (argmax) token at each target position for each visibility mask, [B, T] ids."""
        visible = torch.as_tensor(visible, dtype=torch.bool)
        return self._chunked(visible, self.compose, lambda pv, chunk: self.forward(pv, chunk.shape[0], greedy=True))

    def describe(self) -> dict:
        c = self.composer
        out = {"path": "fast", "semantics": "regions blacked out in the original image, then the processor",
               "composition": c.method, "image_backend": self.handle.adapter.image_backend,
               "processor_calls": c.processor_calls, "max_level_error": round(self.max_level_error, 3),
               "basis_bytes": c.nbytes, "setup_s": round(self.setup_s, 4), **self.measured, **self.tile_reuse()}
        if self.rejected:
            out["not_exact_because"] = "; ".join(self.rejected)
        return out


def _emulation_affordable(adapter, image: np.ndarray, replayed=None) -> bool:
    """Whether Pillow's emulation builds in bounded time and memory: its sparse basis grows with the original
    image and its passes with the resized images, so it is tried only where both are small (a 13-tile InternVL
    input from a 640x480 photo took 30 s and 4 GiB to set up). The resizes come from the replay composer's
    trace when it built (no second trace)."""
    if image.shape[0] * image.shape[1] > EMULATION_PIXELS:
        return False
    if replayed is not None:
        resized = replayed.resized_pixels
    else:
        resized = sum(c.size[0] * c.size[1] for c in trace_resizes(lambda im: adapter.pixel_values([im]), image))
    return resized <= EMULATION_PIXELS


EMULATION_PIXELS = 400_000


class BatchedPixelScorer(ModelScorer):
    """The published steps (black out RGB pixels, run the processor on each masked image) with the forwards
    batched: the fallback where no composer holds or none is measured faster than the processor."""

    def __init__(self, handle: ModelHandle, sequence, regions, image: np.ndarray, batch_size=None, note: str = ""):
        super().__init__(handle, sequence, regions, 1, reuse_tiles=True)
        self.image = image
        self.note = note
        self.compose_s = 0.0  # preparing masked inputs: here the processor itself
        pv = sequence.pixel_values
        self.pixel_dtype = handle.dtype if pv.is_floating_point() else pv.dtype
        self.batch_size = batch_size or handle.auto_batch_size(sequence.length, pv.numel())

    def pixel_inputs(self, chunk: torch.Tensor) -> torch.Tensor:
        # One processor call per masked image, as the published steps make it (a call on a whole batch of large
        # images was measured slower per image on a CPU); the forward is batched.
        t0 = time.perf_counter()
        pixel_values = self.handle.adapter.pixel_values
        pv = torch.cat([pixel_values([self.regions.apply(self.image, vis)]) for vis in chunk.cpu().numpy()])
        pv = pv.to(self.device, dtype=self.pixel_dtype)
        self.compose_s += time.perf_counter() - t0
        return pv

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        return self._chunked(visible, self.pixel_inputs, lambda pv, chunk: self.forward(pv, chunk.shape[0]))

    def greedy(self, visible: torch.Tensor) -> torch.Tensor:
        return self._chunked(torch.as_tensor(visible, dtype=torch.bool), self.pixel_inputs,
                             lambda pv, chunk: self.forward(pv, chunk.shape[0], greedy=True))

    def describe(self) -> dict:
        return {"path": "fast", "semantics": "regions blacked out in the original image, then the processor",
                "composition": "none: the processor runs on every masked image (batched forwards)",
                "image_backend": self.handle.adapter.image_backend, "note": self.note, **self.tile_reuse()}


def _check_masks(n: int) -> np.ndarray:
    """Masks the composition is checked on: everything visible, and two seeded random halves."""
    rng = np.random.default_rng(n)
    return np.stack([np.ones(n, bool), rng.random(n) < 0.5, rng.random(n) < 0.5])


class PixelSpaceScorer(ModelScorer):
    """The reference (published) semantics: black out pixels in RGB, run the processor, one image per call."""

    def __init__(self, handle: ModelHandle, sequence, regions, image: np.ndarray, batch_size=None):
        super().__init__(handle, sequence, regions, 1)
        self.image = image
        self.text = sequence.prompt_text

    def describe(self) -> dict:
        return {"path": "reference", "semantics": "regions blacked out in the original image, then the processor",
                "composition": "none: one processor call and one forward per masked image"}

    def pixel_inputs(self, visible: torch.Tensor) -> torch.Tensor:
        """The processor's pixel inputs of each masked image, one call per image."""
        pvs = [self.handle.adapter.encode([self.regions.apply(self.image, vis)], self.text)["pixel_values"]
               for vis in validation.masks(visible, self.regions.n).numpy()]
        pv = torch.cat(pvs)
        return pv.to(self.device, dtype=self.handle.dtype if pv.is_floating_point() else pv.dtype)

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        visible = validation.masks(visible, self.regions.n)
        return torch.cat([self.forward(self.pixel_inputs(vis[None]), 1).cpu() for vis in visible])


def cpu_memory_budget() -> int:
    """Bytes of RAM the scorer may use for one batch: a quarter of what is available, at most 4 GiB."""
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = 8 << 30
    return int(min(avail // 4, 4 << 30))


def estimate_sample_bytes(config, seq_len: int, pixel_numel: int, dtype_bytes: int) -> int:
    """A rough upper bound of the activation memory of one masked sample in a forward pass."""
    text = getattr(config, "text_config", config)
    hidden = getattr(text, "hidden_size", 4096)
    inter = getattr(text, "intermediate_size", 4 * hidden)
    heads = getattr(text, "num_attention_heads", 32)
    vision = getattr(config, "vision_config", None)
    v_hidden = getattr(vision, "hidden_size", 1024) if vision is not None else 1024
    v_tokens = max(1, pixel_numel // 588)  # about one vision token per 14x14x3 pixels
    per_layer = seq_len * (4 * hidden + 2 * inter) + heads * seq_len * seq_len
    vision_layer = v_tokens * 8 * v_hidden
    return int(dtype_bytes * (pixel_numel * 3 + 2 * per_layer + 2 * vision_layer))


# On a CPU, batching images that already carry thousands of vision tokens only adds memory traffic: measured
# on 2 cores, a SmolVLM input (17 tiles of 512 px) cost 328 ms per image in batches of 8 and 150 ms alone.
CPU_BATCH_PIXEL_ELEMENTS = 8_000_000


def choose_batch_size(device: torch.device, config, seq_len: int, pixel_numel: int, dtype_bytes: int) -> int:
    per_sample = max(1, estimate_sample_bytes(config, seq_len, pixel_numel, dtype_bytes))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(max(1, min(256, math.floor(0.5 * free / per_sample))))
    return int(max(1, min(64, cpu_memory_budget() // per_sample, CPU_BATCH_PIXEL_ELEMENTS // max(1, pixel_numel))))
