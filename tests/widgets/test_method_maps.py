"""Each method draws its own map: a baseline's values on a scale named for it, never EAGLE-like gains along its
order; random does not look like EAGLE."""

import numpy as np
import pytest
from eagle_widgets.core import RegionSet, load_attribution
from eagle_widgets.core.faithfulness import region_scores
from eagle_widgets.demo import CAPTION_PROMPT, UNBIASED, make_scene
from eagle_widgets.display import attribution_figure
from eagle_widgets.models.methods import saliency
from eagle_widgets.widgets.state import heatmap_state
from scipy.stats import spearmanr

METHODS = ["random", "occlusion", "llava_cam", "tam"]


@pytest.fixture(scope="module")
def case(demo_session):
    scene = make_scene(1_000_025, bias=UNBIASED)
    gen = demo_session.generate(scene.image, CAPTION_PROMPT)
    token = next(i for i, t in enumerate(gen.tokens) if t.strip() == scene.objects[0].colour)
    regions = RegionSet.slic(scene.image, n_segments=37)
    eagle = demo_session.explain(gen, tokens=[token], regions=regions, mode="exact")
    return gen, token, regions, eagle


@pytest.mark.parametrize("method", METHODS)
def test_a_baseline_draws_its_own_values(case, demo_session, method, tmp_path):
    gen, token, regions, _ = case
    result = demo_session.explain_method(gen, tokens=[token], regions=regions, method=method)
    request = demo_session.request(gen, [token], regions)
    own = region_scores(regions, saliency(method, demo_session, request))
    expected = (own - own.min()) / (own.max() - own.min())
    assert result.method_map.values == pytest.approx(list(expected))
    state = heatmap_state(result, "gain")
    assert state["values"] == pytest.approx(list(expected))
    assert state["legend"].startswith(result.method_map.scale) and method in state["caption"]
    assert heatmap_state(result, "paper")["values"] == state["values"]  # EAGLE's encodings do not apply
    # Its curves still rank regions by its own map: the order follows the values.
    ranked = np.asarray(result.method_map.values)[result.order]
    assert np.all(np.diff(ranked) <= 1e-12)
    result.save(tmp_path / "r.eagle")
    saved = load_attribution(tmp_path / "r.eagle")
    assert saved.method_map == result.method_map
    attribution_figure(result, tmp_path / "r.svg")
    assert result.method_map.scale.split(":")[0] in (tmp_path / "r.svg").read_text()


def test_random_does_not_look_like_eagle(case, demo_session):
    # Spearman's rank correlation over regions between the drawn maps: |rho| < 0.3 for the seeded random map
    # (EAGLE against occlusion, which measures the same evidence, is printed for reference).
    gen, token, regions, eagle = case
    drawn = {m: demo_session.explain_method(gen, tokens=[token], regions=regions, method=m).drawn_map()
             for m in ("random", "occlusion")}
    rho_random = spearmanr(eagle.drawn_map(), drawn["random"]).statistic
    rho_occlusion = spearmanr(eagle.drawn_map(), drawn["occlusion"]).statistic
    print(f"Spearman over {regions.n} regions: eagle~random {rho_random:.2f}, eagle~occlusion {rho_occlusion:.2f}")
    assert abs(rho_random) < 0.3
    assert rho_occlusion > rho_random
