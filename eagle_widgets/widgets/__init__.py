"""Jupyter widgets (anywidget): TokenStrip, HeatmapView, ModalityChart, CurvesView and the Explorer."""

from .explorer import Explorer
from .views import CurvesView, HeatmapView, ModalityChart, TokenStrip

__all__ = ["CurvesView", "Explorer", "HeatmapView", "ModalityChart", "TokenStrip"]
