"""Video inputs per model family, and the scorers that black out regions of frames before the processor.

How a family's model reads a video (`../shared/notes/video-api-text-study.md` §1.2-1.4, measured here):

- Qwen2-VL / Qwen2.5-VL read a native video: frames paired two by two into one 3-D patch (an odd count repeats
  the last frame), `<|video_pad|>` tokens, and on Qwen2.5-VL positions in time spaced by `second_per_grid_ts` =
  2 / fps. With torchvision the real video processor builds it (`video_metadata` carries the fps: without it
  transformers takes 24 fps); without torchvision (no video processor runs) the same input is built from the
  image processor by pairing its per-frame patches. The tests prove the two equal where both run.
- InternVL and SmolVLM2 read a video as its frames, each through the image processor (no tiling), with the
  frame text their video processors write (same token ids).
- LLaVA-1.5 (and the demo) have no video input: the frames go in as images, one `<image>` each, in order.
- LLaVA-OneVision pools video frames 2x2 inside the model, which its image input cannot reproduce: refused.

Frames are processed in independent groups (Qwen: a pair; others: one frame). The fast scorer keeps each group's
processed pixels by the visibility of that group's regions: the search changes one region at a time, so a masked
video mostly repeats groups already processed, and only the changed ones go through the processor again (exact:
the processor runs on those frames as it would on the whole masked video). The forwards are batched.
"""

from __future__ import annotations

import inspect
import time
from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

from ..core import validation
from ..core.errors import InputError, UnsupportedModel
from ..core.video import FrameRegions, Video
from .scoring import ModelScorer

# Processed groups kept by the fast scorer (a Qwen pair of 448-px frames is about 4.8 MB of float32).
GROUP_CACHE_BYTES = 512 << 20


class VideoEncoder:
    """How one family turns a prompt and a video's frames into model inputs."""

    input_kind = ""  # what the model gets, in words (results record it)
    group = 1  # frames processed together
    pixel_key = "pixel_values"

    def __init__(self, adapter, processor):
        self.adapter = adapter
        self.processor = processor
        self.tokenizer = adapter.tokenizer

    def prompt_text(self, prompt: str, video: Video) -> str:
        raise NotImplementedError

    def encode(self, frames: np.ndarray, text: str, video: Video) -> dict[str, torch.Tensor]:
        """The whole model input for `frames` (the video's, or a masked copy) and the templated prompt."""
        raise NotImplementedError

    def group_pixels(self, frames: np.ndarray) -> torch.Tensor:
        """The pixel input of one group of frames (its share of the whole video's)."""
        raise NotImplementedError

    def join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """One video's pixel input from its groups' parts, in order."""
        return torch.cat(parts)

    def batch(self, videos: list[list[torch.Tensor]]) -> torch.Tensor:
        """A batch's pixel input from each video's groups' parts (one copy: each video's parts are not joined
        first)."""
        return torch.cat([part for parts in videos for part in parts])

    def groups(self, n: int) -> list[list[int]]:
        """The frame indices of each group (the last frame repeated where a group is short)."""
        return [[min(i + k, n - 1) for k in range(self.group)] for i in range(0, n, self.group)]

    def template_with_video(self, prompt: str) -> str:
        """The chat template's text with the processor's video placeholder (before any frame text)."""
        return self.adapter.chat_text([{"type": "video"}, {"type": "text", "text": prompt}])


