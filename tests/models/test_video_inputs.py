"""Videos through real model classes in this environment's image backend: each family's video input, fast =
reference, time spacing, and (with torchvision) our inputs equal to the real video processors'."""

import threading

import numpy as np
import pytest
import torch
from eagle_widgets import load_session
from eagle_widgets.core import InputError, Video
from eagle_widgets.core.errors import UnsupportedModel
from eagle_widgets.models.video import QwenVideo

from tiny_models import image_backend, photo, tiny_model_dir

VIDEO_FAMILIES = ["qwen2_5_vl", "qwen2_vl", "internvl", "smolvlm", "llava"]


def frames(n=5, h=112, w=140):
    return [photo(h, w, seed=i) for i in range(n)]


@pytest.mark.parametrize("family", VIDEO_FAMILIES)
def test_video_answers_explain_with_fast_equal_to_reference(sessions, family):
    session = sessions(family)
    gen = session.generate_video(frames(), "What happens in the video?", fps=2.0, max_new_tokens=3)
    assert gen.video.n == 5 and gen.image.shape == (112, 5 * 140, 3)
    request = session.request(gen, [0, 1], (2, 2))
    fast, reference = session.scorer(request), session.scorer(request, path="reference")
    visible = torch.as_tensor(np.random.default_rng(0).random((6, request.regions.n)) < 0.5)
    visible[0] = True
    visible[1] = False
    torch.testing.assert_close(fast(visible), reference(visible), rtol=0, atol=1e-6)
    assert fast.describe()["video_input"] == session.video_encoder.input_kind
    result = session.explain(gen, [0], (2, 2), mode="efficient", use_cache=False)
    assert result.frames == 5 and result.context.video["fps"] == 2.0
    assert result.context.scoring["frames"] == 5
    assert "reused" in result.context.scoring["composition"]
    gained = result.marginal_gains().max() > 0  # a random model may gain nothing along its order
    np.testing.assert_allclose(result.frame_shares().sum(), 1.0 if gained else 0.0, atol=1e-9)


def test_qwen_frames_feed_only_their_pair(sessions):
    session = sessions("qwen2_5_vl")
    gen = session.generate_video(frames(5), "What happens?", fps=2.0, max_new_tokens=2)
    scorer = session.scorer(session.request(gen, [0], (2, 2)))
    everything = torch.ones(1, scorer.num_regions, dtype=torch.bool)
    one_cell_gone = everything.clone()
    one_cell_gone[0, 4 * 2] = False  # a cell of frame 2 (pair 1: frames 2 and 3)
    a, b = scorer.pixel_inputs(everything), scorer.pixel_inputs(one_cell_gone)
    per_pair = a.shape[0] // 3  # 5 frames: pairs (0, 1), (2, 3), (4, 4)
    changed = (a != b).any(dim=1).view(3, per_pair).any(dim=1).tolist()
    assert changed == [False, True, False]


def test_qwen_time_spacing_reaches_the_model(sessions):
    session = sessions("qwen2_5_vl")
    encoder = session.video_encoder
    slow, fast = (Video.from_frames(frames(4), fps) for fps in (1.0, 4.0))
    text = encoder.prompt_text("What happens?", slow)
    assert encoder.encode(slow.frames, text, slow)["second_per_grid_ts"].item() == 2.0
    assert encoder.encode(fast.frames, text, fast)["second_per_grid_ts"].item() == 0.5
    a = session.generate_video(slow, "What happens?", max_new_tokens=2)
    b = session.teacher_force_video(fast, "What happens?", a.token_ids)
    pa, pb = session.reliance(a).p_full, session.reliance(b).p_full
    assert not np.allclose(pa, pb, atol=1e-7)  # positions in time differ: so do the probabilities


def test_video_refusals_name_the_problem(sessions, model_root):
    session = sessions("qwen2_5_vl")
    with pytest.raises(InputError, match="fps"):
        session.generate_video(frames(3), "What?")
    with pytest.raises(InputError, match="non-empty"):
        session.generate_video(frames(3), " ", fps=2)
    gen = session.generate_video(frames(3), "What?", fps=2, max_new_tokens=2)
    with pytest.raises(InputError, match="video"):
        session.request(gen, [0], None, prompt="word")
    with pytest.raises(InputError, match="reads the model's internals"):
        session.explain_method(gen, [0], (2, 2), method="tam")
    with pytest.raises(InputError, match="frames"):
        session.request(gen, [0], np.zeros((112, 140), int))
    llava_next = load_session(str(tiny_model_dir("llava_next", model_root)), device="cpu", cache=False)
    with pytest.raises(UnsupportedModel, match="videos are supported for"):
        llava_next.generate_video(frames(2), "What?", fps=2)


@pytest.mark.skipif(image_backend() != "torchvision", reason="the real video processors need torchvision")
@pytest.mark.parametrize("family", ["qwen2_5_vl", "internvl", "smolvlm"])
@pytest.mark.parametrize("count", [5, 8])
def test_our_video_inputs_equal_the_real_video_processor(model_root, family, count):
    """At the real models' processor settings: Qwen's frame pairs from the image processor, and InternVL's and
    SmolVLM2's frames with their frame text, against the video processors' own outputs."""
    session = load_session(str(tiny_model_dir(family, model_root, real=True)), device="cpu", cache=False)
    processor = session.processor
    assert getattr(processor, "video_processor", None) is not None
    video = Video.from_frames(frames(count, 360, 480), 2.0)
    encoder = session.video_encoder
    text = encoder.prompt_text("What happens?", video)
    ours = encoder.encode(video.frames, text, video)
    if family == "qwen2_5_vl":
        assert "video processor" in encoder.input_kind
        paired = QwenVideo(session.adapter, processor)
        paired.video_processor = None  # the construction used where torchvision is missing
        theirs = paired.encode(video.frames, text, video)
    else:
        raw = encoder.template_with_video("What happens?")
        meta = [{"fps": video.fps, "frames_indices": list(range(count)), "total_num_frames": count,
                 "duration": count / video.fps}]
        theirs = processor(text=[raw], videos=[list(video.frames)], video_metadata=meta, do_sample_frames=False,
                           return_tensors="pt")
    for key, value in ours.items():
        other = theirs[key]
        assert other.shape == value.shape, key
        torch.testing.assert_close(value.double(), other.double(), rtol=0, atol=0, msg=key)


def test_a_large_video_search_says_its_cost_first(sessions):
    from eagle_widgets.models.session import LargeSearch

    session = sessions("llava")
    gen = session.generate_video(frames(4, 56, 56), "What happens?", fps=2.0, max_new_tokens=2)
    cancel = threading.Event()
    cancel.set()  # the warning comes before the search; the search itself stops at once
    with pytest.warns(LargeSearch, match=r"4 frames x about 49 regions\) in exact mode score about 38,612"):
        session.explain(gen, [0], (7, 7), mode="exact", cancel=cancel, use_cache=False)
