"""Prompt attribution for every family: spans located in the model input, removal that moves nothing, scores equal to
a direct forward on the substituted input, the joint ground set equal to its reference, results that round-trip."""

import numpy as np
import pytest
import torch
from eagle_widgets.core import InputError, load_attribution
from eagle_widgets.core.spans import JointSet, PromptSpans, split_text
from eagle_widgets.models.prompt import PromptVariants

from conftest import FAMILIES, scene

PROMPT = "what color is the circle ?"


def test_prompts_split_into_words_and_sentences():
    text = "Is the circle red? Look closely.\nAnswer yes or no"
    words = [text[a:b] for a, b in split_text(text, "word")]
    assert words[:5] == ["Is", "the", "circle", "red", "?"] and "closely" in words
    assert [text[a:b] for a, b in split_text(text, "sentence")] == [
        "Is the circle red?", "Look closely.", "Answer yes or no"]
    cjk = "这是猫。 a cat"
    assert [cjk[a:b] for a, b in split_text(cjk, "word")] == ["这", "是", "猫", "。", "a", "cat"]
    assert [text[a:b] for a, b in split_text(text, "message")] == [text]
    with pytest.raises(InputError, match="word, sentence or message"):
        split_text(text, "phrase")


@pytest.fixture(scope="module")
def answered(sessions):
    cache = {}

    def get(family):
        if family not in cache:
            s = sessions(family)
            cache[family] = s, s.teacher_force(scene(), PROMPT, "red circle")
        return cache[family]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_spans_are_the_prompts_words_after_the_image(family, answered):
    s, g = answered(family)
    spans = s.prompt_spans(g, "word")
    ids = s.adapter.encode([g.image], g.prompt_text)["input_ids"][0]
    assert spans.labels == ["what", "color", "is", "the", "circle", "?"]
    image_positions = (ids == s.image_token_id).nonzero().flatten()
    for label, positions in zip(spans.labels, spans.positions):
        assert s.tokenizer.decode(ids[list(positions)]).strip() == label
        assert min(positions) > int(image_positions.max())  # never the image placeholders
    assert s.prompt_spans(g, "sentence").n == 1
    assert np.isclose(spans.area_fractions.sum(), 1.0)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("masking", ["pad", "attention"])
def test_removing_spans_moves_nothing_and_scores_as_a_direct_forward(family, masking, answered):
    s, g = answered(family)
    scorer = s.scorer(g, [0, 1], regions=None, prompt="word", masking=masking)
    seq = scorer.sequence
    masks = torch.tensor([[True] * 6, [False] * 6, [True, False, True, False, False, True]])
    rows = scorer.variants.rows(masks, "cpu")
    original = seq.text_inputs["input_ids"]
    hidden_any = torch.zeros(original.shape[1], dtype=torch.bool)
    for positions in scorer.regions.positions:
        hidden_any[list(positions)] = True
    if masking == "pad":
        ids = rows["input_ids"]
        assert ids.shape == (3, original.shape[1])  # lengths never change
        assert torch.equal(ids[:, ~hidden_any], original.expand(3, -1)[:, ~hidden_any])  # image, template, answer
        assert (ids[1, hidden_any] == scorer.variants.replacement).all() and torch.equal(ids[0], original[0])
    else:
        mask = rows["attention_mask"]
        assert (mask[1, hidden_any] == 0).all() and (mask[:, ~hidden_any] == 1).all()
    if "image_grid_thw" in seq.text_inputs:  # Qwen: the multimodal rotary positions are those of the full input
        inner = s.model.model
        extra = {k: seq.text_inputs[k] for k in ("mm_token_type_ids",) if k in seq.text_inputs}
        full, _ = inner.get_rope_index(original, image_grid_thw=seq.text_inputs["image_grid_thw"],
                                       attention_mask=torch.ones_like(original), **extra)
        assert torch.equal(scorer.fixed_inputs["position_ids"][0].cpu(), full)
        if masking == "pad":
            masked, _ = inner.get_rope_index(rows["input_ids"][1:2], image_grid_thw=seq.text_inputs[
                "image_grid_thw"], attention_mask=torch.ones_like(original), **extra)
            assert torch.equal(masked, full)
    got = scorer(masks)
    # The same probabilities from one plain forward per mask on the substituted input, the real image.
    for b in range(3):
        inputs = seq.model_inputs("cpu", s.model_dtype)
        inputs.update({k: v[b:b + 1] for k, v in rows.items()})
        with torch.inference_mode():
            logits = s.model(**inputs, **{k: v for k, (v, _) in scorer.fixed_inputs.items()}).logits[0]
        logp = torch.log_softmax(logits.float(), -1)
        want = torch.stack([logp[seq.prompt_len + t - 1, tid].exp() for t, tid in zip(seq.targets, seq.target_ids)])
        assert torch.allclose(got[b], want, atol=1e-5), (family, b)


