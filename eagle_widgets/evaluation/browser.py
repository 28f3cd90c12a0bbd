"""The dataset browser: a run's results table, sortable and filterable by metric; a click on a row opens
that sample's stored explanation (in the Explorer when a session is given; never recomputed)."""

from __future__ import annotations

import math
from pathlib import Path

import anywidget
import ipywidgets as W
import traitlets

from ..core.errors import EagleError, InputError
from ..widgets import CurvesView, Explorer, HeatmapView
from ..widgets.markup import markup
from .store import ResultsFolder

_STATIC = Path(__file__).resolve().parent / "static"
METRICS = ("insertion_auc", "deletion_auc", "highest_score", "image_dependence", "pointing_box", "pointing_mask",
           "mcr")
COLUMNS = ("id", "protocol", "status", "explained", *METRICS, "seconds")


class ResultsTable(anywidget.AnyWidget):
    """Rows of a run, filtered and sorted here (the traitlets are the truth); the view writes back choices."""

    _esm = _STATIC / "browser.js"
    _css = _STATIC / "browser.css"
    columns = traitlets.List(traitlets.Unicode(), default_value=list(COLUMNS)).tag(sync=True)
    metrics = traitlets.List(traitlets.Unicode(), default_value=list(METRICS)).tag(sync=True)
    visible_rows = traitlets.List().tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    sort_by = traitlets.Unicode("id").tag(sync=True)
    descending = traitlets.Bool(False).tag(sync=True)
    filter_metric = traitlets.Unicode("insertion_auc").tag(sync=True)
    filter_min = traitlets.Float(None, allow_none=True).tag(sync=True)
    filter_max = traitlets.Float(None, allow_none=True).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)

    def __init__(self, rows: list[dict], **kwargs):
        super().__init__(**kwargs)
        self._rows = [{c: _cell(r.get(c)) for c in COLUMNS} for r in rows]
        self.total = len(self._rows)
        self.observe(lambda _: self._refresh(), names=["sort_by", "descending", "filter_metric", "filter_min",
                                                        "filter_max"])
        self._refresh()

    @traitlets.validate("sort_by")
    def _valid_sort(self, proposal):
        if proposal["value"] not in COLUMNS:
            raise traitlets.TraitError(f"sort by one of {', '.join(COLUMNS)}")
        return proposal["value"]

    @traitlets.validate("filter_metric")
    def _valid_metric(self, proposal):
        if proposal["value"] not in METRICS:
            raise traitlets.TraitError(f"filter by one of {', '.join(METRICS)}")
        return proposal["value"]

    def _refresh(self) -> None:
        lo, hi, metric = self.filter_min, self.filter_max, self.filter_metric
        rows = self._rows
        if lo is not None or hi is not None:  # a filter keeps only rows that have the metric, within bounds
            rows = [r for r in rows if isinstance(r[metric], (int, float))
                    and (lo is None or r[metric] >= lo) and (hi is None or r[metric] <= hi)]
        key = self.sort_by
        present = [r for r in rows if r[key] is not None]
        present.sort(key=lambda r: r[key], reverse=self.descending)
        self.visible_rows = present + [r for r in rows if r[key] is None]  # rows without the value go last


def _static_cell(v) -> str:
    if v is None:
        return ""
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _cell(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, bool):
        return float(v)
    return v


class DatasetBrowser(W.VBox):
    """`DatasetBrowser(results_folder, session=None)`: the run's table; clicking a row shows its stored
    explanation. With a session (the run's model) the row opens in an Explorer, which can go on to other
    tokens; without one, the stored map and curves are shown."""

    def __init__(self, results, session=None):
        self.folder = results if isinstance(results, ResultsFolder) else ResultsFolder(results)
        self.session = session
        self.explorer: Explorer | None = None
        records = self.folder.records()
        if not records:
            raise InputError(f"{self.folder.path} holds no finished sample yet")
        self.table = ResultsTable(records)
        self.status = W.HTML("Click a row to open its explanation.")
        self.detail = W.Box()
        self.table.observe(lambda change: self.show_sample(change["new"]) if change["new"] else None, names="selected")
        super().__init__([self.table, self.status, self.detail])

    def static_html(self, rows: int = 20) -> str:
        """The table as plain HTML, for a notebook read without a kernel (GitHub, nbconvert)."""
        shown = self.table.visible_rows[:rows]
        head = "".join(markup("<th>{c}</th>", c=c) for c in COLUMNS)
        body = "".join("<tr>" + "".join(markup("<td>{v}</td>", v=_static_cell(r.get(c))) for c in COLUMNS) + "</tr>"
                       for r in shown)
        more = markup("<p>… and {n} more rows (open the notebook with a kernel to sort, filter and open them)</p>",
                      n=len(self.table.visible_rows) - rows) if len(self.table.visible_rows) > rows else ""
        return markup("<p><b>Dataset run</b> {path}: {n} samples</p>", path=self.folder.path.name,
                      n=self.table.total) + f"<table>{head}{body}</table>{more}"

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if data is not None:
            data["text/plain"] = f"DatasetBrowser({self.folder.path.name!r}, {self.table.total} samples)"
            data["text/html"] = self.static_html()
        return bundle

    def show_sample(self, sample_id: str):
        """Show the stored explanation of `sample_id` (also what a click does); returns what is shown."""
        self.detail.children = []  # nothing of the previous sample stays on screen
        self.explorer = None
        record = self.folder.record(sample_id)
        if record is None:
            self.status.value = markup("<b>{id}</b>: no record of this sample in {folder}", id=sample_id,
                                       folder=self.folder.path)
            raise InputError(f"no sample {sample_id!r} in {self.folder.path}")
        if record.get("status") != "ok":
            self.status.value = markup("<b>{id}</b>: error: {error}", id=sample_id, error=record.get("error", ""))
            return None
        try:
            result = self.folder.load(sample_id)
        except EagleError as err:
            self.status.value = markup("<b>{id}</b>: {error}", id=sample_id, error=err)
            return None
        context = result.context
        self.status.value = markup("<b>{id}</b> · {protocol} · explained {explained} · insertion AUC {ins} , "
                                   "deletion AUC {dele} (stored, not recomputed)", id=sample_id,
                                   protocol=record.get("protocol", ""), explained=repr(record.get("explained", "")),
                                   ins=f"{result.insertion_auc:.3f}", dele=f"{result.deletion_auc:.3f}")
        if self.session is not None and result.image is not None:
            self.explorer = Explorer(self.session, result.image, context.prompt, auto_run=False,
                                     answer=list(context.generated_ids), mode=result.mode,
                                     regions=self.folder.options.regions, lambda1=result.lambda1,
                                     lambda2=result.lambda2)
            self.explorer.auto_run = True
            self.explorer.show_result(result, self.folder.options.regions)
            self.detail.children = [self.explorer]
            return self.explorer
        heatmap, curves = HeatmapView(result.image), CurvesView()
        heatmap.show(result)
        curves.show(result)
        self.detail.children = [W.HBox([heatmap, curves])]
        return heatmap
