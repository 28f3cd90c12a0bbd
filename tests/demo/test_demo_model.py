"""The shipped demo model: it loads offline through load_session and behaves as its model card says."""

import numpy as np
import pytest
from eagle_widgets import load_demo_session
from eagle_widgets.demo import CAPTION_PROMPT, UNBIASED, WEIGHTS, colour_prompt, make_scene, presence_prompt

pytestmark = pytest.mark.skipif(not (WEIGHTS / "model.safetensors").exists(), reason="demo weights not built")
HELD_OUT = 10 ** 6


@pytest.fixture(scope="module")
def session():
    return load_demo_session()


def test_loads_as_a_real_llava(session):
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    assert isinstance(session.model, LlavaForConditionalGeneration)
    assert isinstance(session.processor, LlavaProcessor)
    assert sum(p.numel() for p in session.model.parameters()) < 2_000_000


def test_captions_and_answers_on_held_out_scenes(session):
    scenes = [make_scene(HELD_OUT + i, bias=UNBIASED) for i in range(12)]
    captions = [session.generate(s.image, CAPTION_PROMPT, max_new_tokens=24).text for s in scenes]
    assert np.mean([c.replace(".", " .").split() == s.caption.split() for c, s in zip(captions, scenes)]) >= 0.75
    s = scenes[0]
    shape = s.objects[0].shape
    assert session.generate(s.image, presence_prompt(shape), 3).text == "yes"
    assert session.generate(s.image, colour_prompt(shape), 3).text == s.objects[0].colour


def test_prompts_are_case_and_whitespace_insensitive(session):
    s = make_scene(HELD_OUT + 3, bias=UNBIASED)
    a = session.generate(s.image, CAPTION_PROMPT).token_ids
    b = session.generate(s.image, "  Describe   the IMAGE. ").token_ids
    assert a == b
    assert len(session.generate(s.image, "tell me a story").token_ids) >= 1  # anything still gets an answer


def test_colour_and_shape_words_rely_on_the_image(session):
    # Averaged over scenes: on a black image one colour (purple, the darkest) keeps its probability.
    drops = {"colour": [], "shape": [], "a": []}
    for k in range(6):
        s = make_scene(HELD_OUT + 5 + k, bias=UNBIASED, n_objects=1)
        gen = session.generate(s.image, CAPTION_PROMPT)
        rel = session.reliance(gen)
        words = [t.strip() for t in gen.tokens]
        for kind, word in (("colour", s.objects[0].colour), ("shape", s.objects[0].shape), ("a", "a")):
            i = words.index(word)
            drops[kind].append(rel.p_full[i] - rel.p_black[i])
    assert np.mean(drops["colour"]) > 0.5 and np.mean(drops["shape"]) > 0.8
    assert np.mean(drops["a"]) < 0.1


def test_word_level_attribution_points_at_the_object(session):
    s = make_scene(HELD_OUT + 11, bias=UNBIASED, n_objects=2)
    gen = session.generate(s.image, CAPTION_PROMPT)
    words = [t.strip() for t in gen.tokens]
    target = s.objects[1]
    result = session.explain(gen, tokens=[len(words) - 1 - words[::-1].index(target.shape)], regions=26)
    assert result.pointing_game(mask=target.mask)


@pytest.mark.slow
@pytest.mark.parametrize("level", ["word", "sentence"])
def test_fast_and_published_paths_give_the_same_explanation_on_the_demo_scenes(session, level):
    # The demo scenes are 224 px and the model reads 128 px: the default path must still be the method's.
    from eagle_widgets.core import RegionSet

    scene = make_scene(1_000_025)
    gen = session.generate(scene.image, CAPTION_PROMPT, max_new_tokens=24)
    words = [i for i, t in enumerate(gen.tokens) if t.strip() in ("circle", "cross", "star", "square", "triangle",
                                                                   "moon")]
    tokens = words[:1] if level == "word" else None
    regions = RegionSet.slic(scene.image, n_segments=21)  # 20 regions: 420 masked images per path
    fast = session.explain(gen, tokens=tokens, regions=regions, mode="exact")
    published = session.explain(gen, tokens=tokens, regions=regions, mode="exact", path="reference")
    assert fast.context.scoring["max_level_error"] == 0.0  # an exact composer, in either image backend
    assert fast.order == published.order
    np.testing.assert_allclose(fast.insertion, published.insertion, atol=1e-5)
    np.testing.assert_allclose(fast.deletion, published.deletion, atol=1e-5)
