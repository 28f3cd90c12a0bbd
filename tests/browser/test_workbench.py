"""The Explorer as a workbench in a real JupyterLab: upload an image, ask, explain, and download every export."""

import hashlib
import json

import numpy as np
import pytest
from eagle_widgets.core import load_attribution
from eagle_widgets.demo import UNBIASED, make_scene
from PIL import Image
from pixels import mismatches
from test_jupyterlab import BROWSER_TESTS, notebook, run_cell

pytestmark = pytest.mark.browser


def choose_file(page, path) -> None:
    """Pick a file in the Explorer's upload button, as a user does through the file dialog."""
    with page.expect_file_chooser(timeout=30_000) as chooser:
        page.locator(".widget-upload").first.click()
    chooser.value.set_files(str(path))


def test_upload_ask_explain_and_download(lab, browser, demo_session, tmp_path):
    url, root = lab
    second = make_scene(10 ** 6 + 33, bias=UNBIASED, n_objects=1)
    upload = tmp_path / "second.png"
    Image.fromarray(second.image).save(upload)
    (root / "workbench.ipynb").write_text(json.dumps(notebook([
        "from eagle_widgets import Explorer, load_demo_session\n"
        "from eagle_widgets.demo import UNBIASED, make_scene\n"
        f"ex = Explorer(load_demo_session(), make_scene({10 ** 6 + 21}, bias=UNBIASED).image, 'describe the image .',"
        " mode='efficient', regions=9)\n"
        "ex",
        "import hashlib\n"
        "print('KERNEL', ex.generation.prompt, '|', ex.generation.text, '|', len(ex.history), '|',"
        " hashlib.sha256(ex.generation.image.tobytes()).hexdigest()[:12])",
        "import json, sys\n"
        f"sys.path.insert(0, {str(BROWSER_TESTS)!r})\n"
        "from pixels import expectations\n"
        "view = ex.comparison.right\n"
        "own = list(ex.comparison.results[1].method_map.values)  # the baseline's own map, not a view's state\n"
        "print('EXPECT', json.dumps(expectations(ex.comparison.results[1].regions.labels, own, view.map_style)))",
    ])))
    page = browser.new_page(viewport={"width": 1300, "height": 1100}, accept_downloads=True)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.goto(f"{url}/lab/tree/workbench.ipynb?reset")
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('| Idle')", timeout=90_000)
    run_cell(page, 0)
    page.wait_for_selector(".eagle-chip", timeout=90_000)
    before = page.locator(".eagle-chip").all_inner_texts()

    # A bad file first: the widget says so and keeps the question.
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    choose_file(page, bad)
    page.locator("button:has-text('Generate')").click()
    page.wait_for_selector(".eagle-error:has-text('cannot read notes.txt as an image')", timeout=60_000)
    assert page.locator(".eagle-chip").all_inner_texts() == before

    # Upload the second scene, ask about it, Generate: the strip shows the new answer.
    choose_file(page, upload)
    prompt = page.locator(".widget-text:has(label:text-is('Ask')) input")
    prompt.fill(f"is there a {second.objects[0].shape} ?")
    prompt.press("Enter")
    page.locator("button:has-text('Generate')").click()
    page.wait_for_function("(n) => document.querySelectorAll('.eagle-chip').length !== n", arg=len(before),
                           timeout=60_000)
    run_cell(page, 1)
    digest = hashlib.sha256(np.ascontiguousarray(second.image).tobytes()).hexdigest()[:12]
    out = page.wait_for_selector(".jp-OutputArea-output:has-text('KERNEL')", timeout=60_000).inner_text()
    assert f"is there a {second.objects[0].shape} ?" in out and "| 1 |" in out and digest in out
    answer = page.locator(".eagle-chip").all_inner_texts()
    assert answer[0].strip() in ("yes", "no")

    # Explain the answer token, then download each export.
    page.locator(".eagle-chip").first.click()
    page.wait_for_selector(".eagle-status:has-text('Done')", timeout=90_000)
    # Linked hover: over the curves, the heatmap shows that step's revealed image; over a region, its step.
    area = page.locator(".eagle-curves .eagle-hover-area").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    area.hover(position={"x": 0.3 * box["width"], "y": box["height"] / 2})
    page.wait_for_selector(".eagle-step-info:has-text('first ')", timeout=30_000)
    assert page.locator(".eagle-curves .eagle-step-marker").count() == 1
    page.locator(".eagle-caption").first.hover()  # away from the curves: the map again
    page.wait_for_selector(".eagle-step-info:has-text('step 0')", timeout=30_000)
    assert page.locator(".eagle-curves .eagle-step-marker").count() == 0
    page.locator(".eagle-heatmap .eagle-overlay").first.hover()  # a region: its step marked on the curves
    page.wait_for_selector(".eagle-curves .eagle-step-marker", state="attached", timeout=30_000)
    assert "rank" in page.locator(".eagle-tip").first.inner_text()
    page.locator(".eagle-caption").first.hover()

    files = {}
    for label in ("PNG", "SVG", "HTML", "Bundle"):
        with page.expect_download(timeout=60_000) as info:
            page.locator(f"button.eagle-download:has-text('{label}')").click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        files[label] = path
    assert files["PNG"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files["PNG"].name == "explanation-0.png"
    assert b"<svg" in files["SVG"].read_bytes()
    result = load_attribution(files["Bundle"])
    assert result.context.prompt == f"is there a {second.objects[0].shape} ?" and result.complete
    # A baseline from the method menu: its map replaces EAGLE's, its curves follow.
    page.locator(".widget-dropdown:has(label:text-is('method')) select").select_option("occlusion")
    page.locator("button:has-text('Run')").click()
    page.wait_for_selector(".eagle-heatmap .eagle-caption:has-text('occlusion')", timeout=90_000)
    page.wait_for_selector(".eagle-status:has-text('Done')", timeout=60_000)
    assert page.locator(".eagle-heatmap").first.get_attribute("data-drawn") == "1"
    page.locator(".widget-dropdown:has(label:text-is('method')) select").select_option("eagle")
    page.locator("button:has-text('Run')").click()  # EAGLE's result again, from the Explorer's results
    page.wait_for_selector(".eagle-status:has-text('Shown again')", timeout=60_000)

    # Compare with a baseline: both maps drawn, the right one with the pixels of occlusion's own values.
    page.locator(".widget-dropdown:has(label:text-is('compare with')) select").select_option("occlusion")
    page.locator("button:has-text('Compare')").click()
    page.wait_for_selector(".eagle-compare-right:has-text('occlusion')", timeout=90_000)
    page.wait_for_selector(".eagle-status:has-text('Compared')", timeout=60_000)
    run_cell(page, 2)
    out = page.wait_for_selector(".jp-OutputArea-output:has-text('EXPECT')", timeout=60_000).inner_text()
    points = json.loads(out.split("EXPECT", 1)[1].strip())
    assert len(points) >= 4 and not mismatches(page, ".eagle-compare-right .eagle-overlay", points)
    assert "the most any region added" in page.locator(".eagle-compare-left").inner_text()
    assert "its own map" in page.locator(".eagle-compare-right").inner_text()
    assert "each map on its own scale" in page.locator(".eagle-compare").inner_text()

    # The page opens offline: no network, and the strip is drawn.
    offline = browser.new_page()
    requests = []
    offline.on("request", lambda r: r.url.startswith(("http:", "https:")) and requests.append(r.url))
    offline.goto(files["HTML"].as_uri())
    offline.wait_for_selector(".eagle-chip", timeout=30_000)
    assert offline.locator(".eagle-chip").count() == len(answer) and requests == []
    assert not errors, errors  # any page error fails (the "reading 'then'" one came from a trait named style)
