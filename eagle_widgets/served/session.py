"""`ServedSession`: explain a model behind a server (vLLM, SGLang, or an OpenAI-style API) through the same session
interface as a local one. The server sees each masked image as a lossless PNG at the original resolution (regions
blacked out before its processor, as the method says); the engine, requests, results, the Explorer, the CLI and
`evaluate` are the ones local sessions use."""

from __future__ import annotations

import base64
import io
import itertools
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..core import RegionSet, expected_evaluations, validation
from ..core.errors import InputError, UnsupportedModel
from ..core.images import as_rgb_uint8
from ..models.session import ExplanationRequest, Generation, Reliance, SessionBase, open_result_cache
from ..storage.cache import fingerprint
from .client import ServerClient, ServerError, ServerUnreachable
from .protocols import PROTOCOLS, Answer, Prepared, ScoringProtocol, SGLangGenerate, TopKContinuation, VLLMChat

_served_ids = itertools.count(1_000_001)  # apart from local sessions' ids
PREPARED_KEPT = 8
# An approximate (paid, rate-limited) API is asked before a search that needs more calls than this.
DEFAULT_MAX_CALLS = 20_000


class ApproximateScoring(UserWarning):
    """A result from an API that only returns top-k log-probabilities of generated tokens: approximate."""


def png_data_url(rgb: np.ndarray) -> str:
    """The image as a lossless PNG data URL (a fast zlib level: lossless at any level)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def server_root(url: str) -> str:
    """The server's root from an OpenAI-style base URL ("http://host:8000/v1" -> "http://host:8000")."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InputError(f"a server address starts with http:// or https://, got {url!r}")
    root = url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class ServedScorer:
    """The engine's Scorer for a served model: each mask becomes a masked image (PNG), scored by the server; the
    requests of a batch are in flight together (bounded by the client)."""

    def __init__(self, session: ServedSession, request: ExplanationRequest, prepared: Prepared, batch_size: int):
        self.session = session
        self.request = request
        self.prepared = prepared
        self.regions = request.regions
        self.num_regions = request.regions.n
        self.num_tokens = len(request.targets)
        self.batch_size = batch_size
        self._stop = None
        # What this scorer asked of the server. `describe()` hands out this dict itself, so a result's context
        # (described before its search) holds the final counts once the search is done.
        self.tally = {"masked_images": 0, "requests": 0}
        if not session.exact:
            self.tally["tokens_outside_top_k"] = 0

    def watch_cancel(self, stop) -> None:
        """Requests not yet sent are dropped once `stop()` is true (a cancelled search returns what it has)."""
        self._stop = stop

    def _urls(self, visible: np.ndarray) -> list[str]:
        image = self.request.generation.image
        with ThreadPoolExecutor(min(8, len(visible))) as pool:  # PNG encoding releases the GIL
            return list(pool.map(lambda v: png_data_url(self.regions.apply(image, v)), visible))

    def __call__(self, visible: torch.Tensor) -> torch.Tensor:
        v = validation.masks(visible, self.num_regions).numpy()
        s = self.session
        out = s.protocol.score(s.client, s.model, self.prepared, self._urls(v), self.request.generation.prompt,
                               cancel=self._stop, tally=self.tally)
        self.tally["masked_images"] += len(v)
        return torch.from_numpy(out).to(torch.float32)

    def greedy(self, visible) -> torch.Tensor:
        """The model's top token at each target position for each mask (the hallucination correction)."""
        s = self.session
        if not isinstance(s.protocol, VLLMChat):
            raise UnsupportedModel(f"the {s.protocol.name} API does not return the model's top token at a given "
                                   "position; the hallucination correction needs vLLM's prompt log-probabilities")
        v = validation.masks(visible, self.num_regions).numpy()
        ids = s.protocol.greedy_ids(s.client, s.model, self.prepared, self._urls(v), self.request.generation.prompt,
                                    cancel=self._stop)
        return torch.from_numpy(ids)

    def describe(self) -> dict:
        s = self.session
        self.tally.update({
            "path": "served", "semantics": "regions blacked out in the original image, then the server's processor",
            "server": s.url, "model": s.model, "server_version": s.server_version, **s.protocol.describe(),
            "requests_per_image": self.prepared.calls_per_image, "images_sent_as": "PNG (lossless), original "
            "resolution", "max_in_flight": s.client.max_in_flight})
        return self.tally


