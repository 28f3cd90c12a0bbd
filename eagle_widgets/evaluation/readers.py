"""Manifests from the formats users have: COCO caption and instance annotations, and the authors' dataset
JSON files (RuoyuChen10/EAGLE: `target_generated_index`, `generated_ids`, `counter_word_id`, ...).

Each reader writes `manifest.jsonl` (and the ground-truth masks it rasterises) into a folder and returns
(manifest path, skipped entries with the reason)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..core.errors import InputError
from .manifest import write_manifest

COCO_CAPTION_PROMPT = "Describe the image in one factual English sentence."
AUTHORS_COCO_PROMPT = ("Describe the image in one factual English sentence of no more than 20 words. Do not include "
                       "information that is not clearly visible.")


def _read_json(path) -> object:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"no such annotation file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{path} is not JSON ({err})") from None


def _polygons_mask(segmentation, height: int, width: int) -> np.ndarray | None:
    """A COCO polygon segmentation ([[x0, y0, x1, y1, ...], ...]) as a bool mask; None for RLE or nothing."""
    if not isinstance(segmentation, list) or not segmentation:
        return None
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in segmentation:
        if isinstance(poly, list) and len(poly) >= 6:
            draw.polygon([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)], fill=255)
    mask = np.asarray(canvas) > 0
    return mask if mask.any() else None


def _add_mask(sample: dict, folder: Path, mask: np.ndarray | None) -> None:
    """Save a rasterised ground-truth mask beside the manifest and name it in the sample."""
    if mask is not None:
        name = f"masks/{sample['id']}.png"
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / name)
        sample["mask"] = name


def _manifest(samples: list[dict], folder: Path, source) -> Path:
    if not samples:
        raise InputError(f"{source} gave no sample")
    return write_manifest(samples, folder / "manifest.jsonl")


def _image_path(images, name: str, folder: Path) -> str:
    path = Path(images) / name
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path.resolve())


def from_coco(annotations, images, folder, *, prompt: str = COCO_CAPTION_PROMPT, limit: int | None = None):
    """COCO captions (each image's first caption, teacher-forced, sentence level) or instances (each
    image's largest object: its category word in the model's own answer, with its mask and box)."""
    data = _read_json(annotations)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise InputError(f"{annotations} is not a COCO annotation file (no 'images' and 'annotations' lists)")
    folder = Path(folder)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    images_by_id = {im["id"]: im for im in data["images"] if isinstance(im, dict) and "id" in im}
    captions = any("caption" in a for a in data["annotations"][:10])
    categories = {c["id"]: c["name"] for c in data.get("categories", []) if isinstance(c, dict)}
    chosen: dict = {}
    skipped = []
    for a in data["annotations"]:
        if not isinstance(a, dict):
            skipped.append(("annotation", f"not an object: {str(a)[:60]}"))
            continue
        im = images_by_id.get(a.get("image_id"))
        if im is None:
            skipped.append((str(a.get("id")), "its image_id is not among the images"))
            continue
        if captions:
            chosen.setdefault(im["id"], a)
        elif a.get("iscrowd", 0) == 0 and _number(a.get("area")) > _number(chosen.get(im["id"], {}).get("area")):
            chosen[im["id"]] = a
    samples = []
    for image_id, a in chosen.items():
        try:
            sample = _coco_sample(image_id, a, images_by_id[image_id], images, folder, prompt, captions, categories)
        except (KeyError, TypeError, ValueError, AttributeError, InputError) as err:
            skipped.append((f"coco-{image_id}", f"malformed entry ({type(err).__name__}: {err})"))
            continue
        if isinstance(sample, str):
            skipped.append((f"coco-{image_id}", sample))
            continue
        samples.append(sample)
        if limit is not None and len(samples) >= limit:
            break
    return _manifest(samples, folder, annotations), skipped


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else -1.0


def _coco_sample(image_id, a, im, images, folder, prompt, captions, categories):
    """One COCO image's sample, or why it is skipped (a string)."""
    sample = {"id": f"coco-{image_id}", "image": _image_path(images, im["file_name"], folder), "prompt": prompt}
    if captions:
        sample.update(answer=a["caption"].strip(), tokens="all")
    else:
        name = categories.get(a.get("category_id"))
        if name is None:
            return f"unknown category {a.get('category_id')}"
        x, y, w, h = (float(v) for v in a["bbox"])
        sample.update(tokens={"words": [name.split()[-1]]}, box=[x, y, x + w, y + h])
        _add_mask(sample, folder, _polygons_mask(a.get("segmentation"), int(im["height"]), int(im["width"])))
    return sample


