"""The exported HTML page in headless Chromium: opened from disk, no kernel, no network. The test reads what
the page drew (canvas pixels, status and legend text) and compares it with the Python results."""

import numpy as np
from eagle_widgets import Explorer
from eagle_widgets.core.colours import OVERLAY_OPACITY, PALETTE
from eagle_widgets.demo import CAPTION_PROMPT, make_scene
from eagle_widgets.widgets.state import heatmap_state

from conftest import ARTIFACTS

SCENE = make_scene(10 ** 6 + 21, n_objects=2)


def region_probes(labels: np.ndarray) -> dict[int, tuple[int, int]]:
    """One pixel well inside each region (the region pixel farthest from its border)."""
    from scipy import ndimage

    probes = {}
    for r in range(int(labels.max()) + 1):
        inside = np.pad(labels == r, 1)
        depth = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
        probes[r] = (int(y), int(x))
    return probes


def expected_rgba(value: float) -> np.ndarray:
    v = min(1.0, max(0.0, value))
    return np.array([*PALETTE[round(v * 255)], round(255 * OVERLAY_OPACITY * v)], dtype=float)


def drawn_pixels(page, probes) -> dict[int, np.ndarray]:
    points = [[x, y] for y, x in probes.values()]
    rgba = page.evaluate("""(points) => {
        const c = document.querySelector('#heatmap canvas.eagle-overlay');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return points.map(([x, y]) => Array.from(d.slice(4 * (y * c.width + x), 4 * (y * c.width + x) + 4)));
    }""", points)
    return {r: np.array(px, dtype=float) for r, px in zip(probes, rgba)}


def assert_draws(page, result, encoding):
    """Every region's probe pixel has the colour and opacity the Python state gives its value."""
    values = heatmap_state(result, encoding)["values"]
    probes = region_probes(result.regions.labels)
    for r, px in drawn_pixels(page, probes).items():
        want = expected_rgba(values[r])
        assert abs(px[3] - want[3]) <= 1, (r, px, want)
        if want[3] >= 48:  # the canvas stores premultiplied colours: faint pixels lose precision
            assert np.abs(px[:3] - want[:3]).max() <= 6, (r, px, want)


def test_exported_page_draws_each_explanation_in_any_order(tmp_path, browser, demo_session):
    ex = Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=16)
    words = [t.strip() for t in ex.generation.tokens]
    first, second = words.index(SCENE.objects[0].shape), words.index(SCENE.objects[1].shape)
    ex.select(first)
    ex.wait(60)
    ex.regions_control.value = 36  # a second label map: the page must not colour it with the first one's
    ex.select(second)
    ex.wait(60)
    results = ex.explanations()
    assert results[(first,)].num_regions != results[(second,)].num_regions
    path = ex.export_html(tmp_path / "explorer.html")

    page = browser.new_page()
    requests, errors, console = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and console.append(m.text))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    assert page.locator("body").get_attribute("data-explanations") == "2"
    chips = page.locator("#strip .eagle-chip")
    assert chips.count() == len(ex.generation.tokens)

    for token in (second, first, second, first, second):
        chips.nth(token).click()
        result = results[(token,)]
        page.wait_for_function("document.getElementById('heatmap').dataset.drawn === '1'")
        assert_draws(page, result, "gain")
        status = page.locator("#status").text_content()
        assert repr(ex.generation.tokens[token]) in status and f"{result.insertion_auc:.3f}" in status
        assert f"{result.num_regions} regions" in status
        auc = page.locator("#curves .eagle-auc").text_content()
        assert f"insertion AUC {result.insertion_auc:.3f}" in auc and repr(ex.generation.tokens[token]) in auc
        assert page.locator("#heatmap .eagle-legend-title").text_content().startswith("gain share")

    # The paper's normalisation, by name, from the page's own control.
    page.select_option("#heatmap select.eagle-encoding", "paper")
    page.wait_for_function("document.querySelector('#heatmap .eagle-legend-title').textContent.startsWith('paper')")
    assert_draws(page, results[(second,)], "paper")

    chips.nth(0).click()  # never explained: the page says so instead of showing a stale map
    assert "No explanation of this selection" in page.locator("#status").text_content()
    assert page.evaluate("document.getElementById('heatmap').dataset.drawn") == "0"
    ARTIFACTS.mkdir(exist_ok=True)
    chips.nth(second).click()
    page.screenshot(path=str(ARTIFACTS / "export.png"), full_page=True)
    page.close()
    assert not errors, errors
    assert not console, console
    remote = [u for u in requests if not u.startswith(("file:", "blob:", "data:"))]
    assert not remote, remote


def test_exported_page_keeps_injected_text_inert(tmp_path, browser, demo_session):
    prompt = "describe __DATA__ <img src=x onerror=\"document.body.dataset.pwned='1'\"> <!--<script> __ESM__ ."
    ex = Explorer(demo_session, SCENE.image, prompt, mode="efficient", regions=16, auto_run=False)
    path = ex.export_html(tmp_path / "inert.html")
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    assert page.locator("body").get_attribute("data-pwned") is None
    assert "__DATA__" in page.locator(".eagle-export-header").text_content()
    page.close()
    assert not errors, errors
