"""Static figures with matplotlib: the picture a saved notebook shows, and publication figures."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from ..core.attribution import MAP_ENCODINGS, AnswerContext, Attribution
from ..core.spans import AREA_AXES
from .colours import DEFAULT_STYLE, colour_bar, overlay_rgba

_BLUE, _RED = np.array([31, 119, 180]) / 255, np.array([214, 39, 40]) / 255


def plain(text: str) -> str:
    """Text drawn as written: a '$' in a prompt or token must not start matplotlib's mathtext."""
    return str(text).replace("$", r"\$")


def prompt_note(result: Attribution, most: int = 6) -> str:
    """The prompt's spans that the answer relies on most, for figures (prompt and joint results)."""
    spans = result.prompt_spans
    if spans is None:
        return ""
    values = result.span_values("gain")
    top = [i for i in np.argsort(-values, kind="stable") if values[i] > 0][:most]
    ranked = ", ".join(f"{spans.labels[i]!r} {values[i]:.2f}" for i in top) or "none adds to F"
    where = "with the image regions in one order (joint extension)" if result.kind == "joint" else \
        "the image fully visible"
    return f"prompt {spans.granularity}s by gain ({where}): {ranked}."


def approximation_note(result: Attribution) -> str:
    return f"APPROXIMATE scores: {result.approximation}." if result.approximation else ""


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
        text = plain(tok.replace("\n", "⏎") or "∅")
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


def _colour_bar(fig, ax, encoding: str, result: Attribution, style: str = DEFAULT_STYLE) -> None:
    """The map's colour bar, titled with what the colours mean (and this result's scale)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    label = {"gain": "gain share", "paper": "paper's normalisation"}[encoding]
    if result.method_map is not None:
        label = textwrap.fill(f"{result.method_map.scale}", 48)
    elif encoding == "gain" and len(result.order):
        label += f" (1 = top gain, {np.diff(result.scores).max():.3f} in F)"
    drawn = {"spotlight": "spotlight: brighter = matters more", "colour": "colour: more opaque = matters more"}
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=ListedColormap(colour_bar(style) / 255.0)), ax=ax,
                       fraction=0.046, pad=0.02)
    bar.set_label(f"{label}\n{drawn[style]}", fontsize=7)


def draw_map(ax, result: Attribution, encoding: str = "gain", smooth: float = 1.5,
             style: str = DEFAULT_STYLE) -> None:
    """The map over the image on `ax`, as the widgets draw it (see `display.colours`); a joint result's image
    regions on the scale shared with its prompt spans, nothing for a prompt result (the image fully visible)."""
    image = result.image_regions
    if image is None:
        return
    pix = image.values_to_pixels(result.image_values(encoding))
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        pix = gaussian_filter(pix, sigma=smooth).astype(np.float32)
    ax.imshow(overlay_rgba(pix, style))


def explanation_figure(image, tokens, reliance, result: Attribution | None = None, selection=(), special=None,
                       title: str | None = None, encoding: str = "gain", note: str = "",
                       style: str = DEFAULT_STYLE):
    """Image with the attribution map and its colour bar, the token strip, and the insertion/deletion curves."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 4.6), dpi=100)
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot state, safe in a worker thread
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 4], width_ratios=[1, 1.1])
    draw_token_strip(fig.add_subplot(grid[0, :]), tokens, reliance, selection, special)
    ax = fig.add_subplot(grid[1, 0])
    ax.imshow(image)
    ax.set_axis_off()
    curves = fig.add_subplot(grid[1, 1])
    if result is not None and result.order:
        draw_map(ax, result, encoding, style=style)
        _colour_bar(fig, ax, encoding, result, style)
        partial = "" if result.complete else f" (partial: {len(result.order)}/{result.num_regions} regions)"
        curves.plot(result.areas, result.insertion, color=_RED,
                    label=f"insertion AUC {result.insertion_auc:.3f} (higher is better)")
        curves.plot(result.areas, result.deletion, color=_BLUE,
                    label=f"deletion AUC {result.deletion_auc:.3f} (lower is better)")
        curves.legend(loc="center right", fontsize=8)
        labels = ", ".join(repr(t) for t in (result.token_labels or []))
        curves.set_title(plain(f"{labels}{partial}"), fontsize=9)
        note = " ".join(n for n in (prompt_note(result), approximation_note(result), note) if n)
        if note:
            fig.text(0.01, 0.01, plain(note), fontsize=8, color="#a05a00", wrap=True)
    else:
        curves.text(0.5, 0.5, "select tokens to explain", ha="center", va="center", color="0.4")
    curves.set_xlim(0, 1)
    curves.set_ylim(0, 1.02)
    curves.set_xlabel(result.area_axis if result is not None else AREA_AXES["image"])
    curves.set_ylabel("mean p(selection)")
    if title:
        fig.suptitle(plain(title), fontsize=10)
    fig.tight_layout()
    return fig


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


