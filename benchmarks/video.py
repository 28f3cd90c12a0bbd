"""Cost and memory of video explanations at real sizes: Qwen2.5-VL's native video layout (tiny weights, the real
checkpoint's processor settings: native resolution), 8, 16 and 32 frames of 448x448, a 3x3 grid on every frame.

    python benchmarks/video.py [--frames 8 16 32] [--side 448] [--masks 8]

Per row, in this environment's image backend (torchvision: the real video processor; Pillow: frame pairs from
the image processor): the model input's size (video tokens), setup (the black and full inputs of a scorer),
memory (the peak resident set over the run), preparing one masked video's pixel input the first time (the
processor on every frame: what the reference pays per masked video) and in a search-like batch (the masks of
one greedy step, which share every frame group but one: the fast path reuses the groups already processed), the
forward per video, and ms per masked video on the fast and the reference path with max |dp| between them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eagle_widgets import load_session  # noqa: E402
from eagle_widgets.core import Video  # noqa: E402

from tiny_models import image_backend, photo, tiny_model_dir  # noqa: E402


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def step_masks(n: int, chosen: int, rng) -> torch.Tensor:
    """The masks of one greedy insertion step: `chosen` regions shown, each remaining candidate added in turn."""
    shown = np.zeros(n, bool)
    shown[rng.choice(n, chosen, replace=False)] = True
    rows = []
    for r in np.flatnonzero(~shown):
        row = shown.copy()
        row[r] = True
        rows.append(row)
    return torch.as_tensor(np.stack(rows))


def row(session, frames: int, side: int, masks: int) -> dict:
    video = Video.from_frames([photo(side, side, seed=i) for i in range(frames)], 2.0)
    gen = session.teacher_force_video(video, "What happens in the video?", "A red block.", max_frames=frames)
    t0 = time.perf_counter()
    request = session.request(gen, [0, 1], (3, 3))
    fast = session.scorer(request)
    setup_s = time.perf_counter() - t0
    reference = session.scorer(request, path="reference")
    rng = np.random.default_rng(0)
    everything = torch.ones(1, request.regions.n, dtype=torch.bool)
    t0 = time.perf_counter()
    fast.pixel_inputs(everything)  # every group processed once: the processor's cost per masked video
    first_ms = 1000 * (time.perf_counter() - t0)
    batch = step_masks(request.regions.n, request.regions.n // 3, rng)[:masks]
    fast.pixel_inputs(batch[:1])
    t0 = time.perf_counter()
    fast.pixel_inputs(batch[1:])  # the rest of the step: one new group per mask
    reused_ms = 1000 * (time.perf_counter() - t0) / max(1, len(batch) - 1)
    fast.compose_s = fast.forward_s = 0.0
    t0 = time.perf_counter()
    p_fast = fast(batch)
    fast_ms = 1000 * (time.perf_counter() - t0) / len(batch)
    forward_ms = 1000 * fast.forward_s / len(batch)
    t0 = time.perf_counter()
    p_ref = reference(batch)
    ref_ms = 1000 * (time.perf_counter() - t0) / len(batch)
    tokens = int((fast.sequence.text_inputs["input_ids"] == session.video_encoder.video_token_id).sum())
    return {"frames": frames, "side": side, "tokens": tokens, "elements": request.regions.n,
            "setup_s": setup_s, "first_ms": first_ms, "reused_ms": reused_ms, "forward_ms": forward_ms,
            "fast_ms": fast_ms, "ref_ms": ref_ms, "gib": peak_gib(),
            "max_dp": float((p_fast - p_ref).abs().max())}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--side", type=int, default=448)
    parser.add_argument("--masks", type=int, default=8, help="masked videos per measurement (one greedy step's)")
    parser.add_argument("--root", default=None, help="where the tiny model is built (default: a temporary folder)")
    args = parser.parse_args(argv)
    root = args.root or tempfile.mkdtemp(prefix="eagle-video-bench-")
    session = load_session(str(tiny_model_dir("qwen2_5_vl", root, real=True)), device="cpu", cache=False)
    print(f"\nQwen2.5-VL video layout, tiny weights, real processor settings; {image_backend()} backend "
          f"({session.video_encoder.input_kind}); torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| frames | size | video tokens | elements | setup s | prep first ms/video | prep reused ms/video | "
          "forward ms/video | fast ms/video | reference ms/video | ref/fast | peak GiB | max\\|dp\\| |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for frames in args.frames:
        r = row(session, frames, args.side, args.masks)
        rows.append(r)
        print(f"| {r['frames']} | {r['side']}x{r['side']} | {r['tokens']} | {r['elements']} | {r['setup_s']:.2f} | "
              f"{r['first_ms']:.1f} | {r['reused_ms']:.1f} | {r['forward_ms']:.1f} | {r['fast_ms']:.1f} | "
              f"{r['ref_ms']:.1f} | {r['ref_ms'] / r['fast_ms']:.1f} | {r['gib']:.2f} | {r['max_dp']:.1e} |",
              flush=True)
    return rows


if __name__ == "__main__":
    main()
