"""EAGLE against the baselines on one explanation, in both protocols, with the same session."""

from __future__ import annotations

import time

import numpy as np

from ..core import RegionSet, minimal_correction_ratio, pixel_protocol, pointing_game, region_protocol
from ..core.faithfulness import PIXEL_STEPS
from ..models.session import Generation, ModelSession
from .memory import PeakMemory
from .methods import BASELINES, explain_baseline

METHODS = ("eagle", *BASELINES)


def _curve_metrics(result, prefix: str) -> dict:
    return {f"{prefix}_insertion_auc": result.insertion_auc, f"{prefix}_deletion_auc": result.deletion_auc,
            f"{prefix}_highest_score": result.highest_score}


def compare_methods(session: ModelSession, generation: Generation, tokens=None, *, regions: RegionSet | int = 26,
                    methods=METHODS, eagle_mode: str = "exact", mask=None, box=None, target_ids=None,
                    baseline_params: dict | None = None, steps: int = PIXEL_STEPS) -> dict[str, dict]:
    """Per method: insertion/deletion AUC and highest score in the pixel protocol (top i/steps pixels) and
    the region protocol (regions by mean map value), pointing game on `mask`/`box` when given, wall time
    and peak memory of the explanation. EAGLE is scored on its own region trajectory in both protocols
    (the published protocol does so too)."""
    request = session.request(generation, tokens, regions, target_ids=target_ids)  # checked once, used by all
    rs = request.regions
    baseline_params = baseline_params or {}
    rows: dict[str, dict] = {}
    for method in methods:
        if method == "eagle":
            t0 = time.perf_counter()
            with PeakMemory(session.device) as peak:
                # No disk cache: a cached result would report no time and no memory.
                result = session.explain(request, mode=eagle_mode, use_cache=False)
            row = {"seconds": time.perf_counter() - t0, "peak_memory_bytes": peak.bytes,
                   **_curve_metrics(result, "pixel"), **_curve_metrics(result, "region"), "order": result.order}
            saliency = result.pixel_map(encoding="paper")  # monotone in the region order, as published
        else:
            smap = explain_baseline(method, session, request, **baseline_params.get(method, {}))
            saliency = smap.values

            def scorer_for(r):
                return session.scorer(request.generation, list(request.targets), r,
                                      target_ids=list(request.target_ids))

            by_region = region_protocol(scorer_for, rs, saliency)
            row = {"seconds": smap.seconds, "peak_memory_bytes": smap.peak_memory_bytes,
                   **_curve_metrics(pixel_protocol(scorer_for, saliency, steps), "pixel"),
                   **_curve_metrics(by_region, "region"), "order": by_region.order}
        if mask is not None:
            row["pointing_mask"] = float(pointing_game(saliency, mask=mask))
        if box is not None:
            row["pointing_box"] = float(pointing_game(saliency, box=box))
        rows[method] = row
    return rows


def summarise(rows: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean of every metric per method over samples (peak memory: the maximum)."""
    out = {}
    for method in rows[0]:
        vals = [r[method] for r in rows]
        out[method] = {k: float(np.mean([v[k] for v in vals])) for k in vals[0] if k != "order"}
        out[method]["peak_memory_bytes"] = float(np.max([v["peak_memory_bytes"] for v in vals]))
    return out


TABLE_COLUMNS = [("pixel ins↑", "pixel_insertion_auc"), ("pixel del↓", "pixel_deletion_auc"),
                 ("pixel high↑", "pixel_highest_score"), ("region ins↑", "region_insertion_auc"),
                 ("region del↓", "region_deletion_auc"), ("region high↑", "region_highest_score"),
                 ("PG mask↑", "pointing_mask"), ("PG box↑", "pointing_box"), ("AMCR↓", "amcr"),
                 ("CSR@10%↑", "csr"), ("s/run", "seconds"), ("peak MiB", "peak_memory_bytes")]


def format_table(table: dict[str, dict], digits: int = 3, columns=None) -> str:
    """One row per method; the columns the table has, or those of `columns` (keys such as "pointing_mask")."""
    present = [(h, k) for h, k in TABLE_COLUMNS
               if any(k in row for row in table.values()) and (columns is None or k in columns)]
    widths = [max(len(h), digits + 4) + 2 for h, _ in present]
    lines = [f"{'method':<10}" + "".join(f"{h:>{w}}" for (h, _), w in zip(present, widths))]
    for method, row in table.items():
        cells = []
        for _, k in present:
            v = row.get(k)
            cells.append("—" if v is None else f"{v / 2**20:.1f}" if k == "peak_memory_bytes" else f"{v:.{digits}f}")
        lines.append(f"{method:<10}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    return "\n".join(lines)


def correction_ratios(session: ModelSession, generation: Generation, position: int, correct_id: int,
                      orders: dict[str, list[int]], regions: RegionSet) -> dict:
    """Hallucination correction for each method's region order: remove its least supportive regions first
    until the model's own next token at `position` becomes `correct_id` (method §7, MCR)."""
    scorer = session.scorer(generation, [position], regions)

    def answers_correct(visible):
        return (scorer.greedy(np.asarray(visible))[:, 0] == correct_id).numpy()

    return {m: minimal_correction_ratio(order, regions.area_fractions, answers_correct)
            for m, order in orders.items()}


def compare_prompt_methods(session: ModelSession, generation: Generation, tokens=None, *, granularity: str = "word",
                           mode: str = "exact", seed: int = 0, masking: str = "pad") -> dict:
    """EAGLE over the prompt's spans (the image fully visible) against two orders of the same spans scored with
    the same scorer: random (seeded) and occlusion (each span by the drop of p when it alone is removed).
    Returns {"eagle", "random", "occlusion"} -> Attribution, whose curves and AUCs compare directly."""
    from ..core import attribute_order

    request = session.request(generation, tokens, None, prompt=granularity, masking=masking)
    eagle = session.explain(request, mode=mode, use_cache=False)
    scorer = session.scorer(request)
    n = request.regions.n
    visible = np.ones((n + 1, n), dtype=bool)
    visible[np.arange(1, n + 1), np.arange(n)] = False
    p = scorer(visible).double().mean(dim=1).numpy()
    orders = {"random": [int(i) for i in np.random.default_rng(seed).permutation(n)],
              "occlusion": [int(i) for i in np.argsort(-(p[0] - p[1:]), kind="stable")]}
    out = {"eagle": eagle}
    for name, order in orders.items():
        out[name] = attribute_order(scorer, request.regions, order, batch_size=scorer.batch_size, mode=name,
                                    context={"token_labels": request.token_labels, "image": generation.image})
    return out
