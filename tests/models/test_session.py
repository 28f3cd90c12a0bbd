import numpy as np
import pytest
import torch
from eagle_widgets import load_session
from eagle_widgets.core import Attribution, InputError, RegionSet
from eagle_widgets.models import Generation, NotAVisionLanguageModel
from eagle_widgets.models.scoring import BatchedPixelScorer, MaskedInputScorer, ModelError, PixelSpaceScorer

from conftest import ALIGNED, FAMILIES, scene

PROMPT = "Describe the image in one sentence."


@pytest.fixture(scope="module")
def generations(sessions):
    cache = {}

    def get(family, h=90, w=130):  # the default is smaller than every tiny model's input and not square
        key = (family, h, w)
        if key not in cache:
            cache[key] = sessions(family).generate(scene(h, w), PROMPT, max_new_tokens=5)
        return cache[key]

    return get


@pytest.mark.parametrize("family", FAMILIES)
def test_generate(family, sessions, generations):
    s, g = sessions(family), generations(family)
    assert isinstance(g, Generation) and 1 <= len(g) <= 5
    assert len(g.tokens) == len(g.token_ids) == len(g.special)
    if not any(g.special):
        assert "".join(g.tokens) == s.tokenizer.decode(g.token_ids, skip_special_tokens=False,
                                                       clean_up_tokenization_spaces=False)
    again = s.generate(scene(), PROMPT, max_new_tokens=5)
    assert again.token_ids == g.token_ids  # greedy is deterministic
    assert g.image.shape == (90, 130, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_scoring_equals_single_scoring(family, sessions, generations):
    s, g = sessions(family), generations(family)
    scorer = s.scorer(g, tokens=None, regions=RegionSet.grid((90, 130), rows=3, cols=4), batch_size=7)
    visible = torch.rand(15, scorer.num_regions, generator=torch.Generator().manual_seed(0)) > 0.5
    batched = scorer(visible)
    scorer.batch_size = 1
    single = scorer(visible)
    assert batched.shape == (15, len(g))
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=1e-5)


def full_forward_probabilities(session, generation, visible_rows, regions):
    """Plain reference: pixel-space masking, the whole sequence fed, full logits, one image per call."""
    out = []
    for vis in visible_rows:
        masked = regions.apply(generation.image, vis.numpy())
        inputs = session.adapter.encode([masked], generation.prompt_text)
        n = len(generation.token_ids)
        ids = torch.cat([inputs["input_ids"], torch.tensor([generation.token_ids])], dim=1)
        extra = {k: torch.cat([v, (torch.ones if k == "attention_mask" else torch.zeros)(1, n, dtype=v.dtype)], 1)
                 for k, v in inputs.items() if k not in ("pixel_values", "input_ids") and v.shape == inputs[
                     "input_ids"].shape}
        rest = {k: v for k, v in inputs.items() if k not in extra and k != "input_ids"}
        with torch.inference_mode():
            logits = session.model(input_ids=ids, **extra, **rest).logits[0].float()
        p = torch.softmax(logits, -1)
        start = inputs["input_ids"].shape[1]
        out.append(torch.stack([p[start + i - 1, t] for i, t in enumerate(generation.token_ids)]))
    return torch.stack(out)


