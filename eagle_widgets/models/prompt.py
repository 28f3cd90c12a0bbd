"""Prompt attribution: the user's words or sentences as the elements EAGLE orders (the image fully visible), or
together with the image regions (a joint ground set). A span is "removed" by replacing its tokens with the pad
token (eos, else unk, where there is none), attention kept, or by `attention_mask` 0 ("attention"): the input's
length, the image placeholders and every position (Qwen's multimodal rotary positions included) never move, and
the teacher-forced answer ids stay where they are."""

from __future__ import annotations

import torch

from ..core import validation
from ..core.errors import InputError
from ..core.spans import JointSet, PromptSpans, split_text
from .scoring import ModelHandle, ModelScorer, TeacherForcedSequence

MASKINGS = ("pad", "attention")


def find_prompt_spans(tokenizer, prompt: str, prompt_text: str, input_ids: list[int], granularity: str,
                      protected: set[int]) -> PromptSpans:
    """The spans of `prompt` (the user's text) at `granularity`, located in the model input `input_ids` (the
    processor's ids for the templated `prompt_text`, image placeholders expanded). Tokens in `protected` (the
    image placeholder, special tokens) belong to no span."""
    base = prompt_text.rfind(prompt)
    if not prompt.strip() or base < 0:
        raise InputError("the chat template changes the prompt's text, so its words cannot be located in the "
                         "model input")
    chars = split_text(prompt, granularity)
    if not chars:
        raise InputError(f"the prompt {prompt!r} has no {granularity}s to attribute")
    try:
        plain = tokenizer(prompt_text, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):
        raise InputError("prompt spans need a fast tokenizer (character offsets)") from None
    ids, offsets = list(plain["input_ids"]), list(plain["offset_mapping"])
    # The processor expands the image placeholder in place: what follows the image is the same token for token,
    # so the text tokens are found from the end of the input.
    common = 0
    while common < min(len(ids), len(input_ids)) and ids[-1 - common] == input_ids[-1 - common]:
        common += 1
    shift = len(input_ids) - len(ids)
    first_shared = len(ids) - common
    groups: list[list] = []  # [start, end, positions]
    for a, b in chars:
        lo, hi = base + a, base + b
        tokens = [j for j, (s, e) in enumerate(offsets) if s < hi and e > lo and ids[j] not in protected]
        if not tokens:
            continue
        if min(tokens) < first_shared:
            raise InputError("this chat template puts the prompt's text before the image, where its tokens "
                             "cannot be matched to the model input; prompt spans need the text after the image")
        positions = {j + shift for j in tokens}
        if groups and positions & groups[-1][2]:  # a token across two spans: they become one
            groups[-1][1], groups[-1][2] = b, groups[-1][2] | positions
        else:
            groups.append([a, b, positions])
    if not groups:
        raise InputError(f"no token of the prompt {prompt!r} could be located in the model input")
    return PromptSpans(prompt, granularity, tuple((a, b) for a, b, _ in groups),
                       tuple(tuple(sorted(p)) for _, _, p in groups))


def replacement_id(tokenizer) -> tuple[int, str]:
    """The token that stands for a removed prompt token: pad, else eos, else unk (as the authors' text method)."""
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, int):
            return value, name.removesuffix("_token_id")
    raise InputError("the tokenizer has no pad, eos or unk token to replace removed prompt tokens with; use "
                     "masking='attention'")


