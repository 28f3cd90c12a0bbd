"""Fast (batched, preprocess-once) scoring path against the published one-image-per-call pixel-space loop.

    python benchmarks/sessions.py [--regions 36] [--families llava qwen2_5_vl]

For each tiny model: wall time and evaluations of an exact greedy attribution of one token over N
regions, on (a) the fast path and (b) the reference path, the ratio (b)/(a), and the fast path's
overhead over the pure model-forward time of the same batches. Targets: (b)/(a) >= 10x, overhead <= 15%.
max|dp| is the largest probability difference between the paths on 16 random masks: the fast path masks
after the processor's resize, so pixels on region borders are mixed differently (tests prove the paths
identical where the image is already at the model's input size).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eagle_widgets import load_session  # noqa: E402
from eagle_widgets.core import RegionSet, attribute  # noqa: E402

from tiny_models import tiny_model_dir  # noqa: E402


def scene(h=224, w=224, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(150, 230, (h, w, 3), dtype=np.uint8)
    img[40:120, 50:150] = (220, 30, 30)
    return img


def run(family: str, root: str, n_segments: int, device: str) -> dict:
    session = load_session(str(tiny_model_dir(family, root)), device=device)
    image = scene()
    gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=4)
    regions = RegionSet.slic(image, n_segments=n_segments)
    row = {"family": family, "regions": regions.n}
    probe = torch.rand(16, regions.n, generator=torch.Generator().manual_seed(0)) > 0.5
    row["max_dp"] = float((session.scorer(gen, [1], regions)(probe)
                           - session.scorer(gen, [1], regions, path="reference")(probe)).abs().max())
    for path in ("fast", "reference"):
        scorer = session.scorer(gen, tokens=[1], regions=regions, path=path)
        scorer(torch.ones(2, regions.n, dtype=torch.bool))  # warm-up
        scorer.forward_s = 0.0
        t0 = time.perf_counter()
        result = attribute(scorer, regions, mode="exact", batch_size=scorer.batch_size)
        wall = time.perf_counter() - t0
        row[path] = {"wall_s": wall, "evaluations": result.evaluations, "forward_s": scorer.forward_s,
                     "batch": scorer.batch_size, "order": result.order}
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regions", type=int, default=37, help="SLICO n_segments (37 gives about 36 regions)")
    parser.add_argument("--families", nargs="+", default=["llava", "qwen2_5_vl"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'model':<12}{'N':>4}{'evals':>7}{'batch':>6}{'(a) fast s':>11}{'(b) ref s':>10}{'(b)/(a)':>8}"
          f"{'forward s':>10}{'overhead':>9}{'max|dp|':>9}{'top-1 same':>11}")
    with tempfile.TemporaryDirectory() as root:
        for family in args.families:
            r = run(family, root, args.regions, args.device)
            fast, ref = r["fast"], r["reference"]
            overhead = (fast["wall_s"] - fast["forward_s"]) / fast["forward_s"]
            print(f"{family:<12}{r['regions']:>4}{fast['evaluations']:>7}{fast['batch']:>6}{fast['wall_s']:>11.2f}"
                  f"{ref['wall_s']:>10.2f}{ref['wall_s'] / fast['wall_s']:>8.1f}{fast['forward_s']:>10.2f}"
                  f"{overhead:>9.1%}{r['max_dp']:>9.1e}{str(fast['order'][0] == ref['order'][0]):>11}")


if __name__ == "__main__":
    main()
