"""Static figures with matplotlib: the picture a saved notebook shows, and publication figures."""

from __future__ import annotations

import io

import numpy as np

from .core.attribution import Attribution

_BLUE, _RED = np.array([31, 119, 180]) / 255, np.array([214, 39, 40]) / 255


def reliance_colour(v) -> tuple:
    if v is None or not np.isfinite(v):
        return (0.78, 0.78, 0.78)
    t = float(np.clip(v, 0, 1))
    return tuple(_BLUE + (_RED - _BLUE) * t)


def draw_token_strip(ax, tokens, reliance, selection=(), special=None, *, fontsize=11):
    """Tokens as coloured chips wrapped over lines, selected ones boxed in black."""
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    special = special or [False] * len(tokens)
    x, y, line_h = 0.0, 0.9, 0.28
    renderer = ax.figure.canvas.get_renderer()
    for i, tok in enumerate(tokens):
        text = tok.replace("\n", "⏎") or "∅"
        t = ax.text(x, y, text, fontsize=fontsize, family="monospace", va="top", ha="left",
                    color="white", alpha=0.5 if special[i] else 1.0,
                    bbox=dict(boxstyle="round,pad=0.25", fc=reliance_colour(reliance[i]),
                              ec="black" if i in selection else "none", lw=2 if i in selection else 0))
        width = t.get_window_extent(renderer=renderer).transformed(ax.transData.inverted()).width
        if x > 0 and x + width > 1.0:
            x, y = 0.0, y - line_h
            t.set_position((x, y))
        x += width + 0.012
    ax.set_ylim(min(0.0, y - line_h), 1.0)


def explanation_figure(image, tokens, reliance, result: Attribution | None = None, selection=(), special=None,
                       title: str | None = None):
    """Image with the attribution map, the token strip, and the insertion/deletion curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.2), dpi=80)
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot state, safe in a worker thread
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 4], width_ratios=[1, 1.1])
    draw_token_strip(fig.add_subplot(grid[0, :]), tokens, reliance, selection, special)
    ax = fig.add_subplot(grid[1, 0])
    ax.imshow(image)
    ax.set_axis_off()
    curves = fig.add_subplot(grid[1, 1])
    if result is not None and result.order:
        ax.imshow(result.pixel_map(smooth=1.5), cmap="jet", alpha=0.5, vmin=0, vmax=1)
        curves.plot(result.areas, result.insertion, color=_RED, label=f"insertion AUC {result.insertion_auc:.3f}")
        curves.plot(result.areas, result.deletion, color=_BLUE, label=f"deletion AUC {result.deletion_auc:.3f}")
        curves.legend(loc="center right", fontsize=8)
    else:
        curves.text(0.5, 0.5, "select tokens to explain", ha="center", va="center", color="0.4")
    curves.set_xlim(0, 1)
    curves.set_ylim(0, 1.02)
    curves.set_xlabel("fraction of the image")
    curves.set_ylabel("mean p(target)")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
