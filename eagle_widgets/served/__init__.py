"""Served models: explain a model behind a vLLM or SGLang server (exact) or an OpenAI-style API (approximate,
labelled so), through the same session interface, engine, Explorer, CLI and `evaluate` as local models.

    from eagle_widgets.served import load_served_session
    session = load_served_session("http://127.0.0.1:8000/v1")   # or load_session("http://...")
    gen = session.generate(image, "What is in the image?")
    result = session.explain(gen, tokens=[0], regions=36)
"""

from .client import ServerClient, ServerError
from .protocols import PROTOCOLS, SGLangGenerate, TopKContinuation, VLLMChat
from .session import ApproximateScoring, ServedScorer, ServedSession, load_served_session, png_data_url

__all__ = ["PROTOCOLS", "ApproximateScoring", "SGLangGenerate", "ServedScorer", "ServedSession", "ServerClient",
           "ServerError", "TopKContinuation", "VLLMChat", "load_served_session", "png_data_url"]