class QwenVideo(VideoEncoder):
    """Qwen2-VL / Qwen2.5-VL native video: frame pairs in one temporal patch, `<|video_pad|>` tokens."""

    group = 2
    pixel_key = "pixel_values_videos"

    def __init__(self, adapter, processor):
        super().__init__(adapter, processor)
        self.video_processor = getattr(processor, "video_processor", None)
        self.image_processor = processor.image_processor
        self.temporal = int(getattr(self.video_processor or self.image_processor, "temporal_patch_size", 2))
        self.group = self.temporal
        self.merge = int(getattr(self.image_processor, "merge_size", 2))
        self.video_token = getattr(processor, "video_token", "<|video_pad|>")
        self.video_token_id = self.tokenizer.convert_tokens_to_ids(self.video_token)
        self.input_kind = ("native video, the model's video processor" if self.video_processor is not None
                           else "native video, frame pairs from the image processor (no torchvision)")
        self._grids: dict = {}  # frame size -> the image processor's patch grid (one processor call per size)
        forward = getattr(adapter.model, "forward", None)
        self.timed = forward is not None and "second_per_grid_ts" in inspect.signature(forward).parameters

    def prompt_text(self, prompt: str, video: Video) -> str:
        text = self.template_with_video(prompt)
        if self.video_token not in text:
            raise InputError(f"the chat template does not place a video in the prompt (no {self.video_token}); "
                             "use the model's own chat template")
        return text

    def _metadata(self, video: Video, n: int) -> list[dict]:
        return [{"fps": video.fps, "frames_indices": list(range(n)), "total_num_frames": n}]

    def encode(self, frames, text, video):
        if self.video_processor is not None:
            out = self.processor(text=[text], videos=[list(frames)], video_metadata=self._metadata(video, len(frames)),
                                 do_sample_frames=False, return_tensors="pt", return_mm_token_type_ids=True)
            out = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
        else:
            pixels = self.join([self.group_pixels(frames[g]) for g in self.groups(len(frames))])
            grid = self._grid(frames)
            count = int(grid.prod()) // self.merge ** 2
            expanded = text.replace(self.video_token, self.video_token * count, 1)
            ids = self.tokenizer([expanded], return_tensors="pt", add_special_tokens=False)
            out = {"input_ids": ids["input_ids"], "attention_mask": ids["attention_mask"],
                   "mm_token_type_ids": self._token_types(ids["input_ids"]),
                   "pixel_values_videos": pixels, "video_grid_thw": grid.view(1, 3)}
        if self.timed:
            out["second_per_grid_ts"] = torch.tensor([self.temporal / video.fps])
        else:
            out.pop("second_per_grid_ts", None)
        return out

    def _token_types(self, input_ids: torch.Tensor) -> torch.Tensor:
        types = torch.zeros_like(input_ids)
        types[input_ids == self.video_token_id] = 2
        return types

    def _grid(self, frames) -> torch.Tensor:
        size = frames.shape[1:3]
        if size not in self._grids:
            out = self.image_processor(images=[Image.fromarray(frames[0])], return_tensors="pt")
            self._grids[size] = out["image_grid_thw"][0].tolist()[1:]
        gh, gw = self._grids[size]
        return torch.tensor([-(-len(frames) // self.temporal), gh, gw])

    def group_pixels(self, frames):
        if self.video_processor is not None:
            n = len(frames)
            out = self.video_processor(videos=[list(frames)], video_metadata=[{"fps": 1.0, "total_num_frames": n,
                                                                              "frames_indices": list(range(n))}],
                                       do_sample_frames=False, return_tensors="pt")
            return out["pixel_values_videos"]
        # The image processor tiles each frame over the temporal slots; a video pair puts frame 2k in slot 0 and
        # frame 2k+1 in slot 1 of the same patch (the video processor's patchify).
        out = self.image_processor(images=[Image.fromarray(f) for f in frames], return_tensors="pt")
        pv = out["pixel_values"]
        per = pv.shape[0] // len(frames)
        patch = getattr(self.image_processor, "patch_size", 14)
        parts = pv.view(len(frames), per, -1, self.temporal, patch, patch)[:, :, :, 0]  # [F, P, C, ps, ps]
        return parts.permute(1, 2, 0, 3, 4).reshape(per, -1)


class FramesAsImages(VideoEncoder):
    """Frames through the image processor (no tiling), each one image of the prompt, with the family's frame
    text (none for LLaVA-style models, which have no video input)."""

    input_kind = "frames as images (this model has no video input)"
    nested = False

    def __init__(self, adapter, processor, overrides: dict | None = None):
        super().__init__(adapter, processor)
        self.overrides = overrides or {}

    def prompt_text(self, prompt, video):
        return self.adapter.chat_text([{"type": "image"}] * video.n + [{"type": "text", "text": prompt}])

    def encode(self, frames, text, video):
        images = [Image.fromarray(f) for f in frames]
        try:
            out = self.processor(images=[images] if self.nested else images, text=[text], return_tensors="pt",
                                 **self.overrides)
        except ValueError as err:
            raise InputError(f"the {self.adapter.family} processor could not combine the frames with the prompt: "
                             f"{err}") from None
        out = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
        return out

    def group_pixels(self, frames):
        images = [Image.fromarray(f) for f in frames]
        return self.processor.image_processor(images=[images] if self.nested else images, return_tensors="pt",
                                              **self.overrides)["pixel_values"]

    def join(self, parts):
        return torch.cat(parts, dim=1 if self.nested else 0)

    def batch(self, videos):
        return torch.cat([self.join(parts) for parts in videos]) if self.nested else super().batch(videos)


class InternVLFrames(FramesAsImages):
    """InternVL's video: each frame resized to one tile (no tiling), "Frame{i}: <img>...</img>" per frame, as its
    video processor and `replace_video_token` write it (the processor merges video pixels into `pixel_values`)."""

    input_kind = "video frames as InternVL's video processor lays them out (one tile each, FrameK text)"

    def __init__(self, adapter, processor):
        super().__init__(adapter, processor, {"crop_to_patches": False})
        self.video_token = getattr(processor, "video_token", "<video>")
        self.image_token = processor.image_token

    def prompt_text(self, prompt, video):
        text = self.template_with_video(prompt)
        if self.video_token not in text:
            raise InputError(f"the chat template does not place a video in the prompt (no {self.video_token})")
        frames = "\n".join(f"Frame{i + 1}: {self.image_token}" for i in range(video.n))
        return text.replace(self.video_token, frames, 1)


class SmolVLMFrames(FramesAsImages):
    """SmolVLM2's video: frames resized to the video size and squared (no splitting), introduced by the text its
    processor writes ("You are provided the following series of N frames ...", "Frame from MM:SS:")."""

    nested = True
    input_kind = "video frames as SmolVLM2's video processor lays them out (no splitting, timestamped)"

    def __init__(self, adapter, processor):
        video_processor = getattr(processor, "video_processor", None)
        image_processor = processor.image_processor
        size = getattr(video_processor, "size", None) or {"longest_edge": image_processor.max_image_size[
            "longest_edge"]}
        size = {"longest_edge": int(size["longest_edge"] if isinstance(size, dict) else size.longest_edge)}
        super().__init__(adapter, processor, {"do_image_splitting": False, "size": size})
        self.video_token = getattr(processor, "video_token", "<video>")
        self.image_token = processor.image_token

    def prompt_text(self, prompt, video):
        try:
            from num2words import num2words
        except ImportError:
            raise InputError("SmolVLM's video text spells the frame count: pip install num2words") from None
        from datetime import timedelta

        text = self.template_with_video(prompt)
        if self.video_token not in text:
            raise InputError(f"the chat template does not place a video in the prompt (no {self.video_token})")
        duration = timedelta(seconds=int(video.n / video.fps))
        intro = (f"You are provided the following series of {num2words(video.n)} frames from a {duration} "
                 "[H:MM:SS] video.\n")
        frames = "".join(f"\nFrame from {int(t // 60):02d}:{int(t % 60):02d}:{self.image_token}"
                         for t in video.times)
        return text.replace(self.video_token, intro + frames + "\n\n", 1)


def video_encoder(adapter, processor) -> VideoEncoder:
    """The family's video input, or UnsupportedModel naming why it has none here."""
    family = adapter.family
    model_type = getattr(adapter.model.config, "model_type", "")
    if family == "qwen-vl":
        return QwenVideo(adapter, processor)
    if model_type == "llava_onevision":
        raise UnsupportedModel("LLaVA-OneVision pools video frames 2x2 inside the model, which its image input "
                               "cannot reproduce; its videos are not supported (images are)")
    if family == "internvl":
        return InternVLFrames(adapter, processor)
    if model_type == "smolvlm":
        return SmolVLMFrames(adapter, processor)
    if family == "llava":
        return FramesAsImages(adapter, processor)
    raise UnsupportedModel(f"videos are supported for Qwen2-VL, Qwen2.5-VL, InternVL, SmolVLM2 and LLaVA-style "
                           f"models (frames as images); not for the {family} family ({model_type})")


class VideoScorer(ModelScorer):
    """Masked videos scored by the model: regions of the frames blacked out, then the processor (the published
    semantics). `fast=True` batches the forwards and reuses processed frame groups (see the module's note);
    `fast=False` is the reference: one processor call on the whole masked video and one forward per video."""

    def __init__(self, handle, sequence, regions: FrameRegions, video: Video, encoder: VideoEncoder,
                 batch_size=None, fast: bool = True):
        super().__init__(handle, sequence, regions, 1, reuse_tiles=fast)
        self.video = video
        self.encoder = encoder
        self.fast = fast
        self.groups = encoder.groups(video.n)
        # Which regions lie in each group's frames (a group's part depends on those only).
        frame_of = regions.frame_of
        self.group_regions = [np.flatnonzero(np.isin(frame_of, g)) for g in self.groups]
        self.frame_masks = [regions.labels[:, f * video.frame_shape[1]:(f + 1) * video.frame_shape[1]]
                            for f in range(video.n)]
        self.cache: OrderedDict = OrderedDict()
        self.cache_bytes = 0
        self.hits = self.misses = 0
        self.compose_s = 0.0
        pv = sequence.pixel_values
        self.pixel_dtype = handle.dtype if pv.is_floating_point() else pv.dtype
        if fast:
            self.batch_size = batch_size or handle.auto_batch_size(sequence.length, pv.numel())

    def _masked_frames(self, visible: np.ndarray, frames: list[int]) -> np.ndarray:
        out = []
        for f in frames:
            keep = visible[self.frame_masks[f]]
            out.append(np.where(keep[:, :, None], self.video.frames[f], 0).astype(np.uint8))
        return np.stack(out)

    def _group_part(self, visible: np.ndarray, g: int) -> torch.Tensor:
        key = (g, np.packbits(visible[self.group_regions[g]]).tobytes())
        part = self.cache.get(key)
        if part is not None:
            self.cache.move_to_end(key)
            self.hits += 1
            return part
        self.misses += 1
        part = self.encoder.group_pixels(self._masked_frames(visible, self.groups[g]))
        self.cache[key] = part
        self.cache_bytes += part.numel() * part.element_size()
        while self.cache_bytes > GROUP_CACHE_BYTES and len(self.cache) > 1:
            _, old = self.cache.popitem(last=False)
            self.cache_bytes -= old.numel() * old.element_size()
        return part

    def pixel_inputs(self, visible: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        rows = validation.masks(visible, self.regions.n).numpy()
        if self.fast:
            videos = [[self._group_part(v, g) for g in range(len(self.groups))] for v in rows]
        else:
            videos = [[self.encoder.encode(self._masked_frames(v, list(range(self.video.n))),
                                           self.sequence.prompt_text, self.video)[self.encoder.pixel_key]]
                      for v in rows]
        pv = self.encoder.batch(videos).to(self.device, dtype=self.pixel_dtype)
        self.compose_s += time.perf_counter() - t0
        return pv

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        if not self.fast:
            visible = validation.masks(visible, self.regions.n)
            return torch.cat([self.forward(self.pixel_inputs(v[None]), 1).cpu() for v in visible])
        return self._chunked(visible, self.pixel_inputs, lambda pv, chunk: self.forward(pv, chunk.shape[0]))

    def greedy(self, visible: torch.Tensor) -> torch.Tensor:
        return self._chunked(torch.as_tensor(visible, dtype=torch.bool), self.pixel_inputs,
                             lambda pv, chunk: self.forward(pv, chunk.shape[0], greedy=True))

    def describe(self) -> dict:
        out = {"path": "fast" if self.fast else "reference",
               "semantics": "regions blacked out in the original frames, then the processor",
               "video_input": self.encoder.input_kind, "image_backend": self.handle.adapter.image_backend,
               "frames": self.video.n, "fps": self.video.fps}
        if self.fast:
            out["composition"] = (f"each group of {self.encoder.group} frame(s) processed once per visibility of "
                                  "its regions and reused (exact: the processor treats groups independently)")
            out.update(self.tile_reuse())
        else:
            out["composition"] = "none: one processor call and one forward per masked video"
        return out
