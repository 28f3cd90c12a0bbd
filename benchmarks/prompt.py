"""Does EAGLE rank first the prompt words that decide the answer? Demo scenes with two or three objects, asked
"what color is the <shape> ?" (the shape word decides which colour) and "is there a <shape> ?" for a shape that is
there and one that is not (the shape word decides yes/no). Word spans, the image fully visible, exact search;
EAGLE against random and occlusion orders of the same spans, scored with the same scorer.

    python benchmarks/prompt.py [--scenes 12]

Columns: insertion AUC (higher is better) and deletion AUC (lower is better) of the answer token's probability;
"top = shape": how often a method's first span is the shape word; "top flips": how often removing the method's
first span alone changes the model's answer.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from eagle_widgets.baselines.compare import compare_prompt_methods
from eagle_widgets.demo import SHAPES, UNBIASED, load_demo_session, make_scene

METHODS = ("eagle", "occlusion", "random")


def cases(n_scenes: int):
    """(scene, prompt, shape word) where the answer depends on the shape word."""
    out = []
    seed = 2_000_000
    while len(out) < 3 * n_scenes:
        scene = make_scene(seed, bias=UNBIASED, n_objects=2)
        seed += 1
        if len({o.colour for o in scene.objects}) < 2:
            continue  # the colour question must depend on the shape asked about
        present = scene.objects[0].shape
        absent = next(s for s in SHAPES if not scene.has(s))
        out += [(scene, f"what color is the {present} ?", present), (scene, f"is there a {present} ?", present),
                (scene, f"is there a {absent} ?", absent)]
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=12)
    args = parser.parse_args(argv)
    session = load_demo_session(cache=False)
    rows = {kind: {m: {"ins": [], "del": [], "top": [], "flip": []} for m in METHODS}
            for kind in ("colour", "present", "absent")}
    for scene, prompt, shape in cases(args.scenes):
        kind = "colour" if prompt.startswith("what") else ("present" if scene.has(shape) else "absent")
        gen = session.generate(scene.image, prompt, max_new_tokens=2)
        results = compare_prompt_methods(session, gen, [0], granularity="word")
        spans = results["eagle"].prompt_spans
        scorer = session.scorer(gen, [0], regions=None, prompt="word")
        for method, result in results.items():
            top = result.order[0]
            visible = torch.ones(1, spans.n, dtype=torch.bool)
            visible[0, top] = False
            answer = int(scorer.greedy(visible)[0, 0])
            r = rows[kind][method]
            r["ins"].append(result.insertion_auc)
            r["del"].append(result.deletion_auc)
            r["top"].append(spans.labels[top] == shape)
            r["flip"].append(answer != gen.token_ids[0])
    print(f"\n{args.scenes} demo scenes x 3 questions, word spans of the prompt, the answer's first token, exact\n")
    print("| question | method | insertion AUC ↑ | deletion AUC ↓ | top = shape word | top flips the answer |")
    print("|---|---|---:|---:|---:|---:|")
    for kind, methods in rows.items():
        for method, r in methods.items():
            print(f"| {kind} | {method} | {np.mean(r['ins']):.3f} | {np.mean(r['del']):.3f} | "
                  f"{np.mean(r['top']):.0%} | {np.mean(r['flip']):.0%} |")
    return rows


if __name__ == "__main__":
    main()
