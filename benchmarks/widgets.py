"""Explorer responsiveness on the demo model (CPU).

    python benchmarks/widgets.py

Targets: strip coloured <= 1 s after generation; word-level efficient attribution with 36 regions <= 5 s;
the kernel stays responsive during a run (a trait round trip on the main thread <= 100 ms).
"""

from __future__ import annotations

import statistics
import threading
import time

from eagle_widgets import Explorer, load_demo_session
from eagle_widgets.demo import CAPTION_PROMPT, SHAPES, UNBIASED, make_scene
from eagle_widgets.widgets import TokenStrip


def cell_vs_worker(session) -> list[tuple]:
    """An exact word-level run (37 regions) from this (a notebook cell's) thread through `session.explain`, and
    the same search called directly in this thread and in a worker thread, as the Explorer runs it. Run it
    also with the machine loaded (e.g. two busy processes beside it): that is where the main thread was
    measured several times slower."""
    from eagle_widgets.core import RegionSet, attribute

    scene = make_scene(1_000_025)
    gen = session.generate(scene.image, CAPTION_PROMPT)
    word = next(i for i, t in enumerate(gen.tokens) if t.strip() in SHAPES)
    regions = RegionSet.slic(scene.image, n_segments=37)
    session.explain(gen, tokens=[word], regions=regions, mode="efficient", use_cache=False)  # warm-up
    times = {}
    t0 = time.perf_counter()
    session.explain(gen, tokens=[word], regions=regions, mode="exact", use_cache=False)
    times["session.explain from a cell (s)"] = time.perf_counter() - t0
    scorer = session.scorer(gen, tokens=[word], regions=regions)

    def direct():
        attribute(scorer, regions, mode="exact", batch_size=scorer.batch_size)

    t0 = time.perf_counter()
    direct()
    times["the search called in the cell's own thread (s)"] = time.perf_counter() - t0
    worker = threading.Thread(target=direct)
    t0 = time.perf_counter()
    worker.start()
    worker.join()
    times["the search in a worker thread, as the Explorer (s)"] = time.perf_counter() - t0
    return [(name, value, "") for name, value in times.items()]


def main() -> None:
    session = load_demo_session()
    rows = []
    colour_s, run_s, round_trips = [], [], []
    for i in range(5):
        scene = make_scene(10 ** 6 + 400 + i, bias=UNBIASED, n_objects=2)
        gen = session.generate(scene.image, CAPTION_PROMPT)
        t0 = time.perf_counter()  # the colouring step alone: two forward passes and the strip
        rel = session.reliance(gen)
        TokenStrip(gen.tokens, reliance=rel.evidence, special=gen.special)
        colour_s.append(time.perf_counter() - t0)
        ex = Explorer(session, scene.image, CAPTION_PROMPT, mode="efficient", regions=36)
        words = [t.strip() for t in ex.generation.tokens]
        word = next(i for i, w in enumerate(words) if w in SHAPES)  # a shape word of the model's own answer
        seen = threading.Event()
        ex.heatmap.observe(lambda change, seen=seen: seen.set(), names="opacity")
        t0 = time.perf_counter()
        ex.select([word])
        while ex._worker is not None and ex._worker.is_alive():
            seen.clear()
            t1 = time.perf_counter()
            ex.heatmap.opacity = 0.3 + 0.4 * (len(round_trips) % 2)  # what a slider drag sends the kernel
            seen.wait(1)
            round_trips.append(time.perf_counter() - t1)
            time.sleep(0.05)
        ex.wait()
        run_s.append(time.perf_counter() - t0)
    rows.append(("strip coloured after generation (median s)", statistics.median(colour_s), "<= 1 s"))
    rows.append(("word-level efficient run, 36 regions (median s)", statistics.median(run_s), "<= 5 s"))
    rows.append(("trait round trip during a run (max ms)", 1000 * max(round_trips), "<= 100 ms"))
    rows.append(("trait round trip during a run (median ms)", 1000 * statistics.median(round_trips), ""))
    rows += cell_vs_worker(session)
    for name, value, target in rows:
        print(f"{name:<50}{value:>10.3f}  {target}")


if __name__ == "__main__":
    main()
