"""What the views draw for a result, built once here for the live widgets and the HTML export alike."""

from __future__ import annotations

import numpy as np

from ..core.attribution import IMAGE_INDEPENDENT, MAP_ENCODINGS, Attribution, region_map

DEFAULT_ENCODING = "gain"
ENCODING_TITLES = {"gain": "gain share", "paper": "paper's normalisation"}

def legend(encoding: str, result: Attribution | None = None, scores=None, scale: float | None = None) -> str:
    """The colour bar's title: what a colour means, with the scale of this result's gains (or a shared one)."""
    top = ""
    gains = np.diff(np.asarray(result.scores if result is not None else scores or [], dtype=np.float64))
    if encoding == "gain" and scale is not None and scale > 0:
        top = f" (1 = a gain of {scale:.3f} in F: one scale for the maps compared)"
    elif encoding == "gain" and gains.size and gains.max() > 0:
        top = f" (1 = a gain of {gains.max():.3f} in F, the most any region added)"
    return f"{ENCODING_TITLES[encoding]}: {MAP_ENCODINGS[encoding]}{top}"


def method_label(result: Attribution) -> str:
    """The method and mode a result was computed with, as people name them (approximate scores say so)."""
    approximate = " · APPROXIMATE scores (top-k API)" if result.approximation else ""
    if result.method_map is not None:
        return f"{result.mode} (its own map; curves scored like EAGLE's){approximate}"
    how = f"eagle, {result.mode}" if result.mode in ("exact", "efficient", "early_stop") else result.mode
    return how + approximate


def selection_label(tokens) -> str:
    return ", ".join(repr(t) for t in tokens) if tokens else ""


def image_note(result: Attribution) -> str:
    """A warning when the selection barely depends on the image, empty otherwise."""
    moved = result.image_dependence
    if result.order and moved < IMAGE_INDEPENDENT:
        return (f"p({selection_label(result.token_labels) or 'selection'}) moves by at most {moved:.3f} when "
                f"regions are revealed or removed: this selection barely depends on the image (a language "
                f"prior), so its map ranks noise.")
    return ""


def heatmap_state(result: Attribution, encoding: str = DEFAULT_ENCODING, scale: float | None = None) -> dict:
    """The heatmap's traits for `result` (labels travel separately: `label_bytes`); `scale` shares the gain
    encoding's 1 between EAGLE maps. A baseline draws its own map on its own scale, named in the legend."""
    partial = "" if result.complete else f" · partial: {len(result.order)}/{result.num_regions} regions (cancelled)"
    own = result.method_map
    return {
        "values": [float(v) for v in result.drawn_map(encoding, scale)],
        "gains": [float(g) for g in result.marginal_gains()],
        "order": list(result.order),
        "insertion": [float(v) for v in result.insertion],
        "areas": [float(a) for a in result.areas],
        "n_regions": result.num_regions,
        "encoding": encoding,
        "legend": (f"{own.scale} (its own map; its curves rank regions by it, scored like EAGLE's)" if own
                   else legend(encoding, result, scale=scale)),
        "note": image_note(result),
        "caption": f"{selection_label(result.token_labels) or f'{result.num_tokens} tokens'} · "
                   f"{method_label(result)} · {result.num_regions} regions · λ {result.lambda1:g}/{result.lambda2:g}"
                   f"{partial}",
        "phase": "done" if result.complete else "partial",
    }


def preview_state(update, num_regions: int, selection: str, encoding: str = DEFAULT_ENCODING) -> dict:
    """The heatmap's traits while a search runs: the regions ranked so far, in the final encoding."""
    return {
        "values": [float(v) for v in region_map(update.order, update.scores, num_regions, encoding)],
        "gains": [0.0] * num_regions,
        "order": list(update.order[: max(0, len(update.scores) - 1)]),
        "insertion": [], "areas": [], "n_regions": num_regions, "encoding": encoding,
        "legend": legend(encoding, scores=list(update.scores)), "note": "",
        "caption": f"{selection} · {update.mode} · running: {update.step}/{update.total_steps} regions ranked",
        "phase": "running",
    }


EMPTY_HEATMAP = {"values": [], "gains": [], "order": [], "insertion": [], "areas": [], "n_regions": 0,
                 "legend": "", "note": "", "caption": "", "phase": "empty", "step": 0}


def curves_state(result: Attribution) -> dict:
    partial = "" if result.complete else f"partial ({len(result.order)}/{result.num_regions} regions)"
    return {
        "areas": [float(a) for a in result.areas],
        "insertion": [float(v) for v in result.insertion],
        "deletion": [float(v) for v in result.deletion],
        "insertion_tokens": [[float(v) for v in col] for col in result.insertion_tokens.T],
        "token_labels": list(result.token_labels or []),
        "insertion_auc": result.insertion_auc,
        "deletion_auc": result.deletion_auc,
        "title": selection_label(result.token_labels),
        "partial": partial,
    }


EMPTY_CURVES = {"areas": [], "insertion": [], "deletion": [], "insertion_tokens": [], "token_labels": [],
                "insertion_auc": 0.0, "deletion_auc": 0.0, "title": "", "partial": ""}


def summary(result: Attribution) -> str:
    """One line that names the selection and its own numbers."""
    partial = "" if result.complete else \
        f" (partial: {len(result.order)}/{result.num_regions} regions, AUCs of the ranked part only)"
    approximate = f". APPROXIMATE: {result.approximation}" if result.approximation else ""
    return (f"{selection_label(result.token_labels)}: {result.mode}, {result.num_regions} regions, "
            f"{result.evaluations} evaluations, insertion AUC {result.insertion_auc:.3f}, deletion AUC "
            f"{result.deletion_auc:.3f}{partial}{approximate}")
