"""The Explorer in a real JupyterLab 4 and Notebook 7: click a token, see the heatmap change, cancel a run."""

import json

import pytest
from eagle_widgets.demo import UNBIASED, make_scene

from conftest import ARTIFACTS

pytestmark = pytest.mark.browser
SEED = 10 ** 6 + 21


def notebook(cells):
    return {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                       "source": src} for src in cells],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}


def overlay(page) -> str:
    return page.evaluate("document.querySelector('.eagle-overlay').toDataURL()")


def test_click_explain_and_cancel_in_jupyterlab(lab, browser, demo_session):
    url, root = lab
    scene = make_scene(SEED, bias=UNBIASED, n_objects=2)
    colour = scene.objects[0].colour
    (root / "explorer.ipynb").write_text(json.dumps(notebook([
        "from eagle_widgets import Explorer, load_demo_session\n"
        "from eagle_widgets.demo import UNBIASED, make_scene\n"
        f"scene = make_scene({SEED}, bias=UNBIASED, n_objects=2)\n"
        "ex = Explorer(load_demo_session(), scene.image, 'describe the image .', mode='efficient', regions=16)\n"
        "ex",
        "print('PYTHON SEES', ex.selection, ex.state)",
    ])))
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/lab/tree/explorer.ipynb?reset")
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=90_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".eagle-chip", timeout=90_000)
    page.wait_for_selector(".jp-OutputArea-output:has-text('PYTHON SEES [] idle')", timeout=60_000)
    chips = page.locator(".eagle-chip")
    words = [t.strip() for t in chips.all_inner_texts()]
    assert colour in words
    before = overlay(page)

    chips.nth(words.index(colour)).click()
    page.wait_for_selector(".eagle-status:has-text('Done')", timeout=90_000)
    assert overlay(page) != before, "the heatmap canvas did not change"
    assert page.locator(".eagle-chip.eagle-selected").count() == 1
    page.evaluate("""async () => {
        const nb = window.jupyterapp.shell.currentWidget.content;
        nb.activeCellIndex = 1;
        await window.jupyterapp.commands.execute('notebook:run-cell');
    }""")
    page.wait_for_selector(f".jp-OutputArea-output:has-text('PYTHON SEES [{words.index(colour)}] done')",
                           timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)

    # A long run, cancelled from the browser.
    page.locator(".widget-dropdown select").first.select_option("exact")
    regions = page.locator(".widget-text input").first
    regions.fill("120")
    regions.press("Enter")
    chips.nth(words.index(scene.objects[1].shape)).click()
    page.wait_for_selector(".eagle-status:has-text('regions ranked')", timeout=60_000)
    page.locator("button:has-text('Cancel')").click()
    page.wait_for_selector(".eagle-status:has-text('Cancelled')", timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "explorer-cancelled.png"), full_page=True)
    assert not [e for e in errors if "eagle" in e.lower()], errors
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
