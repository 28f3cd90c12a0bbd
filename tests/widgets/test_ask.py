"""Asking in the widget: a new image or question refreshes the views; earlier questions stay reachable."""

import datetime
import html
import io
import re

import numpy as np
import pytest
from eagle_widgets import Explorer
from eagle_widgets.core import InputError
from eagle_widgets.demo import CAPTION_PROMPT, UNBIASED, make_scene, presence_prompt
from PIL import Image


@pytest.fixture
def explorer(demo_session):
    return Explorer(demo_session, make_scene(1_000_025, bias=UNBIASED).image, CAPTION_PROMPT, regions=9)


def _upload(name: str, data: bytes) -> tuple:
    """What the FileUpload widget holds after the user picks a file."""
    return ({"name": name, "type": "", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime.now()},)


def _png(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_ask_switches_question_and_keeps_the_earlier_one(explorer):
    first = explorer.generation
    explorer.select([1]).wait(60)
    explained = explorer.result
    scene = make_scene(7, bias=UNBIASED)
    explorer.ask(scene.image, presence_prompt(scene.objects[0].shape))
    assert explorer.generation is not first and explorer.generation.tokens[0].strip() in ("yes", "no")
    assert explorer.strip.tokens == explorer.generation.tokens and explorer.chart.tokens == explorer.strip.tokens
    assert explorer.selection == [] and explorer.result is None and explorer.heatmap.phase == "empty"
    assert explorer.heatmap.width == 224 and "is there a" in explorer.header.value
    assert [q.generation for q in explorer.history] == [first]
    explorer.revisit(0)  # back to the first question: its explanation comes back without a run
    assert explorer.generation is first and explorer.strip.tokens == first.tokens
    explorer.select([1])
    assert explorer.state == "done" and explorer.result is explained and "Shown again" in explorer.status.value


def test_the_widget_generates_from_an_upload_and_a_typed_question(explorer):
    scene = make_scene(11, bias=UNBIASED)
    explorer.upload.value = _upload("scene.png", _png(scene.image))
    explorer.prompt_control.value = CAPTION_PROMPT
    explorer.generate_button.click()
    assert np.array_equal(explorer.generation.image, scene.image) and len(explorer.history) == 1
    assert explorer.history_control.options and explorer.upload.value == ()
    explorer.history_control.value = 0  # picking an earlier question goes back to it
    assert np.array_equal(explorer.generation.image, make_scene(1_000_025, bias=UNBIASED).image)


def test_bad_files_and_prompts_are_said_in_the_widget(explorer):
    before = explorer.generation
    explorer.upload.value = _upload("notes.txt", b"hello")
    explorer.generate_button.click()
    assert "cannot read notes.txt as an image" in explorer.status.value and "eagle-error" in explorer.status.value
    explorer.upload.value = ()
    explorer.prompt_control.value = "   "
    explorer.generate_button.click()
    assert "prompt must be a non-empty string" in explorer.status.value
    assert explorer.generation is before and explorer.history == []  # nothing earlier is lost
    with pytest.raises(InputError, match="no earlier question"):
        explorer.revisit(0)


def test_export_buttons_deliver_the_files(explorer, tmp_path):
    from eagle_widgets.core import load_attribution

    sent = []
    explorer.downloads.send = lambda content, buffers=None: sent.append((content, buffers))
    explorer.downloads.deliver("bundle")  # nothing shown yet: said beside the buttons, no file
    assert sent[-1][0] == {"type": "error", "message": "no explanation is shown yet: select tokens first"}
    explorer.select([1]).wait(60)
    files = {}
    for what, _label, _tip in explorer.downloads.formats:
        explorer.downloads._on_message(None, {"type": "download", "what": what}, [])  # what a click sends
        content, buffers = sent[-1]
        assert content["type"] == "file"
        files[what] = (content["name"], bytes(buffers[0]))
    assert files["png"][0] == "explanation-1.png" and files["png"][1][:8] == b"\x89PNG\r\n\x1a\n"
    assert files["svg"][1].lstrip().startswith(b"<?xml") and b"<svg" in files["svg"][1]
    assert b"<html" in files["html"][1] and b"http://" not in files["html"][1].replace(b"http://www.w3.org", b"")
    (tmp_path / files["bundle"][0]).write_bytes(files["bundle"][1])
    loaded = load_attribution(tmp_path / files["bundle"][0])
    assert loaded.order == explorer.result.order and loaded.context.targets == (1,)


def test_a_baseline_from_the_method_menu_is_drawn_and_scored_like_eagle(explorer, demo_session):
    assert {"eagle", "occlusion", "random"} <= set(explorer.method_control.options)
    explorer.select([1]).wait(60)
    eagle = explorer.result
    explorer.method_control.value = "occlusion"  # the shown EAGLE map is now out of date
    assert explorer.heatmap.phase == "stale"
    explorer.run()
    occlusion = explorer.wait(60)
    assert occlusion.mode == "occlusion" and occlusion.complete and explorer.heatmap.phase == "done"
    assert occlusion.regions is eagle.regions and occlusion.context.targets == (1,)
    assert len(explorer.heatmap.values) == occlusion.num_regions and explorer.curves.insertion
    direct = demo_session.explain_method(explorer.generation, [1], 9, method="occlusion")
    assert direct.order == occlusion.order and direct.insertion_auc == pytest.approx(occlusion.insertion_auc)
    explorer.method_control.value = "eagle"
    explorer.run()  # back to EAGLE: served from the Explorer's results, not recomputed
    assert explorer.result is eagle
    with pytest.raises(InputError, match="unknown method 'gradcam'"):
        demo_session.explain_method(explorer.generation, [1], 9, method="gradcam")


def test_compare_draws_each_map_on_an_honest_scale(explorer):
    explorer.select([1]).wait(60)
    eagle = explorer.result
    explorer.compare_control.value = "occlusion"
    explorer.compare_button.click()
    explorer.wait(60)
    left, right = explorer.comparison.results
    assert left is eagle and right.mode == "occlusion" and explorer.state == "done"
    # EAGLE draws its gains (its own largest = 1), occlusion its own drops; the title says they do not compare.
    gains = np.clip(np.diff(left.scores) / np.diff(left.scores).max(), 0, 1)
    assert explorer.comparison.left.values == pytest.approx([float(gains[list(left.order).index(i)])
                                                             for i in range(left.num_regions)])
    assert explorer.comparison.right.values == pytest.approx(list(right.method_map.values))
    assert "occlusion: the drop of p" in explorer.comparison.right.legend
    assert "each map on its own scale" in explorer.comparison.title.value
    assert "insertion AUC" in explorer.comparison.right_caption.value
    # Two EAGLE maps share one scale: 1 = the largest gain in either.
    explorer.compare({"selection": [1]}, {"selection": [2], "method": "eagle"}).wait(60)
    one, two = explorer.comparison.results
    assert [one.context.targets, two.context.targets] == [(1,), (2,)]
    scale = max(float(np.diff(r.scores).max()) for r in (one, two))
    for view, result in ((explorer.comparison.left, one), (explorer.comparison.right, two)):
        gains = np.clip(np.diff(result.scores) / scale, 0, 1)
        assert view.values == pytest.approx([float(gains[list(result.order).index(i)]) for i in
                                             range(result.num_regions)])
        assert "one scale for the maps compared" in view.legend
    assert "on one colour scale" in explorer.comparison.title.value
    with pytest.raises(InputError, match="unknown method"):
        explorer.compare(None, {"method": "gradcam"})
    with pytest.raises(InputError, match="takes selection and method"):
        explorer.compare(None, {"regions": 4})


def test_linked_hover(explorer):
    explorer.select([1, 2]).wait(60)
    result = explorer.result
    explorer.curves.hover_step = 3  # the pointer over the curves at step 3
    assert explorer.heatmap.step == 3 and explorer.curves.step == 3  # that step's regions revealed, marked
    explorer.curves.hover_step = -1
    assert explorer.heatmap.step == 0  # the map again
    region = result.order[4]
    explorer.heatmap.hover_region = region  # the pointer over a region: its step on the curves
    assert explorer.curves.step == 5 and explorer.heatmap.step == 0
    explorer.heatmap.hover_region = -1
    assert explorer.curves.step == 0
    explorer.strip.hover = 2  # a token of the selection: its own insertion curve
    assert explorer.curves.highlight == 1
    explorer.strip.hover = 0  # a token outside it
    assert explorer.curves.highlight == -1


def test_regions_by_grid_and_given_masks(explorer):
    explorer.regions_by.value = "grid"
    explorer.regions_control.value = 16
    explorer.select([1]).wait(60)
    assert explorer.result.num_regions == 16 and explorer.result.regions.method.startswith("grid")
    h, w = explorer.generation.image.shape[:2]
    labels = np.zeros((h, w), dtype=np.int64)
    labels[:, w // 2:] = 1
    labels[h // 2:, :] = 2  # three given regions, as a segmentation model would give them
    explorer.use_regions(labels)
    assert explorer.regions_by.value == "given" and "given" in explorer.regions_by.options
    explorer.run()
    given = explorer.wait(60)
    assert given.num_regions == 3 and np.array_equal(given.regions.labels, labels)
    assert len(explorer.heatmap.values) == 3
    with pytest.raises(InputError, match="the regions are 3x3 but the image is"):
        explorer.use_regions(np.zeros((3, 3), dtype=int))
    explorer.ask(make_scene(99, bias=UNBIASED, size=160).image)  # another image: its own regions again
    assert explorer.regions_by.options == ("slico", "grid")


def test_a_huge_upload_is_refused_in_the_widget(explorer):
    import struct
    import zlib

    png = bytearray(_png(np.zeros((2, 2, 3), np.uint8)))
    ihdr = bytearray(png[16:29])  # width, height, depth, colour type, ...: claim 30000 x 30000 pixels
    ihdr[0:8] = struct.pack(">II", 30000, 30000)
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    explorer.upload.value = _upload("huge.png", bytes(png))
    explorer.generate_button.click()
    assert "huge.png is too large to decode safely" in explorer.status.value and explorer.history == []


@pytest.mark.parametrize("answer, message", [([True, 5], "a token is an id"), ([1.5], "a token is an id"),
                                             (["x", None], "a token is an id")])
def test_given_answers_are_ids_or_text_only(explorer, answer, message):
    before = explorer.generation
    with pytest.raises(InputError, match=message):
        explorer.ask(answer=answer)
    assert explorer.generation is before  # nothing earlier is lost


def test_an_answer_holding_the_image_placeholder_is_refused(explorer, demo_session):
    with pytest.raises(InputError, match="image placeholder"):
        explorer.ask(answer=[demo_session.image_token_id])


def test_compare_sides_are_checked_in_words(explorer):
    explorer.select([1]).wait(60)
    with pytest.raises(InputError, match="takes selection and method; got 1"):
        explorer.compare({1: 2})
    with pytest.raises(InputError, match="a compared side is a dict"):
        explorer.compare(["selection"])


def test_a_typed_region_count_out_of_range_is_said_not_clamped(explorer):
    explorer.regions_control.value = 5000
    assert explorer.regions_control.value == 9 and "regions" in explorer.status.value and "5000" in \
        explorer.status.value
    explorer.regions_control.value = 1
    assert explorer.regions_control.value == 9 and "kept 9" in explorer.status.value


def test_direction_controls_in_a_prompt_cannot_reorder_the_header(explorer, tmp_path):
    explorer.ask(prompt="describe \u202ethe image .")
    assert "<bdi>describe \u202ethe image .</bdi>" in explorer.header.value
    page = explorer.export_html(tmp_path / "e.html").read_text()
    assert '<bdi id="prompt">describe \u202ethe image .</bdi>' in page
    assert "\u202e" not in page.split("<title>")[1].split("</title>")[0]


def shown(html_text: str) -> str:
    """What a person reads in an HTML widget: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def test_the_comparison_follows_the_selection_or_says_it_is_out_of_date(explorer):
    explorer.select([1]).wait(60)
    explorer.compare(None, {"method": "occlusion"}).wait(60)
    assert "Out of date" not in shown(explorer.comparison.title.value)
    explorer.select([2]).wait(60)
    assert "Out of date: the selection is now" in shown(explorer.comparison.title.value)
    assert explorer.comparison.left.phase == "stale" and explorer.comparison.right.phase == "stale"
    explorer.select([1]).wait(60)  # back to what was compared
    assert "Out of date" not in shown(explorer.comparison.title.value)
    explorer.mode_control.value = "exact"
    assert "the settings changed (mode 'efficient' → 'exact')" in shown(explorer.comparison.title.value)
    assert explorer.progress.bar_style == "warning"


def test_one_side_in_another_encoding_retitles_the_comparison(explorer):
    explorer.select([1]).wait(60)
    explorer.compare({"selection": [1]}, {"selection": [2]}).wait(60)
    assert "on one colour scale" in shown(explorer.comparison.title.value)
    explorer.comparison.right.encoding = "paper"
    assert "one in gain share, one in the paper's normalisation" in shown(explorer.comparison.title.value)
    assert "one scale for the maps compared" not in explorer.comparison.left.legend


def test_a_non_image_upload_is_named_by_its_file_not_a_buffer(explorer):
    explorer.upload.value = _upload("notes.txt", b"just some text")
    explorer.generate_button.click()
    assert "cannot read notes.txt as an image" in explorer.status.value and "BytesIO" not in explorer.status.value


def test_a_language_prior_token_gets_a_note_on_its_map(explorer):
    words = [t.strip() for t in explorer.generation.tokens]
    period = words.index(".")
    delta = explorer.reliance.p_full[period] - explorer.reliance.p_black[period]
    assert delta <= 0.2  # the strip marks the full stop as a language prior
    explorer.select([period]).wait(60)
    assert "language prior" in explorer.heatmap.note or "barely depends on the image" in explorer.heatmap.note