FIGURE_FORMATS = (".png", ".svg", ".pdf")


def attribution_figure(result: Attribution, path=None, *, reliance=None, correction=None, smooth: float = 1.5,
                       encoding: str = "gain", title: str | None = None, dpi: int = 150):
    """A publication figure: the image, the map over it with a colour bar, and the answer as a token strip
    coloured by reliance on the image (explained tokens boxed). `reliance`: one value per generated
    token (e.g. `session.reliance(gen).evidence`; by default only the explained tokens are coloured).
    `correction` (a `Correction`) adds the image with the removed regions and says whether the answer was
    corrected. `encoding` is the map's normalisation (see `MAP_ENCODINGS`), named on the colour bar. Saved to
    `path` (.png, .svg or .pdf) when given; returns the matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..core.errors import InputError

    if encoding not in MAP_ENCODINGS:
        raise InputError(f"the map encoding is one of {', '.join(MAP_ENCODINGS)}; got {encoding!r}")
    if result.image is None:
        raise InputError("this result carries no image; set result.image (HxWx3 uint8) to draw its figure")
    if path is not None and Path(path).suffix.lower() not in FIGURE_FORMATS:
        raise InputError(f"save the figure as {', '.join(FIGURE_FORMATS)}; got {Path(path).name!r}")
    if result.frames:
        if correction is not None:
            raise InputError("the correction panel is drawn for image results; this result is over a video's frames")
        return _video_figure(result, path, reliance=reliance, smooth=smooth, encoding=encoding, title=title, dpi=dpi)
    context = result.context or AnswerContext()
    tokens, targets, reliance = _strip_tokens(result, context, reliance)
    panels = 2 if correction is None else 3
    fig = Figure(figsize=(3.3 * panels, 4.4), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, panels, height_ratios=[4, 1.1])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(result.image)
    ax.set_title("image", fontsize=9)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(result.image)
    draw_map(ax, result, encoding, smooth)
    explained = context.target_ids or None
    generated = context.generated_ids or None
    corrected_target = (explained is not None and generated is not None
                        and any(generated[t] != i for t, i in zip(targets, explained)))
    label = ", ".join(repr(t) for t in (result.token_labels or []))
    ax.set_title(plain(f"support for {label}" if not corrected_target else f"support for the correct {label}"),
                 fontsize=9)
    _colour_bar(fig, ax, encoding, result)
    if correction is not None:
        ax = fig.add_subplot(grid[0, 2])
        removed = result.order[::-1][: correction.removed_regions]
        ax.imshow(result.regions.apply(result.image, ~result.regions.visible_vector(removed)))
        verdict = "corrected" if correction.corrected else "not corrected"
        ax.set_title(f"{verdict} after removing {correction.mcr:.0%}", fontsize=9)
    for a in fig.axes[: panels + 1]:
        if a.images:
            a.set_axis_off()
    strip = fig.add_subplot(grid[1, :])
    if tokens:
        draw_token_strip(strip, tokens, reliance, selection=set(targets), fontsize=9)
    else:
        strip.set_axis_off()
    said = " ".join(n for n in (prompt_note(result), approximation_note(result)) if n)
    if said:
        fig.text(0.01, 0.0, plain(said), fontsize=7, color="#a05a00", wrap=True)
    if corrected_target:
        strip.set_title(plain(f"model answered {', '.join(repr(tokens[t]) for t in targets if t < len(tokens))}; "
                              f"explained: {label}"), fontsize=8, loc="left")
    if title:
        fig.suptitle(plain(title), fontsize=10)
    fig.tight_layout()
    return _saved(fig, path)


def _strip_tokens(result: Attribution, context: AnswerContext, reliance):
    """The answer's tokens, the explained positions, and each token's reliance (by default only the explained
    tokens' evidence, which is what the result itself knows)."""
    from ..core.errors import InputError

    tokens = list(context.generated_tokens or result.token_labels or [])
    targets = list(context.targets or range(len(tokens)))
    if reliance is None:
        reliance = [None] * len(tokens)
        for t, e in zip(targets, np.clip(result.p_full - result.p_black, 0, 1)):
            if 0 <= t < len(tokens):
                reliance[t] = float(e)
    elif len(reliance) != len(tokens):
        raise InputError(f"reliance has {len(reliance)} values for {len(tokens)} tokens")
    return tokens, targets, reliance


def frame_labels(result: Attribution) -> list[str]:
    """Each frame's number and time ("1 · 0.5 s"), from the video the result records."""
    times = (result.context.video.get("times") if result.context is not None else None) or []
    return [f"{i + 1}" + (f" · {times[i]:g} s" if i < len(times) else "") for i in range(result.frames)]


def draw_frame_shares(ax, result: Attribution, encoding: str = "gain") -> None:
    """Which frames matter: each frame's share of the positive gain, as bars under the frames."""
    shares = result.frame_shares(encoding)
    ax.bar(np.arange(len(shares)), shares, color=_RED, width=0.7)
    ax.set_xticks(np.arange(len(shares)), frame_labels(result), fontsize=7)
    ax.set_xlim(-0.5, len(shares) - 0.5)
    ax.set_ylim(0, max(0.05, float(shares.max()) * 1.15))
    ax.set_ylabel("share of gain", fontsize=8)
    ax.set_title("which frames matter (each frame's share of the gain in F)", fontsize=8)


def _video_figure(result: Attribution, path, *, reliance, smooth, encoding, title, dpi):
    """The frames in time order, each with the map on one shared scale, which frames matter, and the answer."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = result.frames
    h, strip_w = result.image.shape[:2]
    w = strip_w // n
    context = result.context or AnswerContext()
    tokens, targets, reliance = _strip_tokens(result, context, reliance)
    cols = min(n, 8)
    rows = -(-n // cols)
    fig = Figure(figsize=(max(6.0, 1.5 * cols), 1.5 * rows * h / w + 3.0), dpi=dpi)
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(rows + 2, cols, height_ratios=[1.5 * h / w] * rows + [1.1, 0.8])
    regions = result.image_regions
    pix = regions.values_to_pixels(result.image_values(encoding))  # one scale over every frame
    if smooth > 0:
        from scipy.ndimage import gaussian_filter

        pix = np.concatenate([gaussian_filter(pix[:, f * w:(f + 1) * w], sigma=smooth) for f in range(n)], axis=1)
    labels = frame_labels(result)
    for f in range(n):
        ax = fig.add_subplot(grid[f // cols, f % cols])
        ax.imshow(result.image[:, f * w:(f + 1) * w])
        ax.imshow(overlay_rgba(pix[:, f * w:(f + 1) * w].astype(np.float32), DEFAULT_STYLE))
        ax.set_title(f"frame {labels[f]}", fontsize=7)
        ax.set_axis_off()
    draw_frame_shares(fig.add_subplot(grid[rows, :]), result, encoding)
    strip = fig.add_subplot(grid[rows + 1, :])
    if tokens:
        draw_token_strip(strip, tokens, reliance, selection=set(targets), fontsize=9)
    else:
        strip.set_axis_off()
    label = ", ".join(repr(t) for t in (result.token_labels or []))
    fps = context.video.get("fps")
    head = f"support for {label} over {n} frames" + (f" at {fps:g} fps" if fps else "")
    fig.suptitle(plain(title or head), fontsize=10)
    said = approximation_note(result)
    if said:
        fig.text(0.01, 0.0, plain(said), fontsize=7, color="#a05a00", wrap=True)
    fig.tight_layout()
    return _saved(fig, path)


def _saved(fig, path):
    """`fig`, written to `path` first when one is given (its folder made)."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, bbox_inches="tight")
    return fig
