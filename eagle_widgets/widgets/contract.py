"""What the widgets need from a model session: the contract the Explorer depends on (a ModelSession meets it)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ExplorerSession(Protocol):
    """The session interface of the Explorer and the export.

    `name` identifies the model (also in results); `display_name` is what people read. `generate` answers
    greedily and `teacher_force` takes a given answer; `reliance` gives p(token | image) and p(token | black
    image) per answer token; `regions` checks given regions against the image; `request` checks once what
    to explain (a selection and regions: a SLICO count, a RegionSet or a label map) and returns an object
    with `token_labels` and `regions`; `explain` runs EAGLE on it with `progress` and `cancel` and returns
    an Attribution whose `token_labels` name the selection. Optional: `methods()` and `explain_method`
    (other attribution methods, offered in the Explorer's method menu); `exact` (False for approximate scores)
    with `cost(request, mode=..., **params)` (the calls an approximate explanation will make, said first);
    `attributes_prompt` (True where `request(..., prompt="word")` orders the prompt's words too);
    `generate_video(video, prompt, max_new_tokens=...)` and `teacher_force_video` (videos: the Explorer then
    takes a `core.Video` or an uploaded video file or frames).
    """

    name: str
    display_name: str

    def generate(self, image, prompt: str, max_new_tokens: int = ...) -> Any: ...

    def teacher_force(self, image, prompt: str, answer) -> Any: ...

    def reliance(self, generation) -> Any: ...

    def regions(self, generation, regions) -> Any: ...

    def request(self, generation, tokens=None, regions=..., *, target_ids=None) -> Any: ...

    def explain(self, request, tokens=None, regions=..., mode: str = ..., **kwargs) -> Any: ...
