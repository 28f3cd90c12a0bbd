"""Jupyter widgets (anywidget): TokenStrip, HeatmapView, ModalityChart, CurvesView and the Explorer."""

from .contract import ExplorerSession
from .explorer import Explorer
from .views import CurvesView, HeatmapView, ModalityChart, TokenStrip

__all__ = ["CurvesView", "Explorer", "ExplorerSession", "HeatmapView", "ModalityChart", "TokenStrip"]
