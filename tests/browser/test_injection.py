"""A shared manifest is data: in a real JupyterLab, clicking a dataset-browser row whose id and image path are
HTML with script handlers runs no script; the status line shows them as text."""

import json

import pytest
from test_jupyterlab import notebook, run_cell

pytestmark = pytest.mark.browser
HOSTILE_ID = '<img src=x onerror="window.__pwned_id=1">'
HOSTILE_PATH = '<img src=y onerror="window.__pwned_path=1">.png'


def test_hostile_ids_and_paths_run_no_script(lab, browser, tmp_path):
    url, root = lab
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"id": HOSTILE_ID, "image": HOSTILE_PATH, "prompt": "describe the image ."}) + "\n")
    (root / "hostile.ipynb").write_text(json.dumps(notebook([
        "from eagle_widgets.evaluation import DatasetBrowser, evaluate\n"
        f"evaluate({str(manifest)!r}, {str(tmp_path / 'run')!r}, progress=False, mode='efficient', regions=8)\n"
        f"DatasetBrowser({str(tmp_path / 'run')!r})",
    ])))
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/lab/tree/hostile.ipynb?reset")
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=90_000)
    run_cell(page, 0)
    row = page.wait_for_selector("tr.eagle-browser-error", timeout=120_000)
    row.click()
    status = page.wait_for_selector(".widget-html:has-text('error:')", timeout=30_000)
    text = status.inner_text()
    assert HOSTILE_ID in text and "no such image file" in text and "onerror" in text
    page.wait_for_timeout(500)
    assert page.evaluate("[window.__pwned_id, window.__pwned_path]") == [None, None]
    assert page.locator("img[src='x'], img[src='y']").count() == 0
    assert not errors, errors
