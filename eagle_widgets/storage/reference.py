"""Import results written by the authors' EAGLE release (RuoyuChen10/EAGLE) into an `Attribution`.

Their explanation scripts write, per sample, `<dir>/json/<name>.json` and `<dir>/npy/<name>.npy`:
the JSON holds the greedy trajectory (`insertion_score`, `deletion_score` and their per-token
`insertion_word_score` / `deletion_word_score`, cumulative `region_area`, `org_score` = p(image),
`baseline_score` = p(black), and the words), the .npy the ordered region masks, one per step
(K x H x W, optionally with a trailing channel axis). Their curves start after the first region;
ours start at the empty set, which is their last deletion (black image) point.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..core.attribution import AnswerContext, Attribution
from ..core.errors import BundleError, EagleError, InputError
from ..core.files import regular_file
from ..core.images import as_rgb_uint8, load_image
from ..core.regions import RegionSet
from ..core.validation import MAX_IMAGE_PIXELS, MAX_REGIONS

_REQUIRED = ("region_area", "insertion_score", "deletion_score")


def reference_paths(folder, name: str) -> tuple[Path, Path]:
    """The JSON and .npy of sample `name` in one of their result folders."""
    folder = Path(folder)
    stem = Path(name).stem
    return folder / "json" / f"{stem}.json", folder / "npy" / f"{stem}.npy"


def import_reference_result(json_path, npy_path=None, image=None) -> Attribution:
    """An `Attribution` from one of their result pairs (`npy_path` defaults to the sibling npy folder).

    `image` (a path, PIL image or array) is attached for display; it must have the masks' size.
    Every problem raises `BundleError` naming the file and what is wrong.
    """
    json_path = Path(json_path)
    if npy_path is None:
        npy_path = json_path.parent.parent / "npy" / f"{json_path.stem}.npy"
    npy_path = Path(npy_path)
    try:
        return _import(json_path, npy_path, image)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as err:
        # Anything else a hand-edited or foreign file can hold: one error naming the file, never a traceback.
        raise BundleError(f"{json_path} is not a well-formed EAGLE result ({type(err).__name__}: {err})") from None


def _import(json_path: Path, npy_path: Path, image) -> Attribution:
    _regular(json_path, "result file")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"no such result file: {json_path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{json_path} is not valid JSON (truncated or corrupt: {err})") from None
    except OSError as err:
        raise BundleError(f"cannot read {json_path}: {err.strerror or err}") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{json_path} is not an EAGLE result: expected a JSON object")
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise BundleError(f"{json_path} is not an EAGLE result: it lacks {', '.join(missing)}")
    try:
        regular_file(npy_path, "region-mask file")
    except InputError as err:
        if "no such" in str(err):
            raise BundleError(f"the region masks of {json_path.name} are missing: no {npy_path}") from None
        raise BundleError(str(err)) from None
    _check_npy_header(npy_path)
    try:
        masks = np.load(npy_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise BundleError(f"{npy_path} is not a readable .npy of region masks ({err})") from None
    if masks.ndim == 4:
        masks = masks[..., 0]
    if masks.ndim != 3:
        raise BundleError(f"{npy_path} must hold K region masks (K x H x W), got shape {masks.shape}")
    masks = masks != 0
    k = masks.shape[0]
    try:
        areas = np.asarray(meta["region_area"], dtype=np.float64)
        ins_mean = np.asarray(meta["insertion_score"], dtype=np.float64)
        del_mean = np.asarray(meta["deletion_score"], dtype=np.float64)
        ins_tok = np.asarray(meta.get("insertion_word_score", ins_mean[:, None]), dtype=np.float64)
        del_tok = np.asarray(meta.get("deletion_word_score", del_mean[:, None]), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise BundleError(f"{json_path} holds non-numeric scores ({err})") from None
    if ins_tok.ndim == 1:
        ins_tok, del_tok = ins_tok[:, None], del_tok[:, None]
    for key, arr in (("region_area", areas), ("insertion_score", ins_mean), ("deletion_score", del_mean),
                     ("insertion_word_score", ins_tok), ("deletion_word_score", del_tok)):
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise BundleError(f"{json_path}: {key} holds values outside [0, 1] (or NaN/infinite); "
                              "they are probabilities and image fractions")
    for key, arr in (("region_area", areas), ("insertion_score", ins_mean), ("deletion_score", del_mean),
                     ("insertion_word_score", ins_tok), ("deletion_word_score", del_tok)):
        if len(arr) != k:
            raise BundleError(f"{json_path}: {key} has {len(arr)} steps but {npy_path.name} holds {k} masks")
    if ins_tok.shape != del_tok.shape:
        raise BundleError(f"{json_path}: insertion_word_score {ins_tok.shape} and deletion_word_score "
                          f"{del_tok.shape} disagree")
    if np.any(masks.sum(axis=0) > 1):
        raise BundleError(f"{npy_path}: the region masks overlap; expected one mask per region")
    labels = np.argmax(masks, axis=0).astype(np.int32)
    uncovered = ~masks.any(axis=0)
    if uncovered.any():
        labels[uncovered] = k  # pixels no mask covers form one last, unranked region
    p_full = np.asarray(meta.get("org_score", ins_tok[-1]), dtype=np.float64).reshape(-1)
    p_black = np.asarray(meta.get("baseline_score", del_tok[-1]), dtype=np.float64).reshape(-1)
    for key, arr in (("org_score", p_full), ("baseline_score", p_black)):
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise BundleError(f"{json_path}: {key} holds values outside [0, 1] (or NaN/infinite)")
    if p_full.shape != (ins_tok.shape[1],) or p_black.shape != (ins_tok.shape[1],):
        raise BundleError(f"{json_path}: org_score/baseline_score do not have one value per token "
                          f"({ins_tok.shape[1]})")
    words = meta.get("output_words") or meta.get("words")
    selected = meta.get("selected_interpretation_token_id")
    token_labels = None
    if isinstance(words, list) and isinstance(selected, list) and len(selected) == len(p_full):
        try:
            token_labels = [str(words[int(i)]) for i in selected]
        except (IndexError, TypeError, ValueError):
            token_labels = None
    info = {"imported_from": str(json_path), "source": "RuoyuChen10/EAGLE"}
    for key in ("location", "select_category", "question", "answer"):
        if key in meta:
            info[key] = meta[key]
    context = None
    if isinstance(words, list):
        context = AnswerContext(
            prompt=str(meta.get("question", "")), answer=str(meta.get("answer", "")),
            generated_tokens=tuple(str(w) for w in words),
            targets=tuple(int(i) for i in selected) if isinstance(selected, list) else ())
    rgb = None
    if image is not None:
        rgb = _load_image(image)
        if rgb.shape[:2] != masks.shape[1:]:
            raise BundleError(f"the image is {rgb.shape[1]}x{rgb.shape[0]} but the masks are "
                              f"{masks.shape[2]}x{masks.shape[1]}")
    try:
        return Attribution(
            regions=RegionSet(labels, method="imported (RuoyuChen10/EAGLE)"), order=list(range(k)),
            areas=np.concatenate([[0.0], areas]),
            insertion_tokens=np.vstack([del_tok[-1:], ins_tok]),  # nothing inserted = everything deleted
            deletion_tokens=np.vstack([ins_tok[-1:], del_tok]),
            p_full=p_full, p_black=p_black, mode="imported", complete=not uncovered.any(),
            token_labels=token_labels, info=info, image=rgb, context=context)
    except EagleError as err:
        raise BundleError(f"{json_path} holds inconsistent data: {err}") from None


def _regular(path: Path, what: str) -> None:
    try:
        regular_file(path, what)
    except InputError as err:
        raise BundleError(str(err).replace(f"no such {what}", "no such result file")) from None


def _check_npy_header(path: Path) -> None:
    """Refuse, from the header alone, a mask array beyond the limits or larger than its file (a few bytes can
    declare terabytes; numpy would allocate them before finding the data missing)."""
    try:
        with open(path, "rb") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(fh)
            offset = fh.tell()
    except (ValueError, OSError, EOFError) as err:
        raise BundleError(f"{path} is not a readable .npy of region masks ({err})") from None
    if dtype.hasobject or len(shape) not in (3, 4):
        raise BundleError(f"{path} must hold K region masks (K x H x W) of numbers, got {dtype} {shape}")
    k, h, w = shape[:3]
    if h * w > MAX_IMAGE_PIXELS or k > MAX_REGIONS + 1:
        raise BundleError(f"{path} declares {k} masks of {w}x{h} pixels, beyond the limits ({MAX_REGIONS} "
                          f"regions, {MAX_IMAGE_PIXELS:,} pixels)")
    declared = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if declared != path.stat().st_size - offset:
        raise BundleError(f"{path} declares {declared:,} bytes of masks but holds {path.stat().st_size - offset:,} "
                          "(truncated or corrupt)")


def _load_image(image) -> np.ndarray:
    try:
        return load_image(image) if isinstance(image, (str, Path)) else as_rgb_uint8(image)
    except InputError as err:
        raise BundleError(str(err)) from None
