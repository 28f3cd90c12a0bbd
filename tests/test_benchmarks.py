"""benchmarks/gpu.py runs here with --small, and builds the real architectures' shapes from their configs."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu  # noqa: E402

# Parameter counts of the published checkpoints, in billions (the bf16 weights the GPU run allocates).
PUBLISHED_BILLIONS = {"llava-1.5-7b": 7.06, "qwen2.5-vl-3b": 3.75, "qwen2.5-vl-7b": 8.29, "internvl3.5-4b": 4.73}


@pytest.mark.parametrize("name", list(gpu.ARCHITECTURES))
def test_real_architectures_have_their_published_sizes(name, model_root):
    model, processor = gpu.real_model(name, model_root, "meta")
    billions = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(billions - PUBLISHED_BILLIONS[name]) / PUBLISHED_BILLIONS[name] < 0.08, billions


@pytest.mark.slow
def test_gpu_benchmark_runs_small(capsys):
    rows = gpu.main(["--small", "--models", "qwen2.5-vl-3b", "--regions", "4", "--modes", "exact", "efficient",
                     "--levels", "word", "--size", "160x120", "--published-masks", "1", "--device", "cpu"])
    assert [r["mode"] for r in rows] == ["exact", "efficient"]
    assert all(r["evaluations"] > 0 and r["wall_s"] > 0 and r["published_s"] > 0 for r in rows)
    assert "| qwen2.5-vl-3b | word | exact |" in capsys.readouterr().out


def test_video_benchmark_runs_small(model_root, capsys):
    import video

    rows = video.main(["--frames", "3", "--side", "112", "--masks", "2", "--root", str(model_root)])
    assert rows[0]["frames"] == 3 and rows[0]["max_dp"] < 1e-6 and rows[0]["fast_ms"] > 0
    assert "| 3 | 112x112 |" in capsys.readouterr().out


def test_sessions_benchmark_runs_small(model_root, capsys):
    import sessions

    rows = sessions.main(["--families", "internvl", "--sizes", "320x240", "--regions", "9", "--masks", "2",
                          "--reference-masks", "2", "--root", str(model_root), "--device", "cpu"])
    (row,) = rows
    assert row["max_dp"] <= 1e-4 and row["step_ms"] > 0 and row["step_ref_ms"] > 0
    assert 0 < row["reused"] <= 1  # the greedy step's masks repeat most tiles
    assert "| internvl | 320x240 |" in capsys.readouterr().out
