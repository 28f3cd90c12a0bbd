"""One sample through the paper's protocols: explain, then insertion/deletion AUC, average highest score,
pointing game (box and mask) and the hallucination correction (MCR), as one flat record."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from ..core import MODES, minimal_correction_ratio, validation
from ..core.errors import EagleError, InputError
from .manifest import Sample

RECORD_METRICS = ("insertion_auc", "deletion_auc", "highest_score", "image_dependence", "pointing_box",
                  "pointing_mask", "mcr", "corrected")


@dataclass(frozen=True)
class EvaluationOptions:
    """How every sample is explained; stored with the results so that a resumed run uses the same."""

    model: str = "demo"  # "demo" (the embedded model), a local folder or a model id
    mode: str = "exact"
    regions: int = 64
    lambda1: float = 1.0
    lambda2: float = 1.0
    batch_size: int | None = None
    dtype: str = "auto"
    device: str | None = None
    max_new_tokens: int = 32
    # A served model (`model` is a server's address): its name there, the API, requests in flight per worker.
    served_model: str | None = None
    api: str = "auto"
    max_in_flight: int = 8
    # The prompt's spans too ("word" or "sentence"); with regions 0 they alone are ordered.
    prompt_spans: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.prompt_spans not in (None, "word", "sentence", "message"):
            raise InputError(f"prompt_spans must be 'word', 'sentence', 'message' or None; got {self.prompt_spans!r}")
        if not (self.regions == 0 and self.prompt_spans):  # 0: the prompt's spans alone
            validation.region_count(self.regions)
        validation.lambdas(self.lambda1, self.lambda2)
        validation.integer(self.max_new_tokens, "max_new_tokens", minimum=1)
        if self.batch_size is not None:
            validation.integer(self.batch_size, "batch_size", minimum=1)
        validation.integer(self.max_in_flight, "max_in_flight", minimum=1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EvaluationOptions:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def load_session(self, device: str | None = None):
        """The session these options name, on `device` (default: the options' own)."""
        device = device or self.device
        if self.model == "demo":
            from ..demo import load_demo_session

            return load_demo_session(device=device or "cpu", batch_size=self.batch_size, cache=False,
                                     **({} if self.dtype == "auto" else {"dtype": self.dtype}))
        from ..models import load_session

        if self.served:
            return load_session(self.model, batch_size=self.batch_size, cache=False, served_model=self.served_model,
                                api=self.api, max_in_flight=self.max_in_flight)
        return load_session(self.model, device=device, dtype=self.dtype, batch_size=self.batch_size, cache=False)

    @property
    def served(self) -> bool:
        return self.model.startswith(("http://", "https://"))


def _answer(session, sample: Sample, image, options: EvaluationOptions):
    if sample.answer is not None:
        return session.teacher_force(image, sample.prompt, sample.answer)
    return session.generate(image, sample.prompt, max_new_tokens=options.max_new_tokens)


def _targets(generation, sample: Sample) -> list[int]:
    if sample.tokens == "all":
        targets = [i for i, special in enumerate(generation.special) if not special]
        if not targets:
            raise InputError("the answer holds only special tokens; there is nothing to explain")
        return targets
    if isinstance(sample.tokens, dict):
        return generation.positions_of([w.strip() for w in sample.tokens["words"]])
    return validation.token_indices(sample.tokens, len(generation.token_ids))


def evaluate_sample(session, sample: Sample, options: EvaluationOptions):
    """(record, Attribution) for one sample. Errors of the sample's own making raise `EagleError`."""
    t0 = time.perf_counter()
    image = sample.load_image()
    mask = sample.load_mask(image.shape[:2])
    box = sample.pixel_box(image.shape)  # checked before anything is computed
    generation = _answer(session, sample, image, options)
    targets = _targets(generation, sample)
    correct_id = None if sample.correct_answer is None else session.token_id(sample.correct_answer)
    request = session.request(generation, targets, options.regions or None,
                              target_ids=None if correct_id is None else [correct_id],
                              **({"prompt": options.prompt_spans} if options.prompt_spans else {}))
    result = session.explain(request, mode=options.mode, lambda1=options.lambda1, lambda2=options.lambda2,
                             batch_size=options.batch_size, use_cache=False)
    record = {
        "id": sample.id, "protocol": sample.protocol, "status": "ok", "error": "",
        "answer": generation.text, "explained": " ".join(t.strip() for t in result.token_labels or []),
        "n_tokens": len(targets), "n_regions": result.num_regions,
        "insertion_auc": result.insertion_auc, "deletion_auc": result.deletion_auc,
        "highest_score": result.highest_score, "image_dependence": result.image_dependence,
        "pointing_box": None, "pointing_mask": None, "mcr": None, "corrected": None, "hallucinated": None,
        "evaluations": result.evaluations,
    }
    if result.image_regions is None:  # the prompt's spans alone: no map over the image to point with
        box = mask = None
    if box is not None:
        record["pointing_box"] = float(result.pointing_game(box=box))
    if mask is not None:
        record["pointing_mask"] = float(result.pointing_game(mask=mask))
    if correct_id is not None:
        position = targets[0]
        record["hallucinated"] = generation.token_ids[position] != correct_id
        if record["hallucinated"]:  # the correction is searched only where the model was wrong (method §7)
            scorer = session.scorer(request)

            def answers_correct(visible):
                return (scorer.greedy(np.asarray(visible))[:, 0] == correct_id).numpy()

            correction = minimal_correction_ratio(result.order, result.regions.area_fractions, answers_correct)
            record["mcr"], record["corrected"] = correction.mcr, float(correction.corrected)
    record["seconds"] = time.perf_counter() - t0
    return record, result


def error_record(sample_id: str, protocol: str, message: str) -> dict:
    return {"id": sample_id, "protocol": protocol, "status": "error", "error": message}


def run_sample(session, sample: Sample, options: EvaluationOptions):
    """`evaluate_sample`, with the sample's own errors turned into an error record (result None)."""
    try:
        return evaluate_sample(session, sample, options)
    except EagleError as err:
        return error_record(sample.id, sample.protocol, str(err)), None
    except MemoryError:
        return error_record(sample.id, sample.protocol, "ran out of memory on this sample"), None
    except Exception as err:  # noqa: BLE001 - whatever one sample raises is that sample's error, not the run's
        return error_record(sample.id, sample.protocol, f"unexpected {type(err).__name__}: {err}"), None
