import numpy as np
import pytest
from eagle_widgets.core import InputError, RegionSet, as_rgb_uint8
from PIL import Image


def noise(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(64, 64), (48, 160), (200, 30), (7, 9)])
def test_slic_any_size_and_aspect(shape):
    rs = RegionSet.slic(noise(*shape), n_segments=16)
    assert rs.shape == shape
    assert rs.labels.dtype == np.int32
    assert sorted(np.unique(rs.labels)) == list(range(rs.n))
    assert rs.areas.sum() == shape[0] * shape[1] and np.all(rs.areas > 0)
    assert 2 <= rs.n <= 24


def test_slic_count_is_stable_on_noise_and_real_content():
    # SLICO (slic_zero) keeps ~d-1 segments where the default compactness collapses noise to one.
    from skimage.data import astronaut

    for img in (noise(240, 320), astronaut()[::2, ::2]):
        rs = RegionSet.slic(img, n_segments=64)
        assert 55 <= rs.n <= 66


def test_slic_max_side_keeps_shape():
    rs = RegionSet.slic(noise(300, 400), n_segments=30, max_side=100)
    assert rs.shape == (300, 400) and 20 <= rs.n <= 32


def test_grid():
    rs = RegionSet.grid((30, 40), rows=3, cols=4)
    assert rs.n == 12
    assert rs.labels[0, 0] == 0 and rs.labels[-1, -1] == 11
    assert RegionSet.grid(noise(64, 64), n=16).n == 16
    assert RegionSet.grid((20, 200), n=10).n >= 8


def test_labels_are_relabelled_densely_and_empty_labels_dropped():
    lab = np.array([[5, 5, 9], [9, 2, 2]])
    rs = RegionSet(lab)
    assert rs.n == 3
    np.testing.assert_array_equal(rs.labels, [[1, 1, 2], [2, 0, 0]])
    assert list(rs.areas) == [2, 2, 2]
    np.testing.assert_allclose(rs.area_fractions.sum(), 1.0)


def test_masks_on_demand_and_apply():
    rs = RegionSet.grid((4, 4), rows=2, cols=2)
    assert rs.mask(0).sum() == 4
    assert rs.mask([0, 3]).sum() == 8
    assert rs.mask(np.array([True, False, False, True])).sum() == 8
    img = np.full((4, 4, 3), 200, np.uint8)
    out = rs.apply(img, [1])
    assert out[0, 2].tolist() == [200, 200, 200] and out[0, 0].tolist() == [0, 0, 0]
    assert rs.boundaries().sum() > 0
    assert rs.centroids().shape == (4, 2)
    with pytest.raises(InputError, match="labels must lie in 0..3"):
        rs.mask([4])
    with pytest.raises(InputError, match="length 4"):
        rs.mask(np.ones(3, bool))
    with pytest.raises(InputError, match="the image is 5x4 but the regions are 4x4"):
        rs.apply(np.zeros((4, 5, 3), np.uint8), [0])


def test_image_conversion():
    rgba = Image.new("RGBA", (10, 6), (10, 20, 30, 128))
    assert as_rgb_uint8(rgba).shape == (6, 10, 3)
    grey = Image.new("L", (10, 6), 77)
    assert as_rgb_uint8(grey)[0, 0].tolist() == [77, 77, 77]
    assert as_rgb_uint8(np.zeros((5, 5), np.uint8)).shape == (5, 5, 3)
    assert as_rgb_uint8(np.zeros((5, 5, 4), np.uint8)).shape == (5, 5, 3)
    assert as_rgb_uint8(np.ones((2, 2, 3), np.float32))[0, 0, 0] == 255
    assert RegionSet.slic(rgba, n_segments=4).shape == (6, 10)


@pytest.mark.parametrize("bad, message", [
    ("cat.png", "PIL.Image.Image or a numpy array"),
    ([[1, 2]], "PIL.Image.Image or a numpy array"),
    (np.zeros((0, 5, 3), np.uint8), "empty"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (np.zeros((2, 2, 2, 3), np.uint8), "shape"),
    (np.full((4, 4, 3), 3.0), r"\[0, 1\]"),
    (np.full((4, 4, 3), np.nan), "NaN"),
    (np.zeros((4, 4, 3), np.int64), "dtype"),
])
def test_bad_images_get_clear_errors(bad, message):
    with pytest.raises(InputError, match=message):
        RegionSet.slic(bad)


@pytest.mark.parametrize("d", [1, 0, -3, 2.5, True])
def test_bad_segment_counts(d):
    with pytest.raises(InputError, match="n_segments"):
        RegionSet.slic(noise(8, 8), n_segments=d)


def test_bad_label_maps():
    with pytest.raises(InputError, match="2-D"):
        RegionSet(np.zeros(5, int))
    with pytest.raises(InputError, match="integers"):
        RegionSet(np.zeros((3, 3), float))
    with pytest.raises(InputError, match="empty"):
        RegionSet(np.zeros((0, 3), int))
    with pytest.raises(InputError, match="at least 2 cells"):
        RegionSet.grid((4, 4), rows=1, cols=1)
