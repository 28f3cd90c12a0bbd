"""Where samples run: in this process, in local worker processes (one per GPU when several), or on a Ray
cluster (one model per worker actor). Every backend sends (sample, record, bundle bytes) back to the
process that owns the results folder, so workers need no shared disk."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator

from ..core.bundle import bundle_bytes
from ..core.errors import InputError
from .manifest import Sample
from .protocol import EvaluationOptions, error_record, run_sample

MAX_ATTEMPTS = 3  # a sample whose worker is lost this often is recorded as an error
FAULT_ENV = "EAGLE_WIDGETS_FAULT_ONCE"  # "<sample id>:<marker file>": a worker exits on that sample once (tests)

Outcome = tuple[Sample, dict, "bytes | None"]


def _maybe_fail(sample: Sample) -> None:
    """Fault injection for the recovery tests: the worker process dies the first time it starts the sample."""
    spec = os.environ.get(FAULT_ENV, "")
    if ":" not in spec:
        return
    sample_id, marker = spec.split(":", 1)
    if sample.id == sample_id and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(17)


def _work(session, sample: Sample, options: EvaluationOptions, worker: str) -> tuple[dict, bytes | None]:
    record, result = run_sample(session, sample, options)
    record["worker"] = worker
    return record, None if result is None else bundle_bytes(result)


def run_in_process(samples: list[Sample], options: EvaluationOptions, status: Callable,
                   threads: int | None = None) -> Iterator[Outcome]:
    import torch

    session = options.load_session()
    before = torch.get_num_threads()
    try:
        for sample in samples:
            status({"main": sample.id})
            if threads:  # set around each sample only: the caller's own work keeps its threads
                torch.set_num_threads(threads)
            try:
                record, blob = _work(session, sample, options, "main")
            finally:
                torch.set_num_threads(before)
            record["attempts"] = 1
            yield sample, record, blob
    finally:
        torch.set_num_threads(before)


# -- local worker processes --------------------------------------------------------------------
_WORKER: dict = {}


def _init_process(options_dict: dict, devices, threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    index = devices.get()
    options = EvaluationOptions.from_dict(options_dict)
    _WORKER.update(session=options.load_session(index[1]), options=options, name=index[0])


def _process_sample(sample: Sample):
    _maybe_fail(sample)
    return _work(_WORKER["session"], sample, _WORKER["options"], _WORKER["name"])


def worker_devices(options: EvaluationOptions, workers: int | None) -> list[tuple[str, str | None]]:
    """(name, device) per local worker: one per GPU when the options ask for CUDA, else `workers` on the CPU."""
    import torch

    wants_cuda = (options.device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda") \
        and not options.served  # a served model's workers are clients of its server
    if wants_cuda and torch.cuda.device_count() > 0 and options.device in (None, "cuda"):
        n = workers or torch.cuda.device_count()
        return [(f"gpu{i % torch.cuda.device_count()}", f"cuda:{i % torch.cuda.device_count()}") for i in range(n)]
    return [(f"cpu{i}", options.device) for i in range(workers or 1)]


def run_local(samples: list[Sample], options: EvaluationOptions, status: Callable,
              workers: int | None = None, threads: int | None = None) -> Iterator[Outcome]:
    """One worker: in this process. More: spawned processes, each loading the model once. `threads`: torch
    threads per worker (default: the cores shared out); equal thread counts give bit-identical results."""
    devices = worker_devices(options, workers)
    if len(devices) == 1:
        yield from run_in_process(samples, options, status, threads)
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for d in devices:
        queue.put(d)
    threads = threads or max(1, (os.cpu_count() or 1) // len(devices))
    pending = deque((s, 1) for s in samples)
    while pending:
        pool = ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_process,
                                   initargs=(options.to_dict(), queue, threads))
        running = {}
        try:
            while pending or running:
                while pending and len(running) < 2 * len(devices):
                    sample, attempt = pending.popleft()
                    running[pool.submit(_process_sample, sample)] = (sample, attempt)
                status({"running": ", ".join(s.id for s, _ in running.values())})
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    sample, attempt = running[future]
                    record, blob = future.result()  # a lost worker raises here, its sample still running
                    running.pop(future)
                    record["attempts"] = attempt
                    yield sample, record, blob
        except BrokenProcessPool:  # a worker died: what it held is tried again in a fresh pool
            for sample, attempt in running.values():
                if attempt >= MAX_ATTEMPTS:
                    yield sample, error_record(sample.id, sample.protocol, f"its worker was lost {attempt} times"), None
                else:
                    pending.appendleft((sample, attempt + 1))
            for d in devices:  # the new pool's workers take the devices again
                queue.put(d)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


# -- Ray -----------------------------------------------------------------------------------------
def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("the Ray backend needs Ray: pip install 'eagle-widgets[ray]'") from None
    return ray


class _RayWorker:
    """One model per actor, loaded once; samples arrive one at a time."""

    def __init__(self, options_dict: dict, name: str, threads: int | None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.options = EvaluationOptions.from_dict(options_dict)
        device = self.options.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.session = self.options.load_session(device)
        self.name = name

    def run(self, sample: Sample):
        _maybe_fail(sample)
        return _work(self.session, sample, self.options, self.name)


def run_ray(samples: list[Sample], options: EvaluationOptions, status: Callable, workers: int | None = None,
            address: str | None = None, threads: int | None = None) -> Iterator[Outcome]:
    """Samples scheduled across a Ray cluster: each worker actor holds one model (and one GPU where the
    cluster has them); a sample whose actor dies is given to a fresh actor, up to MAX_ATTEMPTS times."""
    ray = _ray()
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    # The workers see the settings of this run (offline hub, cache, fault injection), on any cluster.
    env = {k: os.environ[k] for k in (FAULT_ENV, "EAGLE_WIDGETS_CACHE", "HF_HUB_OFFLINE") if k in os.environ}
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        # A served model's workers are clients of its server: they hold no GPU.
        use_gpu = gpus > 0 and (options.device or "cuda").startswith("cuda") and not options.served
        n = workers or (gpus if use_gpu else max(1, int(resources.get("CPU", 1))))
        actor_class = ray.remote(num_gpus=1 if use_gpu else 0, num_cpus=0 if use_gpu else 1,
                                 max_restarts=0)(_RayWorker).options(runtime_env={"env_vars": env})
        actors = {f"ray{i}": actor_class.remote(options.to_dict(), f"ray{i}", threads) for i in range(n)}
        idle = deque(actors)
        pending = deque((s, 1) for s in samples)
        running: dict = {}  # object ref -> (actor name, sample, attempt)
        busy: dict = {}
        while pending or running:
            while idle and pending:
                name = idle.popleft()
                sample, attempt = pending.popleft()
                running[actors[name].run.remote(sample)] = (name, sample, attempt)
                busy[name] = sample.id
            status(dict(busy))
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                name, sample, attempt = running.pop(ref)
                busy.pop(name, None)
                try:
                    record, blob = ray.get(ref)
                except ray.exceptions.RayActorError:
                    ray.kill(actors[name], no_restart=True)
                    actors[name] = actor_class.remote(options.to_dict(), name, threads)  # a fresh worker in its place
                    if attempt >= MAX_ATTEMPTS:
                        yield sample, error_record(sample.id, sample.protocol,
                                                   f"its worker was lost {attempt} times"), None
                    else:
                        pending.appendleft((sample, attempt + 1))
                    idle.append(name)
                    continue
                except ray.exceptions.RayTaskError as err:  # an unexpected error inside the worker
                    record, blob = error_record(sample.id, sample.protocol, f"worker error: {err.cause!r}"), None
                idle.append(name)
                record["attempts"] = attempt
                yield sample, record, blob
    finally:
        if started_here:
            ray.shutdown()
