"""The baseline methods. Each returns a `SaliencyMap` over the image for the selected tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core import pointing_game
from ..core.errors import InputError
from ..models.adapters import UnsupportedModel
from ..models.session import ExplanationRequest, Generation, ModelSession
from .memory import PeakMemory


@dataclass(eq=False)
class SaliencyMap:
    """One method's map for some generated tokens: `values` is HxW float32, higher = more important."""

    method: str
    values: np.ndarray
    targets: list[int]
    token_labels: list[str]
    params: dict = field(default_factory=dict)
    seconds: float = 0.0
    peak_memory_bytes: int = 0
    token_values: np.ndarray | None = None  # per image token, for token-based methods

    def pointing_game(self, *, box=None, mask=None) -> bool:
        return pointing_game(self.values, box=box, mask=mask)

    def __repr__(self) -> str:
        return (f"SaliencyMap({self.method!r}, tokens={self.token_labels!r}, {self.values.shape[1]}x"
                f"{self.values.shape[0]}, {self.seconds:.2f} s, peak {self.peak_memory_bytes / 2**20:.0f} MiB)")


class Baseline:
    """A named method with parameters; `explain` measures its time and peak memory."""

    name = ""
    scale = ""  # what the map's values measure, named on its colour bar
    needs: tuple[str, ...] = ()  # "regions", "gradients", "hidden_states", "image_token_grid"
    defaults: dict = {}

    def __init__(self, **params):
        unknown = set(params) - set(self.defaults)
        if unknown:
            allowed = ", ".join(self.defaults) or "none"
            raise InputError(f"unknown parameter(s) {', '.join(sorted(unknown))} for {self.name} (allowed: {allowed})")
        self.params = {**self.defaults, **params}

    def check(self, session: ModelSession) -> None:
        """Raise `UnsupportedModel` when the session cannot provide what this method needs."""
        if set(self.needs) <= {"regions"}:  # scored through the session's scorer: any session will do
            if not hasattr(session, "scorer") or not hasattr(session, "request"):
                raise InputError(f"{self.name} needs a session with a scorer, got {type(session).__name__}")
            return
        if not isinstance(session, ModelSession):
            raise UnsupportedModel(f"{self.name} reads the model's internals, which {type(session).__name__} does "
                                   "not expose (a served model gives scores only); use random or occlusion")
        model = session.model
        if "gradients" in self.needs and not session.model_dtype.is_floating_point:
            raise UnsupportedModel(f"{self.name} needs gradients, but the model's weights are "
                                   f"{session.model_dtype} (quantised); load it in float32/bfloat16")
        if "hidden_states" in self.needs and session.image_token_id is None:
            raise UnsupportedModel(f"{self.name} reads the image tokens' hidden states, but this model's config "
                                   "names no image token id")
        if self.name == "tam" and model.get_output_embeddings() is None:
            raise UnsupportedModel("tam applies the lm_head to hidden states, but the model exposes no output "
                                   "embeddings")

    def explain(self, session: ModelSession, generation: Generation | ExplanationRequest, tokens=None, *,
                regions=64, target_ids=None) -> SaliencyMap:
        """The map of `tokens` of `generation` (or of an `ExplanationRequest`, taken as it is)."""
        self.check(session)
        request = session.request(generation, tokens, regions, target_ids=target_ids)
        t0 = time.perf_counter()
        with PeakMemory(getattr(session, "device", "cpu")) as peak:
            values, token_values = self._compute(session, request)
        return SaliencyMap(self.name, np.asarray(values, dtype=np.float32), list(request.targets),
                           request.token_labels, dict(self.params), time.perf_counter() - t0, peak.bytes,
                           token_values)

    def _compute(self, session: ModelSession, request: ExplanationRequest):
        raise NotImplementedError


class RandomOrder(Baseline):
    """Regions in a random order (seeded): the floor every method must beat."""

    name = "random"
    scale = "random: a seeded random rank per region (no evidence at all)"
    needs = ("regions",)
    defaults = {"seed": 0}

    def _compute(self, session, request):
        rs = request.regions
        rank = np.random.default_rng(self.params["seed"]).permutation(rs.n)
        return rs.values_to_pixels(1.0 - rank / max(1, rs.n - 1)), None


