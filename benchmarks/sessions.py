"""Fast scoring path against the published one (mask the original image, processor and forward per image).

    python benchmarks/sessions.py                                   # every family at real settings, 4 sizes
    python benchmarks/sessions.py --families demo --exact 64        # the demo model, whole exact runs

Per family (tiny weights, the real model's processor settings) and photo size, in the image backend of this
environment (torchvision where it imports, else Pillow): the strategy the scorer chose and why, its setup
time and extra memory (peak RSS over the baseline), preparation ms per masked image against the
processor's own per-image cost, forward ms per masked image, the fast path's cost per masked image against
`path="reference"` (one processor call and one forward per masked image), and max |dp| between them on
random masks. Then the same on the masks of one greedy step (a few regions chosen, each candidate inserted and
deleted: what an explanation scores), where tiled families reuse the vision features of tiles seen before: the
fast path's cost per masked image there, its ratio to the reference, and the share of tiles reused.
`--exact N` adds whole exact attributions over N regions on both paths (ratio of wall times,
identical orders). Targets (issue 24): prep <= 0.5x processor, fast >= 3x reference per masked image,
setup <= 10 s and extra memory <= 2 GiB at 1920x1080; the demo model >= 4.5x over the published path at N=64.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eagle_widgets import load_demo_session, load_session  # noqa: E402
from eagle_widgets.core import RegionSet, attribute  # noqa: E402
from eagle_widgets.demo import CAPTION_PROMPT, make_scene  # noqa: E402

from tiny_models import REAL_SETTINGS, photo, tiny_model_dir  # noqa: E402

SIZES = [(480, 640), (768, 1024), (1080, 1920), (640, 480)]  # (h, w): three landscape photos and a portrait


class PeakRSS:
    """Peak resident memory of this process while the block runs, sampled every 5 ms."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @property
    def extra_gib(self) -> float:
        return (self.peak - self.base) / 2**30


def strategy_label(composition: str) -> str:
    """A short name for the strategy a scorer's `describe()["composition"]` names."""
    for words, label in (("replayed", "replayed resizes"), ("processor on the masked batch", "processor on device"),
                         ("Pillow resampling", "Pillow emulation"), ("region basis", "region basis")):
        if words in composition:
            return label
    return "processor per image"


def session_for(family: str, root: str, device: str):
    if family == "demo":
        return load_demo_session(cache=False)
    return load_session(str(tiny_model_dir(family, root, real=True)), device=device, cache=False)


def answer(session, family: str, image):
    if family == "demo":
        gen = session.generate(image, CAPTION_PROMPT)
        return gen, next(i for i, t in enumerate(gen.tokens) if t.strip() in ("circle", "cross", "star", "square"))
    return session.generate(image, "Describe the image in one sentence.", max_new_tokens=3), 1


def greedy_step_masks(n: int, chosen: int = 3, candidates: int = 8) -> torch.Tensor:
    """Insertion and deletion masks of one greedy step: `chosen` regions in S, then S + r and its complement."""
    picked = torch.zeros(n, dtype=torch.bool)
    picked[torch.randperm(n, generator=torch.Generator().manual_seed(1))[:chosen]] = True
    out = []
    for r in torch.nonzero(~picked).flatten()[:candidates].tolist():
        inserted = picked.clone()
        inserted[r] = True
        out += [inserted, ~inserted]
    return torch.stack(out)


def per_image(session, gen, token, regions, masks: int, reference_masks: int) -> dict:
    """Setup, memory and per-masked-image costs of both paths on the same random masks."""
    probe = torch.rand(masks, regions.n, generator=torch.Generator().manual_seed(0)) > 0.5
    with PeakRSS() as memory:
        t0 = time.perf_counter()
        fast = session.scorer(gen, tokens=[token], regions=regions)
        setup = time.perf_counter() - t0
        fast.forward_s = fast.compose_s = 0.0
        t0 = time.perf_counter()
        p_fast = fast(probe)
        fast_s = (time.perf_counter() - t0) / masks
    random_compose_s, random_forward_s = getattr(fast, "compose_s", 0.0), fast.forward_s
    reference = session.scorer(gen, tokens=[token], regions=regions, path="reference")
    t0 = time.perf_counter()
    p_ref = reference(probe[:reference_masks])
    ref_s = (time.perf_counter() - t0) / reference_masks
    step = greedy_step_masks(regions.n)
    tiles = getattr(fast, "tiles", None)
    before = (tiles.hits, tiles.misses) if tiles is not None else None
    t0 = time.perf_counter()
    p_step = fast(step)
    step_s = (time.perf_counter() - t0) / len(step)
    reused = float("nan")
    if tiles is not None:  # the share of the step's tiles whose vision features were reused
        hits, misses = tiles.hits - before[0], tiles.misses - before[1]
        reused = hits / max(1, hits + misses)
    t0 = time.perf_counter()
    p_step_ref = reference(step[:reference_masks])
    step_ref_s = (time.perf_counter() - t0) / reference_masks
    desc = fast.describe()
    prep_s = random_compose_s / masks
    if "compose_ms_per_image" not in desc:  # the processor runs on every masked image: that is its preparation
        prep_s = max(0.0, fast_s - random_forward_s / masks)
    return {"strategy": desc["composition"], "setup_s": setup, "extra_gib": memory.extra_gib,
            "prep_ms": 1000 * prep_s, "processor_ms": desc.get("processor_ms_per_image", float("nan")),
            "forward_ms": 1000 * random_forward_s / masks, "fast_ms": 1000 * fast_s, "ref_ms": 1000 * ref_s,
            "max_dp": max(float((p_fast[:reference_masks] - p_ref).abs().max()),
                          float((p_step[:reference_masks] - p_step_ref).abs().max())), "batch": fast.batch_size,
            "step_ms": 1000 * step_s, "step_ref_ms": 1000 * step_ref_s, "reused": reused,
            "why": desc.get("note") or desc.get("not_exact_because", "")}


