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
      chip.addEventListener("mouseenter", () => setHover(model, "hover", i));
      chip.addEventListener("click", (ev) => {
        focus = i;
        setSelection(model, nextSelection(model.get("selection"), i, ev, anchor));
        if (!ev.shiftKey) anchor = i;
      });
      chips.append(chip);
    });
  }
  chips.addEventListener("mouseleave", () => setHover(model, "hover", -1));
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
  const off = subscribe(model, ["change:tokens", "change:reliance", "change:special", "change:selection"], draw);
  draw();
  return off;
}

// Hover state goes to Python only when it changes (the other views follow from there).
function setHover(model, name, value) {
  if (model.get(name) === value) return;
  model.set(name, value);
  model.save_changes();
}

// Listen to model changes; the returned function removes the listeners (called when the view goes away).
function subscribe(model, events, fn) {
  events.forEach((e) => model.on(e, fn));
  return () => events.forEach((e) => model.off(e, fn));
}

function renderHeatmap({ model, el: root }) {
  root.classList.add("eagle-heatmap");
  const stage = el("div", "eagle-stage");
  const base = el("canvas", "eagle-base"), over = el("canvas", "eagle-overlay"), tip = el("div", "eagle-tip");
  stage.append(base, over, tip);
  const bar = el("div", "eagle-colourbar");
  const ramp = el("canvas", "eagle-ramp");
  ramp.width = 256; ramp.height = 1;
  const ticks = el("div", "eagle-ticks");
  ticks.append(el("span", null, "0"), el("span", null, "0.5"), el("span", null, "1"));
  const legend = el("div", "eagle-legend-title");
  bar.append(ramp, ticks, legend);
  const note = el("div", "eagle-note");
  const controls = el("div", "eagle-controls");
  const opacity = Object.assign(el("input"), { type: "range", min: 0, max: 1, step: 0.05 });
  const borders = Object.assign(el("input", "eagle-borders"), { type: "checkbox" });
  // Unticked: the plain picture, to compare with the map (the spotlight dims the whole image).
  const showMap = Object.assign(el("input", "eagle-show-map"), { type: "checkbox", checked: true });
  const style = el("select", "eagle-style");
  for (const [value, text] of [["spotlight", "spotlight"], ["colour", "colour"]])
    style.append(Object.assign(el("option", null, text), { value }));
  style.title = "spotlight: regions that matter less are dimmed, so objects keep their own colours. " +
    "colour: a viridis overlay, more opaque where the region matters more.";
  const encoding = el("select", "eagle-encoding");
  for (const [value, text] of [["gain", "gain share"], ["paper", "paper's normalisation"]])
    encoding.append(Object.assign(el("option", null, text), { value }));
  encoding.title = "gain share: each region's own gain in F as a share of the largest (near-zero regions look " +
    "near-zero). paper's normalisation: rank 1 = 1, then the share of the later gains still to come (the authors' map).";
  const step = Object.assign(el("input", "eagle-step"), { type: "range", min: 0, step: 1 });
  step.title = "0 shows the map; k shows what the model saw after the first k regions were inserted";
  const stepInfo = el("span", "eagle-step-info");
  const lab = (text, input) => { const l = el("label", null, text); l.append(input); return l; };
  controls.append(lab("show map ", showMap), lab(" map ", encoding), lab(" drawn as ", style), lab(" opacity ", opacity),
    lab(" borders ", borders),
    lab(" insertion step ", step), stepInfo);
  const caption = el("div", "eagle-caption");
  root.append(stage, bar, note, controls, caption);
  let img = null, labels = null, labelCount = 0, w = 0, h = 0;

  function loadImage() {
    const png = model.get("image_png");
    w = model.get("width"); h = model.get("height");
    // A video's frames side by side: wider than the usual 340 px, about 170 px of height per frame row.
    const wide = h > 0 && w / h > 2;
    root.classList.toggle("eagle-wide", wide);
    root.style.setProperty("--eagle-wide-width", wide ? `${Math.min(1360, Math.round(170 * w / h))}px` : "");
    if (!png || !png.byteLength) return;
    const url = URL.createObjectURL(new Blob([png], { type: "image/png" }));
    const im = new Image();
    im.onload = () => { img = im; URL.revokeObjectURL(url); draw(); };
    im.src = url;
  }
  function loadLabels() {
    const buf = model.get("labels");
    labels = buf && buf.byteLength ? new Uint16Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)) : null;
    labelCount = 0;
    if (labels) for (let i = 0; i < labels.length; i++) if (labels[i] >= labelCount) labelCount = labels[i] + 1;
  }
  function drawRamp() {
    const colours = model.get("drawing").ramps[model.get("map_style")], ctx = ramp.getContext("2d");
    const data = ctx.createImageData(256, 1);
    colours.forEach((c, i) => { data.data.set([c[0], c[1], c[2], 255], 4 * i); });
    ctx.putImageData(data, 0, 0);
  }
  // The overlay pixel of a map value, exactly as core.colours.overlay_pixel computes it.
  function overlayPixel(v, strength) {
    const t = Math.max(0, Math.min(1, v || 0)), d = model.get("drawing");
    if (model.get("map_style") === "spotlight") return [...d.veil, Math.round(255 * strength * (1 - t))];
    const c = d.palette[Math.round(t * 255)];
    return [c[0], c[1], c[2], Math.round(255 * strength * t)];
  }
  // The state arrives trait by trait in any order: draw only what is consistent, never throw.
  function consistent() {
    const values = model.get("values");
    return labels && labels.length === w * h && values.length > 0 && values.length === model.get("n_regions") &&
      labelCount <= values.length;
  }
  function draw() {
    const values = model.get("values"), order = model.get("order"), k = Math.min(model.get("step"), order.length);
    const phase = model.get("phase");
    root.dataset.phase = phase;
    opacity.value = model.get("opacity"); borders.checked = model.get("show_borders");
    encoding.value = model.get("encoding"); style.value = model.get("map_style");
    step.max = order.length; step.value = k; step.disabled = !order.length || phase === "running";
    const ins = model.get("insertion"), areas = model.get("areas");
    stepInfo.textContent = order.length && ins.length > k
      ? (k === 0 ? "step 0: the map (move the slider to reveal the regions in order)" : `first ${k}/${order.length} regions, ${(100 * areas[k]).toFixed(0)}% of the ${model.get("frames") ? "frames' pixels" : "image"}, p = ${ins[k].toFixed(3)}`)
      : "";
    caption.textContent = model.get("caption");
    legend.textContent = model.get("legend") &&
      `${model.get("map_style")} (${model.get("drawing").styles[model.get("map_style")]}); ${model.get("legend")}`;
    bar.style.visibility = values.length ? "visible" : "hidden";
    note.textContent = model.get("note");
    note.style.display = model.get("note") ? "block" : "none";
    if (!img) return;
    for (const c of [base, over]) { if (c.width !== w) c.width = w; if (c.height !== h) c.height = h; }
    base.getContext("2d").drawImage(img, 0, 0, w, h);
    const o = over.getContext("2d");
    o.clearRect(0, 0, w, h);
    root.dataset.drawn = "0";
    if (!consistent()) return;
    over.style.visibility = showMap.checked ? "visible" : "hidden";
    const data = o.createImageData(w, h);
    const px = data.data, strength = model.get("opacity");
    if (k > 0) {
      // Insertion path: only the first k regions are visible, the rest is black as the model saw it.
      const shown = new Uint8Array(values.length);
      order.slice(0, k).forEach((r) => (shown[r] = 1));
      for (let i = 0; i < labels.length; i++) if (!shown[labels[i]]) px[4 * i + 3] = 255;
    } else {
      const lut = values.map((v) => overlayPixel(v, strength));
      for (let i = 0; i < labels.length; i++) px.set(lut[labels[i]], 4 * i);
    }
    if (model.get("show_borders")) {
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
        const i = y * w + x;
        if ((x + 1 < w && labels[i] !== labels[i + 1]) || (y + 1 < h && labels[i] !== labels[i + w]))
          px.set([255, 255, 255, 255], 4 * i);
      }
    }
    o.putImageData(data, 0, 0);
    root.dataset.drawn = "1";
  }
  over.addEventListener("mousemove", (ev) => {
    if (!consistent()) return;
    const r = over.getBoundingClientRect();
    const x = Math.floor(((ev.clientX - r.left) / r.width) * w), y = Math.floor(((ev.clientY - r.top) / r.height) * h);
    const label = labels[y * w + x];
    setHover(model, "hover_region", label);
    const order = model.get("order"), gains = model.get("gains"), values = model.get("values");
    const rank = order.indexOf(label);
    tip.style.display = "block";
    tip.style.left = `${ev.clientX - r.left + 12}px`; tip.style.top = `${ev.clientY - r.top + 12}px`;
    tip.textContent = rank < 0 ? `region ${label}: not ranked yet`
      : `region ${label}: rank ${rank + 1}/${order.length}, gain ${(gains[label] ?? 0).toFixed(3)}, ` +
        `map value ${(values[label] ?? 0).toFixed(2)}`;
  });
  over.addEventListener("mouseleave", () => { tip.style.display = "none"; setHover(model, "hover_region", -1); });
  opacity.addEventListener("input", () => { model.set("opacity", parseFloat(opacity.value)); model.save_changes(); });
  borders.addEventListener("change", () => { model.set("show_borders", borders.checked); model.save_changes(); });
  encoding.addEventListener("change", () => { model.set("encoding", encoding.value); model.save_changes(); });
  style.addEventListener("change", () => { model.set("map_style", style.value); model.save_changes(); });
  showMap.addEventListener("change", () => { over.style.visibility = showMap.checked ? "visible" : "hidden"; });
  step.addEventListener("input", () => { model.set("step", parseInt(step.value)); model.save_changes(); });
  const onLabels = () => { loadLabels(); draw(); };
  const off = [
    subscribe(model, ["change:image_png", "change:width", "change:height"], loadImage),
    subscribe(model, ["change:labels"], onLabels),
    subscribe(model, ["change:drawing", "change:map_style"], () => { drawRamp(); draw(); }),
    subscribe(model, ["change:values", "change:order", "change:opacity", "change:show_borders", "change:step",
      "change:caption", "change:insertion", "change:areas", "change:n_regions", "change:legend", "change:note",
      "change:phase", "change:encoding"], draw),
  ];
  loadLabels(); loadImage(); drawRamp(); draw();
  return () => off.forEach((f) => f());
}

