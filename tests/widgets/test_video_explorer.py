"""The Explorer on a video: an uploaded file or frames, the filmstrip heatmap on one scale, which frames matter,
the HTML export; with the shipped video demo model."""

import datetime
import io
import json
import re

import numpy as np
import pytest
from eagle_widgets import Explorer
from eagle_widgets.demo import demo_clip, load_video_demo_session
from PIL import Image

from tiny_models import mp4_bytes


@pytest.fixture(scope="module")
def video_session():
    return load_video_demo_session(cache=False)


def _file(name: str, data: bytes, kind: str = "") -> dict:
    return {"name": name, "type": kind, "size": len(data), "content": memoryview(data),
            "last_modified": datetime.datetime.now()}


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_a_video_question_shows_which_frames_matter_and_exports(video_session):
    clip = demo_clip()
    explorer = Explorer(video_session, clip.video(), "is there a star ?", regions=4, mode="efficient")
    assert explorer.generation.text == "yes" and "video of 6 frames at 2 fps" in explorer.header.value
    assert explorer.heatmap.width == 6 * 224  # the frames side by side, one map over all of them
    explorer.regions_by.value = "grid"  # 4 cells: a 2x2 grid on every frame
    explorer.select([0]).wait(120)
    result = explorer.result
    assert explorer.state == "done" and result.frames == 6 and result.num_regions == 24
    assert result.frame_shares()[[2, 3]].sum() > 0.9
    assert "which frames matter" in explorer.prompt_strip.value and "frame 3 · 1 s" in explorer.prompt_strip.value
    assert "24 regions over 6 frames" in explorer.status.value
    name, page, _ = explorer.export_file("html")
    data = json.loads(re.search(r'<script type="application/json" id="eagle-data">(.*?)</script>',
                                page.decode(), re.S).group(1))
    frames = data["questions"][data["current"]]["explanations"][0]["frames"]["gain"]
    assert [f["label"] for f in frames["frames"]][:2] == ["1 · 0 s", "2 · 0.5 s"]
    assert 'id="frame-shares"' in page.decode()
    explorer.ask(prompt="what color is the star ?")  # the same video, read once, asked again
    assert explorer.generation.video is explorer.history[0].generation.video and explorer.generation.text == "red"


def test_uploads_become_videos_at_the_fps_control(video_session):
    clip = demo_clip()
    explorer = Explorer(video_session, clip.video(), "is there a star ?", regions=9, auto_run=False)
    explorer.fps_control.value = 1.0
    frames = [_file(f"f{i}.png", _png(f)) for i, f in reversed(list(enumerate(clip.frames)))]  # any order
    explorer.upload.value = tuple(frames)
    explorer.generate_button.click()
    video = explorer.generation.video
    assert video.n == 6 and video.fps == 1.0 and np.array_equal(video.frames, clip.frames)
    explorer.fps_control.value = 2.0
    explorer.upload.value = (_file("clip.mp4", mp4_bytes(list(clip.frames), 2), "video/mp4"),)
    explorer.generate_button.click()
    assert explorer.generation.video.n == 6 and explorer.generation.text == "yes", explorer.status.value
    explorer.upload.value = (_file("broken.mp4", b"not a video" * 10, "video/mp4"),)
    explorer.generate_button.click()
    assert "cannot read broken.mp4 as a video" in explorer.status.value
