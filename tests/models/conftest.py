import numpy as np

from tiny_models import BUILDERS

FAMILIES = list(BUILDERS)
# The size every tiny processor takes without resizing or cropping: masking after preprocessing is then
# exactly masking before it, so the fast and reference paths must agree bit for bit.
ALIGNED = 112


def scene(h=90, w=130, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 200, np.uint8)
    img[h // 4: h // 2, w // 5: w // 2] = (220, 30, 30)
    img[h // 2:, w // 2:] = rng.integers(0, 255, (h - h // 2, w - w // 2, 3), dtype=np.uint8)
    return img
