"""`ModelSession`: generate an answer with a Hugging Face MLLM and explain its tokens with EAGLE."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core import (
    AnswerContext,
    Attribution,
    MethodMap,
    RegionSet,
    attribute,
    expected_evaluations,
    region_protocol,
    validation,
)
from ..core.errors import CacheError, EagleError, InputError, NotAVisionLanguageModel, UnsupportedModel
from ..core.faithfulness import region_scores
from ..core.images import as_rgb_uint8
from ..core.metrics import SENSITIVE_THRESHOLD
from ..core.spans import JointSet, PromptSpans, image_regions, prompt_spans
from ..core.video import FrameRegions, Video, load_video
from ..storage.cache import ResultCache, default_cache_dir, fingerprint
from .adapters import Adapter, adapter_class_for
from .composition import NotComposable
from .methods import METHOD_SCALES, METHODS_READING_INTERNALS, SALIENCY_METHODS, load_providers, saliency
from .prompt import MASKINGS, JointScorer, PromptScorer, find_prompt_spans
from .scoring import BatchedPixelScorer, MaskedInputScorer, ModelHandle, PixelSpaceScorer, TeacherForcedSequence
from .video import VideoScorer, video_encoder

_session_ids = itertools.count(1)


SLIC_MAX_SIDE = 1024  # SLICO's working resolution; labels are upsampled to the image
COMPOSERS_KEPT = 4  # fast-path compositions kept per session (each holds its basis)


@dataclass(eq=False)
class Generation:
    """A greedy answer: the image, the prompt and every generated token (end of turn included)."""

    image: np.ndarray
    prompt: str
    prompt_text: str  # the prompt after the chat template
    token_ids: list[int]
    tokens: list[str]  # display string of each generated token
    special: list[bool]  # which tokens are special (end of turn, padding, ...)
    text: str
    model_name: str = ""
    session_id: int = 0
    timings: dict = field(default_factory=dict)
    video: Video | None = None  # a video answer: `image` is its frames side by side (what views draw)

    def __len__(self) -> int:
        return len(self.token_ids)

    def positions_of(self, words) -> list[int]:
        """The answer positions of `words` (each the first token that reads it, spaces stripped)."""
        stripped = [t.strip() for t in self.tokens]
        missing = [w for w in words if w not in stripped]
        if missing:
            raise InputError(f"the answer has no token {missing[0]!r}; its tokens are {stripped}")
        return sorted({stripped.index(w) for w in words})

    def __repr__(self) -> str:
        return f"Generation(text={self.text!r}, tokens={len(self.token_ids)}, model={self.model_name!r})"


@dataclass(eq=False)
class Reliance:
    """The cheap modality first look: p_t(image) against p_t(black image) for every generated token."""

    tokens: list[str]
    p_full: np.ndarray
    p_black: np.ndarray
    threshold: float = SENSITIVE_THRESHOLD

    @property
    def delta(self) -> np.ndarray:
        return self.p_full - self.p_black

    @property
    def evidence(self) -> np.ndarray:
        """How much each token gains from the image, clipped to [0, 1]: what the token strip colours by."""
        return np.clip(self.delta, 0.0, 1.0)

    @property
    def sensitive(self) -> np.ndarray:
        return self.delta > self.threshold

    def __repr__(self) -> str:
        rows = ", ".join(f"{t!r}: {a:.2f}->{b:.2f}" for t, a, b in zip(self.tokens, self.p_full, self.p_black))
        return f"Reliance({rows})"


@dataclass(frozen=True)
class ExplanationRequest:
    """What to explain, checked once by `session.request`: a generation, the answer positions and the token ids
    scored there (the generated ones, or e.g. the correct answer of a hallucination), and the elements ordered:
    image regions (a RegionSet), prompt spans (PromptSpans) or both (a JointSet), with how a span is removed
    (`masking`). Scorers, `explain` and the Explorer take it as it is."""

    generation: Generation
    targets: tuple[int, ...]
    target_ids: tuple[int, ...]
    regions: RegionSet | PromptSpans | JointSet
    masking: str = "pad"

    @property
    def token_labels(self) -> list[str]:
        return [self.generation.tokens[t] for t in self.targets]


class SessionBase:
    """What every session shares, whatever computes its scores: checking what to explain (answer positions,
    regions, target ids), running the engine on the session's scorer off the calling thread with the disk cache,
    the result's context, and the other methods scored like EAGLE. A subclass provides `generate`,
    `teacher_force`, `reliance`, `token_id`, `scorer(request, path=, batch_size=)`, `identity` and `family`."""

    name: str = ""
    display_name: str = ""
    id: int = 0
    cache: ResultCache | None = None
    # Methods that read the model's internals (gradients, hidden states) are offered only where they exist.
    reads_internals: bool = True
    # Whether `prompt_spans` works: the prompt's words as elements (needs the model input's token ids).
    attributes_prompt: bool = False

    def _init_regions(self) -> None:
        self._slic_image, self._slic = None, {}  # SLICO label maps of the latest image, by region count

    def targets(self, generation: Generation, tokens) -> list[int]:
        """The selected answer positions (None or "all": every token), checked against this session's answer."""
        if not isinstance(generation, Generation):
            raise InputError(f"expected a Generation from session.generate(), got {type(generation).__name__}")
        if generation.session_id != self.id:
            raise InputError(f"this generation was made by another session ({generation.model_name!r}); "
                             "explain it with the session that generated it")
        n = len(generation.token_ids)
        if tokens is None or (isinstance(tokens, str) and tokens == "all"):
            return list(range(n))
        return validation.token_indices(tokens, n)

    def regions(self, generation: Generation, regions) -> RegionSet:
        """The RegionSet for `regions` (an int d for SLICO, memoised for the latest generation; a RegionSet or a
        label map, checked against the image). For a video answer, regions lie on every frame: an int d is SLICO
        with about d per frame, (rows, cols) a grid on every frame (the authors' 5x5), or a FrameRegions."""
        if generation.video is not None:
            return self._frame_regions(generation, regions)
        if isinstance(regions, (int, np.integer)) and not isinstance(regions, bool):
            regions = validation.region_count(regions)
            # Memoised for the latest image, which is held here (an id could be reused once it is freed).
            if self._slic_image is not generation.image:
                self._slic_image, self._slic = generation.image, {}
            if regions not in self._slic:
                # SLICO on a copy at most SLIC_MAX_SIDE pixels wide (a 2688-px photo: 23 s at full size).
                self._slic[regions] = RegionSet.slic(generation.image, n_segments=regions, max_side=SLIC_MAX_SIDE)
            return self._slic[regions]
        rs = RegionSet.coerce(regions)
        if rs.shape != generation.image.shape[:2]:
            h, w = generation.image.shape[:2]
            raise InputError(f"the regions are {rs.shape[1]}x{rs.shape[0]} but the image is {w}x{h}")
        return rs

    def _frame_regions(self, generation: Generation, regions) -> FrameRegions:
        video = generation.video
        if isinstance(regions, tuple) and len(regions) == 2:
            rows, cols = (validation.integer(v, "grid rows and columns", minimum=1) for v in regions)
            return FrameRegions.grid(video, rows, cols)
        if isinstance(regions, (int, np.integer)) and not isinstance(regions, bool):
            regions = validation.region_count(regions)
            if self._slic_image is not generation.image:
                self._slic_image, self._slic = generation.image, {}
            if regions not in self._slic:
                self._slic[regions] = FrameRegions.slic(video, regions, max_side=SLIC_MAX_SIDE)
            return self._slic[regions]
        return FrameRegions.coerce_for(regions, video)

    def request(self, generation: Generation, tokens=None, regions=64, *, target_ids=None, prompt: str | None = None,
                masking: str = "pad") -> ExplanationRequest:
        """Check once what to explain: `tokens` of `generation` (None or "all": every token), over `regions`
        (an int d for SLICO, a RegionSet or a label map), scoring `target_ids` instead of the generated ids when
        given. `prompt` ("word", "sentence" or "message") adds the spans of the user's prompt: with `regions=None`
        they alone are ordered (the image fully visible), else image regions and spans in one ground set (the
        joint extension). A span is removed by replacing its tokens with the pad token (`masking="pad"`) or by
        attention 0 (`"attention"`)."""
        if isinstance(generation, ExplanationRequest):
            if generation.generation.session_id != self.id:
                raise InputError("this request was made by another session; explain it with that session")
            return generation
        targets, ids = self._targets_and_ids(generation, tokens, target_ids)
        if masking not in MASKINGS:
            raise InputError(f"masking must be {' or '.join(repr(m) for m in MASKINGS)}; got {masking!r}")
        if prompt is not None and generation.video is not None:
            raise InputError("prompt spans are explained for image answers; this answer is about a video "
                             "(explain it over its frames' regions)")
        if prompt is None:
            if regions is None:
                raise InputError("nothing to explain over: give regions, prompt spans (prompt='word' or "
                                 "'sentence'), or both")
            ground = self.regions(generation, regions)
        else:
            spans = self.prompt_spans(generation, prompt)
            ground = spans if regions is None else JointSet(self.regions(generation, regions), spans)
        return ExplanationRequest(generation, tuple(targets), tuple(ids), ground, masking)

    def prompt_spans(self, generation: Generation, granularity: str = "sentence") -> PromptSpans:
        """The words or sentences of the generation's prompt, located in the model input."""
        raise UnsupportedModel(f"{type(self).__name__} cannot attribute to the prompt's words")

    def _targets_and_ids(self, generation: Generation, tokens, target_ids) -> tuple[list[int], list[int]]:
        targets = self.targets(generation, tokens)
        ids = [generation.token_ids[t] for t in targets]
        if target_ids is not None:
            ids = [self.token_id(t) for t in (target_ids if isinstance(target_ids, (list, tuple)) else [target_ids])]
            if len(ids) != len(targets):
                raise InputError(f"target_ids has {len(ids)} entries for {len(targets)} selected tokens")
        return targets, ids

    def explain(self, generation: Generation, tokens=None, regions=64, mode: str = "exact", *,
                lambda1: float = 1.0, lambda2: float = 1.0, batch_size: int | None = None, progress=None,
                cancel=None, path: str = "fast", target_ids=None, use_cache: bool = True, prompt: str | None = None,
                masking: str = "pad", **params) -> Attribution:
        """EAGLE attribution of the selected tokens (indices into `generation.tokens`; None = every token), over
        image regions, prompt spans (`prompt="word"` or `"sentence"` with `regions=None`) or both (see
        `request`).

        Complete results go to the session's disk cache (see `load_session(cache=...)`) and come back from
        it for the same model, image, prompt, answer, targets, regions, mode and parameters."""
        request = self.request(generation, tokens, regions, target_ids=target_ids, prompt=prompt, masking=masking)
        generation = request.generation
        if generation.video is not None:
            _say_video_cost(request, mode, params)
        scorer = self.scorer(request, path=path, batch_size=batch_size)
        key = None
        if self.cache is not None and use_cache:
            key = self.cache.key({
                "model": self.identity, "image": generation.image, "prompt": generation.prompt_text,
                "answer": generation.token_ids, "targets": list(request.targets),
                "video": generation.video.describe() if generation.video is not None else None,
                "target_ids": list(request.target_ids), "regions": ground_key(request), "mode": mode,
                "lambda": [float(lambda1), float(lambda2)], "params": params, "path": self.path_label(path)})
            cached = self.cache.get(key)
            if cached is not None:
                cached.image = generation.image
                cached.from_cache = True
                return cached
        context = self._result_context(request, scorer, path)

        def search(stop):
            if hasattr(scorer, "watch_cancel"):  # a scorer that waits on others (a server) stops mid-batch too
                scorer.watch_cancel(stop)
            return attribute(scorer, request.regions, mode=mode, lambda1=lambda1, lambda2=lambda2,
                             batch_size=scorer.batch_size, progress=progress, cancel=stop, context=context, **params)

        result = off_the_calling_thread(search, cancel)
        if key is not None:
            self.cache.put(key, result)
        return result

    def _result_context(self, request: ExplanationRequest, scorer, path: str) -> dict:
        """What a result says it explains (its AnswerContext), its token labels and image."""
        generation = request.generation
        answered = AnswerContext(
            model=self.name, family=self.family, prompt=generation.prompt, answer=generation.text,
            generated_tokens=tuple(generation.tokens), generated_ids=tuple(generation.token_ids),
            targets=tuple(request.targets), target_ids=tuple(request.target_ids),
            path=self.path_label(path), batch_size=scorer.batch_size, scoring=scorer.describe(),
            video=generation.video.describe() if generation.video is not None else {})
        return {"token_labels": request.token_labels, "image": generation.image, "context": answered}

    def path_label(self, path: str) -> str:
        """How the scores were computed, as results record it."""
        return path

    def methods(self) -> list[str]:
        """The attribution methods this session runs: EAGLE and every registered method it can serve (the
        baselines register themselves, and are imported here on first use)."""
        load_providers()
        return ["eagle", *(m for m in SALIENCY_METHODS if self.reads_internals or m not in METHODS_READING_INTERNALS)]

    def explain_method(self, generation, tokens=None, regions=64, *, method: str = "eagle",
                       batch_size: int | None = None, **params) -> Attribution:
        """EAGLE (`explain`), or another method's map scored like EAGLE: its regions revealed and removed in
        the order of their mean map value (the region protocol), with the same scorer, so its map, curves
        and AUCs compare directly with EAGLE's."""
        if method == "eagle":
            return self.explain(generation, tokens, regions, batch_size=batch_size, **params)
        request = self.request(generation, tokens, regions)
        if not isinstance(request.regions, RegionSet):
            raise InputError(f"{method} maps the image only; explain the prompt's words with eagle")
        load_providers()
        if request.generation.video is not None and method in METHODS_READING_INTERNALS:
            raise InputError(f"{method} reads the model's internals over one image; for a video answer use eagle, "
                             "or a method that only scores masked inputs (random, occlusion)")
        values = saliency(method, self, request)
        scorer = self.scorer(request, batch_size=batch_size)
        context = self._result_context(request, scorer, "fast")
        if hasattr(scorer, "watch_cancel"):
            scorer.watch_cancel(None)
        result = region_protocol(lambda _regions: scorer, request.regions, values, scorer.batch_size, mode=method,
                                 context=context)
        # The map drawn is the method's own (mean value per region), not gains along its order, which mostly
        # measure the regions rather than the method.
        result.method_map = MethodMap.from_region_scores(region_scores(request.regions, values),
                                                         METHOD_SCALES.get(method, method))
        return result


