import copy

import numpy as np
import pytest
import torch
from eagle_widgets import ModelSession
from eagle_widgets.baselines import (
    BASELINES,
    SaliencyMap,
    UnsupportedModel,
    compare_methods,
    explain_baseline,
    rank_gaussian_filter,
)
from eagle_widgets.core import InputError, RegionSet
from eagle_widgets.models.adapters import Adapter

from conftest import FAMILIES, scene

PROMPT = "Describe the image in one sentence."


@pytest.fixture(scope="module")
def generations(sessions):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = sessions(family).generate(scene(), PROMPT, max_new_tokens=4)
        return cache[family]

    return get


def _patch_local(session) -> ModelSession:
    """A copy whose vision attention is switched off (all its weights zero): every image token then depends
    only on its own pixels, so which tokens an image change reaches shows the real token layout."""
    model = copy.deepcopy(session.model)
    with torch.no_grad():
        for name, module in model.named_modules():
            if ("vision" in name or "visual" in name) and "Attention" in type(module).__name__:
                for p in module.parameters():
                    p.zero_()
    return ModelSession(model, session.processor)


def _image_token_embeddings(session, image, prompt_text):
    inputs = session.adapter.encode([image], prompt_text)
    with torch.inference_mode():
        out = session.model(**inputs, output_hidden_states=True, logits_to_keep=1)
    return out.hidden_states[0][0, inputs["input_ids"][0] == session.image_token_id]


@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl", "internvl", "idefics3"])
def test_token_map_matches_the_tokens_a_change_reaches(family, sessions, generations):
    local = _patch_local(sessions(family))
    gen = local.generate(scene(), PROMPT, max_new_tokens=1)
    seq = local.sequence(gen, [0])
    tmap = local.token_map(gen, seq.text_inputs)
    base = _image_token_embeddings(local, gen.image, gen.prompt_text)
    assert tmap.num_tokens == base.shape[0]
    h, w = gen.image.shape[:2]
    for y, x in [(20, 25), (60, 95)]:
        changed_img = gen.image.copy()
        changed_img[y:y + 8, x:x + 8] = (0, 255, 0)
        emb = _image_token_embeddings(local, changed_img, gen.prompt_text)
        changed = set(torch.nonzero((emb - base).abs().amax(dim=1) > 1e-5).flatten().tolist())
        inside = np.zeros((h, w), bool)
        inside[y:y + 8, x:x + 8] = True
        mapped = set(np.unique(tmap.token_index[inside.ravel()[tmap.pixel_index]]).tolist())
        assert mapped and mapped <= changed
        # Every reached token sees pixels near the change (resampling spreads it by a few pixels only).
        for token in changed:
            pix = tmap.pixel_index[tmap.token_index == token]
            ys, xs = pix // w, pix % w
            assert np.min(np.hypot(ys - (y + 4), xs - (x + 4))) < 16, (family, token)


