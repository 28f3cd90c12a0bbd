"""The map's colours, shared by the widgets, the HTML export and the static figures.

Viridis (sequential, colour-blind safe, and unlike the token strip's blue -> red), sampled at 9 stops and
interpolated to 256 entries. Over the image the overlay's opacity grows with the value, so regions that do
not matter leave the image, and the objects' own colours, as they are.
"""

from __future__ import annotations

import numpy as np

_STOPS = np.array([[68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129],
                   [92, 200, 99], [170, 220, 50], [253, 231, 37]], dtype=np.float64)
PALETTE = np.stack([np.interp(np.linspace(0, 1, 256), np.linspace(0, 1, len(_STOPS)), _STOPS[:, c])
                    for c in range(3)], axis=1).round().astype(np.uint8)  # [256, 3]
OVERLAY_OPACITY = 0.75  # the overlay's opacity at value 1


def colour_of(value: float) -> tuple[int, int, int]:
    """The palette entry for a map value in [0, 1]."""
    return tuple(int(c) for c in PALETTE[int(round(float(np.clip(value, 0, 1)) * 255))])


def overlay_rgba(values: np.ndarray, opacity: float = OVERLAY_OPACITY) -> np.ndarray:
    """HxW map values in [0, 1] -> HxWx4 float RGBA overlay (alpha = opacity * value)."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0, 1)
    rgba = np.empty(v.shape + (4,))
    rgba[..., :3] = PALETTE[np.round(v * 255).astype(np.int64)] / 255.0
    rgba[..., 3] = opacity * v
    return rgba
