"""Model sessions for Hugging Face vision-language models (transformers); nothing here knows about widgets."""

from .adapters import Adapter, adapter_class_for, register
from .loading import load_processor, load_session, resolve_device
from .scoring import MaskedInputScorer, ModelError, PixelSpaceScorer
from .session import ExplanationRequest, Generation, ModelSession, NotAVisionLanguageModel, Reliance

__all__ = [
    "Adapter", "ExplanationRequest", "Generation", "MaskedInputScorer", "ModelError", "ModelSession",
    "NotAVisionLanguageModel", "PixelSpaceScorer", "Reliance", "adapter_class_for", "load_processor", "load_session",
    "register", "resolve_device",
]
