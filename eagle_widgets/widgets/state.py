"""What the views draw for a result, built once here for the live widgets and the HTML export alike."""

from __future__ import annotations

import numpy as np

from ..core.attribution import IMAGE_INDEPENDENT, MAP_ENCODINGS, Attribution, region_map
from ..core.spans import AREA_AXES

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
    encoding's 1 between EAGLE maps. A baseline draws its own map on its own scale, named in the legend. A joint
    result draws its image regions (on the scale shared with its prompt spans); a prompt result has no map."""
    partial = "" if result.complete else f" · partial: {len(result.order)}/{result.num_regions} regions (cancelled)"
    own = result.method_map
    image = result.image_regions
    if image is None:
        return {**EMPTY_HEATMAP, "caption": f"{selection_label(result.token_labels)} · the image fully visible: this "
                f"explanation orders the prompt's {result.prompt_spans.granularity}s (below){partial}",
                "phase": "done" if result.complete else "partial"}
    return {
        "values": [float(v) for v in result.image_values(encoding, scale)],
        "gains": [float(g) for g in result.marginal_gains()[: image.n]],
        "order": [int(e) for e in result.order if e < image.n],
        "insertion": [float(v) for v in result.insertion],
        "areas": [float(a) for a in result.areas],
        "n_regions": image.n,
        "frames": result.frames,
        "encoding": encoding,
        "legend": (f"{own.scale} (its own map; its curves rank regions by it, scored like EAGLE's)" if own
                   else legend(encoding, result, scale=scale)),
        "note": image_note(result),
        "caption": f"{selection_label(result.token_labels) or f'{result.num_tokens} tokens'} · "
                   f"{method_label(result)} · {elements_label(result)} · λ {result.lambda1:g}/{result.lambda2:g}"
                   f"{partial}",
        "phase": "done" if result.complete else "partial",
    }


def preview_state(update, num_regions: int, selection: str, encoding: str = DEFAULT_ENCODING,
                  num_elements: int | None = None) -> dict:
    """The heatmap's traits while a search runs: the regions ranked so far, in the final encoding. A joint
    search orders `num_elements` (image regions first): the image's part is drawn."""
    values = region_map(update.order, update.scores, num_elements or num_regions, encoding)[:num_regions]
    return {
        "values": [float(v) for v in values],
        "gains": [0.0] * num_regions,
        "order": [int(e) for e in update.order[: max(0, len(update.scores) - 1)] if e < num_regions],
        "insertion": [], "areas": [], "n_regions": num_regions, "encoding": encoding,
        "legend": legend(encoding, scores=list(update.scores)), "note": "",
        "caption": f"{selection} · {update.mode} · running: {update.step}/{update.total_steps} regions ranked",
        "phase": "running",
    }


EMPTY_HEATMAP = {"values": [], "gains": [], "order": [], "insertion": [], "areas": [], "n_regions": 0, "frames": 0,
                 "legend": "", "note": "", "caption": "", "phase": "empty", "step": 0}


def elements_label(result: Attribution) -> str:
    """What a result orders, counted: "36 regions", "6 prompt words", "36 regions + 6 prompt words"."""
    spans = result.prompt_spans
    words = f"{spans.n} prompt {spans.granularity}s" if spans is not None else ""
    image = result.image_regions
    regions = f"{image.n} regions" if image is not None else ""
    if result.frames:
        regions += f" over {result.frames} frames"
    return " + ".join(x for x in (regions, words) if x)


def prompt_state(result: Attribution | None, encoding: str = DEFAULT_ENCODING) -> dict:
    """The prompt strip: the prompt's text in pieces, each span with its value (0..1, on the scale of the image's
    regions in a joint result) and rank; and the first elements of the order as people name them."""
    spans = result.prompt_spans if result is not None else None
    if spans is None:
        return {"pieces": [], "order": [], "title": ""}
    values = result.span_values(encoding)
    first = result.num_regions - spans.n
    ranks = result.ranks()[first:]
    pieces, last = [], 0
    for i, ((a, b), value, rank) in enumerate(zip(spans.chars, values, ranks)):
        if a > last:
            pieces.append({"text": spans.text[last:a], "span": -1, "value": 0.0, "rank": 0})
        pieces.append({"text": spans.text[a:b], "span": i, "value": float(value), "rank": int(rank)})
        last = b
    if last < len(spans.text):
        pieces.append({"text": spans.text[last:], "span": -1, "value": 0.0, "rank": 0})
    order = [f"region {e}" if e < first else spans.labels[e - first] for e in result.order[:12]]
    kind = f"image regions and prompt {spans.granularity}s in one order (this toolkit's joint extension)" \
        if result.kind == "joint" else f"the prompt's {spans.granularity}s, the image fully visible"
    title = f"{selection_label(result.token_labels)} relies on {kind}"
    if result.kind == "joint" and result.complete:
        split = result.reliance_split()
        title += (f": p {split['total']:.2f} = prior {split['prior']:.2f} (neither) + image {split['image']:.2f} + "
                  f"prompt {split['prompt']:.2f} along this order")
    return {"pieces": pieces, "order": order + (["…"] if len(result.order) > 12 else []), "title": title}


