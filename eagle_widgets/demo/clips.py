"""Procedural video clips with known ground truth: the demo's scenes, each object shown in only some frames.

A clip is a fixed background with 1-3 objects; each object is visible in one run of consecutive frames (some in
all of them). Which frames and which pixels show the asked object is known exactly, so "which frames matter"
has an answer to check a video explanation against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scenes import COLOUR_RGB, UNBIASED, Bias, SceneObject, background, make_scene

CLIP_FRAMES = 6
CLIP_FPS = 2.0
VIDEO_CAPTION_PROMPT = "describe the video ."


@dataclass
class Clip:
    frames: np.ndarray  # [F, S, S, 3] uint8
    objects: list[SceneObject]  # every object of the clip, left to right
    shown: list[tuple[int, ...]]  # the frames each object is visible in
    seed: int = 0

    @property
    def present(self) -> list[SceneObject]:
        """Objects visible in at least one frame, in order of first appearance (then left to right)."""
        seen = [(s[0], o.centre[0], i) for i, (o, s) in enumerate(zip(self.objects, self.shown)) if s]
        return [self.objects[i] for _, _, i in sorted(seen)]

    @property
    def caption(self) -> str:
        present = self.present
        return " and ".join(f"a {o.words}" for o in present) + " ." if present else "."

    def frames_with(self, shape: str) -> list[int]:
        """The frames in which `shape` is visible (empty when it never is)."""
        return sorted({f for o, s in zip(self.objects, self.shown) if o.shape == shape for f in s})

    def has(self, shape: str) -> bool:
        return bool(self.frames_with(shape))

    def answer(self, prompt: str) -> str | None:
        """The correct answer to a caption, presence or colour prompt (None for anything else)."""
        words = prompt.lower().split()
        if words == VIDEO_CAPTION_PROMPT.split():
            return self.caption
        if len(words) == 5 and words[:3] == ["is", "there", "a"] and words[4] == "?":
            return "yes" if self.has(words[3]) else "no"
        if len(words) == 6 and words[:4] == ["what", "color", "is", "the"] and words[5] == "?":
            hit = [o.colour for o in self.present if o.shape == words[4]]
            return hit[0] if hit else None
        return None

    def mask_of(self, shape: str) -> np.ndarray:
        """[F, S, S] bool: where `shape` is visible in each frame."""
        out = np.zeros(self.frames.shape[:3], bool)
        for o, s in zip(self.objects, self.shown):
            if o.shape == shape:
                out[list(s)] |= o.mask
        return out

    def video(self, fps: float = CLIP_FPS):
        """The clip as an `eagle_widgets.core.Video`."""
        from ..core.video import Video

        return Video.from_frames(list(self.frames), fps, source=f"demo clip {self.seed}")


def make_clip(seed: int, *, frames: int = CLIP_FRAMES, bias: Bias = UNBIASED, shapes: list[str] | None = None,
              colours: list[str] | None = None, shown: list[tuple[int, ...]] | None = None) -> Clip:
    """One clip, fully determined by `seed` (and the optional shapes, colours and frames each is shown in)."""
    scene = make_scene(seed, bias=bias, shapes=shapes, colours=colours)
    rng = np.random.default_rng([seed, 11])
    size = scene.image.shape[0]
    bg = background(rng, size)
    if shown is None:
        shown = []
        for _ in scene.objects:
            if rng.random() < 0.35:
                shown.append(tuple(range(frames)))
            else:
                length = int(rng.integers(1, frames))
                first = int(rng.integers(0, frames - length + 1))
                shown.append(tuple(range(first, first + length)))
    elif len(shown) != len(scene.objects):
        raise ValueError("shown needs one tuple of frames per object")
    paint = [np.asarray(COLOUR_RGB[o.colour], np.float32) + rng.uniform(-18, 18, 3) for o in scene.objects]
    noise = [rng.normal(0, 6, (int(o.mask.sum()), 3)) for o in scene.objects]
    out = np.empty((frames, size, size, 3), np.uint8)
    for f in range(frames):
        img = bg.copy()
        for o, s, rgb, z in zip(scene.objects, shown, paint, noise):
            if f in s:
                img[o.mask] = rgb + z
        out[f] = np.clip(img, 0, 255).astype(np.uint8)
    return Clip(out, list(scene.objects), [tuple(sorted(s)) for s in shown], seed)


def demo_clip() -> Clip:
    """The notebook's clip: a red star in frames 2-3 only, a blue circle throughout, a green square in 4-5."""
    shapes, colours = ["star", "circle", "square"], ["red", "blue", "green"]
    spans = {"star": (2, 3), "circle": tuple(range(CLIP_FRAMES)), "square": (4, 5)}
    left_to_right = [o.shape for o in make_scene(3, shapes=shapes, colours=colours).objects]
    return make_clip(3, shapes=shapes, colours=colours, shown=[spans[s] for s in left_to_right])


__all__ = ["CLIP_FPS", "CLIP_FRAMES", "Clip", "VIDEO_CAPTION_PROMPT", "demo_clip", "make_clip"]
