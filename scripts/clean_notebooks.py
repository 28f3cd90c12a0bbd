"""Make notebooks fit to commit: canonical execution counts, no widget state; huge outputs are reported.

nbval only compares cells that carry an execution count, so counts cannot simply be dropped; they are
normalised instead to 1, 2, 3, ... over the code cells, so a re-run never shows up as a diff and an
out-of-order (stale) count is caught by --check.

    python scripts/clean_notebooks.py notebooks/*.ipynb          # clean in place
    python scripts/clean_notebooks.py --check notebooks/*.ipynb  # exit 1 if any is not clean
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

MAX_NOTEBOOK_BYTES = 900_000
MAX_OUTPUT_BYTES = 300_000  # a legible figure of a textured scene (PNG at 80-100 dpi)


def problems(nb: dict) -> list[str]:
    found = []
    if "widgets" in nb.get("metadata", {}):
        found.append("stores widget state (metadata.widgets)")
    for n, (i, cell) in enumerate(_code_cells(nb), start=1):
        expected = n if cell.get("outputs") else None
        if cell.get("execution_count") != expected:
            found.append(f"cell {i} has execution count {cell.get('execution_count')} (expected {expected})")
        for out in cell.get("outputs", []):
            if "execution_count" in out and out["execution_count"] != expected:
                found.append(f"cell {i} output has a stale execution count {out['execution_count']}")
            for text in _texts(out):
                for path in MACHINE_PATH.findall(text):
                    found.append(f"cell {i} output shows a path of the machine that ran it: {path}")
            size = len(json.dumps(out))
            if size > MAX_OUTPUT_BYTES:
                found.append(f"cell {i} has an output of {size} bytes")
    return found


# Absolute paths of a machine (a POSIX home, temp or checkout folder, or a Windows drive) in text outputs.
MACHINE_PATH = re.compile(r"(?<![\w.:/])(?:/(?:home|root|tmp|Users|work|mnt|var|opt|srv|private)/[^\s'\"<>]+"
                          r"|\b[A-Za-z]:\\[^\s'\"<>]+)")


def _texts(out: dict):
    """The text an output shows (streams, text/plain, text/html, text/markdown), never image data."""
    if "text" in out:
        yield "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
    for mime, value in out.get("data", {}).items():
        if mime.startswith("text/"):
            yield "".join(value) if isinstance(value, list) else value


def _code_cells(nb: dict):
    return [(i, c) for i, c in enumerate(nb.get("cells", [])) if c.get("cell_type") == "code"]


def clean(nb: dict) -> dict:
    nb.get("metadata", {}).pop("widgets", None)
    for n, (_, cell) in enumerate(_code_cells(nb), start=1):
        cell.get("metadata", {}).pop("execution", None)
        cell["execution_count"] = n if cell["outputs"] else None
        for out in cell["outputs"]:
            if "execution_count" in out:
                out["execution_count"] = cell["execution_count"]
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    bad = 0
    for path in args.paths:
        nb = json.loads(path.read_text())
        if args.check:
            found = problems(nb)
            if path.stat().st_size > MAX_NOTEBOOK_BYTES:
                found.append(f"is {path.stat().st_size} bytes")
            for p in found:
                print(f"{path}: {p}")
            bad += bool(found)
        else:
            path.write_text(json.dumps(clean(nb), indent=1, ensure_ascii=False) + "\n")
            for p in problems(nb):  # too large an output is reported, never silently dropped
                print(f"{path}: {p}")
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
