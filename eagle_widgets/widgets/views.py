"""The four linked views, each an anywidget usable on its own. Their traitlets are the source of truth."""

from __future__ import annotations

import io
from pathlib import Path

import anywidget
import numpy as np
import traitlets

from ..core import validation
from ..core.attribution import MAP_ENCODINGS, Attribution
from ..core.errors import EagleError, InputError
from ..core.images import as_rgb_uint8
from ..core.spans import image_regions
from ..display.colours import DEFAULT_STYLE, OVERLAY_OPACITY, STYLES, drawing
from .state import DEFAULT_ENCODING, EMPTY_CURVES, EMPTY_HEATMAP, curves_state, heatmap_state, preview_state

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
        return check_selection(proposal["value"], len(self.tokens))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tokens={self.tokens!r}, selection={self.selection!r})"


def _normalise(values) -> list[float]:
    """Min-max over one answer, so colours compare tokens of this answer with each other."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return []
    lo, hi = float(np.nanmin(v)), float(np.nanmax(v))
    return [0.0] * len(v) if hi - lo < 1e-12 else [float(x) for x in (v - lo) / (hi - lo)]


def check_selection(selection, n: int) -> list[int]:
    """A widget selection: distinct token indices in 0..n-1 (empty allowed: nothing selected)."""
    if isinstance(selection, (list, tuple)) and not selection:
        return []
    return validation.token_indices(selection, n, name="selection", allow_negative=False)


class TokenStrip(_TokenView):
    """The generated tokens as chips coloured from language prior (blue) to perceptual evidence (red).

    Click selects one token, shift-click a range, ctrl/cmd-click toggles; arrows and space/enter work.
    """

    _view = traitlets.Unicode("strip").tag(sync=True)
    reliance = traitlets.List(traitlets.Float(allow_none=True)).tag(sync=True)
    hover = traitlets.Int(-1).tag(sync=True)  # the token under the pointer (-1: none), set by the front end

    def __init__(self, tokens=(), reliance=None, special=None, **kwargs):
        super().__init__(**kwargs)
        self.set_answer(tokens, reliance, special)

    def set_answer(self, tokens, reliance=None, special=None) -> None:
        """Show another answer: its tokens, their reliance (normalised for colour) and which are special."""
        tokens = list(tokens)
        self.selection = []
        with self.hold_sync():
            self.special = list(special) if special is not None else [False] * len(tokens)
            self.tokens = tokens
            self.reliance = _normalise(reliance) if reliance is not None else [None] * len(tokens)


class ModalityChart(_TokenView):
    """Per-token reliance bars with p(token | image) and p(token | black image); selecting here selects there."""

    _view = traitlets.Unicode("modality").tag(sync=True)
    reliance = traitlets.List(traitlets.Float()).tag(sync=True)
    p_full = traitlets.List(traitlets.Float()).tag(sync=True)
    p_black = traitlets.List(traitlets.Float()).tag(sync=True)

    @classmethod
    def from_reliance(cls, reliance, special=None) -> ModalityChart:
        chart = cls()
        chart.set_reliance(reliance, special)
        return chart

    def set_reliance(self, reliance, special=None) -> None:
        """Show another answer's reliance (a session's `Reliance`)."""
        self.selection = []
        with self.hold_sync():
            self.special = list(special) if special is not None else [False] * len(reliance.tokens)
            self.tokens = list(reliance.tokens)
            self.reliance = [float(x) for x in reliance.evidence]
            self.p_full = [float(x) for x in reliance.p_full]
            self.p_black = [float(x) for x in reliance.p_black]


def png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(as_rgb_uint8(image)).save(buf, format="PNG")
    return buf.getvalue()


class HeatmapView(_View):
    """The image with the attribution map over it, a colour bar that says what it shows, region borders, hover
    details and the insertion path. What it draws for a result is `state.heatmap_state` (the export uses the
    same); `encoding` picks the map's normalisation ("gain" by default, or the paper's), `map_style` how it is
    drawn ("spotlight" dims what matters less, keeping the objects' colours; "colour" is a viridis overlay)."""

    _view = traitlets.Unicode("heatmap").tag(sync=True)
    image_png = traitlets.Bytes(b"").tag(sync=True)
    width = traitlets.Int(0).tag(sync=True)
    height = traitlets.Int(0).tag(sync=True)
    labels = traitlets.Bytes(b"").tag(sync=True)  # uint16 little-endian label map, row-major
    n_regions = traitlets.Int(0).tag(sync=True)  # the label map's region count: values must match it
    values = traitlets.List(traitlets.Float()).tag(sync=True)
    gains = traitlets.List(traitlets.Float()).tag(sync=True)
    order = traitlets.List(traitlets.Int()).tag(sync=True)
    insertion = traitlets.List(traitlets.Float()).tag(sync=True)
    areas = traitlets.List(traitlets.Float()).tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)  # 0 shows the map, k reveals the first k regions
    opacity = traitlets.Float(OVERLAY_OPACITY).tag(sync=True)
    show_borders = traitlets.Bool(False).tag(sync=True)
    encoding = traitlets.Enum(list(MAP_ENCODINGS), DEFAULT_ENCODING).tag(sync=True)
    legend = traitlets.Unicode("").tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
    frames = traitlets.Int(0).tag(sync=True)  # > 0: the image is a video's frames side by side
    phase = traitlets.Unicode("empty").tag(sync=True)  # empty, running, done, partial, stale
    # How the map is drawn (display.colours). Not named `style`: ipywidgets reserves that trait for a Style
    # widget, and its front end then fails creating a child view ("reading 'then'").
    map_style = traitlets.Enum(list(STYLES), DEFAULT_STYLE).tag(sync=True)
    drawing = traitlets.Dict(drawing()).tag(sync=True)  # palette, veil and colour bars: fixed
    hover_region = traitlets.Int(-1).tag(sync=True)  # the region under the pointer (-1: none), set by the front end

    def __init__(self, image=None, result: Attribution | None = None, **kwargs):
        super().__init__(**kwargs)
        self.result: Attribution | None = None
        self._sent_regions = None  # the RegionSet whose label map the front end holds
        self._scale: float | None = None  # a gain scale shared with other maps (compare view)
        if image is not None:
            self.set_image(image)
        if result is not None:
            self.show(result)
        self.observe(self._reencode, names="encoding")

    def _reencode(self, _change) -> None:
        """A new encoding redraws the kept result; nothing is recomputed."""
        if self.result is not None:
            self.show(self.result, self._scale)

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
        self._sent_regions = None  # a label map given directly: no RegionSet stands for it

    def show(self, result: Attribution, scale: float | None = None) -> None:
        """Draw `result` (complete or partial) in the current encoding (`scale`: a gain shared with other maps)."""
        if not self.image_png and result.image is not None:
            self.set_image(result.image)
        self._scale = scale
        state = heatmap_state(result, self.encoding, scale)
        with self.hold_sync():
            image = result.image_regions
            if image is not None and self._sent_regions is not image:
                self.set_regions(image.labels)
                self._sent_regions = image
            for name, value in state.items():
                setattr(self, name, value)
            self.step = min(self.step, len(result.order))
        self.result = result

    def preview(self, update, selection: str, regions) -> None:
        """The regions ranked so far while a search runs (over `regions`, a RegionSet), in the same encoding as
        the final map. The label map is sent once per run, not with every update."""
        image = image_regions(regions)
        if image is None:  # prompt spans alone: nothing to draw on the image
            return
        state = preview_state(update, image.n, selection, self.encoding, num_elements=regions.n)
        regions = image
        with self.hold_sync():
            if self._sent_regions is not regions:
                self.set_regions(regions.labels)
                self._sent_regions = regions
            for name, value in state.items():
                setattr(self, name, value)
            self.step = 0
        self.result = None

    def mark_stale(self, why: str) -> None:
        """Keep the map but say it no longer matches the controls."""
        if self.phase in ("done", "partial"):
            self.phase = "stale"
            self.note = f"Out of date: {why}. Press Run to explain with the new settings."

    def clear(self) -> None:
        with self.hold_sync():
            for name, value in EMPTY_HEATMAP.items():
                setattr(self, name, value)
        self.result = None

    def __repr__(self) -> str:
        return f"HeatmapView({self.width}x{self.height}, regions ranked={len(self.order)}, phase={self.phase!r})"


