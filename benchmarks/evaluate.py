"""Dataset throughput: samples per minute with 1 and 2 local workers and with Ray (one run each, ratios), and
the model calls per explanation per mode at N regions, for sizing a cluster.

    python benchmarks/evaluate.py [--samples 8] [--regions 64] [--mode exact] [--no-ray]

Throughput is measured on the demo model on this machine. Explanations per GPU-hour are estimated as
3600 / (model calls per explanation x seconds per masked image), with the calls counted here and the
seconds per masked image measured for the demo model on this machine; for another model, put its own cost
per masked image (batched forward time / batch size) into the same formula.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eagle_widgets.core import MODES, RegionSet
from eagle_widgets.demo import CAPTION_PROMPT, UNBIASED, load_demo_session, make_scene
from eagle_widgets.evaluation import evaluate, make_demo_dataset


def throughput(manifest: Path, out: Path, args, **backend) -> float:
    t0 = time.perf_counter()
    summary = evaluate(manifest, out, progress=False, mode=args.mode, regions=args.regions, **backend)
    assert summary["errors"] == 0, summary
    return 60.0 * summary["computed"] / (time.perf_counter() - t0)


def calls_per_explanation(session, regions: int) -> dict[str, tuple[int, float]]:
    """Model calls (masked images scored) per explanation of one word, and seconds per masked image."""
    scene = make_scene(3_000_001, bias=UNBIASED)
    gen = session.generate(scene.image, CAPTION_PROMPT)
    rs = RegionSet.slic(scene.image, n_segments=regions)
    out = {}
    for mode in MODES:
        t0 = time.perf_counter()
        result = session.explain(gen, [1], regions=rs, mode=mode, use_cache=False)
        seconds = time.perf_counter() - t0
        out[mode] = (result.evaluations, seconds / max(1, result.evaluations))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--regions", type=int, default=64)
    parser.add_argument("--mode", default="exact", choices=list(MODES))
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        half = args.samples // 2
        manifest = make_demo_dataset(tmp / "data", captions=half, words=args.samples - half, hallucinations=0)
        rows = [("local, 1 worker", throughput(manifest, tmp / "one", args, workers=1)),
                ("local, 2 workers", throughput(manifest, tmp / "two", args, workers=2))]
        if not args.no_ray:
            rows.append(("ray, 2 workers (local Ray)", throughput(manifest, tmp / "ray", args, backend="ray",
                                                                  workers=2)))
    base = rows[0][1]
    print(f"\n{args.samples} demo samples, {args.mode}, {args.regions} regions (worker start-up included)")
    print(f"{'backend':<28}{'samples/min':>12}{'vs 1 worker':>13}")
    for name, rate in rows:
        print(f"{name:<28}{rate:>12.1f}{rate / base:>12.2f}x")
    session = load_demo_session()
    print(f"\nper explanation of one word at N={args.regions} (demo model, this machine):")
    print(f"{'mode':<12}{'model calls':>12}{'ms/call':>10}{'expl./hour':>12}")
    for mode, (calls, per_call) in calls_per_explanation(session, args.regions).items():
        print(f"{mode:<12}{calls:>12}{1000 * per_call:>10.2f}{3600 / (calls * per_call):>12.0f}")


if __name__ == "__main__":
    main()
