"""The exported HTML page in headless Chromium: opened from disk, no kernel, no network."""

from eagle_widgets import Explorer
from eagle_widgets.demo import CAPTION_PROMPT, make_scene

from conftest import ARTIFACTS

SCENE = make_scene(10 ** 6 + 21, n_objects=2)


def test_exported_page_switches_explanations_offline(tmp_path, browser, demo_session):
    ex = Explorer(demo_session, SCENE.image, CAPTION_PROMPT, mode="efficient", regions=16)
    words = [t.strip() for t in ex.generation.tokens]
    first, second = words.index(SCENE.objects[0].shape), words.index(SCENE.objects[1].shape)
    for i in (first, second):
        ex.select(i)
        ex.wait(60)
    path = ex.export_html(tmp_path / "explorer.html")

    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    assert page.locator("body").get_attribute("data-explanations") == "2"
    chips = page.locator("#strip .eagle-chip")
    assert chips.count() == len(ex.generation.tokens)

    def overlay():
        return page.evaluate("document.querySelector('#heatmap canvas.eagle-overlay').toDataURL()")

    chips.nth(first).click()
    page.wait_for_function("document.getElementById('status').textContent.includes('AUC')")
    shown_first = overlay()
    chips.nth(second).click()
    page.wait_for_timeout(300)
    shown_second = overlay()
    assert shown_first != shown_second  # the heatmap switched to the other precomputed explanation
    assert repr(ex.generation.tokens[second]) in page.locator("#status").text_content()
    chips.nth(0).click()  # never explained: the page says so instead of showing a stale map
    assert "No explanation of this selection" in page.locator("#status").text_content()
    ARTIFACTS.mkdir(exist_ok=True)
    chips.nth(second).click()
    page.screenshot(path=str(ARTIFACTS / "export.png"), full_page=True)
    page.close()
    assert not errors, errors
    remote = [u for u in requests if not u.startswith(("file:", "blob:", "data:"))]
    assert not remote, remote
