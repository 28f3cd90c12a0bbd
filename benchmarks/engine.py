"""Engine cost on synthetic scorers: evaluations, overhead outside the scorer, and faithfulness vs exact.

    python benchmarks/engine.py [--seeds 5]

Overhead per step is (wall time - scorer time) / number of regions. Target: < 5 ms per greedy step at N = 64.
"""

from __future__ import annotations

import argparse
import statistics

from eagle_widgets.core import LogisticScorer, RegionSet, attribute


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'N':>3} {'mode':<11}{'evaluations':>12}{'x fewer':>8}{'overhead ms/step':>17}"
          f"{'ins AUC / exact':>16}{'del AUC / exact':>16}")
    for side in (4, 6, 8):
        regions = RegionSet.grid((side * 20, side * 20), rows=side, cols=side)
        n = regions.n
        rows = {m: {"ev": [], "ms": [], "ins": [], "del": []} for m in ("exact", "efficient", "early_stop")}
        for seed in range(args.seeds):
            scorer = LogisticScorer.random(n, 4, seed=seed)
            exact = attribute(scorer, regions, mode="exact")
            for mode in rows:
                r = exact if mode == "exact" else attribute(scorer, regions, mode=mode)
                rows[mode]["ev"].append(r.evaluations)
                rows[mode]["ms"].append(1000 * r.timings["engine_s"] / n)
                rows[mode]["ins"].append(r.insertion_auc / exact.insertion_auc)
                rows[mode]["del"].append(r.deletion_auc / exact.deletion_auc)
        exact_ev = statistics.mean(rows["exact"]["ev"])
        for mode, v in rows.items():
            ev = statistics.mean(v["ev"])
            print(f"{n:>3} {mode:<11}{ev:>12.0f}{exact_ev / ev:>8.1f}{statistics.median(v['ms']):>17.2f}"
                  f"{statistics.mean(v['ins']):>16.3f}{statistics.mean(v['del']):>16.3f}")


if __name__ == "__main__":
    main()
