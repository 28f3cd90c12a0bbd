"""Attribution methods a session can run beside EAGLE. Rooms that provide methods (the baselines) register
them here, so that the session and the widgets can offer them without importing those rooms."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..core.errors import InputError

# name -> fn(session, request) -> HxW saliency map of the request's image
SALIENCY_METHODS: dict[str, Callable] = {}
# name -> what the method's own map measures (named on its colour bar)
METHOD_SCALES: dict[str, str] = {}
# Methods that read the model's internals (gradients, hidden states): not offered by black-box sessions.
METHODS_READING_INTERNALS: set[str] = set()
# Rooms that provide methods, imported by name on first use (they import this room, never the reverse), so a
# session offers them however it was reached (the dataset browser's Explorer too).
PROVIDERS = ("eagle_widgets.baselines",)


def load_providers() -> None:
    import importlib

    for name in PROVIDERS:
        importlib.import_module(name)


def register_method(name: str, fn: Callable, scale: str = "", *, reads_internals: bool = False) -> None:
    """Offer `fn(session, request) -> HxW map` as the method `name` (in `session.methods()` and the Explorer);
    `scale` says what its map measures; `reads_internals`: it needs the model itself (gradients, hidden states),
    so sessions that only see scores (a served model) do not offer it."""
    if not isinstance(name, str) or not name or name == "eagle":
        raise InputError(f"a method needs a name other than 'eagle', got {name!r}")
    SALIENCY_METHODS[name] = fn
    METHOD_SCALES[name] = scale or f"{name}'s map"
    if reads_internals:
        METHODS_READING_INTERNALS.add(name)
    else:
        METHODS_READING_INTERNALS.discard(name)


def saliency(name: str, session, request) -> np.ndarray:
    load_providers()
    fn = SALIENCY_METHODS.get(name)
    if fn is None:
        raise InputError(f"unknown method {name!r}; this session offers {', '.join(['eagle', *SALIENCY_METHODS])}")
    return np.asarray(fn(session, request), dtype=np.float64)