class ServedSession(SessionBase):
    """A model behind a server, explained through the session interface. `api`: "vllm" (exact), "sglang" (exact;
    needs `tokenizer`), "openai-topk" (approximate, labelled so) or "auto" (vLLM or SGLang, by asking the server;
    an approximation is never chosen for you). `api_key` defaults to $EAGLE_WIDGETS_API_KEY."""

    reads_internals = False

    def __init__(self, url: str, model: str | None = None, *, api: str = "auto", api_key: str | None = None,
                 max_in_flight: int = 8, retries: int = 4, timeout_s: float = 120.0, backoff_s: float = 0.5,
                 top_k: int = 20,
                 tokenizer=None, batch_size: int | None = None, cache=True, max_calls: int = DEFAULT_MAX_CALLS,
                 transport=None):
        if api not in ("auto", *PROTOCOLS):
            raise InputError(f"api must be 'auto', {', '.join(repr(p) for p in PROTOCOLS)}; got {api!r}")
        self.url = url.rstrip("/")
        # The key from the environment when not given: it never goes into saved options or results.
        api_key = api_key or os.environ.get("EAGLE_WIDGETS_API_KEY")
        self.client = ServerClient(server_root(url), api_key=api_key, max_in_flight=max_in_flight,
                                   retries=retries, timeout_s=timeout_s, backoff_s=backoff_s, transport=transport)
        self.max_calls = validation.integer(max_calls, "max_calls", minimum=1)
        if batch_size is not None:
            validation.integer(batch_size, "batch_size", minimum=1)
        self.batch_size = batch_size
        kind, self.server_version = self._server_kind()
        if api == "auto":
            if kind is None:
                raise InputError(f"{self.url} is neither vLLM nor SGLang (no /version or /get_server_info); for an "
                                 "API that returns only top-k log-probabilities of generated tokens, choose "
                                 "api='openai-topk' (approximate)")
            api = kind
        self.protocol: ScoringProtocol = (SGLangGenerate(_load_tokenizer(tokenizer)) if api == "sglang" else
                                          TopKContinuation(top_k) if api == "openai-topk" else VLLMChat())
        self.model = self._served_model(model)
        self.name = self.model
        short = Path(self.model).name if Path(self.model).is_absolute() else self.model
        self.display_name = f"{short} (served{'' if self.protocol.exact else ', approximate'})"
        self.id = next(_served_ids)
        self.cache = open_result_cache(cache)
        self._init_regions()
        self._prepared: list[tuple] = []  # (generation, targets, target_ids, Prepared), latest first
        # What the scores depend on: the server's model and version, and how they are read (the top k too).
        self._identity = fingerprint([self.model, self.server_version, self.protocol.describe(),
                                      self.client.base_url])

    # -- the server --------------------------------------------------------------------------------
    def _server_kind(self) -> tuple[str | None, str]:
        """("vllm" | "sglang" | None, the server and its version), asked once when the session opens; a server
        that cannot be reached at all is said here."""
        for path, kind, server in (("/version", "vllm", "vLLM"), ("/get_server_info", "sglang", "SGLang")):
            try:
                version = self.client.get(path).get("version")
            except ServerUnreachable:
                raise
            except ServerError:
                continue
            if isinstance(version, str):
                return kind, f"{server} {version}"
        return None, "unknown"

    def _served_model(self, model: str | None) -> str:
        try:
            listed = self.client.get("/v1/models").get("data")
        except ServerError as err:
            if model is None:
                raise InputError(f"cannot list the models of {self.url} ({err}); name one with model=") from None
            return model
        names = [m.get("id") for m in listed or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        if model is None:
            if len(names) != 1:
                raise InputError(f"{self.url} serves {len(names)} models ({', '.join(names) or 'none'}); name one "
                                 "with model=")
            return names[0]
        if names and model not in names:
            raise InputError(f"{self.url} does not serve {model!r}; it serves {', '.join(names)}")
        return model

    def close(self) -> None:
        self.client.close()

    # -- session interface -------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return f"served ({self.protocol.name})"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def exact(self) -> bool:
        return self.protocol.exact

    def __repr__(self) -> str:
        # The model as the Explorer's header names it (a served folder by its last part: no machine paths).
        return (f"ServedSession({self.display_name!r}, server={self.url!r}, api={self.protocol.name!r}, "
                f"{'exact' if self.exact else 'approximate'})")

    def path_label(self, path: str) -> str:
        return "served" if self.exact else "served (approximate)"

    def _image(self, image) -> np.ndarray:
        rgb = as_rgb_uint8(image)
        if min(rgb.shape[:2]) < 2:
            raise InputError(f"the image is {rgb.shape[1]}x{rgb.shape[0]} pixels; it must be at least 2x2")
        return rgb

    def _generation(self, rgb, prompt, answer: Answer, timings: dict) -> Generation:
        ids = answer.ids if answer.ids is not None else [-1] * len(answer.tokens)  # the API names no ids
        return Generation(image=rgb, prompt=prompt, prompt_text=prompt, token_ids=list(ids), tokens=answer.tokens,
                          special=answer.special, text=answer.text, model_name=self.name, session_id=self.id,
                          timings=timings)

    def generate(self, image, prompt: str, max_new_tokens: int = 64) -> Generation:
        """The server's greedy answer (temperature 0) to `prompt` about `image`."""
        max_new_tokens = validation.integer(max_new_tokens, "max_new_tokens", minimum=1)
        rgb = self._image(image)
        _check_prompt(prompt)
        t0 = time.perf_counter()
        answer = self.protocol.generate(self.client, self.model, png_data_url(rgb), prompt, max_new_tokens)
        return self._generation(rgb, prompt, answer, {"generate_s": time.perf_counter() - t0})

    def teacher_force(self, image, prompt: str, answer) -> Generation:
        """A given answer (text) as a Generation, tokenised by the server: explaining it scores the model's
        probability of each given token."""
        if not isinstance(answer, str) or not answer.strip():
            raise InputError(f"the given answer must be non-empty text, got {answer!r}")
        rgb = self._image(image)
        _check_prompt(prompt)
        t0 = time.perf_counter()
        tokenised = self.protocol.tokenize(self.client, self.model, answer)
        return self._generation(rgb, prompt, tokenised, {"teacher_forced_s": time.perf_counter() - t0})

    def token_id(self, token) -> int:
        if isinstance(token, (int, np.integer)) and not isinstance(token, (bool, np.bool_)):
            if int(token) < 0:
                raise InputError(f"token id {token} is negative")
            return int(token)
        if isinstance(token, str) and not isinstance(self.protocol, TopKContinuation):
            ids = self.protocol.tokenize(self.client, self.model, token).ids
            if len(ids) != 1:
                raise InputError(f"{token!r} is {len(ids)} tokens for this model; give a single-token string or an id")
            return ids[0]
        raise InputError(f"the {self.protocol.name} API names tokens by text only; it cannot score token {token!r} "
                         "by id")

    def _prepare(self, request: ExplanationRequest) -> Prepared:
        g = request.generation
        for held in self._prepared:
            if held[0] is g and held[1] == request.targets and held[2] == request.target_ids:
                return held[3]
        answer = Answer(None if all(i < 0 for i in g.token_ids) else list(g.token_ids), list(g.tokens),
                        list(g.special), g.text)
        prepared = self.protocol.prepare(self.client, self.model, answer, list(request.targets),
                                         list(request.target_ids), g.prompt, png_data_url(g.image))
        self._prepared = [(g, request.targets, request.target_ids, prepared), *self._prepared][:PREPARED_KEPT]
        return prepared

    def scorer(self, generation, tokens=None, regions=64, *, path: str = "served", target_ids=None,
               batch_size: int | None = None) -> ServedScorer:
        """The engine's Scorer for `tokens` of `generation` over `regions`, scored by the server. (`path` is
        accepted for the local sessions' callers; a served model has one path.)"""
        request = self.request(generation, tokens, regions, target_ids=target_ids)
        prepared = self._prepare(request)
        # Enough images per engine batch to keep every request slot busy twice over; a cancel is heard between.
        per_image = max(1, prepared.calls_per_image)
        batch = batch_size or self.batch_size or max(1, 2 * self.client.max_in_flight // per_image)
        return ServedScorer(self, request, prepared, batch)

    def cost(self, generation, tokens=None, regions=64, mode: str = "exact", **params) -> dict:
        """What an explanation will ask of the server: masked images and requests (before it starts)."""
        request = self.request(generation, tokens, regions)
        images = expected_evaluations(request.regions.n, mode, **params)
        per_image = len(request.targets) if isinstance(self.protocol, TopKContinuation) else \
            self._prepare(request).calls_per_image
        return {"masked_images": images, "requests": images * per_image, "requests_per_image": per_image,
                "mode": mode, "exact": self.exact, "at_least": mode == "early_stop"}

    def explain(self, generation, tokens=None, regions=64, mode: str = "exact", **kwargs):
        """EAGLE on the served model (see `SessionBase.explain`). On an approximate API the number of calls is
        said first (a warning), and a search above `max_calls` is refused unless `max_calls=` allows it."""
        if not self.exact:
            params = {k: v for k, v in kwargs.items() if k not in _EXPLAIN_OPTIONS}
            limit = kwargs.pop("max_calls", self.max_calls)
            request = self.request(generation, tokens, regions, target_ids=kwargs.get("target_ids"),
                                   prompt=kwargs.get("prompt"), masking=kwargs.get("masking", "pad"))
            cost = self.cost(request, mode=mode, **params)
            if cost["requests"] > limit:
                raise InputError(f"this explanation needs {'at least ' if cost['at_least'] else ''}"
                                 f"{cost['requests']:,} API calls ({cost['masked_images']:,} masked images x "
                                 f"{cost['requests_per_image']} answer tokens), more than max_calls={limit:,}; "
                                 "use fewer regions or tokens, mode='efficient', or pass max_calls=")
            warnings.warn(ApproximateScoring(
                f"approximate scores ({self.protocol.approximation}); {'at least ' if cost['at_least'] else ''}"
                f"{cost['requests']:,} API calls"), stacklevel=2)
            generation, tokens, regions = request, None, request.regions
        kwargs.pop("max_calls", None)
        return super().explain(generation, tokens, regions, mode, **kwargs)

    def reliance(self, generation: Generation) -> Reliance:
        """p_t(image) and p_t(black image) for every generated token: two masked images through the server."""
        halves = RegionSet.grid(generation.image.shape[:2], rows=1, cols=2) if generation.image.shape[1] > 1 \
            else RegionSet.grid(generation.image.shape[:2], rows=2, cols=1)
        scorer = self.scorer(self.request(generation, None, halves))
        p = scorer(torch.tensor([[True, True], [False, False]])).double().numpy()
        return Reliance(tokens=list(generation.tokens), p_full=p[0], p_black=p[1])


_EXPLAIN_OPTIONS = ("lambda1", "lambda2", "batch_size", "progress", "cancel", "path", "target_ids", "use_cache",
                    "max_calls", "prompt", "masking")


def _check_prompt(prompt) -> None:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"the prompt must be a non-empty string, got {prompt!r}")


def _load_tokenizer(tokenizer):
    if tokenizer is None or hasattr(tokenizer, "apply_chat_template"):
        return tokenizer
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(str(tokenizer))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot load a tokenizer from {tokenizer!r}: {str(err).splitlines()[0]}") from None


def load_served_session(url: str, model: str | None = None, **options) -> ServedSession:
    """A session on the model served at `url` (e.g. "http://127.0.0.1:8000/v1"); see `ServedSession`."""
    return ServedSession(url, model, **options)