def frames_state(result: Attribution | None, encoding: str = DEFAULT_ENCODING) -> dict:
    """Which frames matter (a video result): each frame's label and share of the gain; empty for an image."""
    shares = result.frame_shares(encoding) if result is not None else None
    if shares is None:
        return {"frames": [], "title": ""}
    times = (result.context.video.get("times") if result.context is not None else None) or []
    frames = [{"label": f"{i + 1}" + (f" · {times[i]:g} s" if i < len(times) else ""), "share": float(v)}
              for i, v in enumerate(shares)]
    top = sorted(range(len(frames)), key=lambda i: -frames[i]["share"])[:3]
    title = (f"which frames matter for {selection_label(result.token_labels)}: "
             + ", ".join(f"frame {frames[i]['label']} ({frames[i]['share']:.0%})" for i in top))
    return {"frames": frames, "title": title}


def frames_html(state: dict) -> str:
    """The frame-share bars as HTML for the live widget (the export draws the same state in its page)."""
    from .markup import plain, text

    if not state["frames"]:
        return ""
    top = max(f["share"] for f in state["frames"]) or 1.0
    bars = "".join(
        f"<div title='{plain(f['label'])}: {f['share']:.1%}' style='display:inline-block; width:46px; "
        f"margin-right:4px; text-align:center; font-size:11px'><div style='height:40px; display:flex; "
        f"align-items:flex-end'><div style='width:100%; height:{max(1, round(40 * f['share'] / top))}px; "
        f"background:#d62728'></div></div>{text(f['label'])}</div>" for f in state["frames"])
    return f"<div class='eagle-frame-shares'><span class='eagle-status'>{text(state['title'])}</span><br>{bars}</div>"


def prompt_html(state: dict) -> str:
    """The prompt strip as HTML for the live widget (the export draws the same state in its page)."""
    from .markup import plain, text

    if not state["pieces"]:
        return ""
    chips = []
    for piece in state["pieces"]:
        if piece["span"] < 0:
            chips.append(text(piece["text"]))
            continue
        alpha = 0.12 + 0.78 * max(0.0, min(1.0, piece["value"]))
        rank = f"rank {piece['rank']}" if piece["rank"] else "not ranked"
        chips.append(f"<span class='eagle-prompt-span' title='{plain(rank)}, value {piece['value']:.2f}' "
                     f"style='background: rgba(214, 60, 30, {alpha:.2f}); border-radius: 3px; padding: 1px 2px'>"
                     f"{text(piece['text'])}</span>")
    return (f"<div class='eagle-prompt-strip'><b>Prompt</b>: {''.join(chips)}<br><span class='eagle-status'>"
            f"{text(state['title'])}; order: {text(' → '.join(state['order']))}</span></div>")


def curves_state(result: Attribution) -> dict:
    partial = "" if result.complete else f"partial ({len(result.order)}/{result.num_regions} regions)"
    return {
        "x_label": result.area_axis,
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


EMPTY_CURVES = {"x_label": AREA_AXES["image"], "areas": [], "insertion": [], "deletion": [], "insertion_tokens": [],
                "token_labels": [],
                "insertion_auc": 0.0, "deletion_auc": 0.0, "title": "", "partial": ""}


def summary(result: Attribution) -> str:
    """One line that names the selection and its own numbers."""
    partial = "" if result.complete else \
        f" (partial: {len(result.order)}/{result.num_regions} regions, AUCs of the ranked part only)"
    approximate = f". APPROXIMATE: {result.approximation}" if result.approximation else ""
    return (f"{selection_label(result.token_labels)}: {result.mode}, {elements_label(result)}, "
            f"{result.evaluations} evaluations, insertion AUC {result.insertion_auc:.3f}, deletion AUC "
            f"{result.deletion_auc:.3f}{partial}{approximate}")
