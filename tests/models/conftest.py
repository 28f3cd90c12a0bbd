import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import BUILDERS, tiny_model_dir  # noqa: E402

FAMILIES = list(BUILDERS)
# The size every tiny processor takes without resizing or cropping: masking after preprocessing is then
# exactly masking before it, so the fast and reference paths must agree bit for bit.
ALIGNED = 112


@pytest.fixture(scope="session")
def model_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def sessions(model_root):
    from eagle_widgets import load_session

    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = load_session(str(tiny_model_dir(family, model_root)), device="cpu")
        return cache[family]

    return get


def scene(h=90, w=130, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    img[h // 4: h // 2, w // 5: w // 2] = (220, 30, 30)
    img[h // 2:, w // 2:] = rng.integers(0, 255, (h - h // 2, w - w // 2, 3), dtype=np.uint8)
    return img
