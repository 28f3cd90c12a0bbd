"""Command line: `eagle-widgets engine-demo` runs the engine end to end on a synthetic scorer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _terminal_progress(update) -> None:
    eta = "" if update.eta_s is None else f", eta {update.eta_s:5.1f} s"
    sys.stderr.write(f"\r  {update.mode:<10} step {update.step:3d}/{update.total_steps} "
                     f"evaluations {update.evaluations}/{update.total_evaluations}{eta}   ")
    if update.step == update.total_steps:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _synthetic_scene(size: int = 160):
    """A light background with a red disc; the 'token' is only likely when the disc is visible."""
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size, 3), (225, 220, 205), np.uint8)
    disc = (yy - size * 0.35) ** 2 + (xx - size * 0.6) ** 2 < (size * 0.16) ** 2
    img[disc] = (200, 30, 30)
    return img, disc


def engine_demo(out: Path, n_segments: int) -> int:
    from .core import EvidenceScorer, RegionSet, attribute

    image, disc = _synthetic_scene()
    regions = RegionSet.slic(image, n_segments=n_segments)
    overlap = np.bincount(regions.labels[disc], minlength=regions.n)
    evidence = int(np.argmax(overlap))
    scorer = EvidenceScorer(regions.n, [None, evidence], prior=[0.97, 0.05])
    print(f"synthetic scene: {regions.n} SLICO regions; token 'red' needs region {evidence}, token 'a' does not")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for mode in ("exact", "efficient", "early_stop"):
        r = attribute(scorer, regions, mode=mode, progress=_terminal_progress)
        r.token_labels = ["a", "red"]
        r.image = image
        r.save(out / f"{mode}.eagle")
        rows.append((mode, r.evaluations, r.timings["total_s"], r.insertion_auc, r.deletion_auc,
                     r.pointing_game(mask=disc), r.reliance))
    print(f"\n{'mode':<11}{'evals':>7}{'time s':>9}{'ins AUC':>9}{'del AUC':>9}{'PG':>5}  reliance a / red")
    for mode, ev, t, ins, dele, pg, rel in rows:
        print(f"{mode:<11}{ev:>7}{t:>9.3f}{ins:>9.4f}{dele:>9.4f}{'hit' if pg else 'miss':>5}"
              f"  {rel[0]:.3f} / {rel[1]:.3f}")
    _save_map_png(out / "exact.png", image, out / "exact.eagle")
    print(f"\nwrote {out}/{{exact,efficient,early_stop}}.eagle and {out}/exact.png")
    return 0


def _save_map_png(path: Path, image, bundle: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .core import Attribution

    r = Attribution.load(bundle)
    fig, ax = plt.subplots(figsize=(3.2, 3.2), dpi=100)
    ax.imshow(image)
    ax.imshow(r.pixel_map(smooth=2), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax.set_axis_off()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="eagle-widgets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("engine-demo", help="run the EAGLE engine on a synthetic scorer and save the results")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.add_argument("--regions", type=int, default=36, help="number of SLICO superpixels (d)")
    args = parser.parse_args(argv)
    from .core import EagleError

    try:
        if args.command == "engine-demo":
            return engine_demo(args.out, args.regions)
    except EagleError as err:
        print(f"eagle-widgets: {err}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
