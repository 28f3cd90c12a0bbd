"""What a real server cannot be made to do, through in-process fakes of its fields: refusals with clear errors,
retries, timeouts, bounded concurrency, cancel; the SGLang schema scored by a real model; the top-k approximation."""

import math
import threading

import numpy as np
import pytest
import torch
from eagle_widgets.core import InputError
from eagle_widgets.served import ApproximateScoring, ServedSession, ServerError

from served.fake_servers import FakeOpenAI, FakeSGLang, FakeVLLM
from tiny_models import photo

IMAGE = photo(60, 80)
PROMPT = "what color is the circle ?"


def session(fake, **options):
    return ServedSession("http://fake:8000/v1", transport=fake.transport(), cache=False, backoff_s=0.0, **options)


def test_vllm_scores_are_read_at_the_answer_positions():
    s = session(FakeVLLM())
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    assert g.token_ids == [1, 2, 3] and g.tokens == ["a", " red", " circle"]
    p = s.scorer(g, regions=4)(torch.ones(2, 4, dtype=torch.bool))
    # prompt: 4 text + 6 image tokens, then the answer at positions 10..12, each with log p = -1 - (position-1)/10
    expected = [math.exp(-1 - (9 + j) / 10) for j in range(3)]
    assert torch.allclose(p, torch.tensor([expected, expected]), atol=1e-6)


@pytest.mark.parametrize("fake, match", [
    (FakeVLLM(drift=True), "tokenises the answer to other ids than the answer's"),
    (FakeVLLM(drop_image=True), "dropped the image: the prompt with it is 7 tokens, without it 7"),
    (FakeVLLM(omit=["prompt_logprobs"]), "returns no prompt log-probabilities.*no 'prompt_logprobs'"),
    (FakeVLLM(omit=["prompt_token_ids"]), "return_token_ids.*no 'prompt_token_ids'"),
    (FakeVLLM(nonsense=True), "answered something that is not JSON: '<html>gateway</html>'"),
])
def test_a_server_that_misbehaves_is_refused_by_name(fake, match):
    s = session(fake)
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    with pytest.raises(ServerError, match=match):
        s.explain(g, regions=4)


def test_overload_is_retried_and_persistent_failure_named():
    fake = FakeVLLM(fail=429, fail_times=2)
    s = session(fake, retries=3)
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    assert s.reliance(g).p_full.shape == (3,)
    assert s.client.retried == 2
    s = session(FakeVLLM(fail=500, fail_times=10**6), retries=1)
    with pytest.raises(ServerError, match=r"/v1/chat/completions failed after 2 tries: HTTP 500: busy"):
        s.reliance(s.teacher_force(IMAGE, PROMPT, "a red circle"))
    s = session(FakeVLLM(fail="timeout", fail_times=10**6), retries=1, timeout_s=5)
    with pytest.raises(ServerError, match=r"failed after 2 tries: no answer within 5 s"):
        s.reliance(s.teacher_force(IMAGE, PROMPT, "a red circle"))


def test_refusals_are_not_retried():
    import httpx

    calls = []

    def handler(request):
        calls.append(request.url.path)
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": "0.32.0"})
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "tiny"}]})
        return httpx.Response(400, json={"error": {"message": "max_tokens=5000 cannot be greater than 1024"}})

    s = ServedSession("http://fake/v1", transport=httpx.MockTransport(handler), cache=False)
    with pytest.raises(ServerError, match=r"refused the request \(HTTP 400\): max_tokens=5000 cannot"):
        s.generate(IMAGE, PROMPT, 5000)
    assert calls.count("/v1/chat/completions") == 1


def test_the_server_and_model_are_checked_when_the_session_opens():
    with pytest.raises(InputError, match="does not serve 'other'; it serves tiny"):
        session(FakeVLLM(), model="other")
    with pytest.raises(ServerError, match="cannot connect"):
        ServedSession("http://127.0.0.1:9/v1", retries=0, cache=False)
    with pytest.raises(InputError, match="starts with http:// or https://"):
        ServedSession("127.0.0.1:8000", cache=False)
    with pytest.raises(InputError, match="api must be"):
        session(FakeVLLM(), api="ollama")


def test_bad_input_is_named():
    s = session(FakeVLLM())
    with pytest.raises(InputError, match="prompt must be a non-empty string"):
        s.generate(IMAGE, "  ")
    with pytest.raises(InputError, match="max_new_tokens"):
        s.generate(IMAGE, PROMPT, 0)
    with pytest.raises(InputError):
        s.generate("not an image", PROMPT)
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    with pytest.raises(InputError, match="out of range"):
        s.explain(g, tokens=[7], regions=4)
    with pytest.raises(InputError, match="given answer must be non-empty text"):
        s.teacher_force(IMAGE, PROMPT, "")


def test_requests_in_flight_are_bounded_and_a_cancel_stops_them():
    fake = FakeVLLM(delay_s=0.02)
    s = session(fake, max_in_flight=3)
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    result = s.explain(g, regions=6, mode="exact")
    assert 2 <= fake.most_in_flight <= 3 and result.complete
    cancel = threading.Event()
    before = fake.calls
    partial = s.explain(g, regions=8, mode="exact", progress=lambda update: cancel.set(), cancel=cancel,
                        use_cache=False)
    assert not partial.complete and fake.calls - before < 8 * 9  # the search stopped well before its 72 images