def exact_runs(session, gen, token, regions) -> dict:
    out = {}
    for path in ("fast", "reference"):
        t0 = time.perf_counter()
        scorer = session.scorer(gen, tokens=[token], regions=regions, path=path)
        result = attribute(scorer, regions, mode="exact", batch_size=scorer.batch_size)
        out[path] = (time.perf_counter() - t0, result.order, result.evaluations)
    return {"exact_ratio": out["reference"][0] / out["fast"][0], "same_order": out["fast"][1] == out["reference"][1],
            "evaluations": out["fast"][2], "fast_s": out["fast"][0], "reference_s": out["reference"][0]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", nargs="+", default=["demo", *REAL_SETTINGS])
    parser.add_argument("--sizes", nargs="+", default=[f"{w}x{h}" for h, w in SIZES], help="WxH photo sizes")
    parser.add_argument("--regions", type=int, default=65, help="SLICO n_segments (about N + 1)")
    parser.add_argument("--masks", type=int, default=8, help="masked images timed on the fast path")
    parser.add_argument("--reference-masks", type=int, default=3, help="masked images timed on the reference path")
    parser.add_argument("--exact", type=int, default=0, help="also run whole exact attributions over N regions")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--root", help="where the tiny models are built (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        import torchvision
        backend = f"torchvision {torchvision.__version__}"
    except Exception:  # noqa: BLE001 - any import failure means transformers falls back to Pillow
        backend = "Pillow (no torchvision)"
    print(f"device {args.device}, torch {torch.__version__}, {backend}, threads {torch.get_num_threads()}")
    print("| family | image | backend | strategy | setup s | extra GiB | prep ms/img | processor ms/img | prep/proc "
          "| forward ms/img | fast ms/img | reference ms/img | ref/fast | step fast ms/img | step ref/fast "
          "| tiles reused | max\\|dp\\| |" + (
              " exact evals | exact ratio | order |" if args.exact else ""))
    print("|---" * (17 + (3 if args.exact else 0)) + "|")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root or scratch
        for family in args.families:
            session = session_for(family, root, args.device)
            sizes = ["224x224"] if family == "demo" else args.sizes
            for size in sizes:
                w, h = (int(v) for v in size.split("x"))
                image = make_scene(1_000_025).image if family == "demo" else photo(h, w)
                gen, token = answer(session, family, image)
                regions = RegionSet.slic(image, n_segments=args.regions)
                r = per_image(session, gen, token, regions, args.masks, args.reference_masks)
                rows.append({"family": family, "size": size, **r})
                short = strategy_label(r["strategy"])
                line = (f"| {family} | {w}x{h} | {session.adapter.image_backend} | {short} | {r['setup_s']:.2f} | "
                        f"{r['extra_gib']:.2f} | {r['prep_ms']:.1f} | {r['processor_ms']:.1f} | "
                        f"{r['prep_ms'] / r['processor_ms']:.2f} | {r['forward_ms']:.1f} | {r['fast_ms']:.1f} | "
                        f"{r['ref_ms']:.1f} | {r['ref_ms'] / r['fast_ms']:.1f} | {r['step_ms']:.1f} | "
                        f"{r['step_ref_ms'] / r['step_ms']:.1f} | "
                        f"{'-' if r['reused'] != r['reused'] else format(r['reused'], '.0%')} | {r['max_dp']:.1e} |")
                if args.exact:
                    e = exact_runs(session, gen, token, RegionSet.slic(image, n_segments=args.exact + 1))
                    line += (f" {e['evaluations']} | {e['exact_ratio']:.1f} | "
                             f"{'same' if e['same_order'] else 'DIFF'} |")
                print(line, flush=True)
                if r["why"]:
                    print(f"<!-- {family} {size}: {r['why'][:300]} -->", flush=True)
    return rows


if __name__ == "__main__":
    main()
