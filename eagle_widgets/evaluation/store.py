"""The results folder of a dataset run: one record (and bundle) per sample, written atomically, the results
table and the summary in the paper's layout.

    DIR/run.json              the options (a resumed run must use the same)
    DIR/bundles/<id>.eagle    the explanation of each finished sample
    DIR/records/<id>.json     its metrics, written last: a sample is done when its record is there
    DIR/results.csv           one row per sample (pandas.read_csv reads it as it is)
    DIR/summary.json, .md     the means per protocol, laid out as the paper's tables
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import socket
from pathlib import Path

import numpy as np

from ..core import load_attribution
from ..core.errors import EagleError, InputError
from ..core.files import atomic_write
from .protocol import EvaluationOptions

COLUMNS = ("id", "protocol", "status", "error", "answer", "explained", "n_tokens", "n_regions", "insertion_auc",
           "deletion_auc", "highest_score", "image_dependence", "pointing_box", "pointing_mask", "hallucinated",
           "mcr", "corrected", "evaluations", "seconds", "attempts", "worker")
CSR_THRESHOLD = 0.1


SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}")


def file_name(sample_id: str) -> str:
    """The file name (without suffix) a sample is filed under: the id itself where it is a short, plain name;
    else its plain characters, '~' and a hash of the whole id. '~' never occurs in a plain name, so two ids
    never share a file (`dup/`, `dup\\` and `dup_` get three)."""
    if SAFE_NAME.fullmatch(sample_id):
        return sample_id
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:40].lstrip(".")
    return f"{plain or 'id'}~{hashlib.sha256(sample_id.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


class ResultsFolder:
    """A run's folder. Writing needs `options` and holds the folder's lock (`lock()`), so two runs never
    write one folder at once; reading (the browser, `read_results`) needs neither."""

    def __init__(self, path, options: EvaluationOptions | None = None):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"{self.path} is a file; give a folder for the results")
        run = self.path / "run.json"
        self._lock = None
        if options is None:  # reading finished results
            if not run.exists():
                raise InputError(f"{self.path} holds no dataset run (no run.json)")
            self.options = EvaluationOptions.from_dict(self._stored_options(run))
            return
        self.options = options
        if run.exists():
            stored = self._stored_options(run)
            if stored != options.to_dict():
                changed = ", ".join(f"{k} {stored.get(k)!r} -> {v!r}" for k, v in options.to_dict().items()
                                    if stored.get(k) != v)
                raise InputError(f"{self.path} holds a run with other options ({changed}); resume with the same "
                                 "options or write to another folder")

    @staticmethod
    def _stored_options(run: Path) -> dict:
        try:
            options = json.loads(run.read_text(encoding="utf-8"))["options"]
            if not isinstance(options, dict):
                raise TypeError
            return options
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
            raise InputError(f"{run} is corrupt (not the options of a run); remove it to start the run "
                             "afresh in this folder") from None

    def lock(self) -> ResultsFolder:
        """Take the folder for this run: a second run on it refuses at once, naming the first. Then write the
        options and remove the temporary files of runs that were killed (no other run can be writing)."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise InputError(f"another run is writing to {self.path} ({holder}); wait for it to finish or write to "
                             "another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        self._lock = handle
        run = self.path / "run.json"
        if not run.exists():
            atomic_write(run, json.dumps({"options": self.options.to_dict()}, indent=1).encode())
        for sub in ("records", "bundles"):  # atomic_write's temporary files, left by a killed run
            for stale in (self.path / sub).glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        return self

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def record_path(self, sample_id: str) -> Path:
        return self.path / "records" / f"{file_name(sample_id)}.json"

    def bundle_path(self, sample_id: str) -> Path:
        return self.path / "bundles" / f"{file_name(sample_id)}.eagle"

    def record(self, sample_id: str) -> dict | None:
        """The record filed for `sample_id`, or None (none, unreadable, or one that is another sample's)."""
        try:
            rec = json.loads(self.record_path(sample_id).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        return rec if isinstance(rec, dict) and rec.get("id") == sample_id else None

    def done(self, sample) -> bool:
        """True when the sample's record is there, for this very sample (its key), with its own bundle if ok."""
        rec = self.record(sample.id)
        if rec is None or rec.get("key") != sample.key:
            return False
        return rec.get("status") != "ok" or self._bundle_matches(sample.id, rec)

    def _bundle_matches(self, sample_id: str, rec: dict) -> bool:
        try:
            digest = hashlib.sha256(self.bundle_path(sample_id).read_bytes()).hexdigest()
        except OSError:
            return False
        return digest == rec.get("bundle_sha256")

    def write(self, sample, record: dict, bundle: bytes | None) -> dict:
        """File one sample: the bundle first, then the record (so a record always has its bundle), the record
        naming the sample's key and its bundle's hash."""
        record = {**record, "id": sample.id, "key": sample.key}
        if bundle is not None:
            record["bundle_sha256"] = hashlib.sha256(bundle).hexdigest()
            atomic_write(self.bundle_path(sample.id), bundle)
        atomic_write(self.record_path(sample.id), json.dumps(record, default=_json_default).encode())
        return record

    def load(self, sample_id: str):
        """The stored explanation of a sample (an Attribution), checked to be the one its record filed."""
        rec = self.record(sample_id)
        path = self.bundle_path(sample_id)
        if rec is None:
            raise InputError(f"no record for sample {sample_id!r} in {self.path}")
        if not path.is_file():
            why = f": {rec['error']}" if rec.get("error") else ""
            raise InputError(f"no stored explanation for sample {sample_id!r}{why}")
        if not self._bundle_matches(sample_id, rec):
            raise InputError(f"the stored explanation of sample {sample_id!r} is not the one its record filed "
                             "(changed or copied from another sample); run the sample again")
        result = load_attribution(path)
        if result.context is None:
            raise InputError(f"the stored explanation of sample {sample_id!r} names no question and answer")
        return result

    def records(self, order=None) -> list[dict]:
        """Every record, in `order` (sample ids) when given, else by id."""
        found = {}
        for path in sorted((self.path / "records").glob("*.json")):
            try:
                rec = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str) and path.stem == file_name(rec["id"]):
                found[rec["id"]] = rec
        if order is None:
            return [found[k] for k in sorted(found)]
        return [found[i] for i in order if i in found]

    def write_table(self, records) -> Path:
        """results.csv: one row per sample; empty cells where a metric does not apply."""
        path = self.path / "results.csv"
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: "" if rec.get(c) is None else rec.get(c) for c in COLUMNS} for rec in records)
        return atomic_write(path, text.getvalue().encode("utf-8"))

    def write_summary(self, records) -> dict:
        summary = summarise(records)
        atomic_write(self.path / "summary.json", json.dumps(summary, indent=1).encode())
        atomic_write(self.path / "summary.md", format_summary(summary, self.options).encode())
        return summary