function svg(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function svgText(attrs, text) { return Object.assign(svg("text", attrs), { textContent: text }); }

function renderModality({ model, el: root }) {
  root.classList.add("eagle-modality");
  let anchor = null;
  function draw() {
    const tokens = model.get("tokens"), rel = model.get("reliance"), pf = model.get("p_full"), pb = model.get("p_black");
    const sel = new Set(model.get("selection")), special = model.get("special");
    const bw = 26, T = 22, H = 120, L = 44, W = Math.max(300, tokens.length * bw + L + 10);  // room for the title
    const s = svg("svg", { width: W, height: T + H + 70, class: "eagle-chart" });
    const g0 = svg("g", { transform: `translate(0 ${T})` });
    s.append(svgText({ x: 2, y: 13, class: "eagle-axis-title" }, "reliance on the image and p(token), 0 to 1"));
    s.append(g0);
    [0, 0.5, 1].forEach((t) => {
      g0.append(svg("line", { x1: L - 4, y1: H - t * H, x2: W, y2: H - t * H, class: "eagle-grid" }));
      g0.append(svgText({ x: L - 8, y: H - t * H + 4, "text-anchor": "end" }, String(t)));
    });
    tokens.forEach((tok, i) => {
      const x = L + i * bw, v = Math.max(0, Math.min(1, rel[i] ?? 0));
      const g = svg("g", { class: "eagle-bar" + (sel.has(i) ? " eagle-selected" : ""), "data-index": i });
      g.append(svg("rect", { x, y: H - v * H, width: bw - 6, height: Math.max(1, v * H),
        fill: css(relianceColour(v), special[i] ? 0.35 : 0.9) }));
      if (pf.length) {
        g.append(svg("circle", { cx: x + (bw - 6) / 2, cy: H - pf[i] * H, r: 3.5, class: "eagle-dot-full" }));
        g.append(svg("circle", { cx: x + (bw - 6) / 2, cy: H - pb[i] * H, r: 3.5, class: "eagle-dot-black" }));
      }
      g.append(svgText({ x: x + 4, y: H + 10, transform: `rotate(60 ${x + 4} ${H + 10})` }, tok.trim() || "␣"));
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
    const legend = el("div", "eagle-chart-legend",
      "bars: reliance on the image (p with the image − p with a black image) · ● p(token | image) · ○ p(token | black image)");
    root.replaceChildren(s, legend);
  }
  const off = subscribe(model, ["change:tokens", "change:reliance", "change:p_full", "change:p_black", "change:selection",
    "change:special"], draw);
  draw();
  return off;
}

function renderCurves({ model, el: root }) {
  root.classList.add("eagle-curves");
  function draw() {
    const areas = model.get("areas"), ins = model.get("insertion"), del = model.get("deletion");
    const W = 340, H = 210, L = 48, B = 36, R = 10, TOP = 10;
    const s = svg("svg", { width: W, height: H, class: "eagle-chart" });
    const X = (a) => L + a * (W - L - R), Y = (p) => H - B - p * (H - B - TOP);
    s.append(svg("rect", { x: L, y: TOP, width: W - L - R, height: H - B - TOP, class: "eagle-frame" }));
    [0, 0.5, 1].forEach((t) => {
      s.append(svgText({ x: X(t), y: H - B + 14, "text-anchor": "middle" }, String(t)));
      s.append(svgText({ x: L - 6, y: Y(t) + 4, "text-anchor": "end" }, String(t)));
    });
    s.append(svgText({ x: X(0.5), y: H - 4, "text-anchor": "middle", class: "eagle-axis-title" },
      model.get("x_label") || "fraction of the image inserted or deleted"));
    s.append(svgText({ x: 12, y: Y(0.5), "text-anchor": "middle", class: "eagle-axis-title",
      transform: `rotate(-90 12 ${Y(0.5)})` }, "mean p(selection)"));
    const ok = areas.length > 0 && ins.length === areas.length && del.length === areas.length;
    const line = (ys, cls) => {
      if (!ok || ys.length !== areas.length) return;
      const d = ys.map((p, i) => `${i ? "L" : "M"}${X(areas[i]).toFixed(1)},${Y(p).toFixed(1)}`).join("");
      s.append(svg("path", { d, class: cls }));
    };
    const perTok = model.get("insertion_tokens"), hi = model.get("highlight");
    if (perTok.length > 1) perTok.forEach((ys, i) => line(ys, i === hi ? "eagle-curve-token eagle-curve-highlight"
      : "eagle-curve-token"));
    line(ins, "eagle-curve-insertion"); line(del, "eagle-curve-deletion");
    const k = model.get("step");
    if (ok && k > 0 && k < areas.length) {
      s.append(svg("line", { x1: X(areas[k]), y1: TOP, x2: X(areas[k]), y2: H - B, class: "eagle-step-marker" }));
      s.append(svg("circle", { cx: X(areas[k]), cy: Y(ins[k]), r: 4, class: "eagle-step-dot" }));
    }
    if (ok) {  // hovering the plot shows that step's revealed image in the heatmap
      const hit = svg("rect", { x: L, y: TOP, width: W - L - R, height: H - B - TOP, class: "eagle-hover-area",
        fill: "transparent" });
      hit.addEventListener("mousemove", (ev) => {
        const r = hit.getBoundingClientRect(), a = (ev.clientX - r.left) / r.width;
        let best = 0;
        areas.forEach((v, i) => { if (Math.abs(v - a) < Math.abs(areas[best] - a)) best = i; });
        setHover(model, "hover_step", best);
      });
      hit.addEventListener("mouseleave", () => setHover(model, "hover_step", -1));
      s.append(hit);
    }
    const info = el("div", "eagle-auc");
    if (ok) {
      const partial = model.get("partial");
      info.append(el("span", "eagle-auc-title", model.get("title") + (partial ? ` · ${partial}` : "")),
        el("br"),
        el("span", "eagle-auc-insertion", `insertion AUC ${model.get("insertion_auc").toFixed(3)} (higher is better)`),
        " · ",
        el("span", "eagle-auc-deletion", `deletion AUC ${model.get("deletion_auc").toFixed(3)} (lower is better)`));
      if (perTok.length > 1) info.append(el("br"), hi >= 0 && hi < perTok.length
        ? `bold: ${JSON.stringify(model.get("token_labels")[hi] ?? "")}'s own insertion curve (hovered token)`
        : "dashed: each token's own insertion curve");
    } else info.textContent = "no explanation yet";
    root.replaceChildren(s, info);
  }
  const off = subscribe(model, ["change:areas", "change:insertion", "change:deletion", "change:insertion_tokens",
    "change:insertion_auc", "change:deletion_auc", "change:title", "change:partial", "change:step", "change:x_label",
    "change:highlight"], draw);
  draw();
  return off;
}

// Export buttons: a click asks Python for the file; the reply's bytes are saved through a temporary link.
function renderDownloads({ model, el: root }) {
  root.classList.add("eagle-downloads");
  const buttons = model.get("formats").map(([what, label, tip]) => {
    const b = el("button", "eagle-download", label);
    b.title = tip;
    b.dataset.what = what;
    b.addEventListener("click", () => model.send({ type: "download", what }));
    return b;
  });
  const note = el("span", "eagle-download-note");
  root.replaceChildren(el("span", "eagle-download-label", "export "), ...buttons, note);
  function onMessage(msg, buffers) {
    if (msg.type === "error") { note.textContent = " " + msg.message; return; }
    if (msg.type !== "file") return;
    const blob = new Blob([buffers[0]], { type: msg.mime });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = msg.name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    note.textContent = ` saved ${msg.name}`;
  }
  model.on("msg:custom", onMessage);
  return () => model.off("msg:custom", onMessage);
}

const VIEWS = { strip: renderStrip, heatmap: renderHeatmap, modality: renderModality, curves: renderCurves,
  downloads: renderDownloads };

// Keys pressed in a view belong to its controls (the step slider, the menus, the token chips): JupyterLab and
// Notebook 7 would otherwise also take them as notebook commands (an arrow key leaves the cell, collapses it).
function keepKeys(el) {
  const stop = (ev) => ev.stopPropagation();
  el.addEventListener("keydown", stop);
  el.addEventListener("keyup", stop);
  el.addEventListener("keypress", stop);
}

export default {
  render(ctx) {
    keepKeys(ctx.el);
    const view = VIEWS[ctx.model.get("_view")];
    if (view) return view(ctx);
    ctx.el.textContent = `eagle-widgets: unknown view ${ctx.model.get("_view")}`;
  },
};