@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl", "smolvlm"])
def test_the_joint_ground_set_equals_its_reference(family, answered):
    s, g = answered(family)
    fast = s.scorer(g, [0], regions=4, prompt="word")
    reference = s.scorer(g, [0], regions=4, prompt="word", path="reference")
    assert isinstance(fast.regions, JointSet) and fast.regions.n == 4 + 6
    masks = torch.from_numpy(np.random.default_rng(0).random((5, 10)) < 0.5)
    masks[0] = True
    assert torch.allclose(fast(masks), reference(masks), atol=1e-4)
    # all image regions visible = the prompt scorer; all spans visible = the image scorer
    prompt_only = s.scorer(g, [0], regions=None, prompt="word")
    image_only = s.scorer(g, [0], regions=4, path="reference")
    assert torch.allclose(fast(torch.cat([torch.ones(5, 4, dtype=torch.bool), masks[:, 4:]], 1)),
                          prompt_only(masks[:, 4:]), atol=1e-4)
    assert torch.allclose(fast(torch.cat([masks[:, :4], torch.ones(5, 6, dtype=torch.bool)], 1)),
                          image_only(masks[:, :4]), atol=1e-4)


def test_the_joint_split_adds_up_to_the_answers_probability(answered):
    s, g = answered("llava")
    joint = s.explain(g, [0], regions=4, prompt="message", mode="exact")
    assert joint.prompt_spans.n == 1 and joint.num_regions == 5
    split = joint.reliance_split()
    assert np.isclose(split["prior"] + split["image"] + split["prompt"], split["total"])
    assert np.isclose(split["total"], joint.p_full.mean()) and np.isclose(split["prior"], joint.insertion[0])
    image_only = s.explain(g, [0], regions=4, mode="exact").reliance_split()
    assert image_only["prompt"] == 0.0 and np.isclose(image_only["prior"] + image_only["image"], image_only["total"])


def test_prompt_and_joint_results_round_trip(answered, tmp_path):
    s, g = answered("llava")
    for regions in (None, 4):
        result = s.explain(g, [0], regions=regions, prompt="word", mode="exact")
        assert result.kind == ("prompt" if regions is None else "joint") and result.complete
        assert np.isclose(result.areas[-1], 1.0) and len(result.order) == result.num_regions
        assert result.context.scoring["span_removal"].startswith("tokens replaced by the pad token")
        result.save(tmp_path / "r.eagle")
        back = load_attribution(tmp_path / "r.eagle")
        assert back.kind == result.kind and back.order == result.order
        assert back.prompt_spans.to_dict() == result.prompt_spans.to_dict()
        assert np.allclose(back.span_values(), result.span_values())
        if regions is None:
            assert result.image_regions is None and result.image_values() is None
            with pytest.raises(InputError, match="prompt spans only"):
                result.pixel_map()
        else:
            assert back.image_regions == result.image_regions and result.image_values().shape == (4,)


def test_bad_prompt_requests_are_named(answered):
    s, g = answered("llava")
    with pytest.raises(InputError, match="nothing to explain over"):
        s.request(g, [0], regions=None)
    with pytest.raises(InputError, match="masking must be 'pad' or 'attention'"):
        s.request(g, [0], regions=None, prompt="word", masking="delete")
    with pytest.raises(InputError, match="prompt spans are word, sentence or message"):
        s.request(g, [0], regions=None, prompt="clause")
    with pytest.raises(InputError, match="share a token"):
        PromptSpans("ab", "word", ((0, 1), (1, 2)), ((5,), (5,)))
    with pytest.raises(InputError, match="do not belong to this input"):
        PromptVariants(PromptSpans("ab", "word", ((0, 2),), ((10_000,),)),
                       {"input_ids": torch.zeros(1, 5, dtype=torch.long)}, "pad", s.tokenizer)


@pytest.fixture(scope="module")
def demo_answer(demo_session):
    from eagle_widgets.demo import UNBIASED, make_scene

    scene = make_scene(1_000_025, bias=UNBIASED)
    return demo_session, scene, demo_session.generate(scene.image, "what color is the circle ?", max_new_tokens=2)


