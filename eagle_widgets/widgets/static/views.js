// eagle-widgets front end: one ESM module, four views chosen by the model's `_view` trait.
// The Python traitlets are the source of truth; views only render them and write back user choices.

const RED = [214, 39, 40], BLUE = [31, 119, 180], GREY = [200, 200, 200];

function mix(a, b, t) { return a.map((x, i) => Math.round(x + (b[i] - x) * t)); }
function relianceColour(v) { return v == null || isNaN(v) ? GREY : mix(BLUE, RED, Math.max(0, Math.min(1, v))); }
function css(rgb, alpha = 1) { return `rgba(${rgb[0]},${rgb[1]},${rgb[2]},${alpha})`; }
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

// Jet-like colour map, 0 -> dark blue, 1 -> dark red.
function jet(v) {
  const t = Math.max(0, Math.min(1, v));
  const r = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * t - 3)));
  const g = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * t - 2)));
  const b = Math.max(0, Math.min(1, 1.5 - Math.abs(4 * t - 1)));
  return [r * 255, g * 255, b * 255];
}

// Selection rules shared by the strip and the modality chart: click, shift-click range, ctrl/cmd toggle.
function nextSelection(current, index, event, anchor) {
  if (event.shiftKey && anchor != null) {
    const lo = Math.min(anchor, index), hi = Math.max(anchor, index);
    return Array.from({ length: hi - lo + 1 }, (_, k) => lo + k);
  }
  if (event.ctrlKey || event.metaKey) {
    const s = new Set(current);
    s.has(index) ? s.delete(index) : s.add(index);
    return [...s].sort((a, b) => a - b);
  }
  return [index];
}

function setSelection(model, sel) {
  model.set("selection", sel);
  model.save_changes();
}

function renderStrip({ model, el: root }) {
  root.classList.add("eagle-strip");
  const chips = el("div", "eagle-chips");
  chips.setAttribute("role", "listbox");
  chips.setAttribute("aria-multiselectable", "true");
  const legend = el("div", "eagle-legend");
  legend.innerHTML = '<span>language prior</span><span class="eagle-legend-bar"></span><span>perceptual evidence</span>';
  root.append(chips, legend);
  let anchor = null, focus = 0;

  function draw() {
    const tokens = model.get("tokens"), rel = model.get("reliance"), special = model.get("special");
    const sel = new Set(model.get("selection"));
    chips.replaceChildren();
    tokens.forEach((tok, i) => {
      const chip = el("span", "eagle-chip", tok.replace(/\n/g, "⏎") || "∅");
      const c = relianceColour(rel[i]);
      chip.style.background = css(c, 0.85);
      chip.style.color = (rel[i] ?? 0) > 0.25 && (rel[i] ?? 0) < 0.75 ? "#111" : "#fff";
      chip.dataset.index = i;
      chip.tabIndex = i === focus ? 0 : -1;
      chip.setAttribute("role", "option");
      chip.setAttribute("aria-selected", sel.has(i));
      chip.title = `token ${i}: ${JSON.stringify(tok)}` + (rel[i] != null ? `, reliance ${rel[i].toFixed(2)}` : "");
      if (special[i]) chip.classList.add("eagle-special");
      if (sel.has(i)) chip.classList.add("eagle-selected");
      chip.addEventListener("click", (ev) => {
        focus = i;
        setSelection(model, nextSelection(model.get("selection"), i, ev, anchor));
        if (!ev.shiftKey) anchor = i;
      });
      chips.append(chip);
    });
  }
  chips.addEventListener("keydown", (ev) => {
    const n = model.get("tokens").length;
    if (!n) return;
    if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
      focus = Math.max(0, Math.min(n - 1, focus + (ev.key === "ArrowRight" ? 1 : -1)));
      if (ev.shiftKey) setSelection(model, nextSelection(model.get("selection"), focus, ev, anchor ?? focus));
      draw();
      chips.querySelector(`[data-index="${focus}"]`)?.focus();
      ev.preventDefault();
    } else if (ev.key === " " || ev.key === "Enter") {
      setSelection(model, nextSelection(model.get("selection"), focus, ev, anchor));
      if (!ev.shiftKey) anchor = focus;
      ev.preventDefault();
    }
  });
  ["change:tokens", "change:reliance", "change:special", "change:selection"].forEach((e) => model.on(e, draw));
  draw();
}

