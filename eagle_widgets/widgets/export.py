"""A self-contained interactive HTML page of an Explorer: no kernel, no network, one file.

The page inlines the widgets' own ES module and stylesheet and drives the same views through a small
in-page stand-in for the widget model. Every explanation computed so far travels with it; clicking a
token (or a range with shift) switches to the precomputed explanation of that selection.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from ..core.attribution import MAP_ENCODINGS
from ..core.errors import EagleError, InputError
from ..core.files import atomic_write
from ..display.colours import DEFAULT_STYLE, OVERLAY_OPACITY, drawing
from .markup import plain, text
from .state import EMPTY_CURVES, EMPTY_HEATMAP, curves_state, heatmap_state, summary

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
<div class="eagle-export-header"><b>Q:</b> __PROMPT__ &nbsp; <b>A:</b> __ANSWER__
<span style="color:#777">(__MODEL__)</span></div>
<div id="strip"></div>
<div class="eagle-export-status" id="status"></div>
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
    save_changes() {},
    on(ev, f) { (handlers[ev] = handlers[ev] || []).push(f); },
    off(ev, f) { handlers[ev] = (handlers[ev] || []).filter((g) => g !== f); },
  };
}
const strip = model({ _view: "strip", ...data.strip });
const modality = model({ _view: "modality", ...data.modality });
const heatmap = model({ _view: "heatmap", image_png: bytes(data.image_png), width: data.width, height: data.height,
  labels: new DataView(new ArrayBuffer(0)), opacity: data.opacity, show_borders: false, encoding: data.encoding,
  style: data.style, drawing: data.drawing, ...data.empty_heatmap });
const curves = model({ _view: "curves", ...data.empty_curves, step: 0 });
for (const [id, m] of [["strip", strip], ["modality", modality], ["heatmap", heatmap], ["curves", curves]])
  views.render({ model: m, el: document.getElementById(id) });
const status = document.getElementById("status");
const known = data.explanations.map((e) => e.selection.join(","));
let shown = null;
function show() {
  const sel = strip.get("selection");
  if (modality.get("selection").join(",") !== sel.join(",")) modality.set("selection", sel);
  const hit = data.explanations.find((e) => e.selection.join(",") === sel.join(","));
  if (!hit) {
    shown = null;
    for (const [k, v] of Object.entries(data.empty_heatmap)) heatmap.set(k, v);
    for (const [k, v] of Object.entries(data.empty_curves)) curves.set(k, v);
    status.textContent = sel.length ? "No explanation of this selection was computed before the export. " +
      "Explained selections: " + data.explanations.map((e) => "[" + e.labels.join(" ") + "]").join(", ")
      : "Click a token (shift-click a range) to see where the model looked.";
    return;
  }
  if (shown !== hit) heatmap.set("step", 0);
  shown = hit;
  heatmap.set("labels", bytes(hit.label_bytes));
  for (const [k, v] of Object.entries(hit.heatmap[heatmap.get("encoding")])) heatmap.set(k, v);
  for (const [k, v] of Object.entries(hit.curves)) curves.set(k, v);
  status.textContent = hit.summary;
}
strip.on("change:selection", show);
heatmap.on("change:encoding", show);
heatmap.on("change:step", () => curves.set("step", heatmap.get("step")));
modality.on("change:selection", () => {
  if (modality.get("selection").join(",") !== strip.get("selection").join(","))
    strip.set("selection", modality.get("selection"));
});
document.body.dataset.explanations = String(known.length);
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
    """The HTML of `explorer` with every complete explanation computed so far (and a cancelled partial one)."""
    gen = explorer.generation
    explanations = [_explanation(gen, list(selection), result)
                    for selection, result in explorer.explanations().items()]
    data = {
        "strip": {"tokens": list(gen.tokens), "reliance": list(explorer.strip.reliance),
                  "special": list(gen.special), "selection": list(explorer.selection)},
        "modality": {"tokens": list(explorer.chart.tokens), "reliance": list(explorer.chart.reliance),
                     "p_full": list(explorer.chart.p_full), "p_black": list(explorer.chart.p_black),
                     "special": list(explorer.chart.special), "selection": list(explorer.selection)},
        "image_png": base64.b64encode(explorer.heatmap.image_png).decode(),
        "width": explorer.heatmap.width, "height": explorer.heatmap.height,
        "encoding": explorer.heatmap.encoding, "opacity": OVERLAY_OPACITY, "drawing": drawing(),
        "style": explorer.heatmap.style if explorer.heatmap.style else DEFAULT_STYLE,
        "empty_heatmap": EMPTY_HEATMAP, "empty_curves": EMPTY_CURVES,
        "explanations": explanations,
    }
    model = explorer.session.display_name
    values = {"__TITLE__": plain(f"{gen.prompt} → {gen.text}"), "__PROMPT__": text(gen.prompt),
              "__ANSWER__": text(gen.text), "__MODEL__": text(model),
              "__CSS__": (_STATIC / "views.css").read_text(), "__DATA__": _script_json(data),
              "__ESM__": _script_text((_STATIC / "views.js").read_text())}
    # One pass over the template: text put in is never searched for placeholders again.
    return re.sub("|".join(values), lambda m: values[m.group(0)], _PAGE)


def _explanation(gen, selection: list[int], result) -> dict:
    labels = result.regions.labels
    if labels.max() >= 65536:
        raise InputError("the HTML export draws at most 65536 regions")
    return {
        "selection": selection,
        "labels": [gen.tokens[i] for i in selection],
        "label_bytes": base64.b64encode(labels.astype("<u2").tobytes()).decode(),
        "heatmap": {encoding: {**heatmap_state(result, encoding), "step": 0} for encoding in MAP_ENCODINGS},
        "curves": curves_state(result),
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
