"""Videos: frames read once, in one order, with their times; and regions per frame as one ground set.

A `Video` holds its frames (all the same size) and when each was taken. The model sees the frames; everything
drawn and ordered sees them side by side as one filmstrip image (H x N*W), so the engine, the heatmap, the
curves and the bundles treat a video like an image: a `FrameRegions` is a `RegionSet` over the filmstrip whose
regions never cross a frame's edge (the authors' video method: a grid on every frame, each cell its own
element, all ordered jointly). A region's area is its share of all the video's pixels, and one map over the
filmstrip puts every frame on one scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .errors import InputError
from .images import as_rgb_uint8, load_image
from .regions import RegionSet

MAX_FRAMES = 64  # a video of more frames is sampled down (each frame costs the model hundreds of tokens)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".webm", ".mkv", ".avi", ".mpg", ".mpeg", ".ogv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True, eq=False)
class Video:
    """`frames` [N, H, W, 3] uint8 taken at `times` (seconds), spaced 1/`fps` apart; `source` says where from."""

    frames: np.ndarray
    fps: float
    times: tuple[float, ...]
    source: str = ""

    def __post_init__(self):
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
            raise InputError(f"video frames must be [N, H, W, 3] uint8 with N >= 1, got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        if not (isinstance(self.fps, (int, float)) and np.isfinite(self.fps) and self.fps > 0):
            raise InputError(f"fps must be a positive number of frames per second, got {self.fps!r}")
        if len(self.times) != frames.shape[0]:
            raise InputError(f"{len(self.times)} frame times for {frames.shape[0]} frames")
        frames = np.ascontiguousarray(frames)
        frames.setflags(write=False)
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "times", tuple(round(float(t), 6) for t in self.times))

    @classmethod
    def from_frames(cls, frames, fps: float, *, source: str = "frames", start: float = 0.0) -> Video:
        """Equal-size frames (PIL images or arrays) spaced 1/`fps` seconds apart."""
        if fps is None:
            raise InputError("frames given as images need their spacing: pass fps= (frames per second); "
                             "a model's positions in time depend on it")
        frames = list(frames)
        if not frames:
            raise InputError("a video needs at least one frame")
        arrays = [as_rgb_uint8(f, name=f"frame {i}") for i, f in enumerate(frames)]
        sizes = {a.shape[:2] for a in arrays}
        if len(sizes) > 1:
            raise InputError(f"the frames differ in size ({', '.join(f'{w}x{h}' for h, w in sorted(sizes))}); "
                             "resize them to one size")
        fps = _positive_fps(fps)
        return cls(np.stack(arrays), fps, tuple(start + i / fps for i in range(len(arrays))), source)

    # -- shape ----------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.frames.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def frame_shape(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @cached_property
    def strip(self) -> np.ndarray:
        """The frames side by side, H x N*W x 3: what views draw and what regions are laid on."""
        n, h, w, _ = self.frames.shape
        out = np.ascontiguousarray(self.frames.transpose(1, 0, 2, 3).reshape(h, n * w, 3))
        out.setflags(write=False)
        return out

    def frames_of(self, strip: np.ndarray) -> np.ndarray:
        """The frames of a filmstrip (a masked copy of `strip`), [N, H, W, 3]."""
        h, w = self.frame_shape
        if strip.shape[:2] != (h, self.n * w):
            raise InputError(f"a filmstrip of this video is {self.n * w}x{h}, got {strip.shape[1]}x{strip.shape[0]}")
        return strip.reshape(h, self.n, w, -1).transpose(1, 0, 2, 3)

    def describe(self) -> dict:
        """What a result records of its video (JSON)."""
        h, w = self.frame_shape
        return {"frames": self.n, "fps": self.fps, "times": list(self.times), "frame_size": [w, h],
                "source": self.source}

    def __repr__(self) -> str:
        h, w = self.frame_shape
        return f"Video({self.n} frames of {w}x{h} at {self.fps:g} fps, {self.source!r})"


def _positive_fps(fps) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"fps must be a positive number of frames per second, got {fps!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"fps must be a positive number of frames per second, got {fps!r}")
    return value


def natural_key(name: str):
    """Sorts names as people number them: frame2 before frame10."""
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def load_video(source, fps: float | None = None, *, max_frames: int = 32, name: str | None = None) -> Video:
    """A `Video` from a video file (a path or its bytes), a folder of frame images (in natural order: 2 before
    10), a list of frames, or a `Video` (returned as is).

    A file is sampled at `fps` frames per second (2 by default, Qwen-VL's rate), each sample the frame nearest
    its time; where that gives more than `max_frames`, every k-th sample is kept (the rate used, fps / k, and
    each frame's time are recorded). Frames given as
    images (a folder or a list) need `fps`: their spacing is part of the input of video models."""
    if isinstance(source, Video):
        return source
    if not isinstance(max_frames, int) or isinstance(max_frames, bool) or not 1 <= max_frames <= MAX_FRAMES:
        raise InputError(f"max_frames must be an integer in 1..{MAX_FRAMES}, got {max_frames!r}")
    if isinstance(source, (list, tuple)) or (isinstance(source, np.ndarray) and source.ndim == 4):
        video = Video.from_frames(source, fps, source=name or "frames")
        return video if video.n <= max_frames else _fewer(video, max_frames)
    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if not is_bytes and not isinstance(source, (str, Path)):
        raise InputError(f"a video is a file, a folder of frames or a list of frames, got {type(source).__name__}")
    if not is_bytes and Path(source).is_dir():
        files = sorted((p for p in Path(source).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise InputError(f"the folder {source} holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
        video = Video.from_frames([load_image(p) for p in files], fps, source=str(source))
        return video if video.n <= max_frames else _fewer(video, max_frames)
    return _decode(source, 2.0 if fps is None else _positive_fps(fps), max_frames,
                   name or ("the uploaded video" if is_bytes else str(source)))


def _fewer(video: Video, max_frames: int) -> Video:
    """Every k-th frame so that at most `max_frames` remain (the spacing stays even)."""
    step = -(-video.n // max_frames)
    keep = np.arange(0, video.n, step)
    return Video(video.frames[keep], video.fps / step, tuple(video.times[i] for i in keep), video.source)


def _decode(source, fps: float, max_frames: int, label: str) -> Video:
    """Decode with PyAV (FFmpeg in its wheel): the frame nearest each sampling time, by presentation time."""
    import io

    try:
        import av
    except ImportError:  # pragma: no cover - a dependency
        raise InputError("reading video files needs PyAV: pip install av") from None
    from .files import regular_file

    is_bytes = isinstance(source, (bytes, bytearray, memoryview))
    if not is_bytes:
        regular_file(source, "video file")
    frames, times = [], []
    try:
        with av.open(io.BytesIO(bytes(source)) if is_bytes else str(source)) as container:
            if not container.streams.video:
                raise InputError(f"{label} has no video stream")
            stream = container.streams.video[0]
            decoded = [(float(f.time if f.time is not None else i / float(stream.average_rate or 25)),
                        f.to_ndarray(format="rgb24")) for i, f in enumerate(container.decode(stream))]
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise InputError(f"cannot read {label} as a video ({getattr(err, 'strerror', None) or err})") from None
    if not decoded:
        raise InputError(f"{label} holds no frames")
    decoded.sort(key=lambda tf: tf[0])
    start, end = decoded[0][0], decoded[-1][0]
    count = int(np.floor((end - start) * fps + 1e-6)) + 1
    stamps = np.array([t for t, _ in decoded])
    for k in range(count):
        i = int(np.argmin(np.abs(stamps - (start + k / fps))))
        frames.append(decoded[i][1])
        times.append(float(stamps[i]))
    video = Video(np.stack(frames), fps, tuple(times), label)
    return video if video.n <= max_frames else _fewer(video, max_frames)


class FrameRegions(RegionSet):
    """Regions per frame over a video's filmstrip: frame f's regions are labelled before frame f+1's, and none
    crosses a frame's edge."""

    __slots__ = ("frames", "frame_of")

    def __init__(self, labels: np.ndarray, frames: int, *, method: str = "labels"):
        super().__init__(labels, method=method)
        h, width = self.shape
        if not isinstance(frames, (int, np.integer)) or frames < 1 or width % frames:
            raise InputError(f"a filmstrip {width} pixels wide cannot hold {frames} equal frames")
        self.frames = int(frames)
        column = np.arange(width) // (width // self.frames)
        frame_of = np.full(self.n, -1, dtype=np.int64)
        lab = self.labels
        for f in range(self.frames):
            inside = np.unique(lab[:, column == f])
            if (frame_of[inside] >= 0).any():
                raise InputError("a region crosses from one frame into another; regions must lie in one frame")
            frame_of[inside] = f
        if (np.diff(frame_of) < 0).any():
            raise InputError("regions must be numbered frame by frame (frame 0's first)")
        self.frame_of = frame_of
        self.frame_of.setflags(write=False)

    @classmethod
    def grid(cls, video: Video, rows: int = 5, cols: int = 5) -> FrameRegions:
        """A `rows` x `cols` grid on every frame (the authors' video regions: 5x5)."""
        h, w = video.frame_shape
        cell = RegionSet.grid((h, w), rows=rows, cols=cols)
        return cls._stacked([cell.labels] * video.n, f"grid({rows}x{cols}) per frame")

    @classmethod
    def slic(cls, video: Video, per_frame: int = 16, *, max_side: int | None = None) -> FrameRegions:
        """SLICO superpixels on every frame, about `per_frame` each."""
        labels = [RegionSet.slic(f, n_segments=per_frame, max_side=max_side).labels for f in video.frames]
        return cls._stacked(labels, f"slic(n_segments={int(per_frame)}) per frame")

    @classmethod
    def _stacked(cls, per_frame: list[np.ndarray], method: str) -> FrameRegions:
        offset, parts = 0, []
        for lab in per_frame:
            parts.append(lab.astype(np.int64) + offset)
            offset += int(lab.max()) + 1
        return cls(np.concatenate(parts, axis=1), len(per_frame), method=method)

    @classmethod
    def coerce_for(cls, regions, video: Video) -> FrameRegions:
        """A FrameRegions from a FrameRegions or a label map over the filmstrip, checked against `video`."""
        if isinstance(regions, FrameRegions):
            out = regions
        else:
            base = RegionSet.coerce(regions)
            out = cls(base.labels, video.n, method=base.method)
        h, w = video.frame_shape
        if out.shape != (h, video.n * w) or out.frames != video.n:
            raise InputError(f"the regions are for {out.frames} frames of {out.shape[1] // out.frames}x"
                             f"{out.shape[0]}; the video has {video.n} frames of {w}x{h}")
        return out

    def frame_totals(self, values) -> np.ndarray:
        """Per frame, the sum of its regions' `values` (length N)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (self.n,):
            raise InputError(f"expected {self.n} region values, got shape {values.shape}")
        return np.bincount(self.frame_of, weights=values, minlength=self.frames)

    def __repr__(self) -> str:
        return f"FrameRegions(n={self.n} over {self.frames} frames, method={self.method!r})"


def frame_shares(result, encoding: str = "gain") -> np.ndarray | None:
    """Each frame's share of a video result's positive gain (sums to 1; zeros when nothing gained), from the
    drawn map; None when the result is not over a video's frames."""
    regions = result.image_regions
    if not isinstance(regions, FrameRegions):
        return None
    values = np.clip(result.image_values(encoding), 0.0, None)  # "gain": gains over the largest, losses 0
    totals = regions.frame_totals(values)
    total = totals.sum()
    return totals / total if total > 0 else totals