class RegionOcclusion(Baseline):
    """Per region, the drop of the mean target probability when that region alone is blacked out."""

    name = "occlusion"
    scale = "occlusion: the drop of p(selection) when the region alone is blacked out"
    needs = ("regions",)
    defaults = {}

    def _compute(self, session, request):
        scorer = session.scorer(request)
        n = scorer.num_regions
        visible = torch.cat([torch.ones(1, n, dtype=torch.bool), ~torch.eye(n, dtype=torch.bool)])
        p = scorer(visible).double().mean(dim=1).numpy()
        return scorer.regions.values_to_pixels(p[0] - p[1:]), None


class _TokenMethod(Baseline):
    """Shared by the methods that read the image tokens inside the language model."""

    def _setup(self, session, request):
        generation = request.generation
        seq = session.sequence(generation, list(request.targets), target_ids=list(request.target_ids))
        inputs = seq.model_inputs(session.device, session.model_dtype)
        image_pos = (inputs["input_ids"][0] == session.image_token_id).nonzero().flatten()
        tmap = session.token_map(generation, seq.text_inputs)
        if tmap.num_tokens != len(image_pos):
            raise UnsupportedModel(f"{self.name}: the {session.family} input holds {len(image_pos)} image tokens "
                                   f"but its image-token grids account for {tmap.num_tokens}")
        return seq, inputs, image_pos, tmap


class LlavaCAM(_TokenMethod):
    """Grad-CAM on the image-token hidden states of decoder layer `layer` (1..L; None = the middle one), with
    gradients of the summed target logits; `noise_copies` > 0 averages over noisy inputs (SmoothGrad)."""

    name = "llava_cam"
    scale = "LLaVA-CAM: Grad-CAM of the image tokens' states in one decoder layer (mean per region)"
    needs = ("gradients", "hidden_states", "image_token_grid")
    defaults = {"layer": None, "noise_copies": 0, "noise_std": 0.1, "seed": 0}

    def _compute(self, session, request):
        seq, inputs, image_pos, tmap = self._setup(session, request)
        layers = session.model.config.get_text_config().num_hidden_layers
        # The middle layer by default: the last one's post-norm states gave all-zero maps after the ReLU.
        layer = self.params["layer"] if self.params["layer"] is not None else (layers + 1) // 2
        if isinstance(layer, bool) or not isinstance(layer, int) or not (1 <= layer <= layers or
                                                                          -layers <= layer <= -1):
            raise InputError(f"layer must be a decoder layer in 1..{layers} (or -{layers}..-1), got {layer!r}")
        layer = layer if layer > 0 else layers + 1 + layer
        pixel_values = inputs.pop("pixel_values")
        keep = seq.keep.to(session.device)
        target_ids_t = seq.target_ids.to(session.device)
        copies = int(self.params["noise_copies"])
        gen = torch.Generator(device="cpu").manual_seed(int(self.params["seed"]))
        spread = float(pixel_values.float().max() - pixel_values.float().min()) if copies else 0.0
        cam = torch.zeros(len(image_pos), dtype=torch.float64)
        for _ in range(max(1, copies)):
            x = pixel_values
            if copies:
                noise = torch.randn(x.shape, generator=gen) * (self.params["noise_std"] * spread)
                x = x + noise.to(x.device, x.dtype)
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                out = session.model(**inputs, pixel_values=x, output_hidden_states=True, logits_to_keep=keep,
                                    use_cache=False)
                hidden = out.hidden_states[layer]
                score = out.logits[0].float().gather(1, target_ids_t.view(-1, 1)).sum()
                (grad,) = torch.autograd.grad(score, hidden)
            h = hidden[0, image_pos].detach().double().cpu()
            g = grad[0, image_pos].double().cpu()
            cam += torch.relu(h @ g.mean(dim=0))
            del out, hidden, grad
        token_values = (cam / max(1, copies)).numpy()
        return tmap.to_pixels(token_values), token_values


