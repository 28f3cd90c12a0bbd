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
    """The largest gain any region added in any of the results: 1 on the shared colour scale."""
    tops = [float(np.diff(r.scores).max()) for r in results if len(r.order)]
    return max(tops) if tops and max(tops) > 0 else None


def describe(result: Attribution) -> str:
    how = result.mode if result.mode not in ("exact", "efficient", "early_stop") else f"eagle ({result.mode})"
    return f"{selection_label(result.token_labels)} · {how}"


class CompareView(W.VBox):
    def __init__(self, image=None):
        self.title = W.HTML("")
        self.left, self.right = HeatmapView(image), HeatmapView(image)
        self.left_caption, self.right_caption = W.HTML(""), W.HTML("")
        self.results: tuple[Attribution, Attribution] | None = None
        left_box, right_box = W.VBox([self.left, self.left_caption]), W.VBox([self.right, self.right_caption])
        left_box.add_class("eagle-compare-left")
        right_box.add_class("eagle-compare-right")
        super().__init__([self.title, W.HBox([left_box, right_box], layout=W.Layout(flex_flow="row wrap"))])
        self.add_class("eagle-compare")
        self.layout.display = "none"  # shown once there is something to compare

    def show(self, left: Attribution, right: Attribution) -> None:
        scale = shared_scale(left, right)
        for view, caption, result in ((self.left, self.left_caption, left), (self.right, self.right_caption, right)):
            if result.image is not None:
                view.set_image(result.image)
            view.show(result, scale)
            caption.value = markup("<span class='eagle-status'><b>{what}</b><br>insertion AUC {ins} (higher is "
                                   "better) · deletion AUC {dele} (lower is better)</span>", what=describe(result),
                                   ins=f"{result.insertion_auc:.3f}", dele=f"{result.deletion_auc:.3f}")
        self.title.value = ("<span class='eagle-status'><b>Compared</b> on one colour scale: 1 = the largest gain "
                            "any region added in either map.</span>")
        self.results = (left, right)
        self.layout.display = ""

    def clear(self) -> None:
        self.results = None
        self.layout.display = "none"
