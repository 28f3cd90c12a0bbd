"""Dataset evaluation: manifests and their readers, the paper's protocols per sample, resumable runs on a
local or Ray backend, and a browser widget for the results."""

from .demo_data import make_demo_dataset
from .manifest import Manifest, Sample, read_manifest, sample_from_dict, write_manifest
from .protocol import EvaluationOptions, evaluate_sample
from .readers import from_authors, from_coco
from .runner import BACKENDS, evaluate
from .store import ResultsFolder, format_summary, read_results, summarise

__all__ = [
    "BACKENDS", "EvaluationOptions", "Manifest", "ResultsFolder", "Sample", "evaluate", "evaluate_sample",
    "format_summary", "from_authors", "from_coco", "make_demo_dataset", "read_manifest", "read_results",
    "sample_from_dict", "summarise", "write_manifest",
]


def __getattr__(name):
    if name == "DatasetBrowser":  # widgets only when asked for
        from .browser import DatasetBrowser

        return DatasetBrowser
    raise AttributeError(f"module 'eagle_widgets.evaluation' has no attribute {name!r}")