def test_demo_token_map_is_the_8x8_patch_grid(demo_session):
    from eagle_widgets.demo import CAPTION_PROMPT, make_scene

    gen = demo_session.generate(make_scene(10 ** 6 + 21, n_objects=2).image, CAPTION_PROMPT, max_new_tokens=3)
    tmap = demo_session.token_map(gen, demo_session.sequence(gen, [0]).text_inputs)
    yy, xx = np.mgrid[0:224, 0:224]
    assert tmap.grids == [(8, 8)]
    np.testing.assert_array_equal(tmap.to_pixels(np.arange(64)), (yy * 8 // 224) * 8 + xx * 8 // 224)


def _rank_gaussian_reference(img, k=3):
    out = np.zeros_like(img, dtype=np.float64)
    pad = k // 2
    p = np.pad(img.astype(np.float64), pad, mode="reflect")
    ax = np.arange(k * k) - k * k // 2
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            win = np.sort(p[i:i + k, j:j + k].ravel())
            mean = win.mean()
            if mean <= 0:
                continue
            sigma = win.std() / mean
            if sigma == 0:
                out[i, j] = win[k * k // 2]
                continue
            kern = np.exp(-ax ** 2 / (2 * sigma ** 2))
            out[i, j] = (win * kern / kern.sum()).sum()
    return out


def test_rank_gaussian_filter_equals_the_loop_reference():
    rng = np.random.default_rng(0)
    for shape in [(8, 8), (5, 7), (16, 12)]:
        grid = np.clip(rng.normal(0.3, 0.3, shape), 0, None)
        grid[0, :3] = 0.5  # equal values: sigma 0
        np.testing.assert_allclose(rank_gaussian_filter(grid), _rank_gaussian_reference(grid), atol=1e-12)


def test_occlusion_is_the_probability_drop_per_region(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    regions = RegionSet.grid(g.image, rows=2, cols=3)
    smap = explain_baseline("occlusion", s, g, [0], regions=regions)
    scorer = s.scorer(g, [0], regions)
    full = scorer(torch.ones(1, 6, dtype=torch.bool))[0, 0].item()
    for r in range(6):
        vis = torch.ones(1, 6, dtype=torch.bool)
        vis[0, r] = False
        expected = full - scorer(vis)[0, 0].item()
        assert smap.values[regions.labels == r] == pytest.approx(expected, abs=1e-6)


def test_random_order_is_seeded(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    regions = RegionSet.grid(g.image, rows=3, cols=3)
    a = explain_baseline("random", s, g, [0], regions=regions, seed=1)
    b = explain_baseline("random", s, g, [0], regions=regions, seed=1)
    c = explain_baseline("random", s, g, [0], regions=regions, seed=2)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert sorted(np.unique(a.values).round(6).tolist()) == sorted(np.linspace(0, 1, 9).round(6).tolist())


def test_tam_without_interference_is_the_logit_lens_on_image_tokens(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    smap = explain_baseline("tam", s, g, [1], interference=False, filter_size=1)
    seq = s.sequence(g, [1])
    inputs = seq.model_inputs(s.device, s.model_dtype)
    with torch.inference_mode():
        out = s.model(**inputs, output_hidden_states=True)
    image = inputs["input_ids"][0] == s.image_token_id
    with torch.inference_mode():
        logits = s.model.lm_head(out.hidden_states[-1][0, image])[:, g.token_ids[1]].double().relu().numpy()
    expected = (logits - logits.min()) / (logits.max() - logits.min())
    np.testing.assert_allclose(smap.token_values, expected, atol=1e-5)


def test_llava_cam_equals_a_hook_based_grad_cam(sessions, generations):
    s, g = sessions("qwen2_5_vl"), generations("qwen2_5_vl")
    smap = explain_baseline("llava_cam", s, g, [0, 1], layer=1)
    seq = s.sequence(g, [0, 1])
    inputs = seq.model_inputs(s.device, s.model_dtype)
    grabbed = {}
    layer = s.model.model.language_model.layers[0]
    handle = layer.register_forward_hook(lambda m, a, o: grabbed.setdefault("h", o[0] if isinstance(o, tuple) else o))
    try:
        out = s.model(**inputs)
        h = grabbed["h"]
        h.retain_grad()
        logits = out.logits[0, seq.keep]
        logits.gather(1, seq.target_ids.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
        s.model.zero_grad(set_to_none=True)
    image = inputs["input_ids"][0] == s.image_token_id
    hi, gi = h[0, image].double(), h.grad[0, image].double()
    expected = torch.relu(hi @ gi.mean(0)).detach().numpy()
    np.testing.assert_allclose(smap.token_values, expected, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_baseline_runs_on_every_family(family, sessions, generations):
    s, g = sessions(family), generations(family)
    regions = RegionSet.grid(g.image, rows=3, cols=4)
    for name in BASELINES:
        smap = explain_baseline(name, s, g, [0], regions=regions)
        assert isinstance(smap, SaliencyMap) and smap.values.shape == g.image.shape[:2]
        assert np.isfinite(smap.values).all() and smap.seconds >= 0 and smap.peak_memory_bytes >= 0


def test_compare_methods_reports_both_protocols(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    regions = RegionSet.grid(g.image, rows=2, cols=3)
    box = (0, 0, 65, 45)
    mask = np.zeros(g.image.shape[:2], bool)
    mask[:45, :65] = True
    rows = compare_methods(s, g, [0], regions=regions, mask=mask, box=box, steps=8)
    assert set(rows) == {"eagle", *BASELINES}
    for row in rows.values():
        for key in ("pixel_insertion_auc", "region_deletion_auc", "pointing_mask", "pointing_box", "seconds"):
            assert np.isfinite(row[key])
    # EAGLE's exact greedy order is the best first region by construction: no baseline's region-protocol
    # highest score beats EAGLE's insertion curve at one region.
    assert sorted(rows["eagle"]["order"]) == list(range(6))


def test_token_methods_refuse_an_unmapped_family(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    generic = ModelSession(s.model, s.processor)
    generic.adapter = Adapter(s.model, s.processor)
    gen = generic.generate(g.image, PROMPT, max_new_tokens=2)
    for name in ("tam", "llava_cam"):
        with pytest.raises(UnsupportedModel, match="image-token layout of the generic family"):
            explain_baseline(name, generic, gen, [0])
    assert explain_baseline("occlusion", generic, gen, [0], regions=4).values.shape == g.image.shape[:2]


def test_bad_baseline_requests(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    with pytest.raises(InputError, match="unknown baseline 'gradcam'"):
        explain_baseline("gradcam", s, g, [0])
    with pytest.raises(InputError, match="unknown parameter.*smooth"):
        explain_baseline("tam", s, g, [0], smooth=2)
    with pytest.raises(InputError, match="layer must be a decoder layer in 1..2"):
        explain_baseline("llava_cam", s, g, [0], layer=7)
    with pytest.raises(InputError, match="out of range"):
        explain_baseline("tam", s, g, [99])
    with pytest.raises(InputError, match="reads the model's internals, which object does not expose"):
        explain_baseline("tam", object(), g, [0])
    with pytest.raises(InputError, match="occlusion needs a session with a scorer, got object"):
        explain_baseline("occlusion", object(), g, [0])
