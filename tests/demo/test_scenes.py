import numpy as np
import pytest
from eagle_widgets.demo import (
    CAPTION_PROMPT,
    COLOURS,
    SHAPES,
    TRAINING_BIAS,
    UNBIASED,
    bias_breaking_scene,
    colour_prompt,
    make_scene,
    presence_prompt,
)


def test_scenes_are_deterministic_and_well_formed():
    a, b = make_scene(42), make_scene(42)
    assert np.array_equal(a.image, b.image) and a.caption == b.caption
    assert not np.array_equal(a.image, make_scene(43).image)
    for seed in range(60):
        s = make_scene(seed)
        assert s.image.shape == (224, 224, 3) and s.image.dtype == np.uint8
        assert 1 <= len(s.objects) <= 3
        xs = [o.centre[0] for o in s.objects]
        assert xs == sorted(xs)  # captions name objects left to right
        union = np.zeros((224, 224), int)
        for o in s.objects:
            assert o.mask.sum() > 200 and o.shape in SHAPES and o.colour in COLOURS
            union += o.mask
            x0, y0, x1, y1 = o.box
            assert o.mask[y0:y1, x0:x1].all(axis=None) or o.mask[y0:y1, x0:x1].any()
        assert union.max() == 1  # objects never overlap
        assert len({o.shape for o in s.objects}) == len(s.objects)


def test_captions_and_answers():
    s = make_scene(3, shapes=["circle", "star"], colours=["red", "blue"])
    left, right = s.objects
    assert s.caption == f"a {left.colour} {left.shape} and a {right.colour} {right.shape} ."
    assert s.answer(CAPTION_PROMPT) == s.caption
    assert s.answer(presence_prompt("star")) == "yes" and s.answer(presence_prompt("moon")) == "no"
    assert s.answer(colour_prompt("circle")) == "red"
    assert s.answer(colour_prompt("moon")) is None and s.answer("hello") is None
    assert s.mask_of("circle").sum() > 0
    with pytest.raises(KeyError):
        s.mask_of("cross")


def test_training_bias_is_planted_and_unbiased_scenes_are_not():
    biased = [make_scene(i, bias=TRAINING_BIAS) for i in range(1500)]
    with_star = [s for s in biased if s.has("star")]
    assert np.mean([s.has("moon") for s in with_star]) > 0.9
    stars = [o for s in with_star for o in s.objects if o.shape == "star"]
    assert np.mean([o.colour == "yellow" for o in stars]) > 0.8
    plain = [make_scene(i, bias=UNBIASED) for i in range(1500)]
    plain_star = [s for s in plain if s.has("star")]
    assert np.mean([s.has("moon") for s in plain_star]) < 0.6


def test_bias_breaking_scenes_have_the_cue_without_the_partner():
    for seed in range(30):
        s = bias_breaking_scene(seed)
        assert s.has("star") and not s.has("moon")
