"""Prompt spans and the joint ground set: what EAGLE orders besides image regions.

A `PromptSpans` splits the user's prompt text into words or sentences; each span knows the model-input token
positions it covers (template tokens and image placeholders belong to no span). "Removing" a span replaces its
tokens (with the pad token, or attention 0), so lengths and positions never change. A span's area is its share
of the prompt's explainable tokens (the authors' text method): the curves' x-axis is the fraction of the prompt
removed or inserted.

A `JointSet` is one ground set of image regions and prompt spans (this toolkit's extension of the method, not
the published one): elements 0..R-1 are the image regions, R.. the spans. Each modality spans half of the
curves' x-axis (a region's area is half its pixel fraction, a span's half its token share), so neither the
image's pixel count nor the prompt's length decides how much of the axis a modality takes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .regions import RegionSet

GRANULARITIES = ("word", "sentence", "message")
# What the curves' x-axis (the area) is, by what a result orders.
AREA_AXES = {"image": "fraction of the image inserted or deleted",
             "prompt": "fraction of the prompt's tokens inserted or deleted",
             "joint": "image (half the axis) + prompt (half) inserted or deleted",
             "video": "fraction of all frames' pixels inserted or deleted"}
# Words: runs of letters/digits, each CJK character, each other visible character (punctuation).
_WORD = re.compile(r"[\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]|[^\W\u4e00-\u9fff\u3040-\u30ff\uac00-\ud7af]+|[^\w\s]")
_SENTENCE_END = re.compile(r"[.!?;。！？；]+|\n+")


def split_text(text: str, granularity: str) -> list[tuple[int, int]]:
    """Character ranges of the words, sentences or the whole message of `text` (whitespace belongs to none)."""
    if granularity not in GRANULARITIES:
        raise InputError(f"prompt spans are {', '.join(GRANULARITIES[:-1])} or {GRANULARITIES[-1]}; "
                         f"got {granularity!r}")
    if granularity == "word":
        return [m.span() for m in _WORD.finditer(text)]
    spans, start = [], 0
    if granularity == "sentence":
        for m in _SENTENCE_END.finditer(text):
            spans.append((start, m.end()))
            start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:  # trim whitespace; drop empty pieces
        piece = text[a:b]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if b - trail > a + lead:
            out.append((a + lead, b - trail))
    return out


@dataclass(frozen=True, eq=False)
class PromptSpans:
    """Spans of the user's prompt: `chars[i]` = (start, end) in `text`, `positions[i]` = the model-input token
    positions it covers (non-empty, disjoint)."""

    text: str
    granularity: str
    chars: tuple[tuple[int, int], ...]
    positions: tuple[tuple[int, ...], ...]

    def __post_init__(self):
        if len(self.chars) != len(self.positions):
            raise InputError("each prompt span needs its token positions")
        seen: set[int] = set()
        for p in self.positions:
            if not p:
                raise InputError("a prompt span covers no token")
            if seen & set(p):
                raise InputError("prompt spans share a token; split the prompt at token boundaries")
            seen |= set(p)

    @property
    def n(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> list[str]:
        """Each span's text."""
        return [self.text[a:b] for a, b in self.chars]

    @property
    def token_counts(self) -> np.ndarray:
        return np.array([len(p) for p in self.positions], dtype=np.float64)

    @property
    def area_fractions(self) -> np.ndarray:
        """A span's share of the prompt's explainable tokens."""
        counts = self.token_counts
        return counts / counts.sum()

    @property
    def method(self) -> str:
        return f"prompt {self.granularity}s"

    def to_dict(self) -> dict:
        return {"text": self.text, "granularity": self.granularity, "chars": [list(c) for c in self.chars],
                "positions": [list(p) for p in self.positions]}

    @classmethod
    def from_dict(cls, d: dict) -> PromptSpans:
        try:
            return cls(str(d["text"]), str(d["granularity"]), tuple((int(a), int(b)) for a, b in d["chars"]),
                       tuple(tuple(int(i) for i in p) for p in d["positions"]))
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"malformed prompt spans: {err}") from None

    def __repr__(self) -> str:
        return f"PromptSpans(n={self.n}, {self.granularity}s: {self.labels[:6]}{' ...' if self.n > 6 else ''})"


@dataclass(frozen=True, eq=False)
class JointSet:
    """Image regions then prompt spans, one ground set (see the module's note on areas)."""

    regions: RegionSet
    spans: PromptSpans

    @property
    def n(self) -> int:
        return self.regions.n + self.spans.n

    def __len__(self) -> int:
        return self.n

    @property
    def area_fractions(self) -> np.ndarray:
        return np.concatenate([self.regions.area_fractions / 2.0, self.spans.area_fractions / 2.0])

    @property
    def method(self) -> str:
        return f"joint: {self.regions.method} regions + {self.spans.method}"

    def is_image(self, element: int) -> bool:
        return int(element) < self.regions.n

    def element_label(self, element: int) -> str:
        e = int(element)
        return f"region {e}" if e < self.regions.n else repr(self.spans.labels[e - self.regions.n])

    def __repr__(self) -> str:
        return f"JointSet({self.regions.n} image regions + {self.spans.n} prompt spans)"


def image_regions(ground) -> RegionSet | None:
    """The image regions of a ground set (None for prompt spans alone)."""
    return ground if isinstance(ground, RegionSet) else ground.regions if isinstance(ground, JointSet) else None


def prompt_spans(ground) -> PromptSpans | None:
    return ground if isinstance(ground, PromptSpans) else ground.spans if isinstance(ground, JointSet) else None