def _json_default(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else None


PROTOCOL_NAMES = {"sentence": "sentence level (whole answers)", "word": "word level (chosen words)",
                  "hallucination": "hallucination (correct answer explained)"}


def summarise(records) -> dict:
    """Means per protocol, as the paper reports them: insertion/deletion AUC and average highest score;
    pointing game on boxes and masks; AMCR and CSR@10% over every hallucinated sample (never-corrected ones
    count as misses) with the reference's CSR (corrected samples only) beside it."""
    out = {"samples": len(records), "errors": sum(r.get("status") != "ok" for r in records), "protocols": {}}
    for protocol in PROTOCOL_NAMES:
        ok = [r for r in records if r.get("status") == "ok" and r.get("protocol") == protocol]
        if not ok:
            continue
        row = {"samples": len(ok), "insertion_auc": _mean(r["insertion_auc"] for r in ok),
               "deletion_auc": _mean(r["deletion_auc"] for r in ok),
               "highest_score": _mean(r["highest_score"] for r in ok),
               "pointing_box": _mean(r.get("pointing_box") for r in ok),
               "pointing_mask": _mean(r.get("pointing_mask") for r in ok)}
        wrong = [r for r in ok if r.get("mcr") is not None]
        if wrong:
            hit = [r["corrected"] and r["mcr"] <= CSR_THRESHOLD for r in wrong]
            corrected = [h for h, r in zip(hit, wrong) if r["corrected"]]
            row.update(hallucinated=len(wrong), amcr=_mean(r["mcr"] for r in wrong), csr=float(np.mean(hit)),
                       csr_reference=float(np.mean(corrected)) if corrected else None)
        out["protocols"][protocol] = row
    return out


SUMMARY_COLUMNS = [("Ins ↑", "insertion_auc"), ("Del ↓", "deletion_auc"), ("Ave. high. ↑", "highest_score"),
                   ("PG box ↑", "pointing_box"), ("PG mask ↑", "pointing_mask"), ("AMCR ↓", "amcr"),
                   ("CSR@10% ↑", "csr"), ("CSR@10% (ref.)", "csr_reference")]


def format_summary(summary: dict, options: EvaluationOptions | None = None) -> str:
    """The summary as a Markdown table in the paper's layout (one row per protocol)."""
    lines = []
    if options is not None:
        lines.append(f"EAGLE ({options.mode}, {options.regions} regions, λ = {options.lambda1:g}/{options.lambda2:g}) "
                     f"on {options.model}: {summary['samples']} samples, {summary['errors']} errors.\n")
    lines.append("| protocol | samples | " + " | ".join(h for h, _ in SUMMARY_COLUMNS) + " |")
    lines.append("|---|---:|" + "---:|" * len(SUMMARY_COLUMNS))
    for protocol, row in summary["protocols"].items():
        cells = []
        for _, key in SUMMARY_COLUMNS:
            v = row.get(key)
            cells.append("—" if v is None else f"{v:.1%}" if key.startswith("csr") else f"{v:.4f}")
        lines.append(f"| {PROTOCOL_NAMES[protocol]} | {row['samples']} | " + " | ".join(cells) + " |")
    if not summary["protocols"]:
        lines.append("| (no finished sample) | 0 |" + " — |" * len(SUMMARY_COLUMNS))
    return "\n".join(lines) + "\n"


def read_results(path):
    """The results table of a run as a pandas DataFrame (pandas is optional; it reads results.csv)."""
    try:
        import pandas as pd
    except ImportError as err:  # pragma: no cover
        raise EagleError("reading results as a table needs pandas (pip install pandas)") from err
    return pd.read_csv(Path(path) / "results.csv", keep_default_na=True)
