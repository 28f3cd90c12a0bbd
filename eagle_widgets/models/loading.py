"""Loading a model session: a model id, a local folder or a loaded (model, processor) pair -> `ModelSession`."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.errors import InputError, NotAVisionLanguageModel
from .session import ModelSession


def load_session(model, processor=None, *, device: str | None = None, dtype: str | torch.dtype = "auto",
                 device_map=None, trust_remote_code: bool = False, revision: str | None = None,
                 batch_size: int | None = None, cache=True, **server_options):
    """A `ModelSession` from a model id, a local folder, or an already loaded `(model, processor)`; or, for a
    server's address ("http://host:8000/v1"), a `ServedSession` on the model it serves (`served_model=` names
    one of several; other options as `eagle_widgets.served.ServedSession`).

    `device` defaults to CUDA when available; `dtype` is "auto" (bfloat16 on CUDA, float32 on CPU),
    a name such as "float16", or a torch dtype; `device_map` is passed to `from_pretrained`.
    `cache`: True (the default folder, `eagle_widgets.storage.default_cache_dir()`), a folder, a
    `ResultCache`, or False for none.
    """
    if isinstance(model, str) and model.startswith(("http://", "https://")):
        import importlib

        served = importlib.import_module("eagle_widgets.served")  # that room builds on this one
        return served.load_served_session(model, server_options.pop("served_model", None), batch_size=batch_size,
                                          cache=cache, **server_options)
    if server_options:
        raise InputError(f"{', '.join(sorted(server_options))}: options for a served model (an http:// address)")
    if isinstance(model, tuple):
        if len(model) != 2:
            raise InputError("pass a (model, processor) pair")
        model, processor = model
    if not isinstance(model, (str, Path)):
        if processor is None:
            raise InputError("a loaded model needs its processor: load_session((model, processor))")
        name = getattr(getattr(model, "config", None), "_name_or_path", None)
        return ModelSession(model, processor, name=name, batch_size=batch_size, cache=cache, revision=revision)

    from transformers import AutoConfig

    source = str(model)
    looks_local = isinstance(model, Path) or source.startswith((".", "/", "~"))  # a hub id is 'org/name'
    if looks_local and not Path(source).expanduser().is_dir():
        raise InputError(f"no model folder at {source} (a Hugging Face model id looks like 'org/name')")
    target_device = resolve_device(device)
    torch_dtype = _resolve_dtype(dtype, target_device)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot load a model config from {source!r}: {str(err).splitlines()[0]}") from None
    if getattr(config, "vision_config", None) is None:
        raise NotAVisionLanguageModel(f"{source} is not a vision-language model: its config (model_type "
                                      f"{getattr(config, 'model_type', '?')!r}) has no vision tower")
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a progress bar per load clutters notebook outputs
    try:
        model_obj = _load_model(source, config, torch_dtype, device_map, trust_remote_code, revision)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if device_map is None:
        model_obj = model_obj.to(target_device)
    proc = processor if processor is not None else load_processor(source, config, trust_remote_code, revision)
    return ModelSession(model_obj, proc, name=source, batch_size=batch_size, cache=cache, revision=revision)


def resolve_device(device) -> torch.device:
    """A torch device that exists here, or an InputError naming what does."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:0', 'mps', ...") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was asked for but this machine has no CUDA GPU (torch "
                         f"{torch.__version__}); use device='cpu'")
    if target.type == "cuda" and target.index is not None and target.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if target.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r} was asked for but MPS is not available here; use device='cpu'")
    return target


def _resolve_dtype(dtype, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise InputError(f"dtype must be 'auto', 'float32', 'bfloat16', 'float16' or a torch dtype; got {dtype!r}")
    return value


def _load_model(source, config, torch_dtype, device_map, trust_remote_code, revision):
    import transformers
    from transformers import AutoModelForImageTextToText

    kwargs = dict(dtype=torch_dtype, trust_remote_code=trust_remote_code, revision=revision)
    if device_map is not None:
        kwargs["device_map"] = device_map
    try:
        return AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except ValueError:
        # Architectures not in the image-text-to-text auto map: use the class the checkpoint names.
        for arch in getattr(config, "architectures", None) or []:
            cls = getattr(transformers, arch, None)
            if cls is not None:
                return cls.from_pretrained(source, **kwargs)
        raise NotAVisionLanguageModel(f"{source}: no image-text-to-text model class for model_type "
                                      f"{config.model_type!r}") from None


def load_processor(source, config, trust_remote_code=False, revision=None):
    """AutoProcessor, or an image-only processor where the video processor cannot load (no torchvision)."""
    import transformers
    from transformers import AutoProcessor

    from .processors import image_only_processor_class

    processor = None
    try:
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code, revision=revision)
    except (ImportError, AttributeError, ValueError, TypeError):
        pass
    if processor is not None and hasattr(processor, "image_processor"):
        return processor
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None:
        raise NotAVisionLanguageModel(f"{source}: cannot find a multimodal processor for model_type "
                                      f"{config.model_type!r}")
    return image_only_processor_class(cls).from_pretrained(source, revision=revision)
