"""The embedded demo: a tiny LLaVA trained on procedural scenes with ground truth, shipped with the package."""

from __future__ import annotations

from pathlib import Path

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

__all__ = [
    "Bias", "CAPTION_PROMPT", "COLOURS", "SHAPES", "Scene", "SceneObject", "TRAINING_BIAS", "UNBIASED", "WEIGHTS",
    "bias_breaking_scene", "colour_prompt", "load_demo_session", "make_scene", "presence_prompt",
]


def load_demo_session(weights: str | Path | None = None, *, device: str = "cpu", **kwargs):
    """The demo model as a `ModelSession`, loaded with `from_pretrained` from the package (no download)."""
    from ..core.errors import InputError
    from ..models import load_session

    path = Path(weights) if weights is not None else WEIGHTS
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise InputError(f"no demo model weights in {path}; train them with "
                         f"`python -m eagle_widgets.demo.train --out {path}`")
    session = load_session(str(path), device=device, dtype=kwargs.pop("dtype", "float32"), **kwargs)
    session.display_name = "eagle-widgets demo model" if path == WEIGHTS else f"demo model ({path.name})"
    return session