class ModelSession(SessionBase):
    """A loaded vision-language model with its processor, ready to generate and explain."""

    attributes_prompt = True

    def __init__(self, model, processor, *, name: str | None = None, batch_size: int | None = None,
                 cache=True, revision: str | None = None):
        config = getattr(model, "config", None)
        if config is None or not hasattr(model, "generate"):
            raise NotAVisionLanguageModel(f"expected a Hugging Face generative model, got {type(model).__name__}")
        if getattr(config, "vision_config", None) is None:
            raise NotAVisionLanguageModel(
                f"{name or type(model).__name__} is not a vision-language model: its config "
                f"(model_type {getattr(config, 'model_type', '?')!r}) has no vision tower")
        if not hasattr(processor, "image_processor"):
            raise NotAVisionLanguageModel(
                f"the processor ({type(processor).__name__}) has no image processor; pass the model's multimodal "
                "processor (AutoProcessor), not only its tokenizer")
        self.model = model.eval()
        self.processor = processor
        self.name = name or getattr(config, "_name_or_path", "") or type(model).__name__
        # For people: a local folder shows as its last part, not the whole path.
        self.display_name = Path(self.name).name if Path(self.name).is_absolute() else self.name
        self.adapter: Adapter = adapter_class_for(config)(model, processor)
        self.tokenizer = self.adapter.tokenizer
        self.batch_size = batch_size
        self.id = next(_session_ids)
        self._image_token_id = _image_token_id(config, self.tokenizer)
        _check_vocabulary(model, self.tokenizer, self._image_token_id, self.name)
        self._init_regions()
        self._spans: dict = {}
        self._token_maps: dict = {}
        self._composers: list = []  # (image, regions, composer or NotComposable, strategy), latest first
        self.revision = revision or getattr(config, "_commit_hash", None)
        self.cache = open_result_cache(cache)
        self._identity: str | None = None
        self._video_encoder = None

    # -- properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def family(self) -> str:
        return self.adapter.family

    def __repr__(self) -> str:
        # A local folder by its last part, as the Explorer's header names it: no machine paths in saved outputs.
        return (f"ModelSession({self.display_name!r}, family={self.family!r}, device={self.device}, "
                f"dtype={self.model_dtype})")

    @property
    def context_length(self) -> int | None:
        """The language model's maximum sequence length, when its config says."""
        config = self.model.config
        text = getattr(config, "text_config", None) or getattr(config, "llm_config", None) or config
        value = getattr(text, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None

    # -- generation ---------------------------------------------------------------------------
    def _encode_prompt(self, image, prompt: str, answer_tokens: int) -> tuple[np.ndarray, str, dict]:
        """The checked image, the templated prompt and its model inputs, with room for `answer_tokens` more."""
        rgb = as_rgb_uint8(image)
        if min(rgb.shape[:2]) < 2:  # EAGLE splits the image into at least two regions
            raise InputError(f"the image is {rgb.shape[1]}x{rgb.shape[0]} pixels; it must be at least 2x2")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"the prompt must be a non-empty string, got {prompt!r}")
        text = self.adapter.prompt_text(prompt)
        inputs = self.adapter.encode([rgb], text)
        self._check_image_tokens(inputs["input_ids"])
        context = self.context_length
        if context is not None and inputs["input_ids"].shape[1] + answer_tokens > context:
            raise InputError(f"the prompt with its image takes {inputs['input_ids'].shape[1]} tokens and the answer "
                             f"up to {answer_tokens} more, beyond the model's context of {context} tokens; shorten "
                             f"the prompt or the answer")
        return rgb, text, inputs

    def teacher_force(self, image, prompt: str, answer) -> Generation:
        """A given answer (text, or token ids) to `prompt` about `image`, as a Generation: explaining it scores
        the model's probability of each given token (teacher forcing), whatever the model would have said."""
        ids = self._answer_ids(answer)
        t0 = time.perf_counter()
        rgb, text, _ = self._encode_prompt(image, prompt, len(ids))
        return self._given(ids, rgb, prompt, text, t0)

    def _given(self, ids, image, prompt, text, t0, video=None) -> Generation:
        special_ids = set(getattr(self.tokenizer, "all_special_ids", []))
        return Generation(
            image=image, prompt=prompt, prompt_text=text, token_ids=list(ids),
            tokens=_display_tokens(self.tokenizer, ids), special=[t in special_ids for t in ids],
            text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(), model_name=self.name,
            session_id=self.id, timings={"teacher_forced_s": time.perf_counter() - t0}, video=video)

    def _answer_ids(self, answer) -> list[int]:
        if isinstance(answer, str):
            if not answer.strip():
                raise InputError("the given answer is empty")
            ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        elif isinstance(answer, (list, tuple)) and answer:
            ids = [self.token_id(t) for t in answer]
        else:
            raise InputError(f"the given answer must be text or a non-empty list of token ids, got {answer!r}")
        if self._image_token_id is not None and self._image_token_id in ids:
            raise InputError("the given answer holds the image placeholder token; an answer is text, and the image "
                             "goes in as the image")
        return ids

    def generate(self, image, prompt: str, max_new_tokens: int = 64) -> Generation:
        """Greedy answer (do_sample=False, num_beams=1) to `prompt` about `image`."""
        max_new_tokens = validation.integer(max_new_tokens, "max_new_tokens", minimum=1)
        t0 = time.perf_counter()
        rgb, text, inputs = self._encode_prompt(image, prompt, max_new_tokens)
        return self._generate_from(inputs, rgb, prompt, text, max_new_tokens, t0)

    def _generate_from(self, inputs, image, prompt, text, max_new_tokens, t0, video=None) -> Generation:
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        for key in ("pixel_values", "pixel_values_videos"):
            if key in inputs and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(self.model_dtype)
        eos = _eos_ids(self.model, self.tokenizer)
        with torch.inference_mode():
            out = self.model.generate(**inputs, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id
                                      is not None else (eos[0] if eos else 0),
                                      eos_token_id=eos or None, temperature=None, top_p=None, top_k=None)
        ids = out[0, inputs["input_ids"].shape[1]:].tolist()
        for i, tid in enumerate(ids):  # keep the end-of-turn token, drop anything after it
            if tid in eos:
                ids = ids[: i + 1]
                break
        if not ids:
            raise EagleError("the model generated no token")
        tokens = _display_tokens(self.tokenizer, ids)
        special_ids = set(getattr(self.tokenizer, "all_special_ids", []))
        return Generation(
            image=image, prompt=prompt, prompt_text=text, token_ids=ids, tokens=tokens,
            special=[t in special_ids for t in ids],
            text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(), model_name=self.name,
            session_id=self.id, timings={"generate_s": time.perf_counter() - t0}, video=video)

    # -- videos -------------------------------------------------------------------------------
    @property
    def video_encoder(self):
        """How this model reads a video (see `models.video`); UnsupportedModel where it cannot."""
        if self._video_encoder is None:
            self._video_encoder = video_encoder(self.adapter, self.processor)
        return self._video_encoder

    def _encode_video(self, video, prompt: str, fps, max_frames: int, answer_tokens: int):
        """The video read once (frames, order and times fixed here for generation and explanation alike), the
        templated prompt and its model inputs."""
        encoder = self.video_encoder
        video = load_video(video, fps, max_frames=max_frames)
        h, w = video.frame_shape
        if min(h, w) < 2:
            raise InputError(f"the frames are {w}x{h} pixels; they must be at least 2x2")
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"the prompt must be a non-empty string, got {prompt!r}")
        text = encoder.prompt_text(prompt, video)
        inputs = encoder.encode(video.frames, text, video)
        context = self.context_length
        if context is not None and inputs["input_ids"].shape[1] + answer_tokens > context:
            raise InputError(f"the prompt with its {video.n} frames takes {inputs['input_ids'].shape[1]} tokens and "
                             f"the answer up to {answer_tokens} more, beyond the model's context of {context} "
                             "tokens; use fewer frames (max_frames=, a lower fps) or smaller frames")
        return video, text, inputs

    def generate_video(self, video, prompt: str, *, fps: float | None = None, max_frames: int = 32,
                       max_new_tokens: int = 64) -> Generation:
        """Greedy answer to `prompt` about a video: a file (sampled at `fps`, 2 by default, at most `max_frames`
        frames), a folder of frames or a list of frames (both need `fps`), or a `Video`. The frames are read
        once; `explain` scores the same frames in the same order, and results record the fps and frame times."""
        max_new_tokens = validation.integer(max_new_tokens, "max_new_tokens", minimum=1)
        t0 = time.perf_counter()
        video, text, inputs = self._encode_video(video, prompt, fps, max_frames, max_new_tokens)
        return self._generate_from(inputs, video.strip, prompt, text, max_new_tokens, t0, video=video)

    def teacher_force_video(self, video, prompt: str, answer, *, fps: float | None = None,
                            max_frames: int = 32) -> Generation:
        """A given answer to `prompt` about a video (see `generate_video` and `teacher_force`)."""
        ids = self._answer_ids(answer)
        t0 = time.perf_counter()
        video, text, _ = self._encode_video(video, prompt, fps, max_frames, len(ids))
        return self._given(ids, video.strip, prompt, text, t0, video=video)

    def _check_image_tokens(self, input_ids: torch.Tensor) -> None:
        if self._image_token_id is not None and not bool((input_ids == self._image_token_id).any()):
            raise InputError("the model input holds no image tokens: the chat template did not place the image "
                             "in the prompt; check the processor's chat template")

    # -- scoring ------------------------------------------------------------------------------
    def token_map(self, generation: Generation, text_inputs: dict):
        """The image-token <-> pixel map of this model for the generation's image size (a few processor calls,
        so the latest eight are kept)."""
        grid = tuple(text_inputs["image_grid_thw"].flatten().tolist()) if "image_grid_thw" in text_inputs else ()
        key = (generation.image.shape[:2], grid)
        if key not in self._token_maps:
            self._token_maps[key] = self.adapter.token_map(generation.image.shape[:2], text_inputs)
            while len(self._token_maps) > 8:
                self._token_maps.pop(next(iter(self._token_maps)))
        return self._token_maps[key]

    def scorer(self, generation: Generation, tokens=None, regions=64, *, path: str = "fast",
               target_ids=None, batch_size: int | None = None, strategy: str = "measured", prompt: str | None = None,
               masking: str = "pad"):
        """The engine's Scorer for `tokens` of `generation` over `regions` (an int d for SLICO, a RegionSet or a
        label map). `target_ids` replaces the ids read at those positions (e.g. the correct answer of a
        hallucination). Both paths black out regions in the original image before the processor (the published
        semantics); `path="fast"` composes the masked inputs from a region basis measured through the processor
        (falling back to batched processor calls where that does not hold: `scorer.describe()` says which), and
        `path="reference"` runs the processor and the model once per masked image. `strategy="measured"` (the
        default) uses a composer only where it is measured faster than the processor; "compose" uses the fastest
        exact composer whenever one holds."""
        if path not in ("fast", "reference"):
            raise InputError(f"path must be 'fast' or 'reference', got {path!r}")
        if strategy not in ("measured", "compose"):
            raise InputError(f"strategy must be 'measured' or 'compose', got {strategy!r}")
        request = self.request(generation, tokens, regions, target_ids=target_ids, prompt=prompt, masking=masking)
        batch_size = batch_size or self.batch_size
        ground = request.regions
        if isinstance(ground, PromptSpans):  # the image fully visible: its inputs made once
            return PromptScorer(self.handle, self.sequence(request), ground, request.masking, self.tokenizer,
                                batch_size)
        if isinstance(ground, JointSet):
            image = self._image_scorer(dataclasses.replace(request, regions=ground.regions), path, batch_size,
                                       strategy)
            return JointScorer(image, ground, request.masking, self.tokenizer)
        return self._image_scorer(request, path, batch_size, strategy)

    def _image_scorer(self, request: ExplanationRequest, path: str, batch_size, strategy: str):
        generation, rs = request.generation, request.regions
        sequence = self.sequence(request, black=True)
        if generation.video is not None:
            return VideoScorer(self.handle, sequence, rs, generation.video, self.video_encoder, batch_size=batch_size,
                               fast=path == "fast")
        if path == "reference":
            return PixelSpaceScorer(self.handle, sequence, rs, generation.image, batch_size=batch_size)
        # The composition depends only on the image, the regions and the processor: built once for a pair
        # (the Explorer explains token after token over the same regions), checked when it was built.
        held = next((h[2] for h in self._composers if h[0] is generation.image and h[1] is rs
                     and h[3] == strategy), None)
        try:
            if isinstance(held, NotComposable):
                raise held
            scorer = MaskedInputScorer(self.handle, sequence, rs, generation.image, batch_size=batch_size,
                                       prepared=held, against_processor=strategy == "measured")
        except NotComposable as err:
            self._keep_composition(generation.image, rs, err, strategy)
            return BatchedPixelScorer(self.handle, sequence, rs, generation.image, batch_size=batch_size,
                                      note=f"composition does not hold for this processor ({err})")
        self._keep_composition(generation.image, rs, scorer.prepared, strategy)
        return scorer

    def prompt_spans(self, generation: Generation, granularity: str = "sentence") -> PromptSpans:
        """The words or sentences of the generation's prompt, located in the model input (kept per generation)."""
        key = (id(generation), granularity)
        held = self._spans.get(key)
        if held is not None and held[0] is generation:
            return held[1]
        ids = self.adapter.encode([generation.image], generation.prompt_text)["input_ids"][0].tolist()
        protected = set(getattr(self.tokenizer, "all_special_ids", [])) | (
            {self._image_token_id} if self._image_token_id is not None else set())
        spans = find_prompt_spans(self.tokenizer, generation.prompt, generation.prompt_text, ids, granularity,
                                  protected)
        self._spans = {**dict(list(self._spans.items())[-7:]), key: (generation, spans)}
        return spans

    def _keep_composition(self, image, regions, prepared, strategy: str) -> None:
        rest = [h for h in self._composers if not (h[0] is image and h[1] is regions and h[3] == strategy)]
        self._composers = [(image, regions, prepared, strategy), *rest][:COMPOSERS_KEPT]

    def sequence(self, generation: Generation, tokens=None, *, target_ids=None, black: bool = False
                 ) -> TeacherForcedSequence:
        """The teacher-forced input that scores `tokens` of `generation` (or an ExplanationRequest), with the real
        image (or the black one). `target_ids` replaces the ids read at those positions."""
        if isinstance(generation, ExplanationRequest):
            generation, targets, ids = generation.generation, list(generation.targets), list(generation.target_ids)
        else:
            targets, ids = self._targets_and_ids(generation, tokens, target_ids)
        if generation.video is not None:
            video, encoder = generation.video, self.video_encoder
            frames = np.zeros_like(video.frames) if black else video.frames
            return TeacherForcedSequence(generation.prompt_text, encoder.encode(frames, generation.prompt_text, video),
                                         generation.token_ids, targets, ids, pixel_key=encoder.pixel_key)
        image = np.zeros_like(generation.image) if black else generation.image
        prompt_inputs = self.adapter.encode([image], generation.prompt_text)
        return TeacherForcedSequence(generation.prompt_text, prompt_inputs, generation.token_ids, targets, ids)

    @property
    def image_token_id(self) -> int | None:
        return self._image_token_id

    def token_id(self, token) -> int:
        """The id of one token: an id (checked against the vocabulary) or a single-token string."""
        if isinstance(token, (bool, np.bool_)):
            raise InputError(f"a token is an id (an integer) or a string, got {token!r}")
        if isinstance(token, (int, np.integer)):
            if not 0 <= int(token) < len(self.tokenizer):
                raise InputError(f"token id {token} is outside the vocabulary (0..{len(self.tokenizer) - 1})")
            return int(token)
        if not isinstance(token, str):
            raise InputError(f"a token is an id (an integer) or a string, got {token!r} ({type(token).__name__})")
        ids = self.tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise InputError(f"{token!r} is {len(ids)} tokens for this tokenizer; give a single-token string or an id")
        return ids[0]

    @property
    def handle(self) -> ModelHandle:
        """The narrow view of this session that scorers get."""
        return ModelHandle(self.model, self.adapter, self.device, self.model_dtype)

    def auto_batch_size(self, seq_len: int, pixel_numel: int) -> int:
        return self.handle.auto_batch_size(seq_len, pixel_numel)

    @property
    def identity(self) -> str:
        """What identifies this model's results: name, revision, dtype and a sample of the weights."""
        if self._identity is None:
            params = list(self.model.parameters())
            sample = [p.detach().flatten()[:1024].float().cpu().numpy() for p in (params[0], params[len(params) // 2],
                                                                                params[-1])]
            self._identity = fingerprint([self.name, self.revision, str(self.model_dtype), sample])
        return self._identity

    def reliance(self, generation: Generation) -> Reliance:
        """p_t(image) and p_t(black) for every generated token, from one batch of two forward passes."""
        # Only the whole input and the black one: two processor calls, no region basis needed.
        sequence = self.sequence(generation, None, black=True)
        if generation.video is not None:  # frames are at least 2x2: two cells per frame
            scorer = VideoScorer(self.handle, sequence, FrameRegions.grid(generation.video, 1, 2), generation.video,
                                 self.video_encoder, batch_size=2)
        else:
            shape = generation.image.shape[:2]
            halves = RegionSet.grid(shape, rows=1, cols=2) if shape[1] > 1 else RegionSet.grid(shape, rows=2, cols=1)
            scorer = BatchedPixelScorer(self.handle, sequence, halves, generation.image, batch_size=2)
        n = scorer.num_regions
        p = scorer(torch.tensor([[True] * n, [False] * n])).double().numpy()
        return Reliance(tokens=list(generation.tokens), p_full=p[0], p_black=p[1])


LARGE_VIDEO_SEARCH = 20_000  # masked videos above which a video explanation says its cost first


class LargeSearch(UserWarning):
    """An explanation will score very many masked inputs (a video over many frames and regions)."""


def _say_video_cost(request: ExplanationRequest, mode: str, params: dict) -> None:
    """Every frame multiplies the elements: say what a search over them costs before it runs."""
    regions, video = request.regions, request.generation.video
    try:
        count = expected_evaluations(regions.n, mode, **params)
    except (InputError, TypeError):
        return  # the search itself names bad parameters
    if count > LARGE_VIDEO_SEARCH:
        warnings.warn(f"{regions.n} elements ({video.n} frames x about {regions.n // video.n} regions) in {mode} "
                      f"mode score about {count:,} masked videos; for a first look use mode='efficient', fewer "
                      "regions per frame (regions=(3, 3)) or fewer frames (max_frames=)", LargeSearch, stacklevel=3)


def ground_key(request: ExplanationRequest):
    """What identifies a request's elements in the cache: the label map, the spans, or both, and the masking."""
    ground = request.regions
    image = image_regions(ground)
    spans = prompt_spans(ground)
    if spans is None:
        return image.labels
    return [None if image is None else image.labels, spans.to_dict(), request.masking]


def off_the_calling_thread(search, cancel=None):
    """`search(stop)` in a thread of its own, waited for here; `stop()` is true once `cancel` is set (an Event or
    a callable) or the caller is interrupted (Ctrl-C in a notebook).

    Measured on a loaded 2-core machine (demo model, exact, N=37): the same search took 37.7 s from a notebook
    cell's (main) thread and 9.9 s from a worker thread, as the Explorer runs it (12.3 s with one torch thread);
    on an idle machine 3.8 s and 3.5 s. So the API runs it the way the Explorer does."""
    interrupted = threading.Event()
    box: dict = {}

    def stop() -> bool:  # the engine asks this between batches
        return interrupted.is_set() or (cancel is not None and bool(
            cancel.is_set() if hasattr(cancel, "is_set") else cancel()))

    def run():
        try:
            box["result"] = search(stop)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread below
            box["error"] = err

    worker = threading.Thread(target=run, name="eagle-search", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        interrupted.set()
        worker.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]


def open_result_cache(cache) -> ResultCache | None:
    """True: the default folder (none if $EAGLE_WIDGETS_CACHE is "off"; none, with a warning, if the folder is not
    writable); a folder or a ResultCache: that one (an unusable folder raises); False/None: no disk cache."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, ResultCache):
        return cache
    if cache is True:
        if default_cache_dir() is None:
            return None
        try:
            return ResultCache()
        except CacheError as err:
            warnings.warn(f"explanations will not be cached on disk: {err}", stacklevel=3)
            return None
    if isinstance(cache, (str, Path)):
        return ResultCache(cache)
    raise InputError(f"cache must be True, False, a folder or a ResultCache; got {type(cache).__name__}")


def _image_token_id(config, tokenizer):
    for attr in ("image_token_id", "image_token_index"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    return getattr(tokenizer, "image_token_id", None)


def _eos_ids(model, tokenizer) -> list[int]:
    ids = []
    gen_cfg = getattr(model, "generation_config", None)
    for source in (getattr(gen_cfg, "eos_token_id", None), tokenizer.eos_token_id):
        for v in (source if isinstance(source, (list, tuple)) else [source]):
            if isinstance(v, int) and v not in ids:
                ids.append(v)
    return ids


def _display_tokens(tokenizer, ids: list[int]) -> list[str]:
    """Each token's text as it appears in the decoded answer (incremental decoding keeps multi-byte
    characters and word-piece joins right); special tokens show their plain names."""
    special = set(getattr(tokenizer, "all_special_ids", []))
    out, prev = [], ""
    for i in range(len(ids)):
        text = tokenizer.decode(ids[: i + 1], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        piece = text[len(prev):] if text.startswith(prev) else ""
        out.append(tokenizer.convert_ids_to_tokens(ids[i]) if ids[i] in special or not piece else piece)
        prev = text
    return out


def _check_vocabulary(model, tokenizer, image_token_id, name: str) -> None:
    """A processor from another model gives ids the embedding cannot look up: say so before any forward."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    size = getattr(embeddings, "num_embeddings", None)
    if not isinstance(size, int):
        return
    vocabulary = len(tokenizer)
    if vocabulary > size or (isinstance(image_token_id, int) and image_token_id >= size):
        raise InputError(f"the processor's tokenizer ({vocabulary} tokens, image token id {image_token_id}) does "
                         f"not belong to {name} (its embedding has {size} rows); load the processor saved with "
                         f"the model")
