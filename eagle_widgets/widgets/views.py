"""The four linked views, each an anywidget usable on its own. Their traitlets are the source of truth."""

from __future__ import annotations

import io
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from ..core.attribution import Attribution
from ..core.errors import InputError
from ..core.images import as_rgb_uint8

_STATIC = Path(__file__).resolve().parent / "static"


class _View(anywidget.AnyWidget):
    _esm = _STATIC / "views.js"
    _css = _STATIC / "views.css"
    _view = traitlets.Unicode("").tag(sync=True)


class _TokenView(_View):
    """A view of the answer's tokens with a selection that is checked against them."""

    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    special = traitlets.List(traitlets.Bool()).tag(sync=True)
    selection = traitlets.List(traitlets.Int()).tag(sync=True)

    @traitlets.validate("selection")
    def _valid_selection(self, proposal):
        return _check_selection(proposal["value"], len(self.tokens))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokens={self.tokens!r}, selection={self.selection!r})"


def _normalise(values) -> list[float]:
    """Min-max over one answer, so colours compare tokens of this answer with each other."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return [0.0] * len(v) if hi - lo < 1e-12 else [float(x) for x in (v - lo) / (hi - lo)]


def _check_selection(selection, n: int) -> list[int]:
    try:
        picked = sorted({int(i) for i in selection})
    except (TypeError, ValueError):
        raise InputError(f"a selection is a list of token indices, got {selection!r}") from None
    bad = [i for i in picked if not 0 <= i < n]
    if bad:
        raise InputError(f"token index {bad[0]} is out of range: the answer has {n} tokens (0..{n - 1})")
    return picked


class TokenStrip(_TokenView):
    """The generated tokens as chips coloured from language prior (blue) to perceptual evidence (red).

    Click selects one token, shift-click a range, ctrl/cmd-click toggles; arrows and space/enter work.
    """

    _view = traitlets.Unicode("strip").tag(sync=True)
    reliance = traitlets.List(traitlets.Float(allow_none=True)).tag(sync=True)

    def __init__(self, tokens=(), reliance=None, special=None, **kwargs):
        tokens = list(tokens)
        super().__init__(tokens=tokens, reliance=_normalise(reliance) if reliance is not None else [None] * len(tokens),
                         special=list(special) if special is not None else [False] * len(tokens), **kwargs)


class ModalityChart(_TokenView):
    """Per-token reliance bars with p(token | image) and p(token | black image); selecting here selects there."""

    _view = traitlets.Unicode("modality").tag(sync=True)
    reliance = traitlets.List(traitlets.Float()).tag(sync=True)
    p_full = traitlets.List(traitlets.Float()).tag(sync=True)
    p_black = traitlets.List(traitlets.Float()).tag(sync=True)

    @classmethod
    def from_reliance(cls, reliance, special=None) -> ModalityChart:
        return cls(tokens=list(reliance.tokens), reliance=[float(x) for x in reliance.evidence],
                   p_full=[float(x) for x in reliance.p_full], p_black=[float(x) for x in reliance.p_black],
                   special=list(special) if special is not None else [False] * len(reliance.tokens))


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(as_rgb_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


class HeatmapView(_View):
    """The image with the attribution map over it, region borders, hover details and the insertion path."""

    _view = traitlets.Unicode("heatmap").tag(sync=True)
    image_png = traitlets.Bytes(b"").tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    labels = traitlets.Bytes(b"").tag(sync=True)  # uint16 little-endian label map, row-major
    values = traitlets.List(traitlets.Float()).tag(sync=True)
    gains = traitlets.List(traitlets.Float()).tag(sync=True)
    order = traitlets.List(traitlets.Int()).tag(sync=True)
    insertion = traitlets.List(traitlets.Float()).tag(sync=True)
    areas = traitlets.List(traitlets.Float()).tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)  # 0 shows the map, k reveals the first k regions
    opacity = traitlets.Float(0.5).tag(sync=True)
    show_borders = traitlets.Bool(False).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)

    def __init__(self, image=None, result: Attribution | None = None, **kwargs):
        super().__init__(**kwargs)
        if image is not None:
            self.set_image(image)
        if result is not None:
            self.show(result)

    def set_image(self, image) -> None:
        rgb = as_rgb_uint8(image)
        self.height, self.width = rgb.shape[:2]
        self.image_png = png_bytes(rgb)

    def set_regions(self, labels: np.ndarray) -> None:
        if labels.shape != (self.height, self.width):
            raise InputError(f"the label map is {labels.shape[1]}x{labels.shape[0]} but the image is "
                             f"{self.width}x{self.height}")
        if labels.max() >= 65536:
            raise InputError("the heatmap view draws at most 65536 regions")
        self.labels = labels.astype("<u2").tobytes()

    def show(self, result: Attribution) -> None:
        """Draw `result` (complete or partial)."""
        if not self.image_png and result.image is not None:
            self.set_image(result.image)
        with self.hold_sync():
            self.set_regions(result.regions.labels)
            self.values = [float(v) for v in result.region_values]
            self.gains = [float(g) for g in result.marginal_gains()]
            self.order = list(result.order)
            self.insertion = [float(v) for v in result.insertion]
            self.areas = [float(a) for a in result.areas]
            self.step = min(self.step, len(result.order))
            label = ", ".join(repr(t) for t in (result.token_labels or [])) or f"{result.num_tokens} tokens"
            state = "" if result.complete else f" (partial: {len(result.order)}/{result.num_regions} regions)"
            self.caption = f"{result.mode} · {result.num_regions} regions · {label}{state}"

    def show_partial_order(self, order, n_regions: int) -> None:
        """A preview while the search runs: regions ranked so far, brightest first."""
        values = np.zeros(n_regions)
        if order:
            values[list(order)] = np.linspace(1.0, 0.3, len(order)) if len(order) > 1 else 1.0
        with self.hold_sync():
            self.values = [float(v) for v in values]
            self.order = list(order)
            self.insertion = [0.0] * (len(order) + 1)
            self.areas = [0.0] * (len(order) + 1)
            self.step = 0

    def clear(self) -> None:
        with self.hold_sync():
            self.values, self.gains, self.order, self.insertion, self.areas = [], [], [], [], []
            self.step, self.caption = 0, ""

    def __repr__(self) -> str:
        return f"HeatmapView({self.width}x{self.height}, regions ranked={len(self.order)})"


class CurvesView(_View):
    """Insertion and deletion curves with their AUCs, and the per-token insertion curves of a selection."""

    _view = traitlets.Unicode("curves").tag(sync=True)
    areas = traitlets.List(traitlets.Float()).tag(sync=True)
    insertion = traitlets.List(traitlets.Float()).tag(sync=True)
    deletion = traitlets.List(traitlets.Float()).tag(sync=True)
    insertion_tokens = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    token_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    insertion_auc = traitlets.Float(0.0).tag(sync=True)
    deletion_auc = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, result: Attribution | None = None, **kwargs):
        super().__init__(**kwargs)
        if result is not None:
            self.show(result)

    def show(self, result: Attribution) -> None:
        with self.hold_sync():
            self.areas = [float(a) for a in result.areas]
            self.insertion = [float(v) for v in result.insertion]
            self.deletion = [float(v) for v in result.deletion]
            self.insertion_tokens = [[float(v) for v in col] for col in result.insertion_tokens.T]
            self.token_labels = list(result.token_labels or [])
            self.insertion_auc = result.insertion_auc
            self.deletion_auc = result.deletion_auc

    def clear(self) -> None:
        with self.hold_sync():
            self.areas, self.insertion, self.deletion, self.insertion_tokens = [], [], [], []

    def __repr__(self) -> str:
        if not self.areas:
            return "CurvesView(empty)"
        return f"CurvesView(insertion_auc={self.insertion_auc:.4f}, deletion_auc={self.deletion_auc:.4f})"
