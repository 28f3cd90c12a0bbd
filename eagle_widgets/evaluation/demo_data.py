"""Demo datasets from the embedded scenes, so that dataset runs work offline: captions (sentence level),
object words with their masks and boxes (word level, pointing game) and bias-breaking scenes the demo model
answers wrongly (hallucination protocol)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..core import validation
from ..demo import CAPTION_PROMPT, TRAINING_BIAS, UNBIASED, bias_breaking_scene, make_scene, presence_prompt
from .manifest import write_manifest

HELD_OUT = 2 * 10 ** 6  # seeds far from the training scenes


def _save(folder: Path, name: str, array: np.ndarray) -> str:
    path = folder / name
    Image.fromarray(array).save(path)
    return f"images/{name}" if folder.name == "images" else f"masks/{name}"


def make_demo_dataset(folder, *, captions: int = 4, words: int = 4, hallucinations: int = 2, seed: int = 0,
                      session=None) -> Path:
    """Write images, masks and `manifest.jsonl` into `folder`; returns the manifest's path.

    Hallucination samples are bias-breaking scenes (a star without its usual moon) where the demo model
    answers "yes" to "is there a moon ?"; finding them runs the model (`session`, or the demo model)."""
    captions = validation.integer(captions, "captions", minimum=0)
    words = validation.integer(words, "words", minimum=0)
    hallucinations = validation.integer(hallucinations, "hallucinations", minimum=0)
    seed = validation.integer(seed, "seed", minimum=0)
    folder = Path(folder)
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    base = HELD_OUT + 1000 * seed
    samples = []
    for i in range(captions):
        scene = make_scene(base + i, bias=UNBIASED)
        samples.append({"id": f"caption-{i:03d}", "image": _save(images, f"caption-{i:03d}.png", scene.image),
                        "prompt": CAPTION_PROMPT, "tokens": "all"})
    s = base + 100
    while sum(1 for x in samples if x["id"].startswith("word")) < words:
        s += 1
        scene = make_scene(s, bias=UNBIASED, n_objects=2)
        if len({o.shape for o in scene.objects}) < 2:
            continue  # the word must name one object
        k = sum(1 for x in samples if x["id"].startswith("word"))
        obj = scene.objects[k % 2]
        name = f"word-{k:03d}"
        samples.append({"id": name, "image": _save(images, f"{name}.png", scene.image), "prompt": CAPTION_PROMPT,
                        "answer": scene.caption, "tokens": {"words": [obj.shape]},
                        "mask": _save(masks, f"{name}.png", (obj.mask * 255).astype(np.uint8)),
                        "box": list(obj.box)})
    if hallucinations:
        if session is None:
            from ..demo import load_demo_session

            session = load_demo_session()
        question = presence_prompt(TRAINING_BIAS.partner)
        found, s = 0, base + 500
        while found < hallucinations:
            s += 1
            if s > base + 5000:
                break  # pragma: no cover - about one scene in eight fools the demo model
            scene = bias_breaking_scene(s)
            if session.generate(scene.image, question, max_new_tokens=2).tokens[0].strip() != "yes":
                continue
            name = f"hallucination-{found:03d}"
            samples.append({"id": name, "image": _save(images, f"{name}.png", scene.image), "prompt": question,
                            "tokens": [0], "correct_answer": "no"})
            found += 1
    return write_manifest(samples, folder / "manifest.jsonl")
