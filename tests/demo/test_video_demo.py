"""The shipped video demo model: it answers about the demo clip, and "which frames matter" finds the frames that
show the asked object (the clip's ground truth)."""

import numpy as np
import pytest
from eagle_widgets.demo import VIDEO_WEIGHTS, demo_clip, load_video_demo_session, make_clip

from tiny_models import image_backend


@pytest.fixture(scope="module")
def video_session():
    return load_video_demo_session(cache=False)


def test_the_clip_has_its_ground_truth():
    clip = demo_clip()
    assert clip.frames_with("star") == [2, 3] and clip.frames_with("square") == [4, 5]
    assert clip.answer("is there a star ?") == "yes" and clip.answer("what color is the star ?") == "red"
    assert clip.mask_of("star")[[0, 1, 4, 5]].sum() == 0 and clip.mask_of("star")[2].sum() > 500
    assert make_clip(7).frames.shape == (6, 224, 224, 3)
    assert (VIDEO_WEIGHTS / "training.json").exists()


def test_it_answers_about_the_clip(video_session):
    video = demo_clip().video()
    for prompt, answer in [("is there a star ?", "yes"), ("what color is the star ?", "red"),
                           ("is there a moon ?", "no")]:
        assert video_session.generate_video(video, prompt, max_new_tokens=3).text == answer
    assert video_session.video_encoder.input_kind.startswith("frames as images")
    assert video_session.adapter.image_backend == image_backend()


def test_which_frames_matter_finds_the_star(video_session):
    video = demo_clip().video()
    gen = video_session.generate_video(video, "is there a star ?", max_new_tokens=2)
    result = video_session.explain(gen, [0], (2, 2), mode="efficient")
    shares = result.frame_shares()
    assert shares[[2, 3]].sum() > 0.9, shares  # the frames that show the star
    assert result.insertion_auc > 0.8 and result.deletion_auc < 0.2
    assert result.context.video["times"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert np.isclose(shares.sum(), 1.0)
