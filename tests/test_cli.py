import json

import numpy as np
import pytest
from eagle_widgets.cli import main
from PIL import Image


def test_explain_with_a_model_folder(tmp_path, model_root, capsys):
    from tiny_models import tiny_model_dir

    image = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    code = main(["explain", "--image", str(image), "--prompt", "What is this?", "--model",
                 str(tiny_model_dir("llava", model_root)), "--tokens", "0", "--regions", "8", "--mode", "early_stop",
                 "--max-new-tokens", "3", "--out", str(out)])
    assert code == 0
    assert (out / "attribution.eagle").exists() and (out / "attribution.png").exists()
    answer = json.loads((out / "answer.json").read_text())
    assert len(answer["tokens"]) == len(answer["p_image"]) <= 3
    assert "A: " in capsys.readouterr().out


def test_demo_command(tmp_path, demo_session):
    assert main(["demo", "--out", str(tmp_path), "--regions", "16"]) == 0
    from eagle_widgets.core import Attribution

    result = Attribution.load(tmp_path / "attribution.eagle")
    assert result.complete and result.num_tokens == 1


@pytest.mark.parametrize("args, message", [
    (["--image", "missing.png"], "no such image file"),
    (["--image", __file__], "cannot read"),
])
def test_bad_input_gives_a_clear_message(tmp_path, args, message, capsys):
    code = main(["explain", *args, "--prompt", "hi", "--out", str(tmp_path)])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("extra, message", [
    (["--device", "banana"], "unknown device"),
    pytest.param(["--device", "cuda"], "no CUDA GPU", marks=pytest.mark.skipif(
        __import__("torch").cuda.is_available(), reason="this machine has a GPU")),
    (["--model", "./no/such/folder"], "no model folder"),
    (["--model", "./", "--dtype", "int8"], "dtype must be"),
    (["--tokens", "0", "--words", "red"], "not both"),
])
def test_explain_refuses_bad_options_in_one_line(tmp_path, image_file, extra, message, capsys):
    code = main(["explain", "--image", str(image_file), "--prompt", "hi", "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_out_must_be_a_writable_folder(tmp_path, image_file, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["explain", "--image", str(image_file), "--prompt", "hi", "--out", str(blocker)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_demo_seed_must_not_be_negative(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--seed", "-1"])
    assert "0 or more" in capsys.readouterr().err


def test_a_decompression_bomb_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # any PNG over 2x the limit is a "bomb" to PIL
    path = tmp_path / "big.png"
    Image.new("RGB", (40, 40)).save(path)
    assert main(["explain", "--image", str(path), "--prompt", "hi", "--out", str(tmp_path / "o")]) == 2
    assert "too large" in capsys.readouterr().err


def test_explain_a_video_given_as_a_folder_of_frames(tmp_path, capsys):
    from eagle_widgets.demo import VIDEO_WEIGHTS, demo_clip

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(demo_clip().frames):
        Image.fromarray(f).save(frames / f"frame{i + 1}.png")
    code = main(["explain", "--video", str(frames), "--fps", "2", "--prompt", "is there a star ?", "--model",
                 str(VIDEO_WEIGHTS), "--regions", "4", "--tokens", "0",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "video: 6 frames of 224x224 at 2 fps" in out and "A: yes" in out
    assert (tmp_path / "out" / "attribution.png").stat().st_size > 10_000
    without_fps = main(["explain", "--video", str(frames), "--prompt", "hi", "--out", str(tmp_path / "o2")])
    assert without_fps == 2 and "fps" in capsys.readouterr().err
