"""`evaluate(manifest, out)`: every sample of a manifest through the protocols, resumable, on a backend."""

from __future__ import annotations

import sys
import time

from ..core.errors import InputError
from ..core.validation import integer
from .backends import run_local, run_ray
from .manifest import Manifest, read_manifest
from .protocol import EvaluationOptions, error_record
from .store import ResultsFolder

BACKENDS = ("local", "ray")


class Progress:
    """A progress line with throughput and ETA (tqdm when it is installed), and the workers' current samples."""

    def __init__(self, total: int, done: int, enabled: bool = True):
        self.total, self.done, self.started, self.count = total, done, time.perf_counter(), 0
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, initial=done, unit="sample", dynamic_ncols=True, file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm comes with transformers
                pass

    def status(self, workers: dict) -> None:
        if self.bar is not None and workers:
            self.bar.set_postfix_str(" ".join(f"{k}:{v}" for k, v in sorted(workers.items()))[:80])

    def advance(self) -> None:
        self.done += 1
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)

    @property
    def rate_per_minute(self) -> float:
        elapsed = time.perf_counter() - self.started
        return 60.0 * self.count / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate(manifest, out, options: EvaluationOptions | None = None, *, backend: str = "local",
             workers: int | None = None, address: str | None = None, threads: int | None = None,
             progress: bool = True, on_record=None, **option_values) -> dict:
    """Explain every sample of `manifest` (a path or a `Manifest`) into the folder `out` and return the summary.

    Samples already done with the same options are skipped (a killed run resumes); a sample that fails is
    recorded with its error and the run goes on. `options` (or keyword values such as mode="exact",
    regions=64) say how; `backend` "local" (`workers` processes, one per GPU by default) or "ray"
    (`address` of a cluster, or a local one); `threads`: torch threads per worker (runs with equal thread
    counts give bit-identical results). `on_record(record)` is called as each sample is filed."""
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if options is None:
        options = EvaluationOptions(**option_values)
    elif option_values:
        raise InputError("give either options or keyword values, not both")
    if not isinstance(manifest, Manifest):
        manifest = read_manifest(manifest)
    if workers is not None:
        workers = integer(workers, "workers", minimum=1)
    folder = ResultsFolder(out, options).lock()
    try:
        return _evaluate(manifest, folder, options, backend, workers, address, threads, progress, on_record)
    finally:
        folder.unlock()


def _evaluate(manifest, folder, options, backend, workers, address, threads, progress, on_record) -> dict:
    for name, message in manifest.broken:  # unreadable lines: recorded every run, never computed
        record = folder.write(_Broken(name), error_record(name, "unknown", message), None)
        if on_record:
            on_record(record)
    todo = [s for s in manifest.samples if not folder.done(s)]
    bar = Progress(len(manifest.samples), len(manifest.samples) - len(todo), enabled=progress)
    try:
        if backend == "ray":
            outcomes = run_ray(todo, options, bar.status, workers=workers, address=address, threads=threads)
        else:
            outcomes = run_local(todo, options, bar.status, workers=workers, threads=threads)
        for sample, record, blob in outcomes:
            record = folder.write(sample, record, blob)
            bar.advance()
            if on_record:
                on_record(record)
    finally:
        bar.close()
    order = [n for n, _ in manifest.broken] + [s.id for s in manifest.samples]
    records = folder.records(order)
    folder.write_table(records)
    summary = folder.write_summary(records)
    summary["computed"] = bar.count
    summary["samples_per_minute"] = bar.rate_per_minute
    return summary


class _Broken:
    """A manifest line that is not a sample: filed under its id (or line number) with its error."""

    def __init__(self, sample_id: str):
        self.id = sample_id
        self.key = f"broken:{sample_id}"
