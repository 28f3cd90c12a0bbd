"""The fast path at the real models' processor settings and real photo sizes, in this environment's image backend.

`make test` runs this file twice: with Pillow processors (CPU torch, no torchvision) and with torchvision
processors (the CUDA torch build and its torchvision, transformers' default backend). Tiny weights; the
processors are configured as the real checkpoints ship them (LLaVA-1.5 336, LLaVA-NeXT any-res grid,
Qwen2.5-VL native resolution, InternVL 448 x up to 12 tiles + thumbnail, Idefics3 364 and SmolVLM 512 tiles
with splitting).
"""

import pytest
import torch
from eagle_widgets import load_session
from eagle_widgets.core import RegionSet, attribute

from tiny_models import REAL_SETTINGS, image_backend, photo, tiny_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_sessions(model_root):
    held = {}

    def get(family):
        if family not in held:
            held[family] = load_session(str(tiny_model_dir(family, model_root, real=True)), device="cpu", cache=False)
        return held[family]

    return get


@pytest.mark.parametrize("size", [(1080, 1920), (640, 480)], ids=["1920x1080", "480x640"])
@pytest.mark.parametrize("family", REAL_SETTINGS)
def test_fast_equals_reference_at_real_settings(real_sessions, family, size):
    session = real_sessions(family)
    assert session.adapter.image_backend == image_backend()
    image = photo(*size)
    gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=2)
    regions = RegionSet.slic(image, n_segments=17)
    fast = session.scorer(gen, tokens=[1], regions=regions)
    described = fast.describe()
    assert described["image_backend"] == image_backend()
    # An exact composer where it is measured to beat the processor; else the processor itself, batched.
    if "compose_ms_per_image" in described:
        assert described["max_level_error"] <= 0.5, described
        assert min(described["compose_ms_per_image"].values()) < described["processor_ms_per_image"]
    else:
        assert "processor runs on every masked image" in described["composition"], described
    reference = session.scorer(gen, tokens=[1], regions=regions, path="reference")
    masks = torch.rand(3, regions.n, generator=torch.Generator().manual_seed(1)) > 0.5
    masks[0] = True
    assert float((fast(masks) - reference(masks)).abs().max()) <= 1e-4


@pytest.mark.parametrize("family", REAL_SETTINGS)
def test_exact_orders_are_identical_at_real_settings(real_sessions, family):
    session = real_sessions(family)
    image = photo(200, 240, seed=2)  # few tiles: the reference path runs the processor on every masked image
    gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=2)
    regions = RegionSet.slic(image, n_segments=5)  # 4 regions: 20 masked images per path
    orders = []
    for path in ("fast", "reference"):
        scorer = session.scorer(gen, tokens=[1], regions=regions, path=path)
        orders.append(attribute(scorer, regions, mode="exact", batch_size=scorer.batch_size).order)
    assert orders[0] == orders[1]


@pytest.mark.parametrize("family", ["llava_next", "internvl", "smolvlm"])
def test_tiles_seen_before_are_not_encoded_again(real_sessions, family):
    # The masks of one greedy step differ in one region: the tiles it does not touch repeat, and their vision
    # features are reused (the model's own encoder on each new tile), with the reference's probabilities.
    session = real_sessions(family)
    image = photo(480, 640)
    gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=2)
    regions = RegionSet.slic(image, n_segments=17)
    chosen = torch.zeros(regions.n, dtype=torch.bool)
    chosen[[0, 5]] = True
    step = []
    for r in (2, 8, 11):
        inserted = chosen.clone()
        inserted[r] = True
        step += [inserted, ~inserted]
    masks = torch.stack(step)
    fast = session.scorer(gen, tokens=[1], regions=regions)
    reference = session.scorer(gen, tokens=[1], regions=regions, path="reference")
    assert float((fast(masks) - reference(masks)).abs().max()) <= 1e-4
    # Each distinct tile of the processor's own inputs (by position and every value) is encoded once.
    tiles = reference.pixel_inputs(masks)
    per_image = fast.sequence.pixel_values.reshape(-1, *fast.sequence.pixel_values.shape[-3:]).shape[0]
    tiles = tiles.reshape(len(masks), per_image, -1)
    distinct = {(t, tiles[m, t].numpy().tobytes()) for m in range(len(masks)) for t in range(per_image)}
    reused, seen = fast.tiles.hits, fast.tiles.hits + fast.tiles.misses
    assert seen == len(masks) * per_image and seen - reused == len(distinct) < seen, fast.describe()["vision_tiles"]


def test_a_model_whose_encoder_sees_the_whole_image_reuses_nothing(real_sessions):
    session = real_sessions("qwen2_5_vl")  # windowed and full attention across the whole image
    image = photo(200, 240, seed=2)
    gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=2)
    fast = session.scorer(gen, tokens=[1], regions=RegionSet.slic(image, n_segments=6))
    assert fast.tiles is None and "vision_tiles" not in fast.describe()
