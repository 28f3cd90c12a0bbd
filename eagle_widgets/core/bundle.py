"""Saving and loading an Attribution as one small versioned file (a zip of JSON + npz; no pickle)."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .attribution import Attribution
from .errors import BundleError, EagleError, NewerBundleError
from .regions import RegionSet

SCHEMA = "eagle-widgets/attribution"
VERSION = 1
_ARRAYS = ("labels", "areas", "insertion_tokens", "deletion_tokens", "p_full", "p_black")


def save_attribution(result: Attribution, path) -> Path:
    """Write `result` to `path` atomically: a crash or a full disk never leaves a half-written file."""
    path = Path(path)
    meta = {
        "schema": SCHEMA,
        "version": VERSION,
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
        "region_method": result.regions.method,
    }
    labels = result.regions.labels
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
        raise BundleError(f"cannot save {path}: info or params hold a value JSON cannot store ({err})") from None
    npz = io.BytesIO()
    np.savez_compressed(npz, **arrays)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise BundleError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as zf:
                zf.writestr("attribution.json", meta_bytes)
                zf.writestr("arrays.npz", npz.getvalue())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BundleError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:  # numpy raises several types on corrupt data
        raise BundleError(f"{path} has corrupt array data ({type(err).__name__}: {err})") from None
    missing = [k for k in _ARRAYS if k not in arrays]
    if missing:
        raise BundleError(f"{path} lacks the arrays {', '.join(missing)}")
    try:
        regions = RegionSet(arrays["labels"].astype(np.int32), method=meta.get("region_method", "labels"))
        return Attribution(
            regions=regions, order=meta["order"], areas=arrays["areas"],
            insertion_tokens=arrays["insertion_tokens"], deletion_tokens=arrays["deletion_tokens"],
            p_full=arrays["p_full"], p_black=arrays["p_black"], lambda1=meta["lambda1"], lambda2=meta["lambda2"],
            mode=meta["mode"], params=meta.get("params", {}), evaluations=meta.get("evaluations", 0),
            timings=meta.get("timings", {}), complete=meta.get("complete", True),
            token_labels=meta.get("token_labels"), info=meta.get("info", {}), image=arrays.get("image"),
        )
    except KeyError as err:
        raise BundleError(f"{path} lacks the field {err} in attribution.json") from None
    except (EagleError, TypeError, ValueError) as err:
        raise BundleError(f"{path} holds inconsistent data: {err}") from None
