"""How a map is drawn over the image, shared by the widgets, the HTML export and the static figures.

Two styles, each named on screen:
- "spotlight" (the default): regions are dimmed by (1 - value) with a dark veil, so what matters keeps the
  object's own colours (a map of the word "red" must not paint the red circle yellow);
- "colour": viridis (sequential, colour-blind safe, and unlike the token strip's blue -> red), its opacity
  growing with the value so that regions that do not matter leave the image as it is.
"""

from __future__ import annotations

import numpy as np

_STOPS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
                   [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)
PALETTE = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c])
                    for c in range(3)], axis=1).round().astype(np.uint8)  # viridis, [256, 3]
VEIL = (24, 24, 24)  # the spotlight's dimming colour
STYLES = {"spotlight": "brighter = more important: each region is dimmed by 1 − its value",
          "colour": "viridis, more opaque = more important"}
DEFAULT_STYLE = "spotlight"
OVERLAY_OPACITY = 0.8  # the overlay's opacity at its strongest


def overlay_pixel(value: float, style: str = DEFAULT_STYLE, opacity: float = OVERLAY_OPACITY) -> tuple:
    """(r, g, b, alpha 0..255) the views draw over a region whose map value is `value` (in [0, 1])."""
    v = float(np.clip(np.nan_to_num(value), 0, 1))
    if style == "spotlight":
        return (*VEIL, int(round(255 * opacity * (1 - v))))
    return (*map(int, PALETTE[int(round(v * 255))]), int(round(255 * opacity * v)))


def overlay_rgba(values: np.ndarray, style: str = DEFAULT_STYLE, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """HxW map values in [0, 1] -> HxWx4 float RGBA overlay in `style`."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0, 1)
    rgba = np.empty(v.shape + (4,))
    if style == "spotlight":
        rgba[..., :3] = np.array(VEIL) / 255.0
        rgba[..., 3] = opacity * (1 - v)
    else:
        rgba[..., :3] = PALETTE[np.round(v * 255).astype(np.int64)] / 255.0
        rgba[..., 3] = opacity * v
    return rgba


def colour_bar(style: str = DEFAULT_STYLE) -> np.ndarray:
    """[256, 3] uint8: the overlay of values 0..1 as it looks over a white background (for colour bars)."""
    v = np.linspace(0, 1, 256)
    rgba = overlay_rgba(v, style)
    return np.round(255 * (rgba[:, :3] * rgba[:, 3:] + (1 - rgba[:, 3:]))).astype(np.uint8)


def drawing() -> dict:
    """Everything the front end needs to draw maps exactly as `overlay_pixel` says (JSON-able)."""
    return {"palette": PALETTE.tolist(), "veil": list(VEIL), "styles": STYLES,
            "ramps": {style: colour_bar(style).tolist() for style in STYLES}}