@pytest.mark.parametrize("family", FAMILIES)
def test_truncation_and_logits_to_keep_match_a_full_forward(family, sessions, generations):
    s, g = sessions(family), generations(family)
    regions = RegionSet.grid(g.image.shape[:2], rows=2, cols=3)
    scorer = s.scorer(g, tokens=None, regions=regions, path="reference")
    assert scorer.sequence.length == scorer.sequence.prompt_len + len(g) - 1  # the last token is never fed
    visible = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    torch.testing.assert_close(scorer(visible).float(), full_forward_probabilities(s, g, visible, regions),
                               atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_fast_path_equals_reference_path(family, sessions, generations):
    s, g = sessions(family), generations(family, ALIGNED, ALIGNED)
    regions = RegionSet.slic(g.image, n_segments=10)
    fast = s.explain(g, tokens=[0, len(g) - 1], regions=regions, mode="exact")
    ref = s.explain(g, tokens=[0, len(g) - 1], regions=regions, mode="exact", path="reference")
    diff = np.abs(fast.insertion_tokens - ref.insertion_tokens).max()
    print(f"{family}: aligned max |p_fast - p_ref| = {diff:.2e}")
    assert diff < 1e-5
    assert fast.order == ref.order


EXACT_COMPOSERS = {"pillow": ("Pillow resampling reproduced on the device",
                              "the processor's Pillow resizes replayed on each masked image"),
                   "torchvision": ("the processor's torchvision resizes replayed on each masked image",
                                   "the torchvision processor on the masked batch, on the device")}

# Real-size, non-square images: smaller than every tiny model's input, taller than wide, larger than it.
REAL_SIZES = [(90, 130), (300, 200), (480, 640)]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", REAL_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fast_path_equals_reference_on_real_size_images(family, size, sessions, generations):
    s, g = sessions(family), generations(family, *size)
    regions = RegionSet.slic(g.image, n_segments=20)
    fast = s.scorer(g, regions=regions, strategy="compose")  # a composer even where the processor is as fast
    assert fast.describe()["composition"] in EXACT_COMPOSERS[fast.describe()["image_backend"]]
    assert fast.describe()["max_level_error"] == 0.0
    visible = torch.rand(8, regions.n, generator=torch.Generator().manual_seed(1)) > 0.5
    visible[0], visible[1] = True, False
    diff = float((fast(visible) - s.scorer(g, regions=regions, path="reference")(visible)).abs().max())
    print(f"{family} {size}: max |p_fast - p_ref| = {diff:.2e}")
    assert diff < 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_composed_inputs_equal_processed_masked_images(family, sessions, generations):
    # Composing on the device reproduces the processor's output for the masked original image.
    s, g = sessions(family), generations(family, 300, 200)
    regions = RegionSet.slic(g.image, n_segments=12)
    scorer = s.scorer(g, regions=regions, strategy="compose")
    assert isinstance(scorer, MaskedInputScorer)
    visible = torch.rand(5, regions.n, generator=torch.Generator().manual_seed(2)) > 0.5
    visible[0], visible[1] = True, False
    composed = scorer.compose(visible)
    per_image = composed.shape[0] // 5
    for i, vis in enumerate(visible):
        expected = s.adapter.encode([regions.apply(g.image, vis.numpy())], g.prompt_text)["pixel_values"]
        torch.testing.assert_close(composed[i * per_image:(i + 1) * per_image], expected.to(composed.dtype),
                                   atol=1e-5, rtol=0)
    assert isinstance(s.scorer(g, path="reference", regions=4), PixelSpaceScorer)


def test_processor_the_composers_cannot_reproduce_falls_back_to_published_steps(sessions, generations, monkeypatch):
    # A processor that is not affine in the pixels (a gamma curve before its own steps): neither composer
    # holds, so every masked image goes through the processor, batched, and the result says so.
    s, g = sessions("llava"), generations("llava", 300, 200)
    encode, pixel_values = s.adapter.encode, s.adapter.pixel_values
    gamma = lambda im: (255 * (im / 255.0) ** 2).astype(np.uint8)  # noqa: E731
    monkeypatch.setattr(s.adapter, "encode", lambda images, text: encode([gamma(i) for i in images], text))
    monkeypatch.setattr(s.adapter, "pixel_values", lambda images: pixel_values([gamma(i) for i in images]))
    regions = RegionSet.grid(g.image.shape[:2], rows=2, cols=3)
    scorer = s.scorer(g, regions=regions)
    assert isinstance(scorer, BatchedPixelScorer)
    assert "does not hold" in scorer.describe()["note"]
    visible = torch.rand(6, regions.n, generator=torch.Generator().manual_seed(3)) > 0.5
    torch.testing.assert_close(scorer(visible), s.scorer(g, regions=regions, path="reference")(visible),
                               atol=1e-6, rtol=1e-5)
    result = s.explain(g, tokens=[0], regions=regions, mode="efficient")
    assert result.context.scoring["composition"].startswith("none")


@pytest.mark.parametrize("family", ["llava", "qwen2_5_vl"])
def test_explain_and_reliance(family, sessions, generations):
    s, g = sessions(family), generations(family)
    seen = []
    r = s.explain(g, tokens=[0], regions=8, mode="efficient", progress=seen.append)
    assert isinstance(r, Attribution) and r.complete and r.num_tokens == 1
    assert r.token_labels == [g.tokens[0]] and r.context.targets == (0,) and r.context.model == s.name
    assert seen and seen[-1].step == r.num_regions
    rel = s.reliance(g)
    assert rel.p_full.shape == rel.p_black.shape == (len(g),)
    every_token = s.scorer(g, tokens=None, regions=4)
    both = every_token(torch.tensor([[True] * 4, [False] * 4])).numpy()
    np.testing.assert_allclose(rel.p_full, both[0], atol=1e-6)
    np.testing.assert_allclose(rel.p_black, both[1], atol=1e-6)
    np.testing.assert_allclose(r.p_full, both[0, :1], atol=1e-6)
    assert rel.sensitive.dtype == bool


def test_hallucination_target_ids(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    other = (g.token_ids[0] + 1) % len(s.tokenizer)
    r = s.explain(g, tokens=[0], regions=6, target_ids=[other], mode="early_stop")
    assert r.context.target_ids == (other,)
    with pytest.raises(InputError, match="entries for 1 selected"):
        s.scorer(g, tokens=[0], target_ids=[1, 2])
    with pytest.raises(InputError, match="outside the vocabulary"):
        s.scorer(g, tokens=[0], target_ids=[10 ** 9])


def test_out_of_memory_halves_the_batch(sessions, generations, monkeypatch):
    s, g = sessions("llava"), generations("llava")
    scorer = s.scorer(g, regions=6, batch_size=16)
    real_forward = scorer.forward

    def forward(pv, batch):
        if batch > 4:  # an OOM cannot be produced on purpose on this machine
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_forward(pv, batch)

    monkeypatch.setattr(scorer, "forward", forward)
    out = scorer(torch.ones(20, scorer.num_regions, dtype=torch.bool))
    assert out.shape == (20, len(g)) and scorer.batch_size == 4  # 16 -> 8 -> 4
    monkeypatch.setattr(scorer, "forward", lambda pv, b: (_ for _ in ()).throw(torch.OutOfMemoryError("oom")))
    with pytest.raises(ModelError, match="single image"):
        scorer(torch.ones(1, scorer.num_regions, dtype=torch.bool))


def test_auto_batch_size_is_bounded(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    scorer = s.scorer(g, regions=6)
    assert 1 <= scorer.batch_size <= 64


# -- bad input ------------------------------------------------------------------------------------
def test_text_only_model_is_refused(model_root):
    from tiny_models import tiny_model_dir  # noqa: I001

    path = tiny_model_dir("text_only", model_root)
    with pytest.raises(NotAVisionLanguageModel, match="not a vision-language model"):
        load_session(str(path))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.raises(NotAVisionLanguageModel, match="no vision tower"):
        load_session((AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)))


def test_tokenizer_instead_of_processor_is_refused(sessions):
    s = sessions("llava")
    with pytest.raises(NotAVisionLanguageModel, match="no image processor"):
        load_session((s.model, s.tokenizer))
    with pytest.raises(InputError, match="needs its processor"):
        load_session(s.model)
    with pytest.raises(InputError, match="no model folder at /nonexistent"):  # a path, not a hub id
        load_session("/nonexistent/model/folder")
    with pytest.raises(InputError, match="cannot load a model config"):
        load_session("no-such-org/no-such-model")


def test_prompt_template_without_image_is_refused(sessions):
    s = sessions("llava")
    saved = s.processor.chat_template
    try:
        s.processor.chat_template = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'text' %}"
                                     "{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}")
        with pytest.raises(InputError, match="image"):
            s.generate(scene(), PROMPT)
    finally:
        s.processor.chat_template = saved