function renderHeatmap({ model, el: root }) {
  root.classList.add("eagle-heatmap");
  const stage = el("div", "eagle-stage");
  const base = el("canvas", "eagle-base"), over = el("canvas", "eagle-overlay"), tip = el("div", "eagle-tip");
  stage.append(base, over, tip);
  const controls = el("div", "eagle-controls");
  const opacity = Object.assign(el("input"), { type: "range", min: 0, max: 1, step: 0.05 });
  const borders = Object.assign(el("input"), { type: "checkbox" });
  const step = Object.assign(el("input", "eagle-step"), { type: "range", min: 0, step: 1 });
  const stepInfo = el("span", "eagle-step-info");
  const lab = (text, input) => { const l = el("label", null, text); l.append(input); return l; };
  controls.append(lab("opacity ", opacity), lab(" borders ", borders), lab(" insertion step ", step), stepInfo);
  const caption = el("div", "eagle-caption");
  root.append(stage, controls, caption);
  let img = null, labels = null, w = 0, h = 0;

  function loadImage() {
    const png = model.get("image_png");
    w = model.get("width"); h = model.get("height");
    if (!png || !png.byteLength) return;
    const url = URL.createObjectURL(new Blob([png], { type: "image/png" }));
    const im = new Image();
    im.onload = () => { img = im; URL.revokeObjectURL(url); draw(); };
    im.src = url;
  }
  function loadLabels() {
    const buf = model.get("labels");
    labels = buf && buf.byteLength ? new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)) : null;
  }
  function draw() {
    const values = model.get("values"), order = model.get("order"), k = model.get("step");
    opacity.value = model.get("opacity"); borders.checked = model.get("show_borders");
    step.max = order.length; step.value = k;
    const ins = model.get("insertion"), areas = model.get("areas");
    stepInfo.textContent = order.length
      ? (k === 0 ? " (heatmap)" : ` ${k}/${order.length} regions, area ${(100 * areas[k]).toFixed(0)}%, p = ${ins[k].toFixed(3)}`)
      : "";
    caption.textContent = model.get("caption");
    if (!img) return;
    for (const c of [base, over]) { c.width = w; c.height = h; }
    const b = base.getContext("2d");
    b.drawImage(img, 0, 0, w, h);
    const o = over.getContext("2d");
    o.clearRect(0, 0, w, h);
    if (!labels || labels.length !== w * h || !values.length) return;
    const data = o.createImageData(w, h);
    const px = data.data, alpha = Math.round(255 * model.get("opacity"));
    if (k > 0) {
      // Insertion path: only the first k regions are visible, the rest is black as the model saw it.
      const shown = new Uint8Array(values.length);
      order.slice(0, k).forEach((r) => (shown[r] = 1));
      for (let i = 0; i < labels.length; i++) if (!shown[labels[i]]) { px[4 * i + 3] = 255; }
    } else {
      const lut = values.map((v) => jet(v));
      for (let i = 0; i < labels.length; i++) {
        const c = lut[labels[i]];
        px[4 * i] = c[0]; px[4 * i + 1] = c[1]; px[4 * i + 2] = c[2]; px[4 * i + 3] = alpha;
      }
    }
    if (model.get("show_borders")) {
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if ((x + 1 < w && labels[i] !== labels[i + 1]) || (y + 1 < h && labels[i] !== labels[i + w])) {
          px[4 * i] = 255; px[4 * i + 1] = 255; px[4 * i + 2] = 255; px[4 * i + 3] = 255;
        }
      }
    }
    o.putImageData(data, 0, 0);
  }
  over.addEventListener("mousemove", (ev) => {
    if (!labels) return;
    const r = over.getBoundingClientRect();
    const x = Math.floor(((ev.clientX - r.left) / r.width) * w), y = Math.floor(((ev.clientY - r.top) / r.height) * h);
    const label = labels[y * w + x];
    const order = model.get("order"), gains = model.get("gains"), values = model.get("values");
    const rank = order.indexOf(label);
    tip.style.display = "block";
    tip.style.left = `${ev.clientX - r.left + 12}px`; tip.style.top = `${ev.clientY - r.top + 12}px`;
    tip.textContent = rank < 0 ? `region ${label}: not ranked yet`
      : `region ${label}: rank ${rank + 1}/${order.length}, gain ${(gains[label] ?? 0).toFixed(3)}, value ${(values[label] ?? 0).toFixed(2)}`;
  });
  over.addEventListener("mouseleave", () => (tip.style.display = "none"));
  opacity.addEventListener("input", () => { model.set("opacity", parseFloat(opacity.value)); model.save_changes(); });
  borders.addEventListener("change", () => { model.set("show_borders", borders.checked); model.save_changes(); });
  step.addEventListener("input", () => { model.set("step", parseInt(step.value)); model.save_changes(); });
  model.on("change:image_png", loadImage);
  model.on("change:labels", () => { loadLabels(); draw(); });
  ["change:values", "change:order", "change:opacity", "change:show_borders", "change:step", "change:caption",
    "change:insertion"].forEach((e) => model.on(e, draw));
  loadLabels(); loadImage();
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function renderModality({ model, el: root }) {
  root.classList.add("eagle-modality");
  let anchor = null;
  function draw() {
    const tokens = model.get("tokens"), rel = model.get("reliance"), pf = model.get("p_full"), pb = model.get("p_black");
    const sel = new Set(model.get("selection")), special = model.get("special");
    const bw = 26, T = 18, H = 120, W = Math.max(200, tokens.length * bw + 40);
    const s = svg("svg", { width: W, height: T + H + 70, class: "eagle-chart" });
    const g0 = svg("g", { transform: `translate(0 ${T})` });
    s.append(Object.assign(svg("text", { x: 2, y: 12, "font-size": 10 }), { textContent: "reliance on the image" }));
    s.append(g0);
    g0.append(svg("line", { x1: 30, y1: H, x2: W, y2: H, stroke: "#888" }));
    tokens.forEach((tok, i) => {
      const x = 34 + i * bw, v = Math.max(0, Math.min(1, rel[i] ?? 0));
      const g = svg("g", { class: "eagle-bar" + (sel.has(i) ? " eagle-selected" : ""), "data-index": i });
      g.append(svg("rect", { x, y: H - v * H, width: bw - 6, height: Math.max(1, v * H),
        fill: css(relianceColour(v), special[i] ? 0.35 : 0.9) }));
      if (pf.length) {
        g.append(svg("circle", { cx: x + (bw - 6) / 2, cy: H - pf[i] * H, r: 3, fill: "#222" }));
        g.append(svg("circle", { cx: x + (bw - 6) / 2, cy: H - pb[i] * H, r: 3, fill: "#fff", stroke: "#222" }));
      }
      const t = svg("text", { x: x + 4, y: H + 8, transform: `rotate(60 ${x + 4} ${H + 8})`, "font-size": 11 });
      t.textContent = tok.trim() || "␣";
      g.append(t);
      const title = svg("title");
      title.textContent = `${JSON.stringify(tok)}: reliance ${(rel[i] ?? 0).toFixed(3)}` +
        (pf.length ? `, p(image) ${pf[i].toFixed(3)}, p(black) ${pb[i].toFixed(3)}` : "");
      g.append(title);
      g.addEventListener("click", (ev) => {
        setSelection(model, nextSelection(model.get("selection"), i, ev, anchor));
        if (!ev.shiftKey) anchor = i;
      });
      g0.append(g);
    });
    const legend = el("div", "eagle-chart-legend", "bars: reliance on the image · ● p(token | image) · ○ p(token | black image)");
    root.replaceChildren(s, legend);
  }
  ["change:tokens", "change:reliance", "change:p_full", "change:p_black", "change:selection"].forEach((e) => model.on(e, draw));
  draw();
}

