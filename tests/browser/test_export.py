"""The exported HTML page in headless Chromium: opened from disk, no kernel, no network. The test reads what
the page drew (canvas pixels, status and legend text) and compares it with the Python results."""

import time

from eagle_widgets import Explorer
from eagle_widgets.demo import CAPTION_PROMPT, make_scene
from eagle_widgets.widgets.state import heatmap_state
from pixels import expectations, mismatches

from conftest import ARTIFACTS

SCENE = make_scene(10 ** 6 + 21, n_objects=2)


def assert_draws(page, result, encoding, style="spotlight"):
    """Every region's probe pixel has the colour and opacity the Python state gives its value."""
    points = expectations(result.regions.labels, heatmap_state(result, encoding)["values"], style)
    assert max(p["rgba"][3] for p in points) > 150  # something strong must be drawn: a blank canvas fails
    bad = mismatches(page, "#heatmap canvas.eagle-overlay", points)
    assert not bad, bad


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
        assert "; gain share" in page.locator("#heatmap .eagle-legend-title").text_content()

    # Moving the insertion step changes what is drawn, not the layout.
    height = page.evaluate("document.getElementById('heatmap').offsetHeight")
    steps = results[(second,)].num_regions
    for k in (1, steps // 2, steps, 0):
        page.evaluate("""(k) => { const s = document.querySelector('#heatmap input.eagle-step');
            s.value = k; s.dispatchEvent(new Event('input')); }""", k)
        assert page.evaluate("document.getElementById('heatmap').offsetHeight") == height, k
        assert page.locator("#curves .eagle-step-marker").count() == (1 if k else 0)  # the step, on the curves

    # The paper's normalisation, by name, from the page's own control; then the colour style.
    page.select_option("#heatmap select.eagle-encoding", "paper")
    page.wait_for_function("document.querySelector('#heatmap .eagle-legend-title').textContent.includes('; paper')")
    assert_draws(page, results[(second,)], "paper")
    page.select_option("#heatmap select.eagle-style", "colour")
    page.wait_for_function("document.querySelector('#heatmap .eagle-legend-title').textContent.startsWith('colour')")
    assert_draws(page, results[(second,)], "paper", "colour")

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
    page, errors = open_page(browser, ex.export_html(tmp_path / "inert.html"))
    assert page.locator("body").get_attribute("data-pwned") is None
    assert "__DATA__" in page.locator(".eagle-export-header").text_content()
    page.close()
    assert not errors, errors


def open_page(browser, path):
    """The exported page opened from disk, ready, with the list its page errors go to."""
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    return page, errors


def wait_until(page, expression: str, timeout: float = 15.0) -> None:
    """Poll from Python: the page's CSP forbids the eval that wait_for_function uses inside the page."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        assert time.time() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def test_exported_page_holds_the_history_every_result_and_hover(tmp_path, browser, demo_session):
    ex = Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=16)
    words = [t.strip() for t in ex.generation.tokens]
    colour = words.index(SCENE.objects[0].colour)
    ex.select(colour).wait(60)
    eagle = ex.result
    ex.method_control.value = "occlusion"
    ex.run()
    ex.wait(60)
    occlusion = ex.result
    ex.ask(prompt="is there a star ?")
    ex.heatmap.show_borders = True
    page, errors = open_page(browser, ex.export_html(tmp_path / "history.html"))
    assert page.locator("#prompt").text_content() == "is there a star ?"
    assert page.locator("#heatmap input.eagle-borders").is_checked()  # the borders setting travelled
    page.select_option("#question", "0")  # the earlier question, with both of its results
    assert page.locator("#prompt").text_content() == CAPTION_PROMPT
    page.locator("#strip .eagle-chip").nth(colour).click()
    wait_until(page, "document.getElementById('heatmap').dataset.drawn === '1'")
    options = page.locator("#result option").all_inner_texts()
    assert len(options) == 2 and options[0].startswith("eagle, efficient") and options[1].startswith("occlusion")
    assert_draws(page, occlusion, "gain")  # the latest result first: occlusion's own map
    assert "occlusion: the drop of p" in page.locator("#heatmap .eagle-legend-title").text_content()
    page.select_option("#result", page.locator("#result option").nth(0).get_attribute("value"))
    wait_until(page, "document.querySelector('#heatmap .eagle-legend-title').textContent.includes('gain share')")
    assert_draws(page, eagle, "gain")
    # Hover works offline: the curves reveal a step in the map, as in the live widget.
    box = page.locator("#curves svg").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=5)
    wait_until(page, "Number(document.querySelector('#heatmap input.eagle-step').value) > 0")
    page.mouse.move(0, 0)
    wait_until(page, "Number(document.querySelector('#heatmap input.eagle-step').value) === 0")
    page.close()
    assert not errors, errors


def test_exported_video_page_draws_every_frame_and_which_frames_matter(tmp_path, browser):
    from eagle_widgets.demo import demo_clip, load_video_demo_session

    session = load_video_demo_session(cache=False)
    ex = Explorer(session, demo_clip().video(), "is there a star ?", regions=4, mode="efficient")
    ex.regions_by.value = "grid"
    ex.select([0]).wait(120)
    page, errors = open_page(browser, ex.export_html(tmp_path / "video.html"))
    wait_until(page, "document.getElementById('heatmap').dataset.drawn === '1'")  # the exported selection
    assert_draws(page, ex.result, "gain")  # every region of every frame, on the one scale
    bars = page.locator("#frame-shares > div[title]")
    assert bars.count() == 6 and "frame 3 · 1 s" in page.locator("#frame-shares").text_content()
    width = page.evaluate("document.querySelector('#heatmap canvas').getBoundingClientRect().width")
    assert width > 600  # the frames side by side get room, not the 340 px of one image
    page.screenshot(path=str(ARTIFACTS / "export-video.png"), full_page=True)
    page.close()
    assert not errors, errors
