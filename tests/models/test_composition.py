"""The pieces of the fast path: Pillow's resampling reproduced, the resize tracer, the region basis, memory."""

import numpy as np
import pytest
import torch
from eagle_widgets.core import RegionSet
from eagle_widgets.models import fixed_point
from eagle_widgets.models.composition import RegionComposer, ResamplingComposer
from eagle_widgets.models.fixed_point import LOOKUP_BYTES
from eagle_widgets.models.resampling import FILTERS, emulate, rows_first, trace_resizes
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import scene
from tiny_models import image_backend


def _harsh(h, w, seed):
    """Noise with black and white blocks: clips between Pillow's two passes wherever it can."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[: h // 2, : w // 3] = 0
    img[h // 3:, w // 2:] = 255
    return img


@settings(max_examples=60, deadline=None)
@example(h=10, w=103, oh=1, ow=100, resample=Image.BOX, seed=0)  # no clipping: only rounding tells the orders apart
@example(h=112, w=112, oh=112, ow=19, resample=Image.HAMMING, seed=0)  # taps summed in Pillow's order
@given(h=st.integers(1, 160), w=st.integers(1, 160), oh=st.integers(1, 160), ow=st.integers(1, 160),
       resample=st.sampled_from(sorted(FILTERS)), seed=st.integers(0, 3))
def test_emulated_resize_is_pillows_bit_for_bit(h, w, oh, ow, resample, seed):
    img = _harsh(h, w, seed)
    order = rows_first((w, h), (ow, oh), resample)
    assert order is not None
    expected = np.asarray(Image.fromarray(img).resize((ow, oh), resample=resample))
    assert np.array_equal(emulate(img, (ow, oh), resample, order), expected)


def test_trace_finds_the_resizes_and_their_inputs():
    img = scene(90, 130)

    def processor(image):
        first = Image.fromarray(image).resize((60, 40), resample=Image.BICUBIC)
        first.resize((30, 30), resample=Image.LANCZOS)
        Image.fromarray(image[::-1].copy()).resize((10, 10))

    calls = trace_resizes(processor, img)
    assert [(c.source, c.in_size, c.size, c.resample) for c in calls] == [
        (-1, (130, 90), (60, 40), Image.BICUBIC), (0, (60, 40), (30, 30), Image.LANCZOS),
        (None, (130, 90), (10, 10), Image.BICUBIC)]


def _toy_processor(images):
    """A float pipeline with no Pillow: 2x2 box average, then per-channel normalisation, channels first."""
    out = []
    for im in images:
        x = im.astype(np.float64)
        x = x[: x.shape[0] // 2 * 2, : x.shape[1] // 2 * 2]
        x = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4
        out.append(((x / 255.0 - 0.5) / 0.25).transpose(2, 0, 1))
    return torch.tensor(np.stack(out), dtype=torch.float32)


def _toy_layout(labels):
    return torch.as_tensor(np.repeat(labels[None, 0::2, 0::2][:, : labels.shape[0] // 2, : labels.shape[1] // 2],
                                     3, axis=0)[None].astype(np.int64))


def test_region_basis_composes_a_processor_without_pillow():
    img = _harsh(64, 96, 0)
    regions = RegionSet.slic(img, n_segments=30)
    with pytest.raises(Exception, match="does not resize the image with Pillow"):
        ResamplingComposer(_toy_processor, img, regions.labels, regions.n)
    composer = RegionComposer(_toy_processor, _toy_layout, img, regions.labels, regions.n)
    assert len(composer.classes) < regions.n  # distant regions share probes
    masks = np.random.default_rng(0).random((4, regions.n)) < 0.5
    error = composer.check(lambda m: _toy_processor([m]), masks)
    assert error < 1e-3, error


# Pillow's emulation composes Pillow processors only; the demo model's processor is Pillow-backed here only.
pillow_processors = pytest.mark.skipif(image_backend() != "pillow", reason="the demo processor uses torchvision")


@pillow_processors
@pytest.mark.parametrize("regions_n", [16, 1000])
def test_basis_memory_follows_the_resized_image_not_the_region_count(demo_session, regions_n):
    img = _harsh(1500, 2000, 1)
    labels = RegionSet.grid(img.shape[:2], n=regions_n).labels
    composer = ResamplingComposer(demo_session.adapter.pixel_values, img, labels, int(labels.max()) + 1)
    resized = sum(c.in_size[1] * c.size[0] * 3 for c in composer.calls)  # first pass: H x w x 3
    lookup = composer.lookup.nbytes if composer.lookup is not None else 0
    print(f"N={regions_n}: passes {(composer.nbytes - lookup) / 2**20:.1f} MiB for {resized} resized elements, "
          f"lookup {lookup / 2**20:.1f} MiB")
    assert composer.nbytes - lookup < 40 * resized  # about one float64 entry + index per element, plus borders
    assert lookup <= LOOKUP_BYTES  # coefficients grow with the regions under each footprint, up to the cap


@pillow_processors
def test_region_polynomial_equals_the_fixed_point_passes_and_the_processor(demo_session, monkeypatch):
    img = _harsh(210, 330, 2)
    regions = RegionSet.slic(img, n_segments=40)
    composer = ResamplingComposer(demo_session.adapter.pixel_values, img, regions.labels, regions.n)
    assert composer.lookup is not None
    masks = torch.as_tensor(np.random.default_rng(3).random((12, regions.n)) < 0.5)
    masks[0], masks[1] = True, False
    looked_up = composer.compose(masks)
    lookup, composer.lookup = composer.lookup, None
    assert torch.equal(looked_up, composer.compose(masks))  # bit for bit
    composer.lookup = lookup
    assert composer.check(lambda m: demo_session.adapter.pixel_values([m]), masks[:4].numpy()) < 1e-3  # float32 ulps
    # Footprints wider than the limit keep the fixed-point passes, still exact.
    monkeypatch.setattr(fixed_point, "LOOKUP_REGIONS", 1)
    narrow = ResamplingComposer(demo_session.adapter.pixel_values, img, regions.labels, regions.n)
    assert narrow.lookup is None
    assert torch.equal(narrow.compose(masks), looked_up)