def test_sglang_scores_equal_the_local_session(sessions):
    local = sessions("idefics3")
    s = ServedSession("http://fake:30000", api="sglang", tokenizer=local.processor, transport=FakeSGLang(
        local).transport(), cache=False)
    assert s.server_version == "SGLang 0.5.0" and s.exact
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    lg = local.teacher_force(IMAGE, PROMPT, "a red circle")
    assert g.token_ids == lg.token_ids
    masks = torch.tensor([[True] * 4, [True, False, False, True], [False] * 4])
    a = s.scorer(g, regions=4)(masks)
    b = local.scorer(lg, regions=4, path="reference")(masks)
    assert torch.allclose(a, b, atol=1e-5)
    assert s.generate(IMAGE, PROMPT, 3).token_ids == local.generate(IMAGE, PROMPT, 3).token_ids[:3]
    # "auto" finds SGLang; without the tokenizer its templated API cannot be used
    with pytest.raises(InputError, match="SGLang's native API takes templated text"):
        ServedSession("http://fake:30000", transport=FakeSGLang(local).transport(), cache=False)


def test_the_top_k_approximation_reproduces_the_reference_and_says_so():
    fake = FakeOpenAI()
    s = session(fake, api="openai-topk", top_k=5)
    g = s.generate(IMAGE, PROMPT, 8)
    assert g.tokens == ["a", " red", " circle"] and g.token_ids == [-1, -1, -1]
    with pytest.warns(ApproximateScoring, match=r"top-5 continuation.*; 60 API calls"):
        result = s.explain(g, regions=4, mode="exact")
    assert np.allclose(result.insertion_tokens, [[0.5, 0.25, 0.0]] * 5)
    scoring = result.context.scoring
    assert scoring["tokens_outside_top_k"] == 20 and scoring["requests"] == 60 and not scoring["exact"]
    asked = fake.bodies[-1]
    assert asked["messages"][0]["role"] == "system" and "continuation engine" in asked["messages"][0]["content"]
    assert asked["top_logprobs"] == 5 and asked["max_tokens"] == 1
    prefixes = {b["messages"][-1]["content"] if b["messages"][-1]["role"] == "assistant" else ""
                for b in fake.bodies[1:]}
    assert prefixes == {"", "a", "a red"}
    with pytest.raises(InputError, match="names tokens by text only"):
        s.token_id(" red")
    with pytest.raises(InputError, match="top_k must be 1..20"):
        session(FakeOpenAI(), api="openai-topk", top_k=50)


def test_the_explorer_and_its_export_on_a_served_model(tmp_path):
    from eagle_widgets.widgets import Explorer

    s = session(FakeVLLM())
    explorer = Explorer(s, IMAGE, PROMPT, answer="a red circle", regions=4, mode="exact")
    assert explorer.method_control.options == ("eagle", "random", "occlusion")
    explorer.select([1]).wait()
    assert explorer.state == "done" and explorer.result.context.path == "served"
    assert "APPROXIMATE" not in explorer.heatmap.caption
    page = explorer.export_html(tmp_path / "served.html").read_text()
    assert "(served)" in page


def test_approximate_results_are_labelled_in_the_explorer_export_and_figures(tmp_path):
    from eagle_widgets.display import attribution_figure
    from eagle_widgets.widgets import Explorer
    from eagle_widgets.widgets.compare import compare_title

    s = session(FakeOpenAI(), api="openai-topk")
    with pytest.warns(ApproximateScoring):
        explorer = Explorer(s, IMAGE, PROMPT, regions=4, mode="exact")
        explorer.select([0, 1]).wait()
    assert "APPROXIMATE scores" in explorer.heatmap.caption and "APPROXIMATE" in explorer.status.value
    page = explorer.export_html(tmp_path / "approx.html").read_text()
    assert "APPROXIMATE scores (top-k API)" in page and "(served, approximate)" in page
    fig = attribution_figure(explorer.result)
    assert any("APPROXIMATE scores: top-20 continuation" in t.get_text() for t in fig.texts)
    exact = session(FakeVLLM())
    other = exact.explain(exact.teacher_force(IMAGE, PROMPT, "a red circle"), tokens=[0], regions=4)
    assert "Not comparable" in compare_title(explorer.result, other, "gain")


def test_masks_of_the_wrong_shape_are_named():
    s = session(FakeVLLM())
    scorer = s.scorer(s.teacher_force(IMAGE, PROMPT, "a red circle"), regions=4)
    with pytest.raises(InputError, match=r"masks must be \[B, 4\] \(one column per region\), got shape \(2, 5\)"):
        scorer(torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(InputError, match="masks must be boolean"):
        scorer(torch.full((1, 4), 0.5))


def test_black_box_baselines_run_on_a_served_model():
    from eagle_widgets.core.errors import UnsupportedModel

    s = session(FakeVLLM())
    g = s.teacher_force(IMAGE, PROMPT, "a red circle")
    result = s.explain_method(g, [1], regions=4, method="occlusion")
    assert result.method_map is not None and result.context.path == "served"
    with pytest.raises(UnsupportedModel, match="reads the model's internals"):
        s.explain_method(g, [1], regions=4, method="tam")


def test_served_sessions_refuse_the_prompt_by_name():
    from eagle_widgets.core.errors import UnsupportedModel

    exact = session(FakeVLLM())
    with pytest.raises(UnsupportedModel, match="cannot attribute to the prompt's words"):
        exact.explain(exact.teacher_force(IMAGE, PROMPT, "a red circle"), regions=None, prompt="word")
    approximate = session(FakeOpenAI(), api="openai-topk")
    g = approximate.generate(IMAGE, PROMPT, 8)
    with pytest.raises(UnsupportedModel, match="cannot attribute to the prompt's words"):
        approximate.explain(g, regions=None, prompt="word")
