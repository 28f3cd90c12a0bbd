import numpy as np
import pytest
from eagle_widgets.core import EvidenceScorer, InputError, ProgressUpdate, RegionSet, attribute
from eagle_widgets.display.colours import OVERLAY_OPACITY, overlay_rgba
from eagle_widgets.widgets import CurvesView, HeatmapView, ModalityChart, TokenStrip
from eagle_widgets.widgets.state import curves_state, heatmap_state, image_note, preview_state, summary


def test_strip_colours_are_normalised_and_selection_validated():
    strip = TokenStrip(["a", " red", " circle", "</s>"], reliance=[0.0, 0.8, 0.4, 0.0],
                       special=[False, False, False, True])
    assert strip.reliance == [0.0, 1.0, 0.5, 0.0]
    strip.selection = [2, 1, 2]
    assert strip.selection == [1, 2]
    with pytest.raises(InputError, match="out of range"):
        strip.selection = [4]
    assert strip.selection == [1, 2]  # a refused selection keeps the previous one
    assert repr(strip) == "TokenStrip(tokens=['a', ' red', ' circle', '</s>'], selection=[1, 2])"
    assert TokenStrip(["x", "y"], reliance=[0.3, 0.3]).reliance == [0.0, 0.0]


def test_heatmap_and_curves_show_a_result():
    image = np.full((30, 40, 3), 180, np.uint8)
    regions = RegionSet.grid((30, 40), rows=3, cols=4)
    result = attribute(EvidenceScorer(regions.n, [5, None], prior=[0.05, 0.9]), regions)
    result.token_labels = ["red", "a"]
    heat = HeatmapView(image, result)
    assert heat.width == 40 and heat.height == 30 and heat.image_png.startswith(b"\x89PNG")
    labels = np.frombuffer(heat.labels, dtype="<u2").reshape(30, 40)
    np.testing.assert_array_equal(labels, regions.labels)
    assert heat.values[5] == 1.0 and heat.order[0] == 5 and len(heat.insertion) == regions.n + 1
    assert heat.n_regions == regions.n and heat.phase == "done"
    assert "exact" in heat.caption and "'red'" in heat.caption and heat.legend.startswith("gain share")
    with pytest.raises(InputError, match="label map is 4x4"):
        heat.set_regions(np.zeros((4, 4), int))
    heat.encoding = "paper"  # re-encoded from the kept result, no recomputation
    assert heat.values == pytest.approx(list(result.region_values)) and heat.legend.startswith("paper")
    curves = CurvesView(result)
    assert curves.insertion_auc == pytest.approx(result.insertion_auc) and curves.title == "'red', 'a'"
    assert len(curves.insertion_tokens) == 2 and len(curves.insertion_tokens[0]) == regions.n + 1
    assert repr(curves).startswith("CurvesView(insertion_auc=")


def _dominant(n=16, seed=0):
    """One region carries the answer; the others only add noise to F."""
    regions = RegionSet.grid((40, 40), rows=4, cols=4)
    result = attribute(EvidenceScorer(regions.n, [6], prior=[0.02], distraction=0.05, seed=seed), regions)
    result.token_labels = [" red"]
    return regions, result


def test_a_single_dominant_region_leaves_the_background_cold():
    regions, result = _dominant()
    assert result.order[0] == 6
    gain = result.region_map("gain")
    paper = result.region_map("paper")
    background = np.delete(np.arange(regions.n), 6)
    assert gain[6] == 1.0 and gain[background].max() < 0.1  # near the cold end
    assert paper[background].max() > 0.5  # the paper's normalisation stretches the noise (why it is not default)
    state = heatmap_state(result)
    assert max(state["values"][i] for i in background) < 0.1
    # Drawn in colour, a background region is nearly transparent; in the spotlight it is dimmed almost fully,
    # while the top region keeps its own colours.
    cold = np.array(state["values"])[background]
    assert overlay_rgba(cold, "colour")[:, 3].max() < 0.1 * OVERLAY_OPACITY
    assert overlay_rgba(cold, "spotlight")[:, 3].min() > 0.9 * OVERLAY_OPACITY
    assert overlay_rgba(np.array([1.0]), "spotlight")[0, 3] == 0


