import pytest


@pytest.fixture(scope="session")
def vllm_url():
    """The address of the run's real vLLM server (started by the run, see tests/vllm_server.py)."""
    import os

    if os.environ.get("EAGLE_VLLM_URL") and __import__("vllm_server")._server is None:
        return os.environ["EAGLE_VLLM_URL"]  # a server the caller started
    import vllm_server

    return vllm_server.server().url


@pytest.fixture(scope="session")
def served(vllm_url):
    from eagle_widgets.served import load_served_session

    return load_served_session(vllm_url, cache=False)


@pytest.fixture(scope="session")
def local_twin(served):
    """The same checkpoint, loaded here with transformers: what the served scores must equal."""
    from eagle_widgets.models import load_session

    return load_session(served.model, device="cpu", cache=False)