@pytest.mark.parametrize("image, prompt, message", [
    ("photo.jpg", PROMPT, "PIL.Image.Image or a numpy array"),
    (np.zeros((0, 4, 3), np.uint8), PROMPT, "empty"),
    (scene(), "", "non-empty string"),
    (scene(), "   ", "non-empty string"),
    (scene(), None, "non-empty string"),
])
def test_bad_generate_input(sessions, image, prompt, message):
    with pytest.raises(InputError, match=message):
        sessions("llava").generate(image, prompt)


def test_bad_selections_and_regions(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    n = len(g)
    with pytest.raises(InputError, match=f"out of range: the answer has {n} tokens"):
        s.explain(g, tokens=[n])
    with pytest.raises(InputError, match="empty"):
        s.explain(g, tokens=[])
    for bad in (["a"], [1.7], [True]):
        with pytest.raises(InputError, match="integer token indices"):
            s.explain(g, tokens=bad)
    with pytest.raises(InputError, match="the regions are 10x10 but the image is 130x90"):
        s.explain(g, tokens=[0], regions=RegionSet.grid((10, 10), rows=2, cols=2))
    with pytest.raises(InputError, match="path must be"):
        s.explain(g, tokens=[0], regions=4, path="slow")
    with pytest.raises(InputError, match="another session"):
        sessions("qwen2_5_vl").explain(g, tokens=[0])
    with pytest.raises(InputError, match="expected a Generation"):
        s.explain("a red circle", tokens=[0])


def test_a_prompt_beyond_the_context_is_refused(demo_session):
    from eagle_widgets.demo import make_scene

    limit = demo_session.context_length
    assert limit is not None
    with pytest.raises(InputError, match="beyond the model's context"):
        demo_session.generate(make_scene(1).image, "describe " * limit)


def test_tiny_images_and_too_many_regions_are_refused(demo_session):
    from eagle_widgets.core import validation

    with pytest.raises(InputError, match="at least 2x2"):
        demo_session.generate(np.zeros((1, 1, 3), np.uint8), "describe the image .")
    gen = demo_session.generate(np.zeros((64, 64, 3), np.uint8), "describe the image .")
    per_pixel = RegionSet(np.arange(64 * 64).reshape(64, 64))
    assert per_pixel.n > validation.MAX_REGIONS
    with pytest.raises(InputError, match="EAGLE_WIDGETS_MAX_REGIONS"):
        demo_session.explain(gen, tokens=[0], regions=per_pixel, mode="efficient")


def test_a_processor_from_another_model_is_refused(sessions):
    llava, qwen = sessions("llava"), sessions("qwen2_vl")
    small, large = sorted((llava, qwen), key=lambda s: s.model.get_input_embeddings().num_embeddings)
    with pytest.raises(InputError, match="does not belong to"):
        load_session((small.model, large.processor), cache=False)


def test_the_composition_is_built_once_per_image_and_regions(demo_session):
    from eagle_widgets.demo import CAPTION_PROMPT, make_scene

    gen = demo_session.generate(make_scene(1_000_025).image, CAPTION_PROMPT)
    first = demo_session.scorer(gen, [1], regions=24)
    again = demo_session.scorer(gen, [2], regions=24)  # another token, the same regions: no new probing
    assert again.composer is first.composer
    other = demo_session.scorer(gen, [2], regions=30)
    assert other.composer is not first.composer
    masks = torch.rand(6, again.num_regions, generator=torch.Generator().manual_seed(1)) > 0.5
    reference = demo_session.scorer(gen, [2], regions=24, path="reference")
    assert float((again(masks) - reference(masks)).abs().max()) < 1e-5


def test_a_request_is_checked_once_and_explained_as_it_is(sessions, generations, demo_session):
    s, g = sessions("llava"), generations("llava")
    request = s.request(g, [0], regions=6)
    assert request.targets == (0,) and request.token_labels == [g.tokens[0]] and request.regions.n >= 2
    assert s.request(request) is request
    by_request = s.explain(request, mode="efficient", use_cache=False)
    by_arguments = s.explain(g, [0], regions=request.regions, mode="efficient", use_cache=False)
    assert by_request.order == by_arguments.order and by_request.token_labels == by_arguments.token_labels
    with pytest.raises(InputError, match="another session"):
        demo_session.explain(request)


def test_explain_runs_its_search_off_the_calling_thread(sessions, generations):
    # Measured several times faster than the calling (notebook cell's) thread on a loaded machine; same numbers.
    import threading

    s, g = sessions("llava"), generations("llava")
    names = []
    result = s.explain(g, tokens=[0], regions=RegionSet.grid(g.image.shape[:2], rows=2, cols=2), mode="exact",
                       use_cache=False, progress=lambda update: names.append(threading.current_thread().name))
    assert names and set(names) == {"eagle-search"} and result.complete
    stop = threading.Event()
    stop.set()
    partial = s.explain(g, tokens=[0], regions=RegionSet.grid(g.image.shape[:2], rows=2, cols=2), mode="exact",
                        use_cache=False, cancel=stop)
    assert not partial.complete


def test_scorer_masks_of_the_wrong_shape_are_named(sessions, generations):
    s, g = sessions("llava"), generations("llava")
    for path in ("fast", "reference"):
        scorer = s.scorer(g, [0], regions=4, path=path)
        with pytest.raises(InputError, match=r"masks must be \[B, 4\] \(one column per region\), got shape \(1, 3\)"):
            scorer(torch.ones(1, 3, dtype=torch.bool))
