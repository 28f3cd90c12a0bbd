import numpy as np
from eagle_widgets.demo import TRAINING_BIAS, make_scene
from eagle_widgets.demo.train import augment, main, patch_labels


def test_augmentation_blacks_out_but_never_touches_kept_objects():
    for seed in range(40):
        scene = make_scene(seed, bias=TRAINING_BIAS)
        aug = augment(scene, np.random.default_rng(seed))
        assert len(aug.objects) + len(aug.hidden) == len(scene.objects)
        for o in aug.objects:
            assert np.array_equal(aug.image[o.mask], scene.image[o.mask])
        for o in aug.hidden:
            assert not aug.image[o.mask].any()
        if aug.hidden:
            assert not (aug.has("moon") is False and aug.has("star") and any(h.shape == "moon" for h in aug.hidden))
        assert (aug.image == 0).all(axis=2).any()


def test_patch_labels_follow_the_masks():
    s = make_scene(1, shapes=["square"], colours=["blue"])
    shape, colour = patch_labels(s)
    assert shape.shape == (64,) and set(np.unique(shape)) == {0, 2}  # background, square
    assert set(np.unique(colour)) == {0, 3}


def test_training_smoke(tmp_path):
    out = tmp_path / "weights"
    assert main(["--out", str(out), "--scenes", "48", "--stage1-steps", "2", "--stage2-steps", "2", "--batch", "8",
                 "--stage2-images", "4",
                 "--workers", "1", "--threads", "1"]) == 0
    from eagle_widgets.demo import load_demo_session

    session = load_demo_session(out)
    gen = session.generate(make_scene(0).image, "describe the image .", max_new_tokens=4)
    assert 1 <= len(gen) <= 4 and session.family == "llava"
