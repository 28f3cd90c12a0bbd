"""The Explorer in a real JupyterLab 4 and Notebook 7: click a token, see the heatmap change, cancel a run."""

import json
from pathlib import Path

import pytest
from eagle_widgets.demo import UNBIASED, make_scene
from pixels import mismatches

from conftest import ARTIFACTS

BROWSER_TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.browser
SEED = 10 ** 6 + 21


def notebook(cells):
    return {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                       "source": src} for src in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def overlay(page) -> str:
    return page.evaluate("document.querySelector('.eagle-overlay').toDataURL()")


def run_cell(page, index: int) -> None:
    page.evaluate("""async (index) => {
        const nb = window.jupyterapp.shell.currentWidget.content;
        nb.activeCellIndex = index;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""", index)


def kernel_expectations(page, round_: int) -> list[dict]:
    """The overlay pixels the kernel's current result should produce (cell 2 prints them)."""
    run_cell(page, 2)
    marker = f"EXPECT {round_} "
    out = page.wait_for_selector(f".jp-OutputArea-output:has-text('{marker}')", timeout=60_000)
    return json.loads(out.inner_text().split(marker, 1)[1].strip())


def luminance(rgb) -> float:
    def channel(c):
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


CONTRAST = """(selector) => {
    const rgb = (s) => (s.match(/[\\d.]+/g) || []).slice(0, 4).map(Number);
    const e = document.querySelector(selector);
    const style = getComputedStyle(e);
    const text = rgb(e instanceof SVGElement ? style.fill : style.color);
    let bg = null;
    for (let n = e; n && !bg; n = n.parentElement) {
        const c = rgb(getComputedStyle(n).backgroundColor);
        if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) bg = c;
    }
    return [text, bg || [255, 255, 255]];
}"""


