import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Tests of the disk cache pass their own folder; elsewhere every explanation really runs.
os.environ["EAGLE_WIDGETS_CACHE"] = "off"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def model_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def sessions(model_root):
    """Tiny random-weight sessions by family name, built once per test run."""
    from eagle_widgets import load_session

    from tiny_models import tiny_model_dir

    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = load_session(str(tiny_model_dir(family, model_root)), device="cpu")
        return cache[family]

    return get


@pytest.fixture(scope="session")
def demo_session():
    from eagle_widgets.demo import WEIGHTS, load_demo_session

    if not (WEIGHTS / "model.safetensors").exists():
        pytest.skip("the demo model weights are not built")
    return load_demo_session()


def pytest_configure(config):
    from tiny_models import image_backend

    # The torchvision environment must really have torchvision processors, or its run proves nothing.
    expected = os.environ.get("EAGLE_EXPECT_BACKEND")
    if expected and image_backend() != expected:
        raise pytest.UsageError(f"EAGLE_EXPECT_BACKEND={expected} but this environment's image processors use "
                                f"{image_backend()}")


# Served models: the run's real vLLM server (tests/vllm_server.py) and the same checkpoint loaded here.
@pytest.fixture(scope="session")
def vllm_url():
    """The address of the run's vLLM server, or of one the caller started ($EAGLE_VLLM_URL)."""
    import vllm_server

    return vllm_server.url()


@pytest.fixture(scope="session")
def served(vllm_url):
    from eagle_widgets.served import load_served_session

    return load_served_session(vllm_url, cache=False)


@pytest.fixture(scope="session")
def local_twin(served):
    """The same checkpoint, loaded here with transformers: what the served scores must equal."""
    from eagle_widgets.models import load_session

    return load_session(served.model, device="cpu", cache=False)


def pytest_collection_modifyitems(config, items):
    import vllm_server

    wanting = [item for item in items if vllm_server.needs_server(item)]
    if not wanting or os.environ.get("EAGLE_VLLM_URL"):
        return
    if vllm_server.vllm_python() is None:
        if os.environ.get("EAGLE_EXPECT_VLLM"):
            raise pytest.UsageError("EAGLE_EXPECT_VLLM is set but there is no vLLM (make install-vllm, or set "
                                    "EAGLE_VLLM_PYTHON)")
        skip = pytest.mark.skip(reason="no vLLM here: `make install-vllm` (or set EAGLE_VLLM_PYTHON)")
        for item in wanting:
            item.add_marker(skip)
        return
    vllm_server.start()  # boots while the tests before these run


def pytest_sessionfinish(session, exitstatus):
    import vllm_server

    vllm_server.stop()
