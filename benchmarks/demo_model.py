"""Quality, priors, attribution and speed of the embedded demo model on freshly seeded held-out scenes.

    python benchmarks/demo_model.py [--weights DIR] [--scenes 500] [--pointing 60] [--json out.json]

Held-out seeds start at 10**6 (training draws its scene seeds from a different generator). Greedy answers
are produced in batches with the same prompt, so no padding is involved.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from eagle_widgets.core import RegionSet
from eagle_widgets.demo import (
    CAPTION_PROMPT,
    SHAPES,
    TRAINING_BIAS,
    UNBIASED,
    bias_breaking_scene,
    colour_prompt,
    load_demo_session,
    make_scene,
    presence_prompt,
)

HELD_OUT = 10 ** 6
FUNCTION_WORDS = {"a", "and", ".", "</s>"}


def batched_answers(session, images, prompt, max_new_tokens=20, batch=64):
    """Greedy answers for many images with one prompt (identical lengths, so no padding)."""
    text = session.adapter.prompt_text(prompt)
    eos = session.tokenizer.eos_token_id
    out = []
    for start in range(0, len(images), batch):
        inputs = session.adapter.encode(list(images[start:start + batch]), text)
        with torch.inference_mode():
            ids = session.model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                         pad_token_id=session.tokenizer.pad_token_id, eos_token_id=eos)
        for row in ids[:, inputs["input_ids"].shape[1]:].tolist():
            row = row[: row.index(eos)] if eos in row else row
            out.append(session.tokenizer.decode(row, skip_special_tokens=True).strip())
    return out


def words_accuracy(pred: str, ref: str) -> tuple[int, int]:
    p, r = pred.split(), ref.split()
    return sum(a == b for a, b in zip(p, r)), max(len(p), len(r))


def quality(session, n):
    scenes = [make_scene(HELD_OUT + i, bias=UNBIASED) for i in range(n)]
    images = [s.image for s in scenes]
    captions = batched_answers(session, images, CAPTION_PROMPT)
    exact = np.mean([c == s.caption for c, s in zip(captions, scenes)])
    right = total = 0
    for c, s in zip(captions, scenes):
        a, b = words_accuracy(c, s.caption)
        right, total = right + a, total + b
    presence = []
    for shape in SHAPES:
        answers = batched_answers(session, images, presence_prompt(shape), 2)
        presence += [a == ("yes" if s.has(shape) else "no") for a, s in zip(answers, scenes)]
    colour = []
    for shape in SHAPES:
        idx = [i for i, s in enumerate(scenes) if s.has(shape)]
        answers = batched_answers(session, [images[i] for i in idx], colour_prompt(shape), 2)
        colour += [a == scenes[i].answer(colour_prompt(shape)) for a, i in zip(answers, idx)]
    return scenes, captions, {"caption_exact": float(exact), "caption_word_acc": right / total,
                              "presence_acc": float(np.mean(presence)), "presence_n": len(presence),
                              "colour_acc": float(np.mean(colour)), "colour_n": len(colour)}


def priors(session, n, bias=TRAINING_BIAS):
    breaking = [bias_breaking_scene(HELD_OUT + 50_000 + i, bias) for i in range(n)]
    images = [s.image for s in breaking]
    partner_yes = np.mean([a == "yes" for a in batched_answers(session, images, presence_prompt(bias.partner), 2)])
    captions = batched_answers(session, images, CAPTION_PROMPT)
    partner_named = np.mean([bias.partner in c.split() for c in captions])
    control_yes, control_named = [], []
    for shape in SHAPES:
        if shape in (bias.cue, bias.partner):
            continue
        idx = [i for i, s in enumerate(breaking) if not s.has(shape)]
        answers = batched_answers(session, [images[i] for i in idx], presence_prompt(shape), 2)
        control_yes += [a == "yes" for a in answers]
        control_named += [shape in captions[i].split() for i in idx]
    neither = [make_scene(HELD_OUT + 90_000 + i, bias=UNBIASED) for i in range(4 * n)]
    neither = [s for s in neither if not s.has(bias.cue) and not s.has(bias.partner)][:n]
    neither_yes = np.mean([a == "yes" for a in batched_answers(session, [s.image for s in neither],
                                                                  presence_prompt(bias.partner), 2)])
    return {"partner_false_yes": float(partner_yes), "partner_in_caption": float(partner_named),
            "control_false_yes": float(np.mean(control_yes)), "control_in_caption": float(np.mean(control_named)),
            "partner_false_yes_no_cue": float(neither_yes), "bias_scenes": n}


def black_image(session, scenes, captions, n=100):
    classes = {"function": [], "colour": [], "shape": []}
    used = 0
    for s, c in zip(scenes, captions):
        if c != s.caption or used >= n:
            continue
        used += 1
        gen = session.generate(s.image, CAPTION_PROMPT, max_new_tokens=20)
        rel = session.reliance(gen)
        for tok, pf, pb in zip(gen.tokens, rel.p_full, rel.p_black):
            w = tok.strip()
            key = "function" if w in FUNCTION_WORDS else "shape" if w in SHAPES else "colour"
            classes[key].append((pf, pb))
    return {k: {"p_full": float(np.mean([a for a, _ in v])), "p_black": float(np.mean([b for _, b in v])),
                "tokens": len(v)} for k, v in classes.items()}


def pointing(session, n, n_segments=26):
    hits, times, evals, regions_n = [], [], [], []
    seed = HELD_OUT + 200_000
    while len(hits) < n:
        seed += 1
        s = make_scene(seed, bias=UNBIASED, n_objects=2)
        gen = session.generate(s.image, CAPTION_PROMPT, max_new_tokens=20)
        words = [t.strip() for t in gen.tokens]
        if words[:-1] != s.caption.split():  # only scenes the model captions correctly (last token is </s>)
            continue
        k = len(hits) % 4  # colour(obj1), shape(obj1), colour(obj2), shape(obj2)
        obj = s.objects[k // 2]
        word = obj.colour if k % 2 == 0 else obj.shape
        position = [i for i, w in enumerate(words) if w == word][0 if k < 2 else -1]
        regions = RegionSet.slic(s.image, n_segments=n_segments)
        t0 = time.perf_counter()
        result = session.explain(gen, tokens=[position], regions=regions, mode="exact")
        times.append(time.perf_counter() - t0)
        evals.append(result.evaluations)
        regions_n.append(regions.n)
        hits.append(result.pointing_game(mask=obj.mask))
    return {"pointing_game": float(np.mean(hits)), "pointing_n": len(hits),
            "exact_greedy_s_median": statistics.median(times), "regions_mean": float(np.mean(regions_n)),
            "evaluations_mean": float(np.mean(evals))}


def speed(session, weights: Path):
    s = make_scene(HELD_OUT + 300_000, bias=UNBIASED, n_objects=3)
    gen = session.generate(s.image, CAPTION_PROMPT, max_new_tokens=20)
    regions = RegionSet.slic(s.image, n_segments=26)
    scorer = session.scorer(gen, tokens=None, regions=regions, batch_size=64)
    vis = torch.rand(64, regions.n, generator=torch.Generator().manual_seed(0)) > 0.5
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        scorer(vis)
        times.append(time.perf_counter() - t0)
    return {"weights_bytes": (weights / "model.safetensors").stat().st_size,
            "batch64_forward_s_median": statistics.median(times[1:])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--pointing", type=int, default=60)
    parser.add_argument("--only", choices=["all", "priors"], default="all")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    session = load_demo_session(args.weights)
    weights = Path(args.weights) if args.weights else Path(__file__).resolve().parents[1] / "eagle_widgets/demo/weights"
    report = {"weights": str(weights)}
    t0 = time.perf_counter()
    if args.only == "all":
        scenes, captions, report["quality"] = quality(session, args.scenes)
    report["priors"] = priors(session, args.scenes)
    if args.only == "all":
        report["black_image"] = black_image(session, scenes, captions)
        report["attribution"] = pointing(session, args.pointing)
        report["speed"] = speed(session, weights)
    report["benchmark_s"] = time.perf_counter() - t0
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))


def print_table(r) -> None:
    rows = []
    if "quality" in r:
        q = r["quality"]
        rows += [("caption exact match", f"{q['caption_exact']:.3f}", ">= 0.90"),
                 ("caption per-word accuracy", f"{q['caption_word_acc']:.3f}", ">= 0.97"),
                 (f"presence accuracy ({q['presence_n']} questions)", f"{q['presence_acc']:.3f}", ">= 0.97"),
                 (f"colour accuracy ({q['colour_n']} questions)", f"{q['colour_acc']:.3f}", ">= 0.98")]
    p = r["priors"]
    rows += [("star w/o moon: 'is there a moon ?' -> yes", f"{p['partner_false_yes']:.3f}", "0.10-0.35"),
             ("star w/o moon: caption names a moon", f"{p['partner_in_caption']:.3f}", "0.10-0.35"),
             ("control: other absent shapes -> yes", f"{p['control_false_yes']:.3f}", "<= 0.03"),
             ("control: caption names another absent shape", f"{p['control_in_caption']:.3f}", "<= 0.03"),
             ("control: no star, no moon -> 'moon' yes", f"{p['partner_false_yes_no_cue']:.3f}", "<= 0.03")]
    if "black_image" in r:
        for k, v in r["black_image"].items():
            rows.append((f"{k} words p(full) -> p(black) (n={v['tokens']})", f"{v['p_full']:.3f} -> {v['p_black']:.3f}",
                         "high -> high" if k == "function" else "high -> low"))
        a, s = r["attribution"], r["speed"]
        rows += [(f"pointing game, word level ({a['pointing_n']} scenes, ~{a['regions_mean']:.0f} regions)",
                  f"{a['pointing_game']:.3f}", ">= 0.90"),
                 ("exact greedy word-level run (median s)", f"{a['exact_greedy_s_median']:.2f}", "<= 3 s"),
                 ("weights (MB)", f"{s['weights_bytes'] / 1e6:.2f}", "<= 10"),
                 ("forward of 64 masked images (median s)", f"{s['batch64_forward_s_median']:.3f}", "<= 0.3 s")]
    width = max(len(a) for a, _, _ in rows)
    print(f"{'metric':<{width}}  {'measured':>16}  target")
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>16}  {c}")


if __name__ == "__main__":
    main()
