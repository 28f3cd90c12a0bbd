"""Fast scoring path against the published one (mask the original image, processor and forward per image).

    python benchmarks/sessions.py [--regions 36 64] [--families demo llava qwen2_5_vl]

Per model, on a real-size non-square image (the demo model's own 224-px scene; 480x640 for the tiny
families), an exact greedy word-level attribution over N SLICO regions on (a) the fast path and (b) the
published path, timed in the same run: the ratio (b)/(a); the fast path's overhead over the bare batched
forwards it ran (setup included); max |dp| between the paths on 16 random masks; whether the orders agree.
Targets: overhead <= 15%, (b)/(a) >= 5 for the demo model at N=64.
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
from eagle_widgets import load_demo_session, load_session  # noqa: E402
from eagle_widgets.core import RegionSet, attribute  # noqa: E402
from eagle_widgets.demo import CAPTION_PROMPT, make_scene  # noqa: E402

from tiny_models import tiny_model_dir  # noqa: E402


def photo(h=480, w=640, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.integers(120, 230, (h, w, 3), dtype=np.uint8)
    img[h // 5: h // 2, w // 4: w // 2] = (220, 30, 30)
    img[h // 2:, w // 2:] = rng.integers(0, 255, (h - h // 2, w - w // 2, 3), dtype=np.uint8)
    return img


def case(family: str, root: str, device: str):
    if family == "demo":
        session = load_demo_session(cache=False)
        image = make_scene(1_000_025).image
        gen = session.generate(image, CAPTION_PROMPT)
        token = next(i for i, t in enumerate(gen.tokens) if t.strip() in ("circle", "cross", "star", "square"))
        return session, image, gen, token
    session = load_session(str(tiny_model_dir(family, root)), device=device, cache=False)
    image = photo()
    gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=4)
    return session, image, gen, 1


def run(session, image, gen, token: int, n_segments: int) -> dict:
    regions = RegionSet.slic(image, n_segments=n_segments)
    row = {"regions": regions.n}
    for path in ("fast", "reference"):
        t0 = time.perf_counter()
        scorer = session.scorer(gen, tokens=[token], regions=regions, path=path)
        setup = time.perf_counter() - t0
        scorer.forward_s = scorer.compose_s = 0.0
        t0 = time.perf_counter()
        result = attribute(scorer, regions, mode="exact", batch_size=scorer.batch_size)
        row[path] = {"wall_s": setup + time.perf_counter() - t0, "setup_s": setup, "forward_s": scorer.forward_s,
                     "compose_s": getattr(scorer, "compose_s", float("nan")),
                     "evaluations": result.evaluations, "batch": scorer.batch_size, "order": result.order,
                     "scorer": scorer}
    probe = torch.rand(16, regions.n, generator=torch.Generator().manual_seed(0)) > 0.5
    row["max_dp"] = float((row["fast"]["scorer"](probe) - row["reference"]["scorer"](probe)).abs().max())
    row["composition"] = row["fast"]["scorer"].describe()["composition"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--regions", type=int, nargs="+", default=[37, 65], help="SLICO n_segments (about N + 1)")
    parser.add_argument("--families", nargs="+", default=["demo", "llava", "qwen2_5_vl"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'model':<11}{'image':>9}{'N':>4}{'evals':>6}{'batch':>6}{'setup s':>8}{'(a) fast s':>11}{'(b) pub s':>10}"
          f"{'(b)/(a)':>8}{'fwd s':>7}{'compose s':>10}{'overhead':>9}{'max|dp|':>9}{'order':>7}  composition")
    with tempfile.TemporaryDirectory() as root:
        for family in args.families:
            session, image, gen, token = case(family, root, args.device)
            for n in args.regions:
                r = run(session, image, gen, token, n)
                fast, ref = r["fast"], r["reference"]
                overhead = (fast["wall_s"] - fast["forward_s"]) / fast["forward_s"]
                same = "same" if fast["order"] == ref["order"] else "DIFF"
                print(f"{family:<11}{image.shape[0]:>4}x{image.shape[1]:<4}{r['regions']:>4}{fast['evaluations']:>6}"
                      f"{fast['batch']:>6}{fast['setup_s']:>8.2f}{fast['wall_s']:>11.2f}{ref['wall_s']:>10.2f}"
                      f"{ref['wall_s'] / fast['wall_s']:>8.1f}{fast['forward_s']:>7.2f}{fast['compose_s']:>10.2f}"
                      f"{overhead:>9.1%}"
                      f"{r['max_dp']:>9.1e}{same:>7}  {r['composition']}")


if __name__ == "__main__":
    main()
