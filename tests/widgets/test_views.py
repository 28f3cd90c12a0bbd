import numpy as np
import pytest
from eagle_widgets.core import EvidenceScorer, InputError, RegionSet, attribute
from eagle_widgets.widgets import CurvesView, HeatmapView, ModalityChart, TokenStrip


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
    assert "exact" in heat.caption and "'red'" in heat.caption
    with pytest.raises(InputError, match="label map is 4x4"):
        heat.set_regions(np.zeros((4, 4), int))
    heat.show_partial_order([3, 1], regions.n)
    assert heat.values[3] == 1.0 and heat.values[1] < 1.0 and heat.values[0] == 0.0
    curves = CurvesView(result)
    assert curves.insertion_auc == pytest.approx(result.insertion_auc)
    assert len(curves.insertion_tokens) == 2 and len(curves.insertion_tokens[0]) == regions.n + 1
    assert repr(curves).startswith("CurvesView(insertion_auc=")


def test_modality_chart_from_reliance():
    from eagle_widgets.models import Reliance

    rel = Reliance(tokens=["a", " red"], p_full=np.array([0.99, 0.95]), p_black=np.array([0.99, 0.1]))
    chart = ModalityChart.from_reliance(rel)
    assert chart.reliance == pytest.approx([0.0, 0.85]) and chart.p_black == pytest.approx([0.99, 0.1])
    with pytest.raises(InputError):
        chart.selection = [-1]