def rank_gaussian_filter(grid, size: int = 3) -> np.ndarray:
    """TAM's denoiser: each cell becomes a Gaussian-weighted mean of its sorted window, weighted by rank
    around the window's median, with sigma the window's coefficient of variation (0 where the mean <= 0)."""
    a = np.asarray(grid, dtype=np.float64)
    pad = size // 2
    padded = np.pad(a, pad, mode="reflect" if min(a.shape) > pad else "edge")
    win = np.sort(np.lib.stride_tricks.sliding_window_view(padded, (size, size)).reshape(*a.shape, size * size), -1)
    mean, std = win.mean(-1), win.std(-1)
    offsets = np.arange(size * size) - size * size // 2
    sigma = np.where(mean > 0, std / np.where(mean > 0, mean, 1.0), 0.0)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = np.where(sigma > 0, np.exp(-offsets ** 2 / (2 * np.maximum(sigma, 1e-300) ** 2)),
                          (offsets == 0).astype(np.float64))
    kernel /= kernel.sum(-1, keepdims=True)
    return np.where(mean > 0, (win * kernel).sum(-1), 0.0)


class TokenActivationMap(_TokenMethod):
    """TAM-like: lm_head on the image tokens' last hidden states read at the target class; the context
    interference (earlier text tokens' own maps, weighted by how much each predicts the target class, scaled by
    least squares) is subtracted; each token grid is min-max normalised and rank-Gaussian filtered."""

    name = "tam"
    scale = "TAM: the selection's activation on the image tokens, interference removed (mean per region)"
    needs = ("hidden_states", "image_token_grid")
    defaults = {"interference": True, "filter_size": 3}

    def _compute(self, session, request):
        seq, inputs, image_pos, tmap = self._setup(session, request)
        with torch.inference_mode():
            out = session.model(**inputs, output_hidden_states=True, logits_to_keep=1, use_cache=False)
        hidden = out.hidden_states[-1][0].float()
        head = session.model.get_output_embeddings().weight
        ids = inputs["input_ids"][0].cpu()
        special = set(getattr(session.tokenizer, "all_special_ids", [])) | {session.image_token_id}
        text_pos = torch.tensor([j for j, t in enumerate(ids.tolist()) if t not in special], dtype=torch.long)
        classes = torch.unique(torch.cat([ids[text_pos], seq.target_ids]))
        column = {int(c): i for i, c in enumerate(classes)}
        w = head[classes.to(head.device)].float()
        with torch.inference_mode():
            image_logits = (hidden[image_pos] @ w.T).double().cpu()  # [n_image, C]
            text_logits = (hidden[text_pos.to(hidden.device)] @ w.T).double().cpu()  # [n_text, C]
        maps = []
        for k, cls in enumerate(seq.target_ids.tolist()):
            act = torch.relu(image_logits[:, column[cls]])
            if self.params["interference"]:
                before = (text_pos <= int(seq.keep[k])) & (ids[text_pos] != cls)
                if before.any():
                    weight = torch.relu(text_logits[before, column[cls]])
                    context = torch.relu(image_logits[:, [column[int(t)] for t in ids[text_pos[before]]]])
                    if weight.sum() > 0:
                        interference = context @ (weight / weight.sum())
                        denom = float(interference @ interference)
                        scale = float(act @ interference) / denom if denom > 0 else 0.0
                        act = torch.relu(act - scale * interference)
            maps.append(act.numpy())
        token_values = np.mean(maps, axis=0)
        grids = []
        for g in tmap.split_grids(token_values):
            span = g.max() - g.min()
            g = (g - g.min()) / span if span > 0 else np.zeros_like(g)
            grids.append(rank_gaussian_filter(g, int(self.params["filter_size"])))
        token_values = tmap.join_grids(grids)
        return tmap.to_pixels(token_values), token_values


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (RandomOrder, RegionOcclusion, LlavaCAM, TokenActivationMap)}


def explain_baseline(method: str, session: ModelSession, generation: Generation | ExplanationRequest, tokens=None, *,
                     regions=64, target_ids=None, **params) -> SaliencyMap:
    """Run the baseline called `method` (see `BASELINES`) on `tokens` of `generation`."""
    cls = BASELINES.get(method)
    if cls is None:
        raise InputError(f"unknown baseline {method!r}; choose one of {', '.join(BASELINES)}")
    return cls(**params).explain(session, generation, tokens, regions=regions, target_ids=target_ids)


__all__ = ["BASELINES", "Baseline", "LlavaCAM", "RandomOrder", "RegionOcclusion", "SaliencyMap",
           "TokenActivationMap", "explain_baseline", "rank_gaussian_filter"]
