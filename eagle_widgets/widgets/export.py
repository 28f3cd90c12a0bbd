"""A self-contained interactive HTML page of an Explorer: no kernel, no network, one file.

The page inlines the widgets' own ES module and stylesheet and drives the same views through a small
in-page stand-in for the widget model. Every explanation computed so far travels with it; clicking a
token (or a range with shift) switches to the precomputed explanation of that selection.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np

from ..core.attribution import MAP_ENCODINGS
from ..core.errors import EagleError, InputError
from ..core.files import atomic_write
from ..core.images import as_rgb_uint8
from ..display.colours import DEFAULT_STYLE, OVERLAY_OPACITY, drawing
from .markup import plain, text
from .state import (
    EMPTY_CURVES,
    EMPTY_HEATMAP,
    curves_state,
    elements_label,
    frames_state,
    heatmap_state,
    method_label,
    prompt_state,
    summary,
)
from .views import png_bytes

_STATIC = Path(__file__).resolve().parent / "static"

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' blob:; \
style-src 'unsafe-inline'; img-src blob: data:">
<title>__TITLE__</title>
<style>
body { font-family: system-ui, sans-serif; margin: 16px; color: #222; }
.eagle-export-row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.eagle-export-status { color: #555; margin: 6px 0 10px; }
__CSS__
</style></head>
<body>
<div class="eagle-export-header"><label id="question-menu">question <select id="question"></select></label>
<b>Q:</b> <bdi id="prompt">__PROMPT__</bdi> &nbsp; <b>A:</b> <bdi id="answer">__ANSWER__</bdi>
<span style="color:#777">(__MODEL__)</span></div>
<div id="strip"></div>
<div id="prompt-strip" class="eagle-prompt-strip"></div>
<div id="frame-shares" class="eagle-frame-shares"></div>
<div class="eagle-export-status"><label id="result-menu">result <select id="result"></select></label>
<span id="status"></span></div>
<div class="eagle-export-row"><div id="heatmap"></div><div><div id="curves"></div><div id="modality"></div></div></div>
<script type="application/json" id="eagle-data">__DATA__</script>
<script type="text/plain" id="eagle-esm">__ESM__</script>
<script type="module">
const data = JSON.parse(document.getElementById("eagle-data").textContent);
const source = document.getElementById("eagle-esm").textContent;
const views = (await import(URL.createObjectURL(new Blob([source], { type: "text/javascript" })))).default;
function bytes(b64) {
  const raw = atob(b64), u8 = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) u8[i] = raw.charCodeAt(i);
  return new DataView(u8.buffer);
}
// The widget model's interface (get / set / save_changes / on), held in the page.
function model(state) {
  const handlers = {};
  return {
    get: (k) => state[k],
    set(k, v) {
      if (state[k] === v && (v === null || typeof v !== "object")) return;  // as a widget model: no change, no event
      state[k] = v;
      (handlers["change:" + k] || []).forEach((f) => f());
    },
    update(values) {  // several traits at once, as hold_sync does: views redraw on a consistent state
      const changed = Object.keys(values).filter((k) => state[k] !== values[k] || typeof values[k] === "object");
      Object.assign(state, values);
      changed.forEach((k) => (handlers["change:" + k] || []).forEach((f) => f()));
    },
    save_changes() {},
    on(ev, f) { (handlers[ev] = handlers[ev] || []).push(f); },
    off(ev, f) { handlers[ev] = (handlers[ev] || []).filter((g) => g !== f); },
  };
}
const first = data.questions[data.current];
const strip = model({ _view: "strip", ...first.strip, hover: -1 });
const modality = model({ _view: "modality", ...first.modality });
const heatmap = model({ _view: "heatmap", image_png: bytes(first.image_png), width: first.width,
  height: first.height, labels: new DataView(new ArrayBuffer(0)), opacity: data.opacity,
  show_borders: data.show_borders, encoding: data.encoding, map_style: data.style, drawing: data.drawing,
  hover_region: -1, ...data.empty_heatmap });
const curves = model({ _view: "curves", ...data.empty_curves, step: 0, hover_step: -1, highlight: -1 });
for (const [id, m] of [["strip", strip], ["modality", modality], ["heatmap", heatmap], ["curves", curves]])
  views.render({ model: m, el: document.getElementById(id) });
const status = document.getElementById("status");
const questionMenu = document.getElementById("question"), resultMenu = document.getElementById("result");
data.questions.forEach((q, i) => questionMenu.append(Object.assign(document.createElement("option"),
  { value: String(i), textContent: `${i + 1}: ${q.prompt} → ${q.answer}` })));
questionMenu.value = String(data.current);
document.getElementById("question-menu").style.display = data.questions.length > 1 ? "" : "none";
let question = first, shown = null, stepBeforeHover = null;
function results() {
  const sel = strip.get("selection").join(",");
  return question.explanations.filter((e) => e.selection.join(",") === sel);
}
function show() {
  const sel = strip.get("selection");
  if (modality.get("selection").join(",") !== sel.join(",")) modality.set("selection", sel);
  const hits = results();
  const choice = hits.find((e) => String(e.index) === resultMenu.value);
  resultMenu.replaceChildren(...hits.map((e) => Object.assign(document.createElement("option"),
    { value: String(e.index), textContent: e.name })));
  document.getElementById("result-menu").style.display = hits.length > 1 ? "" : "none";
  const hit = choice || hits[hits.length - 1];
  if (!hit) {
    shown = null;
    heatmap.update(data.empty_heatmap);
    drawPrompt(null);
    drawFrames(null);
    curves.update(data.empty_curves);
    status.textContent = sel.length ? "No explanation of this selection was computed before the export. " +
      "Explained selections: " + question.explanations.map((e) => "[" + e.labels.join(" ") + "]").join(", ")
      : "Click a token (shift-click a range) to see where the model looked.";
    return;
  }
  resultMenu.value = String(hit.index);
  if (shown !== hit) heatmap.set("step", 0);
  shown = hit;
  heatmap.update({ labels: bytes(hit.label_bytes), ...hit.heatmap[heatmap.get("encoding")] });
  curves.update(hit.curves);
  drawPrompt(hit.prompt[heatmap.get("encoding")]);
  drawFrames(hit.frames[heatmap.get("encoding")]);
  status.textContent = `${hit.name}: ${hit.summary}`;
}
// The prompt strip: text nodes only (the prompt is data, never markup).
function drawPrompt(state) {
  const box = document.getElementById("prompt-strip");
  box.replaceChildren();
  if (!state || !state.pieces.length) return;
  box.append(Object.assign(document.createElement("b"), { textContent: "Prompt: " }));
  for (const piece of state.pieces) {
    const span = Object.assign(document.createElement("span"), { textContent: piece.text });
    if (piece.span >= 0) {
      span.style.background = `rgba(214, 60, 30, ${(0.12 + 0.78 * Math.max(0, Math.min(1, piece.value))).toFixed(2)})`;
      span.title = (piece.rank ? `rank ${piece.rank}` : "not ranked") + `, value ${piece.value.toFixed(2)}`;
    }
    box.append(span);
  }
  box.append(document.createElement("br"), Object.assign(document.createElement("span"),
    { className: "eagle-export-status", textContent: `${state.title}; order: ${state.order.join(" → ")}` }));
}
function drawFrames(state) {  // which frames matter: a bar per frame, its share of the gain
  const box = document.getElementById("frame-shares");
  box.replaceChildren();
  if (!state || !state.frames.length) return;
  box.append(Object.assign(document.createElement("div"), { className: "eagle-export-status",
    textContent: state.title }));
  const top = Math.max(...state.frames.map((f) => f.share)) || 1;
  for (const f of state.frames) {
    const cell = Object.assign(document.createElement("div"), { title: `${f.label}: ${(100 * f.share).toFixed(1)}%` });
    cell.style.cssText = "display:inline-block;width:46px;margin-right:4px;text-align:center;font-size:11px";
    const well = document.createElement("div");
    well.style.cssText = "height:40px;display:flex;align-items:flex-end";
    const bar = document.createElement("div");
    bar.style.cssText = `width:100%;height:${Math.max(1, Math.round(40 * f.share / top))}px;background:#d62728`;
    well.append(bar);
    cell.append(well, document.createTextNode(f.label));
    box.append(cell);
  }
}
function switchQuestion(i) {
  question = data.questions[i];
  document.getElementById("prompt").textContent = question.prompt;
  document.getElementById("answer").textContent = question.answer;
  strip.update(question.strip);
  modality.update(question.modality);
  heatmap.update({ width: question.width, height: question.height, image_png: bytes(question.image_png) });
  shown = null;
  show();
}
questionMenu.addEventListener("change", () => switchQuestion(Number(questionMenu.value)));
resultMenu.addEventListener("change", show);
strip.on("change:selection", show);
heatmap.on("change:encoding", show);
// Linked hover, offline as in the live widget: a curve step reveals that step in the map, a region marks the
// step that inserted it, a token of the selection draws its own curve in bold.
curves.on("change:hover_step", () => {
  if (!shown) return;
  const k = curves.get("hover_step");
  if (k >= 0) {
    if (stepBeforeHover === null) stepBeforeHover = heatmap.get("step");
    heatmap.set("step", Math.min(k, heatmap.get("order").length));
  } else if (stepBeforeHover !== null) {
    heatmap.set("step", stepBeforeHover);
    stepBeforeHover = null;
  }
});
heatmap.on("change:step", () => curves.set("step", heatmap.get("step")));
heatmap.on("change:hover_region", () => {
  const r = heatmap.get("hover_region"), order = heatmap.get("order");
  curves.set("step", shown && r >= 0 && order.includes(r) ? order.indexOf(r) + 1 : heatmap.get("step"));
});
strip.on("change:hover", () => {
  const i = shown ? shown.selection.indexOf(strip.get("hover")) : -1;
  curves.set("highlight", i);
});
document.body.dataset.explanations = String(data.questions.reduce((n, q) => n + q.explanations.length, 0));
show();
document.body.dataset.ready = "1";
</script>
</body></html>
"""


