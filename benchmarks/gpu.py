"""EAGLE at real model sizes on a GPU: seconds per explanation, batch, memory, overhead, published-style ratio.

    python benchmarks/gpu.py                 # on a CUDA machine: real architectures, random bf16 weights
    python benchmarks/gpu.py --small         # anywhere: tiny weights at the same processor settings (a test)

Each model is built from its architecture's config (LLaVA-1.5-7B, Qwen2.5-VL-3B and -7B, InternVL3.5-4B) with
random weights, no download, with the real processor settings (tests/tiny_models.py, real=True). On a 448x448
photo (Qwen and InternVL) or 336-px LLaVA input, for word level (one token) and sentence level (every answer
token), exact and efficient over N SLICO regions: seconds per explanation, model calls, masked images per
second, the chosen batch size, peak GPU memory, the overhead of everything that is not a forward over the bare
batched forwards, the preparation strategy the scorer chose and its cost per image, and the authors'-style
pipeline (one processor call and one forward per masked image) timed on a few masked images and scaled to the
same number of calls.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from eagle_widgets import load_session  # noqa: E402
from eagle_widgets.core import RegionSet, attribute  # noqa: E402

from sessions import strategy_label  # noqa: E402
from tiny_models import photo, tiny_model_dir  # noqa: E402

# The real architectures' sizes (from their published configs); everything else comes from the tiny builder.
QWEN25_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                     fullatt_block_indexes=[7, 15, 23, 31])
QWEN25_ROPE = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
ARCHITECTURES = {
    "llava-1.5-7b": ("llava", {"text": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                            num_attention_heads=32, num_key_value_heads=32, vocab_size=32064),
                               "vision": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                              num_attention_heads=16)}),
    "qwen2.5-vl-3b": ("qwen2_5_vl", {"text": dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                                                  num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                                                  tie_word_embeddings=True, rope_parameters=QWEN25_ROPE),
                                     "vision": dict(QWEN25_VISION, out_hidden_size=2048)}),
    "qwen2.5-vl-7b": ("qwen2_5_vl", {"text": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                                                  num_attention_heads=28, num_key_value_heads=4, vocab_size=152064,
                                                  rope_parameters=QWEN25_ROPE),
                                     "vision": dict(QWEN25_VISION, out_hidden_size=3584)}),
    "internvl3.5-4b": ("internvl", {"text": dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
                                                 num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                                                 vocab_size=151936, tie_word_embeddings=False),
                                    "vision": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                                   num_attention_heads=16)}),
}


def real_model(name: str, root: str, device: str):
    """The real architecture `name` with random bf16 weights on `device` ("meta": shapes only), and its processor."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    family, sizes = ARCHITECTURES[name]
    folder = tiny_model_dir(family, root, real=True)
    config = AutoConfig.from_pretrained(folder)
    for part in ("text_config", "vision_config"):
        sub = getattr(config, part)
        # Rebuilt, not patched: head_dim and layer_types are derived from the sizes when a config is made.
        values = {k: v for k, v in sub.to_dict().items() if k not in ("head_dim", "layer_types")}
        setattr(config, part, type(sub)(**{**values, **sizes[part.split("_")[0]]}))
    config.tie_word_embeddings = sizes["text"].get("tie_word_embeddings", False)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    return model.eval(), AutoProcessor.from_pretrained(folder)


def build(name: str, root: str, small: bool, device: str):
    """A session on `name`: tiny weights (--small) or the real architecture with random bf16 weights."""
    if small:
        return load_session(str(tiny_model_dir(ARCHITECTURES[name][0], root, real=True)), device=device, cache=False)
    return load_session(real_model(name, root, device), cache=False)


def explain_once(session, gen, tokens, regions, mode: str) -> dict:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    scorer = session.scorer(gen, tokens=tokens, regions=regions)
    setup = time.perf_counter() - t0
    scorer.forward_s = 0.0
    result = attribute(scorer, regions, mode=mode, batch_size=scorer.batch_size)
    wall = time.perf_counter() - t0
    desc = scorer.describe()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return {"wall_s": wall, "setup_s": setup, "evaluations": result.evaluations, "batch": scorer.batch_size,
            "forward_s": scorer.forward_s, "peak_gib": peak, "strategy": desc["composition"],
            "prep_ms": 1000 * getattr(scorer, "compose_s", 0.0) / max(1, result.evaluations)}


def published_per_image(session, gen, tokens, regions, masks: int) -> float:
    """Seconds per masked image of the authors' pipeline: processor and forward, one image per call."""
    scorer = session.scorer(gen, tokens=tokens, regions=regions, path="reference")
    probe = torch.rand(masks, regions.n, generator=torch.Generator().manual_seed(0)) > 0.5
    scorer(probe[:1])  # warm-up
    t0 = time.perf_counter()
    scorer(probe)
    return (time.perf_counter() - t0) / masks


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="tiny weights at the real processor settings (CPU)")
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--regions", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["exact", "efficient"])
    parser.add_argument("--levels", nargs="+", default=["word", "sentence"])
    parser.add_argument("--published-masks", type=int, default=8)
    parser.add_argument("--size", default="448x448", help="photo WxH")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    image = photo(h, w)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"device {name}, torch {torch.__version__}, {'tiny weights' if args.small else 'random bf16 weights'}")
    print("| model | level | mode | N | calls | s/explanation | masked img/s | batch | peak GiB | overhead "
          "| strategy | prep ms/img | published s (scaled) | published/fast |")
    print("|---" * 14 + "|")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for model_name in args.models:
            session = build(model_name, root, args.small, args.device)
            gen = session.generate(image, "Describe the image in one sentence.", max_new_tokens=12)
            regions = RegionSet.slic(image, n_segments=args.regions + 1)
            for level in args.levels:
                tokens = [min(1, len(gen) - 1)] if level == "word" else None
                per_image = published_per_image(session, gen, tokens, regions, args.published_masks)
                for mode in args.modes:
                    r = explain_once(session, gen, tokens, regions, mode)
                    published = per_image * r["evaluations"]
                    overhead = (r["wall_s"] - r["forward_s"]) / max(r["forward_s"], 1e-9)
                    strategy = strategy_label(r["strategy"])
                    row = {"model": model_name, "level": level, "mode": mode, "regions": regions.n, **r,
                           "published_s": published, "overhead": overhead, "strategy": strategy}
                    rows.append(row)
                    print(f"| {model_name} | {level} | {mode} | {regions.n} | {r['evaluations']} | {r['wall_s']:.2f} | "
                          f"{r['evaluations'] / r['wall_s']:.1f} | {r['batch']} | {r['peak_gib']:.1f} | "
                          f"{overhead:.0%} | {strategy} | {r['prep_ms']:.2f} | {published:.1f} | "
                          f"{published / r['wall_s']:.1f} |", flush=True)
            del session
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    main()
