"""What the heatmap should draw, for comparing with canvas pixels (used by the tests and inside test kernels)."""

import numpy as np
from eagle_widgets.display.colours import DEFAULT_STYLE, overlay_pixel


def region_probes(labels: np.ndarray) -> dict[int, tuple[int, int]]:
    """One (row, column) well inside each region: the region pixel farthest from its border."""
    from scipy import ndimage

    probes = {}
    for r in range(int(labels.max()) + 1):
        depth = ndimage.distance_transform_edt(np.pad(labels == r, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        probes[r] = (int(y), int(x))
    return probes


def expectations(labels: np.ndarray, values, style: str = DEFAULT_STYLE) -> list[dict]:
    """[{x, y, rgba}] for every region of a drawn map: the overlay pixel display.colours gives its value."""
    return [{"region": r, "x": x, "y": y, "rgba": list(map(float, overlay_pixel(values[r], style)))}
            for r, (y, x) in region_probes(labels).items()]


READ_OVERLAY = """([selector, points]) => {
    const c = document.querySelector(selector);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    return points.map((p) => Array.from(d.slice(4 * (p.y * c.width + p.x), 4 * (p.y * c.width + p.x) + 4)));
}"""


def mismatches(page, selector: str, points: list[dict]) -> list:
    """Probes whose drawn pixel differs from the expectation (alpha by more than 1, colour by more than 6 where
    the pixel is opaque enough for the canvas's premultiplied storage to keep it)."""
    drawn = page.evaluate(READ_OVERLAY, [selector, points])
    bad = []
    for p, px in zip(points, drawn):
        want = p["rgba"]
        if abs(px[3] - want[3]) > 1 or (want[3] >= 48 and max(abs(a - b) for a, b in zip(px[:3], want[:3])) > 6):
            bad.append((p["region"], px, want))
    return bad