def contrast(page, selector: str) -> float:
    text, background = page.evaluate(CONTRAST, selector)
    a, b = sorted((luminance(text[:3]), luminance(background[:3])), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_click_explain_restale_and_cancel_in_jupyterlab(lab, browser, demo_session):
    url, root = lab
    scene = make_scene(SEED, bias=UNBIASED, n_objects=2)
    colour, shape = scene.objects[0].colour, scene.objects[1].shape
    (root / "explorer.ipynb").write_text(json.dumps(notebook([
        "from eagle_widgets import Explorer, load_demo_session\n"
        "from eagle_widgets.demo import UNBIASED, make_scene\n"
        f"scene = make_scene({SEED}, bias=UNBIASED, n_objects=2)\n"
        "ex = Explorer(load_demo_session(), scene.image, 'describe the image .', mode='efficient', regions=16)\n"
        "ex",
        "print('PYTHON SEES', ex.selection, ex.state)",
        "import json, sys\n"
        f"sys.path.insert(0, {str(BROWSER_TESTS)!r})\n"
        "from pixels import expectations\n"
        "rounds = globals().get('rounds', 0) + 1\n"
        "print('EXPECT', rounds, json.dumps(expectations(ex.result.regions.labels, ex.heatmap.values, "
        "ex.heatmap.map_style)))",
    ])))
    page = browser.new_page(viewport={"width": 1300, "height": 1100})
    errors, console = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and console.append(m.text))
    page.goto(f"{url}/lab/tree/explorer.ipynb?reset")
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=90_000)
    run_cell(page, 0)
    page.wait_for_selector(".eagle-chip", timeout=90_000)
    run_cell(page, 1)
    page.wait_for_selector(".jp-OutputArea-output:has-text('PYTHON SEES [] idle')", timeout=60_000)
    chips = page.locator(".eagle-chip")
    words = [t.strip() for t in chips.all_inner_texts()]
    assert colour in words and shape in words

    chips.nth(words.index(colour)).click()
    page.wait_for_selector(".eagle-status:has-text('Done')", timeout=90_000)
    assert page.locator(".eagle-chip.eagle-selected").count() == 1
    assert repr(" " + colour) in page.locator(".eagle-status").last.inner_text()
    points = kernel_expectations(page, 1)
    assert not mismatches(page, ".eagle-overlay", points)
    assert "; gain share" in page.locator(".eagle-legend-title").first.inner_text()
    run_cell(page, 1)
    page.wait_for_selector(f".jp-OutputArea-output:has-text('PYTHON SEES [{words.index(colour)}] done')",
                           timeout=60_000)

    # New regions: the shown map is marked out of date, and the next token's map uses the new label map.
    regions = page.locator(".widget-text:has(label:text-is('regions')) input")
    regions.fill("25")
    regions.press("Enter")
    page.wait_for_selector(".eagle-note:has-text('Out of date')", timeout=30_000)
    assert "Out of date" in page.locator(".eagle-status").last.inner_text()
    for i, word in enumerate((shape, colour), start=2):
        chips.nth(words.index(word)).click()
        page.wait_for_selector(f".eagle-status:has-text('Done'):has-text({repr(' ' + word)!r})", timeout=90_000)
        points = kernel_expectations(page, i)
        assert len(points) > 16  # the 25-region label map
        bad = mismatches(page, ".eagle-overlay", points)
        assert not bad, bad
        assert f"'{word}'" in page.locator(".eagle-auc-title").inner_text().replace("' ", "'")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)
    # The widget alone, wide enough for the views side by side (docs/explorer.png is taken from this).
    page.set_viewport_size({"width": 1500, "height": 1100})
    page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
    page.wait_for_timeout(500)
    page.locator(".jp-Cell").first.locator(".jp-OutputArea-output").first.screenshot(
        path=str(ARTIFACTS / "explorer-widget.png"))

    # Dark theme: the status, caption, legend and chart labels stay readable.
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    page.wait_for_timeout(500)
    for selector in (".eagle-status", ".eagle-caption", ".eagle-legend-title", ".eagle-curves svg text",
                     ".eagle-modality svg text", ".eagle-auc-title"):
        assert contrast(page, selector) >= 4.5, (selector, page.evaluate(CONTRAST, selector))
    page.screenshot(path=str(ARTIFACTS / "explorer-dark.png"), full_page=True)
    page.evaluate("window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Light'})")

    # A long run, cancelled from the browser: the partial map says so.
    page.locator(".widget-dropdown:has(label:text-is('mode')) select").select_option("exact")
    regions.fill("120")
    regions.press("Enter")
    chips.nth(words.index(scene.objects[1].colour)).click()
    page.wait_for_selector(".eagle-caption:has-text('running')", timeout=60_000)
    page.locator("button:has-text('Cancel')").click()
    page.wait_for_selector(".eagle-status:has-text('Cancelled')", timeout=60_000)
    assert "partial" in page.locator(".eagle-status").last.inner_text()
    page.screenshot(path=str(ARTIFACTS / "explorer-cancelled.png"), full_page=True)
    assert not errors + console, errors + console  # any console error fails, not only those naming the toolkit
    page.close()


def test_explorer_in_notebook_7(notebook7, browser, demo_session):
    url, root = notebook7
    scene = make_scene(SEED, bias=UNBIASED, n_objects=2)
    (root / "nb7.ipynb").write_text(json.dumps(notebook([
        "from eagle_widgets import Explorer, load_demo_session\n"
        "from eagle_widgets.demo import UNBIASED, make_scene\n"
        f"scene = make_scene({SEED}, bias=UNBIASED, n_objects=2)\n"
        "ex = Explorer(load_demo_session(), scene.image, 'describe the image .', regions=16)\n"
        "ex",
    ])))
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(f"{url}/notebooks/nb7.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000)
    # The indicator can say idle before the kernel is connected, and keys sent then are lost: retry.
    for _ in range(6):
        page.locator(".jp-Cell .cm-content").first.click()
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_selector(".eagle-chip", timeout=20_000)
            break
        except Exception:
            continue
    page.wait_for_selector(".eagle-chip", timeout=1_000)
    chips = page.locator(".eagle-chip")
    words = [t.strip() for t in chips.all_inner_texts()]
    before = overlay(page)
    chips.nth(words.index(scene.objects[0].colour)).click()
    page.wait_for_selector(".eagle-status:has-text('Done')", timeout=90_000)
    assert overlay(page) != before
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-notebook7.png"), full_page=True)
    page.close()
