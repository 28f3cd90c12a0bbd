"""Videos in the engine: frames read once with their times, regions per frame, which frames matter, bundles."""

import numpy as np
import pytest
from eagle_widgets.core import Attribution, FrameRegions, InputError, Video, attribute, load_video
from eagle_widgets.core.scorer import EvidenceScorer

from tiny_models import mp4_bytes


def clip(n=4, h=24, w=32):
    return [np.full((h, w, 3), 30 * i, np.uint8) for i in range(n)]


def test_frames_need_their_spacing_and_one_size():
    with pytest.raises(InputError, match="fps"):
        load_video(clip())
    with pytest.raises(InputError, match="differ in size"):
        load_video([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8)], fps=2)
    with pytest.raises(InputError, match="positive"):
        load_video(clip(), fps=0)
    video = load_video(clip(), fps=4)
    assert video.times == (0.0, 0.25, 0.5, 0.75) and video.n == 4 and video.frame_shape == (24, 32)
    assert video.strip.shape == (24, 128, 3)
    np.testing.assert_array_equal(video.frames_of(video.strip), video.frames)


def test_a_folder_of_frames_is_read_in_natural_order(tmp_path):
    from PIL import Image

    for i in (10, 2, 1):  # "10" after "2", as people number frames
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"frame{i}.png")
    video = load_video(tmp_path, fps=1)
    assert [int(f[0, 0, 0]) for f in video.frames] == [1, 2, 10]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no frame images"):
        load_video(tmp_path / "empty", fps=1)


def test_a_file_is_sampled_at_fps_with_its_times_and_capped(tmp_path):
    frames = [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(25)]  # 2.4 s at 10 fps
    (tmp_path / "c.mp4").write_bytes(mp4_bytes(frames, 10))
    video = load_video(tmp_path / "c.mp4")  # 2 fps by default
    assert video.fps == 2.0 and video.times == (0.0, 0.5, 1.0, 1.5, 2.0)
    assert np.abs(video.frames[:, 0, 0, 0].astype(int) - [0, 50, 100, 150, 200]).max() <= 3
    capped = load_video((tmp_path / "c.mp4").read_bytes(), fps=10, max_frames=8)
    assert capped.n <= 8 and capped.fps == 2.5 and capped.times == (0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4)
    with pytest.raises(InputError, match="cannot read .* as a video"):
        load_video(b"not a video" * 20)
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError):
        load_video(tmp_path / "empty.mp4")


def test_frame_regions_stay_in_their_frames():
    video = load_video(clip(3), fps=2)
    grid = FrameRegions.grid(video, 2, 2)
    assert grid.n == 12 and grid.frames == 3 and list(grid.frame_of) == [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_allclose(grid.area_fractions.sum(), 1.0)  # a region's area: its share of all the pixels
    crossing = np.zeros((24, 96), int)
    crossing[:, 20:40] = 1  # one region over frames 0 and 1
    with pytest.raises(InputError, match="crosses"):
        FrameRegions.coerce_for(crossing, video)
    with pytest.raises(InputError, match="frames"):
        FrameRegions.coerce_for(FrameRegions.grid(load_video(clip(2), fps=2), 2, 2), video)
    slic = FrameRegions.slic(load_video([np.random.default_rng(i).integers(0, 255, (24, 32, 3), np.uint8)
                                         for i in range(2)], fps=2), per_frame=4)
    assert slic.frames == 2 and set(slic.frame_of) == {0, 1}


def test_which_frames_matter_finds_the_frame_that_holds_the_evidence(tmp_path):
    video = load_video(clip(4), fps=2)
    regions = FrameRegions.grid(video, 2, 2)
    # The token's evidence is region 9 (frame 2); the other regions barely move it.
    scorer = EvidenceScorer(regions.n, [9])
    result = attribute(scorer, regions, mode="exact", context={"image": video.strip})
    shares = result.frame_shares()
    assert result.frames == 4 and int(np.argmax(shares)) == 2 and shares[2] > 0.8
    np.testing.assert_allclose(shares.sum(), 1.0)
    result.save(tmp_path / "v.eagle")
    back = Attribution.load(tmp_path / "v.eagle")
    assert isinstance(back.regions, FrameRegions) and back.frames == 4
    np.testing.assert_allclose(back.frame_shares(), shares)


def test_video_rejects_nonsense():
    with pytest.raises(InputError):
        Video(np.zeros((0, 4, 4, 3), np.uint8), 2.0, ())
    with pytest.raises(InputError, match="a video is"):
        load_video(3.5)
    with pytest.raises(InputError, match="max_frames"):
        load_video(clip(), fps=2, max_frames=0)
