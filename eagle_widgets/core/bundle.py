"""Saving and loading an Attribution as one small versioned file (a zip of JSON + npz; no pickle)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from .attribution import AnswerContext, Attribution, MethodMap
from .errors import BundleError, EagleError, NewerBundleError
from .files import atomic_write
from .regions import RegionSet
from .spans import JointSet, PromptSpans
from .validation import MAX_IMAGE_PIXELS
from .video import FrameRegions

SCHEMA = "eagle-widgets/attribution"
VERSION = 3  # 3: prompt spans (prompt and joint results; image results are still written as 2)
# 2: a typed answer context and the cache key; version 1 kept them in `info` (still read)
_ARRAYS = ("labels", "areas", "insertion_tokens", "deletion_tokens", "p_full", "p_black")


def bundle_bytes(result: Attribution) -> bytes:
    """`result` as the bytes of a bundle file (what `save_attribution` writes; also for downloads, and for
    workers that send results back)."""
    spans = result.prompt_spans
    meta = {
        "schema": SCHEMA,
        "version": VERSION if spans is not None else 2,  # image results stay readable by older versions
        "order": result.order,
        "lambda1": result.lambda1,
        "lambda2": result.lambda2,
        "mode": result.mode,
        "params": result.params,
        "evaluations": result.evaluations,
        "timings": result.timings,
        "complete": result.complete,
        "token_labels": result.token_labels,
        "info": result.info,
        "context": result.context.to_dict() if result.context is not None else None,
        "cache_key": result.cache_key,
        "region_method": result.regions.method,
        "method_map": result.method_map.to_dict() if result.method_map is not None else None,
        "prompt_spans": spans.to_dict() if spans is not None else None,
    }
    image_regions = result.image_regions
    if isinstance(image_regions, FrameRegions):  # a video's filmstrip; older readers see the filmstrip image
        meta["frames"] = image_regions.frames
    labels = image_regions.labels if image_regions is not None else np.zeros((0, 0), dtype=np.int32)
    arrays = {
        "labels": labels.astype(np.uint16 if result.num_regions < 65536 else np.int32),
        "areas": result.areas,
        "insertion_tokens": result.insertion_tokens,
        "deletion_tokens": result.deletion_tokens,
        "p_full": result.p_full,
        "p_black": result.p_black,
    }
    if result.image is not None:
        arrays["image"] = np.asarray(result.image, dtype=np.uint8)
    try:
        meta_bytes = json.dumps(meta, indent=1, allow_nan=True).encode()
    except TypeError as err:
        raise BundleError(f"cannot save the result: info or params hold a value JSON cannot store ({err})") from None
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("attribution.json", meta_bytes)
        zf.writestr("arrays.npz", npz.getvalue())
    return data.getvalue()


def save_attribution(result: Attribution, path) -> Path:
    """Write `result` to `path` atomically: a crash or a full disk never leaves a half-written file."""
    path = Path(path)
    data = bundle_bytes(result)
    try:
        return atomic_write(path, data)
    except OSError as err:
        raise BundleError(f"cannot write {path}: {err.strerror or err}") from None


def load_attribution(path) -> Attribution:
    """Read a bundle written by `save_attribution`; any problem raises BundleError naming it."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"no such result file: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "attribution.json" not in names or "arrays.npz" not in names:
                raise BundleError(f"{path} is a zip file but not an eagle-widgets result (no attribution.json)")
            meta = json.loads(zf.read("attribution.json"))
            npz_bytes = zf.read("arrays.npz")
    except BundleError:
        raise
    except (zipfile.BadZipFile, EOFError) as err:
        raise BundleError(f"{path} is not a readable eagle-widgets result (truncated or not a bundle: {err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{path} has a corrupt attribution.json ({err})") from None
    except (OSError, zipfile.LargeZipFile) as err:
        raise BundleError(f"cannot read {path}: {err}") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise BundleError(f"{path} is not an eagle-widgets attribution (schema {meta.get('schema')!r}"
                          if isinstance(meta, dict) else f"{path} has a malformed attribution.json")
    version = meta.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise NewerBundleError(f"{path} was written by a newer eagle-widgets (bundle version {version}, "
                          f"this one reads up to {VERSION}); upgrade eagle-widgets to open it")
    try:
        for name, shape in _array_shapes(npz_bytes).items():  # before decompressing anything large
            if int(np.prod(shape, dtype=np.float64)) > MAX_IMAGE_PIXELS * 3:
                raise BundleError(f"{path} holds a {'x'.join(map(str, shape))} array {name!r}, more than the limit "
                                  f"of {MAX_IMAGE_PIXELS:,} pixels (EAGLE_WIDGETS_MAX_IMAGE_PIXELS)")
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except BundleError:
        raise
    except Exception as err:  # numpy raises several types on corrupt data
        raise BundleError(f"{path} has corrupt array data ({type(err).__name__}: {err})") from None
    missing = [k for k in _ARRAYS if k not in arrays]
    if missing:
        raise BundleError(f"{path} lacks the arrays {', '.join(missing)}")
    _check_values(path, meta, arrays)
    info = meta.get("info") or {}
    if not isinstance(info, dict):
        raise BundleError(f"{path}: 'info' must be an object, got {type(info).__name__}")
    try:
        regions = _ground_set(meta, arrays)
        return Attribution(
            regions=regions, order=meta["order"], areas=arrays["areas"],
            insertion_tokens=arrays["insertion_tokens"], deletion_tokens=arrays["deletion_tokens"],
            p_full=arrays["p_full"], p_black=arrays["p_black"], lambda1=meta["lambda1"], lambda2=meta["lambda2"],
            mode=meta["mode"], params=meta.get("params", {}), evaluations=meta.get("evaluations", 0),
            timings=meta.get("timings", {}), complete=meta.get("complete", True),
            token_labels=meta.get("token_labels"), info=info, image=arrays.get("image"),
            context=_context(meta, version, info), cache_key=meta.get("cache_key") or info.get("cache_key"),
            method_map=MethodMap.from_dict(meta["method_map"]) if meta.get("method_map") is not None else None,
        )
    except KeyError as err:
        raise BundleError(f"{path} lacks the field {err} in attribution.json") from None
    except (EagleError, TypeError, ValueError) as err:
        raise BundleError(f"{path} holds inconsistent data: {err}") from None