def _flat_ids(value) -> list[int] | None:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
        value = value[0]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    return None


def from_authors(path, images, folder, *, prompt: str = AUTHORS_COCO_PROMPT, question_template: str = "{}",
                 limit: int | None = None):
    """The authors' dataset lists: each entry's image (`image_path`, `image_name` or `image_filename`), its
    question (`question`, put into `question_template`; else `prompt`), the given answer (`generated_ids` or
    `output_word_id`), the explained positions (`target_generated_index`, checked against
    `target_generated_id`, or `selected_interpretation_token_id`), the correct answer of a hallucination
    (`counter_word_id`) and the object's `location` ([x, y, w, h], COCO style) and polygon `segmentation`."""
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise InputError(f"{path} is not one of the authors' dataset lists (a JSON list of entries)")
    folder = Path(folder)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    samples, skipped, seen = [], [], set()
    for n, e in enumerate(entries):
        if not isinstance(e, dict):
            skipped.append((f"entry {n}", "not an object"))
            continue
        try:
            sample = _authors_sample(n, e, images, folder, prompt, question_template, seen)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, InputError) as err:
            skipped.append((f"entry {n}", f"malformed entry ({type(err).__name__}: {err})"))
            continue
        if isinstance(sample, tuple):
            skipped.append(sample)
            continue
        samples.append(sample)
        if limit is not None and len(samples) >= limit:
            break
    return _manifest(samples, folder, path), skipped


def _authors_sample(n, e, images, folder, prompt, question_template, seen):
    """One entry's sample, or (its name, why it is skipped)."""
    name = e.get("image_path") or e.get("image_name") or e.get("image_filename")
    if not isinstance(name, str):
        return f"entry {n}", "no image_path, image_name or image_filename"
    stem = Path(name).stem
    sid = f"{stem}-{e['id']}" if "id" in e else stem
    if sid in seen:
        sid = f"{sid}-{n}"
    seen.add(sid)
    answer = _flat_ids(e.get("generated_ids")) or _flat_ids(e.get("output_word_id"))
    if "target_generated_index" in e:
        tokens = [int(e["target_generated_index"])]
        if answer is None or not 0 <= tokens[0] < len(answer):
            return sid, f"target index {tokens[0]} is outside the given answer"
        if "target_generated_id" in e and answer[tokens[0]] != int(e["target_generated_id"]):
            return sid, "target_generated_id does not match the answer at target_generated_index"
    elif isinstance(e.get("selected_interpretation_token_id"), list) and e["selected_interpretation_token_id"]:
        tokens = [int(t) for t in e["selected_interpretation_token_id"]]
    else:
        tokens = "all"
    question = e.get("question")
    sample = {"id": sid, "image": _image_path(images, Path(name).name, folder),
              "prompt": question_template.format(question) if isinstance(question, str) else prompt,
              "tokens": tokens}
    if answer is not None:
        sample["answer"] = answer
    if "counter_word_id" in e:
        sample["correct_answer"] = int(e["counter_word_id"])
        sample["tokens"] = tokens[:1] if isinstance(tokens, list) else [0]
    if isinstance(e.get("location"), list) and len(e["location"]) == 4:
        x, y, w, h = (float(v) for v in e["location"])
        sample["box"] = [x, y, x + w, y + h]
    if e.get("segmentation") is not None:
        try:
            with Image.open(Path(images) / Path(name).name) as im:
                width, height = im.size
        except OSError:
            width = height = None
        _add_mask(sample, folder, None if width is None else _polygons_mask(e["segmentation"], height, width))
    return sample