function renderCurves({ model, el: root }) {
  root.classList.add("eagle-curves");
  function draw() {
    const areas = model.get("areas"), ins = model.get("insertion"), del = model.get("deletion");
    const W = 320, H = 190, L = 36, B = 26;
    const s = svg("svg", { width: W, height: H, class: "eagle-chart" });
    const X = (a) => L + a * (W - L - 10), Y = (p) => H - B - p * (H - B - 10);
    s.append(svg("rect", { x: L, y: 10, width: W - L - 10, height: H - B - 10, fill: "none", stroke: "#bbb" }));
    [0, 0.5, 1].forEach((t) => {
      s.append(Object.assign(svg("text", { x: X(t) - 6, y: H - 8, "font-size": 10 }), { textContent: t }));
      s.append(Object.assign(svg("text", { x: 8, y: Y(t) + 3, "font-size": 10 }), { textContent: t }));
    });
    const line = (ys, colour, width, dash) => {
      if (!ys.length) return;
      const d = ys.map((p, i) => `${i ? "L" : "M"}${X(areas[i]).toFixed(1)},${Y(p).toFixed(1)}`).join("");
      s.append(svg("path", { d, fill: "none", stroke: colour, "stroke-width": width, "stroke-dasharray": dash || "" }));
    };
    const perTok = model.get("insertion_tokens");
    if (perTok.length > 1) perTok.forEach((ys) => line(ys, "rgba(214,39,40,0.35)", 1, "3 2"));
    line(ins, "#d62728", 2); line(del, "#1f77b4", 2);
    const info = el("div", "eagle-auc");
    info.innerHTML = areas.length
      ? `<span style="color:#d62728">insertion AUC ${model.get("insertion_auc").toFixed(4)} ↑</span> · ` +
        `<span style="color:#1f77b4">deletion AUC ${model.get("deletion_auc").toFixed(4)} ↓</span>` +
        (perTok.length > 1 ? " · dashed: per-token insertion" : "")
      : "no explanation yet";
    const xl = el("div", "eagle-axis", "fraction of the image (inserted ↑ / deleted ↓)");
    root.replaceChildren(s, xl, info);
  }
  ["change:areas", "change:insertion", "change:deletion", "change:insertion_tokens"].forEach((e) => model.on(e, draw));
  draw();
}

const VIEWS = { strip: renderStrip, heatmap: renderHeatmap, modality: renderModality, curves: renderCurves };

export default {
  render(ctx) {
    const view = VIEWS[ctx.model.get("_view")];
    if (view) view(ctx);
    else ctx.el.textContent = `eagle-widgets: unknown view ${ctx.model.get("_view")}`;
  },
};