def _ground_set(meta: dict, arrays: dict):
    """Image regions (the label map), prompt spans, or both (version 3)."""
    raw = meta.get("prompt_spans")
    if raw is None:
        labels, method = arrays["labels"].astype(np.int32), meta.get("region_method", "labels")
        if meta.get("frames") is not None:
            return FrameRegions(labels, int(meta["frames"]), method=method)
        return RegionSet(labels, method=method)
    if not isinstance(raw, dict):
        raise BundleError(f"'prompt_spans' must be an object, got {type(raw).__name__}")
    prompt = PromptSpans.from_dict(raw)
    if arrays["labels"].size == 0:
        return prompt
    region_method = str(meta.get("region_method", "")).split(": ", 1)[-1].split(" regions + ")[0] or "labels"
    return JointSet(RegionSet(arrays["labels"].astype(np.int32), method=region_method), prompt)


def _context(meta: dict, version: int, info: dict) -> AnswerContext | None:
    """Version 2 stores the answer context; version 1 kept its fields in `info`."""
    raw = meta.get("context") if version >= 2 else (info if {"targets", "generated_tokens"} & set(info) else None)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BundleError(f"'context' must be an object, got {type(raw).__name__}")
    return AnswerContext.from_dict(raw)


def _array_shapes(npz_bytes: bytes) -> dict[str, tuple]:
    """The shape of each array in an .npz, read from the headers only."""
    shapes = {}
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as zf:
        for name in zf.namelist():
            with zf.open(name) as fh:
                major, _ = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                shape, _, _ = read(fh)
            shapes[name.removesuffix(".npy")] = tuple(shape)
    return shapes


def _check_values(path: Path, meta: dict, arrays: dict) -> None:
    """What a bundle claims must be what a result can be: a bool for complete, probabilities in [0, 1], an
    image of the label map's size."""
    if not isinstance(meta.get("complete", True), bool):
        raise BundleError(f"{path}: 'complete' must be true or false, got {meta.get('complete')!r}")
    order = meta.get("order")
    for name in ("insertion_tokens", "deletion_tokens", "p_full", "p_black"):
        a = np.asarray(arrays[name], dtype=np.float64)
        if np.isnan(a).any() and order:
            raise BundleError(f"{path}: {name} holds NaN although regions were ranked")
        finite = a[~np.isnan(a)]
        if finite.size and (not np.isfinite(finite).all() or finite.min() < 0 or finite.max() > 1):
            raise BundleError(f"{path}: {name} holds values outside [0, 1]; they are probabilities")
    image = arrays.get("image")
    if image is not None and arrays["labels"].size:  # a prompt attribution has an image but no label map
        labels = arrays["labels"]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != labels.shape:
            raise BundleError(f"{path}: the image ({image.dtype} {image.shape}) does not match the label map "
                              f"({labels.shape[1]}x{labels.shape[0]}); expected HxWx3 uint8")
