"""The model-agnostic EAGLE engine: regions, the greedy search, results, metrics and bundles.

Nothing here knows about transformers, widgets or storage (the disk cache and the authors' result files are
in `eagle_widgets.storage`).
"""

from . import validation
from .attribution import IMAGE_INDEPENDENT, MAP_ENCODINGS, AnswerContext, Attribution, MethodMap, region_map
from .bundle import bundle_bytes, load_attribution, save_attribution
from .errors import BundleError, CacheError, Cancelled, EagleError, InputError, NewerBundleError, ScorerError
from .faithfulness import pixel_bands, pixel_protocol, region_protocol, region_scores
from .images import as_rgb_uint8, load_image
from .metrics import (
    Correction,
    auc,
    correction_summary,
    deletion_auc,
    insertion_auc,
    minimal_correction_ratio,
    pointing_game,
    reliance_scores,
    sensitive_tokens,
)
from .regions import RegionSet
from .scorer import EvidenceScorer, LogisticScorer, Scorer
from .search import DEFAULT_PARAMS, MODES, ProgressUpdate, attribute, attribute_order, expected_evaluations
from .video import FrameRegions, Video, frame_shares, load_video

__all__ = [
    "AnswerContext", "Attribution", "MethodMap", "BundleError", "CacheError", "Cancelled", "Correction",
    "DEFAULT_PARAMS",
    "EagleError",
    "EvidenceScorer", "IMAGE_INDEPENDENT", "InputError", "LogisticScorer", "MAP_ENCODINGS", "MODES", "NewerBundleError",
    "FrameRegions", "ProgressUpdate", "RegionSet", "Video", "frame_shares", "load_video", "Scorer", "ScorerError",
    "region_map", "validation",
    "as_rgb_uint8", "attribute", "attribute_order", "auc", "bundle_bytes", "correction_summary", "deletion_auc",
    "expected_evaluations", "load_image",
    "insertion_auc", "load_attribution", "minimal_correction_ratio", "pixel_bands",
    "pixel_protocol", "pointing_game", "region_protocol", "region_scores", "reliance_scores", "save_attribution",
    "sensitive_tokens",
]