class CurvesView(_View):
    """Insertion and deletion curves with their AUCs, the per-token insertion curves of a selection, and the
    heatmap's insertion step marked on them (`step`)."""

    _view = traitlets.Unicode("curves").tag(sync=True)
    areas = traitlets.List(traitlets.Float()).tag(sync=True)
    insertion = traitlets.List(traitlets.Float()).tag(sync=True)
    deletion = traitlets.List(traitlets.Float()).tag(sync=True)
    insertion_tokens = traitlets.List(traitlets.List(traitlets.Float())).tag(sync=True)
    token_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    insertion_auc = traitlets.Float(0.0).tag(sync=True)
    deletion_auc = traitlets.Float(0.0).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    partial = traitlets.Unicode("").tag(sync=True)
    x_label = traitlets.Unicode("fraction of the image inserted or deleted").tag(sync=True)
    step = traitlets.Int(0).tag(sync=True)
    hover_step = traitlets.Int(-1).tag(sync=True)  # the step under the pointer (-1: none), set by the front end
    highlight = traitlets.Int(-1).tag(sync=True)  # which token's own insertion curve to emphasise (-1: none)

    def __init__(self, result: Attribution | None = None, **kwargs):
        super().__init__(**kwargs)
        if result is not None:
            self.show(result)

    def show(self, result: Attribution) -> None:
        with self.hold_sync():
            for name, value in curves_state(result).items():
                setattr(self, name, value)

    def clear(self) -> None:
        with self.hold_sync():
            for name, value in EMPTY_CURVES.items():
                setattr(self, name, value)

    def __repr__(self) -> str:
        if not self.areas:
            return "CurvesView(empty)"
        return f"CurvesView(insertion_auc={self.insertion_auc:.4f}, deletion_auc={self.deletion_auc:.4f})"


class DownloadBar(_View):
    """Export buttons. A click sends the format to Python; `provider(format)` returns (file name, bytes, MIME
    type) and the front end saves them as a download. A provider's `EagleError` is shown beside the buttons."""

    _view = traitlets.Unicode("downloads").tag(sync=True)
    formats = traitlets.List().tag(sync=True)  # [format, button label, tooltip]

    def __init__(self, provider, formats, **kwargs):
        super().__init__(formats=[list(f) for f in formats], **kwargs)
        self.provider = provider
        self.on_msg(self._on_message)

    def _on_message(self, _widget, content, _buffers) -> None:
        if isinstance(content, dict) and content.get("type") == "download":
            self.deliver(str(content.get("what")))

    def deliver(self, what: str) -> tuple[str, bytes, str] | None:
        """What a click on the `what` button sends (also callable from Python)."""
        try:
            name, data, mime = self.provider(what)
        except EagleError as err:
            self.send({"type": "error", "message": str(err)})
            return None
        self.send({"type": "file", "name": name, "mime": mime}, [data])
        return name, data, mime
