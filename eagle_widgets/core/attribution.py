"""The result of one EAGLE explanation."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import metrics, spans
from .errors import InputError
from .regions import RegionSet

# How a map turns the greedy path into colours. Each is named and explained wherever a map is drawn.
MAP_ENCODINGS = {
    "gain": "each region's own gain in F when it was added, as a share of the largest gain (a loss shows as 0)",
    "paper": "rank 1 = 1, then the share of the later gains still to come (the authors' map; it stretches small "
             "gains over the whole scale)",
}
IMAGE_INDEPENDENT = 0.05  # below this much movement of p along the paths, a map ranks noise


def region_map(order, scores, num_regions: int, encoding: str = "gain", scale: float | None = None) -> np.ndarray:
    """Value per region label in [0, 1] from the ranked regions `order` and F along them (`scores`, len(order)+1
    points, or fewer for a preview: regions past the known scores get 0, as do unranked regions). `scale`: for
    "gain", the gain that maps to 1 (default: this path's largest), so that maps can share one scale."""
    if encoding not in MAP_ENCODINGS:
        raise InputError(f"the map encoding is one of {', '.join(MAP_ENCODINGS)}; got {encoding!r}")
    values = np.zeros(int(num_regions), dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    order = [int(r) for r in order][: max(0, len(scores) - 1)]
    if not order:
        return values
    gains = np.diff(scores[: len(order) + 1])
    if encoding == "gain":
        top = gains.max() if scale is None else float(scale)
        if top > 0:
            values[order] = np.clip(gains / top, 0, 1)
        return values
    # The authors' normalisation: a = -cumsum(|gain|), min-max scaled, so rank 1 -> 1 and the last rank -> 0.
    a = -np.cumsum(np.abs(gains))
    span = a[0] - a[-1]
    if span > 0:
        values[order] = (a - a[-1]) / span
    elif len(order) == 1:
        values[order] = 1.0
    return values


@dataclass(frozen=True)
class MethodMap:
    """Another method's own map (a baseline's Grad-CAM, occlusion drop, token activation or random ranks), one
    value per region in [0, 1], with the words that say what its scale is. A baseline's result keeps its region
    order, curves and AUCs scored like EAGLE's; this is the map it draws."""

    values: tuple[float, ...]
    scale: str

    @classmethod
    def from_region_scores(cls, scores, scale: str) -> MethodMap:
        """Min-max scaled region scores: 1 = the method's strongest region, 0 = its weakest."""
        s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
        span = float(s.max() - s.min()) if s.size else 0.0
        values = (s - s.min()) / span if span > 0 else np.zeros_like(s)
        return cls(tuple(float(v) for v in values), f"{scale}, scaled from its weakest region (0) to its "
                                                    "strongest (1)")

    def to_dict(self) -> dict:
        return {"values": list(self.values), "scale": self.scale}

    @classmethod
    def from_dict(cls, d) -> MethodMap:
        if not isinstance(d, dict) or not isinstance(d.get("values"), list) or not isinstance(d.get("scale"), str):
            raise InputError("a method map needs 'values' (a list) and 'scale' (text)")
        values = np.asarray(d["values"], dtype=np.float64)
        if values.ndim != 1 or not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(initial=0) > 1:
            raise InputError("a method map's values must be finite numbers in [0, 1]")
        return cls(tuple(float(v) for v in values), d["scale"])


@dataclass(frozen=True)
class AnswerContext:
    """What an explanation answers, typed: the model, the question and its generated answer, the explained
    positions and the ids scored there (the generated ones, or e.g. the correct answer of a hallucination),
    and how the scores were computed. Built once by whoever made the explanation."""

    model: str = ""
    family: str = ""
    prompt: str = ""
    answer: str = ""
    generated_tokens: tuple[str, ...] = ()
    generated_ids: tuple[int, ...] = ()
    targets: tuple[int, ...] = ()
    target_ids: tuple[int, ...] = ()
    path: str = ""
    batch_size: int | None = None
    scoring: dict = field(default_factory=dict)
    video: dict = field(default_factory=dict)  # a video's frames, fps and times (`Video.describe`); {} for images

    def to_dict(self) -> dict:
        return {name: (list(v) if isinstance(v, tuple) else v) for name, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> AnswerContext:
        """From a dict (a bundle, or a version-1 bundle's `info`); unknown keys are left out."""
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})


@dataclass(eq=False)
class Attribution:
    """Region order, trajectories and everything derived from them.

    Curves have K+1 points: index 0 is the empty set (insertion = f(black), deletion = f(x)), index k
    the first k regions of `order`. A complete result has K = N and ends at area 1.0.
    """

    regions: RegionSet | spans.PromptSpans | spans.JointSet  # what is ordered: image regions, prompt spans, both
    order: list[int]
    areas: np.ndarray  # [K+1] cumulative area fraction of the first k regions
    insertion_tokens: np.ndarray  # [K+1, T] p_t(only S_k visible)
    deletion_tokens: np.ndarray  # [K+1, T] p_t(S_k removed)
    p_full: np.ndarray  # [T]
    p_black: np.ndarray  # [T]
    lambda1: float = 1.0
    lambda2: float = 1.0
    mode: str = "exact"
    params: dict = field(default_factory=dict)
    evaluations: int = 0
    timings: dict = field(default_factory=dict)
    complete: bool = True
    token_labels: list[str] | None = None  # display strings of the T target tokens
    info: dict = field(default_factory=dict)  # JSON-able extras of the user's (imports keep their source here)
    image: np.ndarray | None = None  # HxWx3 uint8, when known
    context: AnswerContext | None = None  # what this explains (model, prompt, answer, targets ...), when known
    method_map: MethodMap | None = None  # a baseline's own map (EAGLE's map is its gains: `region_map`)
    cache_key: str | None = None  # provenance: the disk-cache key this result is stored under (saved)
    from_cache: bool = False  # provenance: read back from a disk cache rather than computed now (not saved)

    def __post_init__(self):
        self.order = [int(r) for r in self.order]
        self.areas = np.asarray(self.areas, dtype=np.float64)
        self.insertion_tokens = np.asarray(self.insertion_tokens, dtype=np.float64)
        self.deletion_tokens = np.asarray(self.deletion_tokens, dtype=np.float64)
        self.p_full = np.asarray(self.p_full, dtype=np.float64)
        self.p_black = np.asarray(self.p_black, dtype=np.float64)
        k, t = len(self.order), len(self.p_full)
        if self.areas.shape != (k + 1,):
            raise InputError(f"areas must have {k + 1} entries, got {self.areas.shape}")
        for name in ("insertion_tokens", "deletion_tokens"):
            if getattr(self, name).shape != (k + 1, t):
                raise InputError(f"{name} must be [{k + 1}, {t}], got {getattr(self, name).shape}")
        if self.p_black.shape != (t,):
            raise InputError(f"p_black must have {t} entries, got {self.p_black.shape}")
        if len(set(self.order)) != k or (k and (min(self.order) < 0 or max(self.order) >= self.regions.n)):
            raise InputError(f"order must list distinct region labels in 0..{self.regions.n - 1}")
        if self.token_labels is not None and len(self.token_labels) != t:
            raise InputError(f"token_labels has {len(self.token_labels)} entries for {t} tokens")
        if self.method_map is not None and len(self.method_map.values) != self.regions.n:
            raise InputError(f"the method map has {len(self.method_map.values)} values for {self.regions.n} regions")

    # -- shape ----------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        return len(self.p_full)

    @property
    def num_regions(self) -> int:
        return self.regions.n

    @property
    def approximation(self) -> str:
        """What the scores approximate, for results scored approximately (an API that returns only top-k
        log-probabilities of generated tokens); "" for exact results."""
        scoring = self.context.scoring if self.context is not None else {}
        return "" if scoring.get("exact", True) else str(scoring.get("approximation") or "approximate scores")

    @property
    def insertion(self) -> np.ndarray:
        """Mean insertion curve over the target tokens."""
        return self.insertion_tokens.mean(axis=1)

    @property
    def deletion(self) -> np.ndarray:
        return self.deletion_tokens.mean(axis=1)

    @property
    def scores(self) -> np.ndarray:
        """F(S_k) for k = 0..K with this result's λ."""
        return self.lambda1 * self.insertion + self.lambda2 * (1.0 - self.deletion)

    # -- the map (method section 5) -------------------------------------------------------------
    @cached_property
    def region_values(self) -> np.ndarray:
        """The paper's map per region label in [0, 1] (encoding "paper", see `MAP_ENCODINGS`)."""
        return region_map(self.order, self.scores, self.num_regions, "paper")

    def region_map(self, encoding: str = "gain") -> np.ndarray:
        """Value per region label in [0, 1] under `encoding` (see `MAP_ENCODINGS`; unranked regions get 0)."""
        return region_map(self.order, self.scores, self.num_regions, encoding)

    @property
    def degenerate(self) -> bool:
        """True when the map has no ranking information (all gains after the first are zero)."""
        return len(self.order) > 1 and not np.any(self.region_values > 0)

    @property
    def image_dependence(self) -> float:
        """How far the selection's mean probability moves as regions are revealed or removed (0..1).

        Below IMAGE_INDEPENDENT the selection barely depends on the image and any map of it ranks noise."""
        if len(self.order) == 0:
            return 0.0
        return float(max(np.ptp(self.insertion), np.ptp(self.deletion)))

    def drawn_map(self, encoding: str = "gain", scale: float | None = None) -> np.ndarray:
        """What a view draws per region: a baseline's own map (`method_map`), else EAGLE's gains in `encoding`
        (`scale`: the gain that maps to 1, to share one scale between EAGLE maps)."""
        if self.method_map is not None:
            return np.asarray(self.method_map.values, dtype=np.float64)
        return region_map(self.order, self.scores, self.num_regions, encoding, scale)

    # -- what the elements are: image regions, prompt spans or both (core.spans) --------------------
    @property
    def image_regions(self) -> RegionSet | None:
        """The image regions this result orders (None when it orders prompt spans only)."""
        return spans.image_regions(self.regions)

    @property
    def prompt_spans(self) -> spans.PromptSpans | None:
        """The prompt spans this result orders (None for an image attribution)."""
        return spans.prompt_spans(self.regions)

    @property
    def kind(self) -> str:
        """"image", "prompt" or "joint": what the ordered elements are."""
        return "joint" if isinstance(self.regions, spans.JointSet) else (
            "prompt" if isinstance(self.regions, spans.PromptSpans) else "image")

    def image_values(self, encoding: str = "gain", scale: float | None = None) -> np.ndarray | None:
        """The drawn map's values of the image regions (None without image regions)."""
        image = self.image_regions
        return None if image is None else self.drawn_map(encoding, scale)[: image.n]

    def span_values(self, encoding: str = "gain", scale: float | None = None) -> np.ndarray | None:
        """The map's values of the prompt spans (None without spans), on the same scale as the image's."""
        prompt = self.prompt_spans
        return None if prompt is None else self.drawn_map(encoding, scale)[self.num_regions - prompt.n:]

    @property
    def frames(self) -> int:
        """How many video frames the image regions lie on (0 for an image)."""
        regions = self.image_regions
        return int(getattr(regions, "frames", 0))

    @property
    def area_axis(self) -> str:
        """What the curves' x-axis (the area) is for this result, in words."""
        return spans.AREA_AXES["video" if self.frames else self.kind]

    def frame_shares(self, encoding: str = "gain") -> np.ndarray | None:
        """Each video frame's share of the positive gain (None for an image): which frames matter."""
        from .video import frame_shares

        return frame_shares(self, encoding)

    def reliance_split(self) -> dict:
        """What the selection's mean probability with everything shown rests on, along this result's order: the
        prior (p with the image black and every prompt span removed), the image regions' and the prompt spans'
        steps of the insertion curve (they add up to p with everything shown: the curve telescopes). Order-
        dependent, like the curve it reads; for joint results (and prompt or image results, where one part is 0)."""
        curve = self.insertion
        steps = np.diff(curve)
        image = self.image_regions
        first_span = image.n if image is not None else 0
        is_image = np.array([e < first_span for e in self.order], dtype=bool)
        return {"prior": float(curve[0]), "image": float(steps[is_image].sum()),
                "prompt": float(steps[~is_image].sum()) if self.prompt_spans is not None else 0.0,
                "total": float(curve[-1])}

    def pixel_map(self, smooth: float = 0.0, encoding: str = "gain") -> np.ndarray:
        """The map at pixel level (float32 HxW) in `encoding`, optionally smoothed with a Gaussian of `smooth`
        pixels. The pixel-level metrics rank pixels by the "paper" encoding, which follows the region order."""
        image = self.image_regions
        if image is None:
            raise InputError("this result orders prompt spans only: it has no map over the image")
        pix = image.values_to_pixels(self.region_map(encoding)[: image.n])
        if smooth > 0:
            from scipy.ndimage import gaussian_filter

            pix = gaussian_filter(pix, sigma=smooth).astype(np.float32)
        return pix

    def marginal_gains(self) -> np.ndarray:
        """Per region label, the change of F when it was added (0 for unranked regions)."""
        gains = np.zeros(self.num_regions, dtype=np.float64)
        gains[self.order] = np.diff(self.scores)
        return gains

    def ranks(self) -> np.ndarray:
        """Per region label, its 1-based rank (0 for unranked regions)."""
        ranks = np.zeros(self.num_regions, dtype=np.int64)
        ranks[self.order] = np.arange(1, len(self.order) + 1)
        return ranks

    # -- modality (method section 6) -----------------------------------------------------------
    @property
    def reliance(self) -> np.ndarray:
        """Per target token, I_t = AUC(area, c_t) - min(c_t): ~0 language prior, high perceptual evidence."""
        return metrics.reliance_scores(self.insertion_tokens, self.areas)

    @property
    def sensitive(self) -> np.ndarray:
        return metrics.sensitive_tokens(self.p_full, self.p_black)

    # -- metrics (method section 7) ------------------------------------------------------------
    @property
    def insertion_auc(self) -> float:
        return metrics.insertion_auc(self.insertion, self.areas)

    @property
    def deletion_auc(self) -> float:
        return metrics.deletion_auc(self.deletion, self.areas)

    @property
    def highest_score(self) -> float:
        return float(self.insertion.max())

    def metrics(self) -> dict:
        """Insertion/deletion AUC and highest score, over all target tokens and over sensitive ones."""
        out = {
            "insertion_auc": self.insertion_auc,
            "deletion_auc": self.deletion_auc,
            "highest_score": self.highest_score,
            "sensitive_tokens": int(self.sensitive.sum()),
        }
        sens = self.sensitive
        if sens.any():
            ins = self.insertion_tokens[:, sens].mean(axis=1)
            dele = self.deletion_tokens[:, sens].mean(axis=1)
            out.update(
                sensitive_insertion_auc=metrics.insertion_auc(ins, self.areas),
                sensitive_deletion_auc=metrics.deletion_auc(dele, self.areas),
                sensitive_highest_score=float(ins.max()),
            )
        else:
            out.update(sensitive_insertion_auc=None, sensitive_deletion_auc=None, sensitive_highest_score=None)
        return out

    def pointing_game(self, *, box=None, mask=None) -> bool:
        return metrics.pointing_game(self.pixel_map(encoding="paper"), box=box, mask=mask)

    # -- persistence ----------------------------------------------------------------------------
    def save(self, path) -> None:
        from .bundle import save_attribution

        save_attribution(self, path)

    @staticmethod
    def load(path) -> Attribution:
        from .bundle import load_attribution

        return load_attribution(path)

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"partial {len(self.order)}/{self.num_regions}"
        labels = f", tokens={self.token_labels!r}" if self.token_labels is not None else ""
        return (f"Attribution(mode={self.mode!r}, regions={self.num_regions}, tokens={self.num_tokens}{labels}, "
                f"{state}, evaluations={self.evaluations}, insertion_auc={self.insertion_auc:.4f}, "
                f"deletion_auc={self.deletion_auc:.4f})")
