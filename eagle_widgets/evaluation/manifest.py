"""The dataset manifest: one JSON object per line, one sample each (documented in docs/datasets.md)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.files import atomic_write, file_digest, regular_file
from ..core.images import load_image
from ..core.metrics import pixel_box

FIELDS = ("id", "image", "prompt", "tokens", "answer", "correct_answer", "mask", "box", "box_units")


@dataclass(frozen=True)
class Sample:
    """One line of a manifest. `tokens`: "all" (every non-special answer token: sentence level), a list of
    answer positions, or {"words": [...]} (word level). `answer`: a given answer (text or token ids),
    teacher-forced instead of generated. `correct_answer`: the correct single token (text or id) of a
    hallucinated answer: it is explained and the correction searched (hallucination protocol). `mask`
    (a file, relative to the manifest) and `box` ([x0, y0, x1, y1] in pixels, or in fractions of the image's
    size with `box_units` "fraction"): ground truth for the pointing game."""

    id: str
    image: str
    prompt: str
    tokens: object = "all"
    answer: object = None
    correct_answer: object = None
    mask: str | None = None
    box: tuple | None = None
    box_units: str | None = None  # "pixels" (the default) or "fraction" of the image's width and height
    root: str = field(default="", compare=False)  # the manifest's folder, for relative paths

    @property
    def protocol(self) -> str:
        if self.correct_answer is not None:
            return "hallucination"
        return "sentence" if self.tokens == "all" else "word"

    @cached_property
    def key(self) -> str:
        """Changes when anything that decides the result changes (the image file's bytes included); read once
        per sample and run."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        digest = hashlib.sha256(text.encode())
        for path, what in ((self.image_path, "image file"), (self.mask_path, "mask file")):
            if path is None:
                continue
            try:  # streamed, size-limited, regular files only; a file that cannot be read keys by its error
                file_digest(path, digest, what)
            except InputError as err:
                digest.update(f"unreadable: {err}".encode())
        return digest.hexdigest()[:24]

    @property
    def image_path(self) -> Path:
        return _resolve(self.root, self.image)

    @property
    def mask_path(self) -> Path | None:
        return None if self.mask is None else _resolve(self.root, self.mask)

    def load_image(self) -> np.ndarray:
        return load_image(self.image_path)

    def pixel_box(self, shape) -> tuple[int, int, int, int] | None:
        """The box in whole pixels of an image of `shape`, checked against it (None without a box)."""
        if self.box is None:
            return None
        box = self.box
        if self.box_units == "fraction":
            h, w = shape[:2]
            box = (box[0] * w, box[1] * h, box[2] * w, box[3] * h)
            return pixel_box([round(v) for v in box], shape)
        return pixel_box(box, shape)

    def load_mask(self, shape) -> np.ndarray | None:
        if self.mask is None:
            return None
        path = regular_file(self.mask_path, "mask file")
        if path.suffix == ".npy":
            try:
                mask = np.load(path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as err:
                raise InputError(f"cannot read the mask {path} ({err})") from None
            if mask.dtype.kind not in "biuf":
                raise InputError(f"the mask {path.name} holds {mask.dtype} values; expected numbers or booleans")
        else:
            mask = load_image(path)[..., 0]
        mask = np.asarray(mask) > 0
        if mask.shape != tuple(shape):
            raise InputError(f"the mask {path.name} is {mask.shape[1]}x{mask.shape[0]} but the image is "
                             f"{shape[1]}x{shape[0]}")
        if not mask.any():
            raise InputError(f"the mask {path.name} is empty")
        return mask

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("root")
        return {k: v for k, v in d.items() if v is not None}


def _resolve(root: str, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or not root else Path(root) / p


def sample_from_dict(d, root: str = "", where: str = "sample") -> Sample:
    """A checked Sample from one manifest object."""
    if not isinstance(d, dict):
        raise InputError(f"{where}: a manifest line must be a JSON object, got {type(d).__name__}")
    unknown = set(d) - set(FIELDS)
    if unknown:
        raise InputError(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (known: {', '.join(FIELDS)})")
    for name in ("id", "image", "prompt"):
        if not isinstance(d.get(name), str) or not d[name].strip():
            raise InputError(f"{where}: {name!r} must be a non-empty string")
    tokens = d.get("tokens", "all")
    if not (tokens == "all" or (isinstance(tokens, list) and tokens and all(
            isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in tokens))
            or (isinstance(tokens, dict) and set(tokens) == {"words"} and isinstance(tokens["words"], list)
                and tokens["words"] and all(isinstance(w, str) and w.strip() for w in tokens["words"]))):
        raise InputError(f"{where}: tokens must be \"all\", a list of answer positions or {{\"words\": [...]}}; "
                         f"got {tokens!r}")
    answer = d.get("answer")
    if answer is not None and not ((isinstance(answer, str) and answer.strip()) or (
            isinstance(answer, list) and answer and all(isinstance(t, int) and not isinstance(t, bool)
                                                        for t in answer))):
        raise InputError(f"{where}: answer must be text or a list of token ids")
    correct = d.get("correct_answer")
    if correct is not None:
        if not ((isinstance(correct, str) and correct.strip()) or (isinstance(correct, int)
                                                                   and not isinstance(correct, bool))):
            raise InputError(f"{where}: correct_answer must be one token (text or id)")
        if tokens == "all" or isinstance(tokens, dict) and len(tokens["words"]) != 1 or \
                isinstance(tokens, list) and len(tokens) != 1:
            raise InputError(f"{where}: a correct_answer needs exactly one explained token (its position)")
    box = d.get("box")
    if box is not None:
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float))
                                                                 and not isinstance(v, bool) for v in box)):
            raise InputError(f"{where}: box must be [x0, y0, x1, y1]")
        if not (box[0] < box[2] and box[1] < box[3]):
            raise InputError(f"{where}: box {box} is empty (x0 < x1 and y0 < y1 are needed)")
        box = tuple(box)
    units = d.get("box_units")
    if units is not None:
        if units not in ("pixels", "fraction"):
            raise InputError(f"{where}: box_units must be \"pixels\" or \"fraction\", got {units!r}")
        if box is None:
            raise InputError(f"{where}: box_units is given but there is no box")
        if units == "fraction" and not all(0 <= v <= 1 for v in box):
            raise InputError(f"{where}: a box in fractions needs values within [0, 1], got {list(box)}")
    mask = d.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask.strip()):
        raise InputError(f"{where}: mask must be a file path")
    return Sample(d["id"], d["image"], d["prompt"], tokens, answer, correct, mask, box, units, root)


