"""eagle-widgets: see where a multimodal LLM looks and what it relies on, token by token (EAGLE)."""

from .core import Attribution, RegionSet, attribute

__version__ = "0.1.0"

__all__ = ["Attribution", "Explorer", "RegionSet", "attribute", "load_demo_session", "load_session", "__version__"]


def __getattr__(name):
    # Model sessions pull in transformers: import them only when asked for.
    if name in ("load_session", "ModelSession", "Generation"):
        from . import models

        return getattr(models, name)
    if name in ("Explorer", "TokenStrip", "HeatmapView", "ModalityChart", "CurvesView"):
        from . import baselines, widgets  # noqa: F401  (the baselines register as the Explorer's methods)

        return getattr(widgets, name)
    if name == "load_demo_session":
        from .demo import load_demo_session

        return load_demo_session
    raise AttributeError(f"module 'eagle_widgets' has no attribute {name!r}")
