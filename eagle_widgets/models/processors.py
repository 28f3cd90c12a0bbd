"""Processor helpers: image-only processors where transformers' video processors cannot load."""

from __future__ import annotations

import inspect
from functools import cache


@cache
def image_only_processor_class(processor_cls):
    """A subclass of `processor_cls` that takes no video processor.

    Qwen2-VL, Qwen2.5-VL, InternVL and SmolVLM processors require a video processor, which needs
    torchvision. `ProcessorMixin` finds the attributes it loads and checks, and the saved settings it
    passes back (image_seq_length, ...), from the *code* of `__init__`, so the subclass gets a real
    `__init__` with the same named parameters minus `video_processor`.
    """
    params = inspect.signature(processor_cls.__init__).parameters
    if "video_processor" not in params:
        return processor_cls
    named = [p for name, p in params.items()
             if name not in ("self", "video_processor") and p.kind is p.POSITIONAL_OR_KEYWORD]
    defaults = {f"_default_{p.name}": (None if p.default is p.empty else p.default) for p in named}
    signature = ", ".join(f"{p.name}=_default_{p.name}" for p in named)
    forwarded = ", ".join(f"{p.name}={p.name}" for p in named if p.name not in ("image_processor", "tokenizer"))
    source = (f"def __init__(self, {signature}, **kwargs):\n"
              f"    kwargs.pop('video_processor', None)\n"
              f"    _base_init(self, image_processor, tokenizer, None, {forwarded}, **kwargs)\n")
    namespace = {"_base_init": processor_cls.__init__, **defaults}
    exec(source, namespace)  # noqa: S102 - builds a signature from the library's own parameter names
    return type(f"ImageOnly{processor_cls.__name__}", (processor_cls,), {"__init__": namespace["__init__"]})
