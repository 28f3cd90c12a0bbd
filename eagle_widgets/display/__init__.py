"""How results are drawn: the map's colours (shared by the widgets, the HTML export and the figures) and the
static matplotlib figures. The engine in `core` draws nothing."""

from .colours import DEFAULT_STYLE, STYLES, colour_bar, drawing, overlay_pixel, overlay_rgba
from .figures import FIGURE_FORMATS, attribution_figure, draw_map, explanation_figure, figure_png

__all__ = [
    "DEFAULT_STYLE", "FIGURE_FORMATS", "STYLES", "attribution_figure", "colour_bar", "draw_map", "drawing",
    "explanation_figure", "figure_png", "overlay_pixel", "overlay_rgba",
]
