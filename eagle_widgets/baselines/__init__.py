"""Baseline explanations to compare EAGLE with, on the same session and in the same protocol.

    from eagle_widgets.baselines import BASELINES, explain_baseline
    cam = explain_baseline("llava_cam", session, generation, tokens=[3])
    cam.values  # HxW saliency over the image

- `random`: a random order of the regions (the floor);
- `occlusion`: the drop of the mean target probability when each region alone is blacked out;
- `llava_cam`: Grad-CAM on the image-token hidden states of one decoder layer (gradients of the summed
  target logits), optionally averaged over noisy copies of the input;
- `tam`: a Token-Activation-Map-like map: the lm_head read at the target class on the image tokens'
  last hidden states, minus the context interference of the earlier tokens, rank-Gaussian filtered on
  each family's own image-token grid.

Each baseline declares what it `needs`; a session that cannot provide it gets `UnsupportedModel`.
"""

from ..models.adapters import UnsupportedModel
from ..models.methods import register_method
from .compare import METHODS, compare_methods, correction_ratios, format_table, summarise
from .methods import (
    BASELINES,
    Baseline,
    LlavaCAM,
    RandomOrder,
    RegionOcclusion,
    SaliencyMap,
    TokenActivationMap,
    explain_baseline,
    rank_gaussian_filter,
)

for _name, _cls in BASELINES.items():  # offered by every session (session.methods(), the Explorer's menu)
    register_method(_name, lambda session, request, cls=_cls: cls().explain(session, request).values,
                    scale=_cls.scale, reads_internals=bool(set(_cls.needs) - {"regions"}))

__all__ = [
    "BASELINES", "Baseline", "LlavaCAM", "RandomOrder", "RegionOcclusion", "SaliencyMap", "TokenActivationMap",
    "UnsupportedModel", "METHODS", "compare_methods", "correction_ratios", "explain_baseline", "format_table",
    "rank_gaussian_filter", "summarise",
]