def test_preview_uses_the_final_encoding_and_partial_results_say_so():
    regions, result = _dominant()
    update = ProgressUpdate(mode="exact", step=3, total_steps=regions.n, evaluations=10, total_evaluations=272,
                            elapsed_s=1.0, order=tuple(result.order[:3]), scores=tuple(result.scores[:4]))
    preview = preview_state(update, regions.n, "' red'")
    final = heatmap_state(result)
    assert preview["phase"] == "running" and "running: 3/16" in preview["caption"]
    for r in result.order[:3]:  # the ranked regions already have their final colours
        assert preview["values"][r] == pytest.approx(final["values"][r])
    partial = attribute(EvidenceScorer(regions.n, [6], prior=[0.02]), regions, cancel=_cancel_after(3))
    assert not partial.complete
    state, curves = heatmap_state(partial), curves_state(partial)
    assert state["phase"] == "partial" and "partial" in state["caption"] and "partial" in curves["partial"]
    assert "partial" in summary(partial)


def _cancel_after(steps):
    import threading

    event, calls = threading.Event(), [0]

    class Counting:
        def is_set(self):
            calls[0] += 1
            if calls[0] > steps:
                event.set()
            return event.is_set()

    return Counting()


def test_a_selection_that_ignores_the_image_gets_a_note():
    regions = RegionSet.grid((40, 40), rows=4, cols=4)
    flat = attribute(EvidenceScorer(regions.n, [None], prior=[0.9]), regions)  # a language prior
    flat.token_labels = ["."]
    assert flat.image_dependence < 0.05
    assert "barely depends on the image" in image_note(flat)
    assert "barely depends on the image" in heatmap_state(flat)["note"]
    _, used = _dominant()
    assert image_note(used) == ""


def test_stale_and_cleared_states():
    regions, result = _dominant()
    heat = HeatmapView(np.zeros((40, 40, 3), np.uint8), result)
    heat.mark_stale("the map was computed with regions 16")
    assert heat.phase == "stale" and "Out of date" in heat.note and heat.values  # kept, but marked
    heat.clear()
    assert heat.phase == "empty" and heat.values == [] and heat.note == ""


def test_modality_chart_from_reliance():
    from eagle_widgets.models import Reliance

    rel = Reliance(tokens=["a", " red"], p_full=np.array([0.99, 0.95]), p_black=np.array([0.99, 0.1]))
    chart = ModalityChart.from_reliance(rel)
    assert chart.reliance == pytest.approx([0.0, 0.85]) and chart.p_black == pytest.approx([0.99, 0.1])
    with pytest.raises(InputError):
        chart.selection = [-1]


def test_the_label_map_is_sent_once_per_region_set():
    regions, result = _dominant()
    heat = HeatmapView(np.zeros((40, 40, 3), np.uint8))
    sent = []
    heat.observe(lambda change: sent.append(change), names="labels")
    for k in (1, 2, 3):
        heat.preview(ProgressUpdate(mode="exact", step=k, total_steps=regions.n, evaluations=k, total_evaluations=272,
                                    elapsed_s=0.1, order=tuple(result.order[:k]), scores=tuple(result.scores[:k + 1])),
                     "' red'", regions)
    heat.show(result)  # the same RegionSet: nothing to resend
    assert len(sent) == 1
    heat.show(attribute(EvidenceScorer(9, [4]), RegionSet.grid((40, 40), rows=3, cols=3)))
    assert len(sent) == 2


@pytest.mark.parametrize("style", ["spotlight", "colour"])
def test_figures_and_views_draw_a_value_alike(style):
    from eagle_widgets.display.colours import overlay_pixel

    values = np.linspace(0, 1, 101)
    rgba = overlay_rgba(values, style)
    for v, (r, g, b, a) in zip(values, rgba):
        assert np.allclose([r * 255, g * 255, b * 255, a * 255], overlay_pixel(v, style), atol=0.51)