@dataclass
class Manifest:
    """The samples of a manifest, and the lines that could not be read (each with its error)."""

    samples: list[Sample]
    broken: list[tuple[str, str]]  # (id or "line N", error)
    path: Path | None = None


def read_manifest(path) -> Manifest:
    """Read a JSONL manifest. A line that is not a valid sample is kept as broken (with its error) so that a
    run records it and goes on; duplicate ids are refused (results are filed by id)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no such manifest: {path}") from None
    except (IsADirectoryError, UnicodeDecodeError, OSError) as err:
        raise InputError(f"cannot read the manifest {path} ({err})") from None
    samples, broken, seen = [], [], set()
    root = str(path.resolve().parent)
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            d = json.loads(line)
        except json.JSONDecodeError as err:
            broken.append((where, f"{where}: not JSON ({err.msg})"))
            continue
        name = d.get("id") if isinstance(d, dict) and isinstance(d.get("id"), str) and d["id"] else where
        if name in seen:
            raise InputError(f"{path}: {where}: the id {name!r} appears twice; ids name the result files")
        seen.add(name)
        try:
            samples.append(sample_from_dict(d, root, where))
        except InputError as err:
            broken.append((name, str(err)))
    if not samples and not broken:
        raise InputError(f"the manifest {path} holds no samples")
    return Manifest(samples, broken, path)


def write_manifest(samples, path) -> Path:
    """Write samples (Sample or dicts) as JSONL, atomically."""
    lines = [json.dumps(s.to_dict() if isinstance(s, Sample) else s) for s in samples]
    return atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"))
