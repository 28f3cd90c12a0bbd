// The dataset browser: a table of per-sample results. Python holds the truth (rows already filtered and
// sorted); the view draws them and writes back the user's sort, filter and row choices.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function fmt(v) {
  if (v === null || v === undefined || v === "") return "—";
  return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v);
}

function render({ model, el: root }) {
  root.classList.add("eagle-browser");
  function draw() {
    const columns = model.get("columns");
    const rows = model.get("visible_rows");
    const sortBy = model.get("sort_by");
    const descending = model.get("descending");
    const bar = el("div", "eagle-browser-bar");
    const metric = el("select", "eagle-browser-metric");
    for (const c of model.get("metrics")) {
      const o = el("option", "", c);
      o.value = c;
      o.selected = c === model.get("filter_metric");
      metric.append(o);
    }
    const lo = el("input", "eagle-browser-min");
    lo.type = "number"; lo.step = "any"; lo.placeholder = "min";
    lo.value = model.get("filter_min") ?? "";
    const hi = el("input", "eagle-browser-max");
    hi.type = "number"; hi.step = "any"; hi.placeholder = "max";
    hi.value = model.get("filter_max") ?? "";
    const apply = () => {
      model.set("filter_metric", metric.value);
      model.set("filter_min", lo.value === "" ? null : Number(lo.value));
      model.set("filter_max", hi.value === "" ? null : Number(hi.value));
      model.save_changes();
    };
    metric.addEventListener("change", apply);
    lo.addEventListener("change", apply);
    hi.addEventListener("change", apply);
    bar.append("filter ", metric, " from ", lo, " to ", hi,
      el("span", "eagle-browser-count", ` ${rows.length} of ${model.get("total")} samples`));
    const table = el("table", "eagle-browser-table");
    const head = el("tr");
    for (const c of columns) {
      const th = el("th", "", c + (c === sortBy ? (descending ? " ▼" : " ▲") : ""));
      th.title = "sort by " + c;
      th.addEventListener("click", () => {
        model.set("descending", c === sortBy ? !descending : false);
        model.set("sort_by", c);
        model.save_changes();
      });
      head.append(th);
    }
    table.append(head);
    for (const r of rows) {
      const tr = el("tr", r.id === model.get("selected") ? "eagle-browser-selected" : "");
      if (r.status !== "ok") tr.classList.add("eagle-browser-error");
      tr.dataset.id = r.id;
      for (const c of columns) tr.append(el("td", "", fmt(r[c])));
      tr.addEventListener("click", () => { model.set("selected", r.id); model.save_changes(); });
      table.append(tr);
    }
    const scroller = el("div", "eagle-browser-scroll");
    scroller.append(table);
    root.replaceChildren(bar, scroller);
  }
  const events = ["change:visible_rows", "change:sort_by", "change:descending", "change:selected", "change:metrics"];
  for (const e of events) model.on(e, draw);
  draw();
  return () => { for (const e of events) model.off(e, draw); };
}

export default { render };