def test_the_demo_model_relies_on_the_shape_word_and_beats_random(demo_answer):
    from eagle_widgets.baselines.compare import compare_prompt_methods

    session, _, gen = demo_answer
    results = compare_prompt_methods(session, gen, [0], granularity="word")
    eagle, random = results["eagle"], results["random"]
    assert eagle.prompt_spans.labels[eagle.order[0]] == "circle"  # the word that decides which colour
    assert eagle.insertion_auc > random.insertion_auc and eagle.deletion_auc < random.deletion_auc
    assert results["occlusion"].mode == "occlusion" and results["occlusion"].kind == "prompt"


def test_the_explorer_and_export_show_the_prompt_strip(demo_answer, tmp_path):
    from eagle_widgets.widgets import Explorer

    session, scene, _ = demo_answer
    explorer = Explorer(session, scene.image, "what color is the circle ?", regions=9, mode="exact")
    assert explorer.over_control.options == ("image", "prompt", "image + prompt")
    explorer.over_control.value = "prompt"
    explorer.select([0]).wait()
    assert explorer.state == "done" and explorer.result.kind == "prompt"
    assert "eagle-prompt-span" in explorer.prompt_strip.value and "circle" in explorer.prompt_strip.value
    assert explorer.curves.x_label == "fraction of the prompt's tokens inserted or deleted"
    assert "image fully visible" in explorer.heatmap.caption and not explorer.heatmap.values
    explorer.over_control.value = "image + prompt"
    explorer.run()
    explorer.wait()
    assert explorer.result.kind == "joint" and len(explorer.heatmap.values) == explorer.result.image_regions.n
    assert "joint extension" in explorer.prompt_strip.value
    explorer.method_control.value = "occlusion"
    explorer.run()
    explorer.wait()
    assert explorer.state == "error" and "maps the image only" in explorer.status.value
    page = explorer.export_html(tmp_path / "prompt.html").read_text()
    assert 'id="prompt-strip"' in page and "drawPrompt" in page and "relies on the prompt" in page


def test_the_cli_and_evaluate_carry_prompt_results(demo_answer, tmp_path):
    import csv
    import json

    from eagle_widgets.cli import main
    from PIL import Image

    _, scene, _ = demo_answer
    Image.fromarray(scene.image).save(tmp_path / "scene.png")
    assert main(["explain", "--image", str(tmp_path / "scene.png"), "--prompt", "what color is the circle ?",
                 "--regions", "0", "--prompt-spans", "word", "--mode", "exact", "--tokens", "0",
                 "--out", str(tmp_path / "out")]) == 0
    assert load_attribution(tmp_path / "out" / "attribution.eagle").kind == "prompt"
    assert main(["explain", "--image", str(tmp_path / "scene.png"), "--prompt", "what color is the circle ?",
                 "--regions", "0", "--out", str(tmp_path / "o2")]) == 2
    (tmp_path / "m.jsonl").write_text(json.dumps({"id": "q", "image": "scene.png", "prompt": "what color is the "
                                                  "circle ?", "tokens": [0], "box": [0, 0, 10, 10]}))
    assert main(["evaluate", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "run"), "--regions", "6",
                 "--prompt-spans", "word"]) == 0
    row = next(csv.DictReader((tmp_path / "run" / "results.csv").open()))
    assert row["status"] == "ok" and row["n_regions"] == str(load_attribution(
        next((tmp_path / "run").rglob("*.eagle"))).num_regions)


def test_a_stored_prompt_result_opens_in_the_explorer_as_computed(demo_answer, tmp_path):
    from eagle_widgets.widgets import Explorer

    session, scene, gen = demo_answer
    stored = session.explain(gen, [0], regions=9, prompt="sentence", mode="exact")
    stored.save(tmp_path / "joint.eagle")
    explorer = Explorer(session, scene.image, "what color is the circle ?", regions=9, mode="exact")
    explorer.show_result(load_attribution(tmp_path / "joint.eagle"), 9)
    assert explorer.over_control.value == "image + prompt" and explorer.spans_control.value == "sentence"
    assert explorer.state == "done" and explorer.result.kind == "joint" and "Shown again" in explorer.status.value


@pytest.mark.parametrize("mode", ["efficient", "early_stop"])
def test_every_search_mode_orders_prompt_and_joint_elements(mode, demo_answer):
    session, _, gen = demo_answer
    for regions in (None, 9):
        result = session.explain(gen, [0], regions=regions, prompt="word", mode=mode, use_cache=False)
        assert result.complete and sorted(result.order) == list(range(result.num_regions))
        assert result.mode == mode and np.isclose(result.areas[-1], 1.0)
    words = session.explain(gen, [0], regions=None, prompt="word", mode=mode, use_cache=False)
    assert words.prompt_spans.labels[words.order[0]] == "circle"
