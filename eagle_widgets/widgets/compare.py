"""Two explanations side by side (method vs method, or selection vs selection): their maps on one colour
scale, each with its insertion and deletion AUC."""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from ..core.attribution import Attribution
from .markup import markup
from .state import selection_label
from .views import HeatmapView


def shared_scale(*results: Attribution) -> float | None:
    """The largest gain any region added in any of the EAGLE results: 1 on their shared colour scale (a
    baseline's own map keeps its own scale)."""
    tops = [float(np.diff(r.scores).max()) for r in results if len(r.order) and r.method_map is None]
    return max(tops) if tops and max(tops) > 0 else None


def compare_title(left: Attribution, right: Attribution, encoding: str) -> str:
    """What the two colour scales of a comparison are, truthfully."""
    if bool(left.approximation) != bool(right.approximation):
        return ("<b>Not comparable</b>: one result's scores are approximate (a top-k API), the other's exact; "
                "neither the maps nor the AUCs compare.")
    own = [r for r in (left, right) if r.method_map is not None]
    if not own and encoding == "gain":
        return "<b>Compared</b> on one colour scale: 1 = the largest gain any region added in either map."
    if not own and encoding == "paper":
        return ("<b>Compared</b>, each map on its own scale (the paper's normalisation: rank 1 = 1 in each); "
                "colours do not compare across the maps.")
    if not own:
        return ("<b>Compared</b>, each map on its own scale (one in gain share, one in the paper's normalisation); "
                "colours do not compare across the maps.")
    return ("<b>Compared</b>, each map on its own scale: a baseline draws its own values, EAGLE its gains; "
            "colours do not compare across the maps, the curves and AUCs below do.")


def describe(result: Attribution) -> str:
    how = result.mode if result.mode not in ("exact", "efficient", "early_stop") else f"eagle ({result.mode})"
    return f"{selection_label(result.token_labels)} · {how}{' · APPROXIMATE scores' if result.approximation else ''}"


class CompareView(W.VBox):
    def __init__(self, image=None):
        self.title = W.HTML("")
        self.left, self.right = HeatmapView(image), HeatmapView(image)
        self.left_caption, self.right_caption = W.HTML(""), W.HTML("")
        self.results: tuple[Attribution, Attribution] | None = None
        left_box, right_box = W.VBox([self.left, self.left_caption]), W.VBox([self.right, self.right_caption])
        left_box.add_class("eagle-compare-left")
        right_box.add_class("eagle-compare-right")
        row = W.HBox([left_box, right_box])
        row.add_class("eagle-compare-row")
        super().__init__([self.title, row])
        self.add_class("eagle-compare")
        self.stale = ""
        for view in (self.left, self.right):
            view.observe(self._on_encoding, names="encoding")
        self.layout.display = "none"  # shown once there is something to compare

    def show(self, left: Attribution, right: Attribution) -> None:
        for view, caption, result in ((self.left, self.left_caption, left), (self.right, self.right_caption, right)):
            if result.image is not None:
                view.set_image(result.image)
            caption.value = markup("<span class='eagle-status'><b>{what}</b><br>insertion AUC {ins} (higher is "
                                   "better) · deletion AUC {dele} (lower is better)</span>", what=describe(result),
                                   ins=f"{result.insertion_auc:.3f}", dele=f"{result.deletion_auc:.3f}")
        self.results = (left, right)
        self._draw()
        self.layout.display = ""

    def _draw(self) -> None:
        """Both maps and the title: one colour scale only where both are EAGLE gains in the same encoding."""
        left, right = self.results
        shared = left.method_map is None and right.method_map is None and self.left.encoding == self.right.encoding
        scale = shared_scale(left, right) if shared else None
        self.left.show(left, scale)
        self.right.show(right, scale)
        self.title.value = f"<span class='eagle-status'>{self._title()}</span>"
        self.stale = ""

    def _title(self) -> str:
        left, right = self.results
        encodings = {self.left.encoding, self.right.encoding}
        return compare_title(left, right, encodings.pop() if len(encodings) == 1 else "mixed")

    def _on_encoding(self, _change) -> None:
        """A side switched between gain share and the paper's normalisation: redraw both, retitle truthfully."""
        if self.results is not None:
            self._draw()

    def mark_stale(self, why: str) -> None:
        """Keep the comparison on screen but say it no longer matches the Explorer's selection or controls."""
        if self.results is None:
            return
        self.stale = why
        for view in (self.left, self.right):
            view.mark_stale(why)
        self.title.value = markup("<span class='eagle-status eagle-error'>Out of date: {why}. Compare again to "
                                  "update.</span>", why=why)

    def mark_current(self) -> None:
        """Back to what was compared: the comparison holds again."""
        if self.results is not None and self.stale:
            self._draw()

    def clear(self) -> None:
        self.results = None
        self.stale = ""
        self.layout.display = "none"