def _script_json(value) -> str:
    """JSON that cannot end or comment out the <script> element it sits in (every '<' escaped)."""
    return json.dumps(value).replace("<", "\\u003c")


def _script_text(text: str) -> str:
    """Module source that cannot end the <script> element it sits in."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def explorer_page(explorer) -> str:
    """The HTML of `explorer`: every question of its history (the current one shown first) with every result
    computed for it, each named by its method, mode, regions and λ."""
    questions, current = [], 0
    for question in explorer.questions():
        if question.generation is explorer.generation:
            current = len(questions)
        questions.append(_question(explorer, question))
    data = {
        "questions": questions, "current": current,
        "encoding": explorer.heatmap.encoding, "opacity": OVERLAY_OPACITY, "drawing": drawing(),
        "style": explorer.heatmap.map_style or DEFAULT_STYLE,
        "show_borders": bool(explorer.heatmap.show_borders),
        "empty_heatmap": EMPTY_HEATMAP, "empty_curves": EMPTY_CURVES,
    }
    gen = explorer.generation
    model = explorer.session.display_name
    # Outside text: escaped, and the prompt and answer sit in <bdi> elements of the template (markup's rule).
    values = {"__TITLE__": plain(f"{gen.prompt} → {gen.text}"), "__PROMPT__": html.escape(gen.prompt),
              "__ANSWER__": html.escape(gen.text), "__MODEL__": text(model),
              "__CSS__": (_STATIC / "views.css").read_text(), "__DATA__": _script_json(data),
              "__ESM__": _script_text((_STATIC / "views.js").read_text())}
    # One pass over the template: text put in is never searched for placeholders again.
    return re.sub("|".join(values), lambda m: values[m.group(0)], _PAGE)


def _question(explorer, question) -> dict:
    gen, reliance = question.generation, question.reliance
    image = as_rgb_uint8(gen.image)
    explanations = [_explanation(gen, list(selection), result, index)
                    for index, (selection, result) in enumerate(question.results())]
    return {
        "prompt": gen.prompt, "answer": gen.text,
        "strip": {"tokens": list(gen.tokens), "reliance": [float(v) for v in reliance.evidence],
                  "special": list(gen.special), "selection": list(question.selection)},
        "modality": {"tokens": list(gen.tokens), "reliance": [float(v) for v in reliance.evidence],
                     "p_full": [float(v) for v in reliance.p_full], "p_black": [float(v) for v in reliance.p_black],
                     "special": list(gen.special), "selection": list(question.selection)},
        "image_png": base64.b64encode(png_bytes(image)).decode(), "width": int(image.shape[1]),
        "height": int(image.shape[0]), "explanations": explanations,
    }


def _explanation(gen, selection: list[int], result, index: int) -> dict:
    image = result.image_regions
    labels = image.labels if image is not None else np.zeros((0, 0), dtype=np.int32)
    if labels.size and labels.max() >= 65536:
        raise InputError("the HTML export draws at most 65536 regions")
    return {
        "index": index,
        "selection": selection,
        "labels": [gen.tokens[i] for i in selection],
        "name": f"{method_label(result)} · {elements_label(result)} · λ {result.lambda1:g}/{result.lambda2:g}",
        "label_bytes": base64.b64encode(labels.astype("<u2").tobytes()).decode(),
        "heatmap": {encoding: {**heatmap_state(result, encoding), "step": 0} for encoding in MAP_ENCODINGS},
        "curves": curves_state(result),
        "prompt": {encoding: prompt_state(result, encoding) for encoding in MAP_ENCODINGS},
        "frames": {encoding: frames_state(result, encoding) for encoding in MAP_ENCODINGS},
        "summary": summary(result),
    }


def write_page(page: str, path) -> Path:
    """Write atomically; an unwritable place raises EagleError naming it, and an existing file stays whole."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"the export is an HTML file; give a path ending in .html, got {path.name!r}")
    try:
        atomic_write(path, page.encode("utf-8"))
    except OSError as err:
        raise EagleError(f"cannot write {path}: {err.strerror or err}") from None
    return path
