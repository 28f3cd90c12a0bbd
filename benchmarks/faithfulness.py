"""EAGLE against the baselines on demo ground-truth scenes: faithfulness, localisation, correction, cost.

    python benchmarks/faithfulness.py [--captions 100] [--words 100] [--hallucinations 40] [--json out.json]

Three fixed, seeded sets of held-out scenes: whole captions (sentence level), single colour/shape words of
correctly captioned two-object scenes (word level, with the object's mask and box), and star-without-moon
scenes where the model falsely answers "yes" to "is there a moon ?" (the correct "no" is explained, then
each method's least supportive regions are removed until the answer flips). Every method is scored by the
same session in the pixel protocol (top i/64 pixels) and the region protocol (SLICO regions by mean map
value); EAGLE (exact greedy) on its own trajectory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from eagle_widgets.baselines import METHODS, compare_methods, correction_ratios, format_table, summarise
from eagle_widgets.core import RegionSet, correction_summary
from eagle_widgets.demo import (
    CAPTION_PROMPT,
    UNBIASED,
    bias_breaking_scene,
    load_demo_session,
    make_scene,
    presence_prompt,
)

HELD_OUT = 10 ** 6
CURVE_KEYS = [f"{p}_{m}" for p in ("pixel", "region") for m in ("insertion_auc", "deletion_auc", "highest_score")]
N_SEGMENTS = 26
BASELINE_PARAMS = {"llava_cam": {"noise_copies": 8}}


def caption_set(session, n):
    rows = []
    for i in range(n):
        scene = make_scene(HELD_OUT + 400_000 + i, bias=UNBIASED)
        gen = session.generate(scene.image, CAPTION_PROMPT, max_new_tokens=20)
        regions = RegionSet.slic(scene.image, n_segments=N_SEGMENTS)
        rows.append(compare_methods(session, gen, None, regions=regions, baseline_params=BASELINE_PARAMS))
    return rows


def word_set(session, n):
    rows, seed = [], HELD_OUT + 500_000
    while len(rows) < n:
        seed += 1
        scene = make_scene(seed, bias=UNBIASED, n_objects=2)
        gen = session.generate(scene.image, CAPTION_PROMPT, max_new_tokens=20)
        words = [t.strip() for t in gen.tokens]
        if words[:-1] != scene.caption.split():
            continue
        k = len(rows) % 4  # colour(obj1), shape(obj1), colour(obj2), shape(obj2)
        obj = scene.objects[k // 2]
        word = obj.colour if k % 2 == 0 else obj.shape
        position = [i for i, w in enumerate(words) if w == word][0 if k < 2 else -1]
        regions = RegionSet.slic(scene.image, n_segments=N_SEGMENTS)
        rows.append(compare_methods(session, gen, [position], regions=regions, mask=obj.mask, box=obj.box,
                                    baseline_params=BASELINE_PARAMS))
    return rows


def hallucination_set(session, n, scan=600):
    question = presence_prompt("moon")
    no = session.tokenizer.convert_tokens_to_ids("no")
    rows, corrections = [], {m: [] for m in METHODS}
    for i in range(scan):
        scene = bias_breaking_scene(HELD_OUT + 600_000 + i)
        gen = session.generate(scene.image, question, max_new_tokens=2)
        if gen.tokens[0] != "yes":
            continue
        regions = RegionSet.slic(scene.image, n_segments=N_SEGMENTS)
        row = compare_methods(session, gen, [0], regions=regions, target_ids=[no], baseline_params=BASELINE_PARAMS)
        for method, c in correction_ratios(session, gen, 0, no, {m: r["order"] for m, r in row.items()},
                                           regions).items():
            corrections[method].append(c)
        rows.append(row)
        if len(rows) >= n:
            break
    return rows, {m: correction_summary(c) for m, c in corrections.items() if c}, i + 1


def print_table(report) -> None:
    for name, table in report["sets"].items():
        print(f"\n{name} ({report['sizes'][name]} samples)")
        print(format_table(table))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captions", type=int, default=100)
    parser.add_argument("--words", type=int, default=100)
    parser.add_argument("--hallucinations", type=int, default=40)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_demo_session()
    t0 = time.perf_counter()
    sets, sizes = {}, {}
    caps = caption_set(session, args.captions)
    sets["captions (sentence level)"], sizes["captions (sentence level)"] = summarise(caps), len(caps)
    words = word_set(session, args.words)
    sets["object words (word level)"], sizes["object words (word level)"] = summarise(words), len(words)
    hall, corrections, scanned = hallucination_set(session, args.hallucinations)
    table = summarise(hall)
    for method, summary in corrections.items():
        table[method].update(amcr=summary["amcr"], csr=summary["csr"])
    name = f"hallucinations ('no' explained; {len(hall)} of {scanned} scenes)"
    sets[name], sizes[name] = table, len(hall)
    report = {"sets": sets, "sizes": sizes, "regions": N_SEGMENTS, "baseline_params": BASELINE_PARAMS,
              "threads": torch.get_num_threads(), "benchmark_s": time.perf_counter() - t0}
    print_table(report)
    print(f"\n{report['benchmark_s']:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
