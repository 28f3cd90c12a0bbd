"""The embedded demo: a tiny LLaVA trained on procedural scenes with ground truth, shipped with the package."""

from __future__ import annotations

from pathlib import Path

from .clips import VIDEO_CAPTION_PROMPT, Clip, demo_clip, make_clip
from .scenes import (
    CAPTION_PROMPT,
    COLOURS,
    SHAPES,
    TRAINING_BIAS,
    UNBIASED,
    Bias,
    Scene,
    SceneObject,
    bias_breaking_scene,
    colour_prompt,
    make_scene,
    presence_prompt,
)

WEIGHTS = Path(__file__).resolve().parent / "weights"
VIDEO_WEIGHTS = Path(__file__).resolve().parent / "video_weights"  # the image demo taught to read clips

__all__ = [
    "Bias", "CAPTION_PROMPT", "COLOURS", "SHAPES", "Scene", "SceneObject", "TRAINING_BIAS", "UNBIASED", "WEIGHTS",
    "bias_breaking_scene", "colour_prompt", "load_demo_session", "make_scene", "presence_prompt",
    "VIDEO_WEIGHTS", "Clip", "VIDEO_CAPTION_PROMPT", "demo_clip", "load_video_demo_session", "make_clip",
]


def load_demo_session(weights: str | Path | None = None, *, device: str = "cpu", **kwargs):
    """The demo model as a `ModelSession`, loaded with `from_pretrained` from the package (no download)."""
    return _load(weights, WEIGHTS, "eagle-widgets demo model", "demo model", "train", device, kwargs)


def _load(weights, shipped: Path, shipped_name: str, kind: str, script: str, device: str, kwargs):
    from ..core.errors import InputError
    from ..models import load_session

    path = Path(weights) if weights is not None else shipped
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise InputError(f"no {kind} weights in {path}; train them with "
                         f"`python -m eagle_widgets.demo.{script} --out {path}`")
    session = load_session(str(path), device=device, dtype=kwargs.pop("dtype", "float32"), **kwargs)
    session.display_name = shipped_name if path == shipped else f"{kind} ({path.name})"
    return session


def load_video_demo_session(weights: str | Path | None = None, *, device: str = "cpu", **kwargs):
    """The video demo model (the image demo taught to answer about clips; see the model card) as a
    `ModelSession`; `session.generate_video(demo_clip().video(), ...)` asks it about a clip."""
    return _load(weights, VIDEO_WEIGHTS, "eagle-widgets video demo model", "video demo model", "train_video", device,
                 kwargs)