class PromptVariants:
    """Per mask over the spans, the input ids (and attention mask) with the hidden spans removed."""

    def __init__(self, spans: PromptSpans, text_inputs: dict, masking: str, tokenizer):
        if masking not in MASKINGS:
            raise InputError(f"masking must be {' or '.join(repr(m) for m in MASKINGS)}; got {masking!r}")
        self.spans, self.masking = spans, masking
        self.input_ids = text_inputs["input_ids"]  # [1, L]
        self.attention_mask = text_inputs.get("attention_mask", torch.ones_like(self.input_ids))
        length = self.input_ids.shape[1]
        if max(max(p) for p in spans.positions) >= length:
            raise InputError("the prompt spans do not belong to this input")
        self.replacement, self.replaced_by = replacement_id(tokenizer) if masking == "pad" else (None, "")
        index = torch.zeros(spans.n, length, dtype=torch.bool)
        for i, positions in enumerate(spans.positions):
            index[i, list(positions)] = True
        self.index = index  # [S, L]: which input positions each span covers

    def rows(self, visible: torch.Tensor, device) -> dict[str, torch.Tensor]:
        hidden = (~visible.cpu()).float() @ self.index.float() > 0  # [B, L]
        if self.masking == "pad":
            ids = self.input_ids.expand(len(visible), -1).clone()
            ids[hidden] = self.replacement
            return {"input_ids": ids.to(device)}
        mask = self.attention_mask.expand(len(visible), -1).clone()
        mask[hidden] = 0
        return {"attention_mask": mask.to(device)}

    def describe(self) -> dict:
        how = f"tokens replaced by the {self.replaced_by} token (id {self.replacement}), attention kept" \
            if self.masking == "pad" else "attention_mask 0 on the span's tokens, ids and positions kept"
        return {"prompt_spans": f"{self.spans.n} {self.spans.granularity}s of the user's text", "span_removal": how}


class PromptScorer(ModelScorer):
    """Prompt spans with the image fully visible: the image's processed inputs are made once and every text
    variant of a batch shares them."""

    def __init__(self, handle: ModelHandle, sequence: TeacherForcedSequence, spans: PromptSpans, masking: str,
                 tokenizer, batch_size=None):
        super().__init__(handle, sequence, spans, 1, reuse_tiles=True)
        self.variants = PromptVariants(spans, sequence.text_inputs, masking, tokenizer)
        pv = sequence.pixel_values
        self.pixel_values = pv.to(self.device, dtype=handle.dtype if pv.is_floating_point() else pv.dtype)
        self.batch_size = batch_size or handle.auto_batch_size(sequence.length, pv.numel())

    def _pixels(self, chunk: torch.Tensor) -> torch.Tensor:
        return self.pixel_values.repeat(len(chunk), *([1] * (self.pixel_values.ndim - 1)))

    def __call__(self, visible: torch.Tensor, greedy: bool = False) -> torch.Tensor:
        return self._chunked(visible, self._pixels, lambda pv, chunk: self.forward(
            pv, chunk.shape[0], greedy=greedy, rows=self.variants.rows(chunk, self.device)))

    def greedy(self, visible) -> torch.Tensor:
        """The model's own (argmax) token at each target position for each mask, [B, T] ids."""
        return self(visible, greedy=True)

    def describe(self) -> dict:
        return {"path": "prompt", "semantics": "prompt spans removed in the model input, the image fully visible",
                **self.variants.describe(), **self.tile_reuse()}


class JointScorer(ModelScorer):
    """Image regions and prompt spans in one mask: the image part through an image scorer's own exact
    preparation (`pixel_inputs`: composed, or the processor per masked image), the text part as prompt
    variants, in the same forward."""

    def __init__(self, image_scorer, ground: JointSet, masking: str, tokenizer):
        super().__init__(image_scorer.handle, image_scorer.sequence, ground, image_scorer.batch_size,
                         reuse_tiles=image_scorer.tiles is not None)
        self.image_scorer = image_scorer
        self.n_image = ground.regions.n
        self.variants = PromptVariants(ground.spans, image_scorer.sequence.text_inputs, masking, tokenizer)

    def __call__(self, visible: torch.Tensor, greedy: bool = False) -> torch.Tensor:
        visible = validation.masks(visible, self.regions.n)
        return self._chunked(visible, lambda chunk: self.image_scorer.pixel_inputs(chunk[:, : self.n_image]),
                             lambda pv, chunk: self.forward(pv, chunk.shape[0], greedy=greedy, rows=self.variants.rows(
                                 chunk[:, self.n_image:], self.device)))

    def greedy(self, visible) -> torch.Tensor:
        return self(visible, greedy=True)

    def describe(self) -> dict:
        return {**self.image_scorer.describe(), "path": "joint", "semantics": "image regions blacked out in the "
                "original image before the processor, prompt spans removed in the model input (this toolkit's "
                "joint extension of EAGLE)", **self.variants.describe(), **self.tile_reuse()}

