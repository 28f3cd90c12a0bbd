"""In a real JupyterLab with the file browser open: Compare stays side by side at 1024 and 1440 px, its
captions wrap, and arrow keys on the insertion-step slider move the slider, not the notebook."""

import json

import pytest
from test_jupyterlab import notebook, run_cell

pytestmark = pytest.mark.browser

CELLS = [
    "from eagle_widgets import Explorer, load_demo_session\n"
    "from eagle_widgets.demo import UNBIASED, make_scene\n"
    "ex = Explorer(load_demo_session(), make_scene(1_000_025, bias=UNBIASED).image, 'describe the image .', "
    "mode='efficient', regions=16)\n"
    "ex.select([1]).wait(120)\n"
    "ex.compare(None, {'method': 'occlusion'}).wait(120)\n"
    "ex",
    "print(f'KERNEL_STEP={ex.heatmap.step}')",
]


@pytest.mark.parametrize("width", [1024, 1440])
def test_compare_side_by_side_and_keys_stay_in_the_widget(lab, browser, width):
    url, root = lab
    (root / f"layout{width}.ipynb").write_text(json.dumps(notebook(CELLS)))
    page = browser.new_page(viewport={"width": width, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{url}/lab/tree/layout{width}.ipynb?reset")
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=90_000)
    assert page.locator(".jp-FileBrowser").first.is_visible()  # the side panel is open
    run_cell(page, 0)
    page.wait_for_selector(".eagle-compare-right .eagle-caption:has-text('occlusion')", timeout=180_000)
    left = page.locator(".eagle-compare-left").first.bounding_box()
    right = page.locator(".eagle-compare-right").first.bounding_box()
    assert right["x"] >= left["x"] + left["width"] - 1 and abs(right["y"] - left["y"]) < 2, (left, right)
    for side in (".eagle-compare-left", ".eagle-compare-right"):  # captions wrap inside their column
        box = page.locator(f"{side} .widget-html").last.bounding_box()
        column = page.locator(side).first.bounding_box()
        assert box["x"] + box["width"] <= column["x"] + column["width"] + 1

    cells_before = page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex")
    slider = page.locator(".eagle-heatmap input.eagle-step").first
    assert slider.bounding_box()["width"] >= 150
    slider.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    assert slider.input_value() == "2"
    assert page.evaluate("window.jupyterapp.shell.currentWidget.content.activeCellIndex") == cells_before
    assert page.locator(".eagle-heatmap").first.is_visible()  # the cell did not collapse
    # The kernel holds the same step (the model synced); the cell is run again if the sync came after it.
    output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    text = ""
    for _ in range(5):
        run_cell(page, 1)
        page.wait_for_timeout(1500)
        text = output.first.inner_text() if output.count() else ""
        if "KERNEL_STEP=2" in text:
            break
    assert "KERNEL_STEP=2" in text, text
    assert not errors, errors
