"""`Explorer`: the token strip, heatmap, modality chart and curves, linked, with a background worker."""

from __future__ import annotations

import base64
import io
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as W
import numpy as np

from ..core import validation
from ..core.attribution import Attribution
from ..core.bundle import bundle_bytes
from ..core.errors import EagleError, InputError
from ..core.images import load_image
from ..core.metrics import SENSITIVE_THRESHOLD
from ..core.regions import RegionSet
from ..core.search import DEFAULT_PARAMS, MODES
from ..core.video import VIDEO_SUFFIXES, Video, load_video, natural_key
from .compare import CompareView
from .contract import ExplorerSession
from .markup import markup
from .state import (
    frames_html,
    frames_state,
    image_note,
    method_label,
    prompt_html,
    prompt_state,
    selection_label,
    summary,
)
from .views import CurvesView, DownloadBar, HeatmapView, ModalityChart, TokenStrip, check_selection

EXPORTS = (("png", "PNG", "the figure of what is shown (image, map, answer, curves)"),
           ("svg", "SVG", "the same figure as vector graphics"),
           ("html", "HTML", "one self-contained page with every explanation so far (opens offline)"),
           ("bundle", "Bundle", "the shown result as a .eagle bundle (Attribution.load)"))


def failure_message(err: Exception) -> str:
    """What the widget says of a failed run: the toolkit's own message, or the unexpected error's type too."""
    return str(err) if isinstance(err, EagleError) else f"{type(err).__name__}: {err}"


@dataclass
class Question:
    """An asked question: its answer, the answer's reliance on the image, and its explanations so far."""

    generation: object
    reliance: object
    explanations: dict = field(default_factory=dict)  # (selection, settings) -> Attribution
    selection: tuple = ()  # what was selected when the question was left

    def results(self) -> list[tuple[tuple[int, ...], Attribution]]:
        """(selection, result) of every explanation of this question, in the order they were computed."""
        return [(tuple(selection), result) for (selection, _settings), result in self.explanations.items()]


class Explorer(W.VBox):
    """Ask a question about an image and explore, token by token, where the model looked.

    `Explorer(session, image, prompt, **params)` generates the answer and shows it as a token strip
    coloured by reliance on the image. Selecting tokens (click, shift-click, ctrl-click, or
    `explorer.select([...])`) runs EAGLE in a background thread; `explorer.wait()` blocks until it ends.
    `params`: mode ("exact", "efficient", "early_stop"), regions (SLICO d), lambda1, lambda2,
    max_new_tokens, batch_size, auto_run, answer (a given answer, teacher-forced instead of generated), and
    the mode's own parameters.
    """

    def __init__(self, session, image, prompt: str, *, mode: str = "efficient", regions: int = 36,
                 lambda1: float = 1.0, lambda2: float = 1.0, max_new_tokens: int = 48, batch_size: int | None = None,
                 auto_run: bool = True, answer=None, **mode_params):
        if mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        if not isinstance(session, ExplorerSession):
            raise InputError(f"Explorer needs a model session (load_session or load_demo_session), got "
                             f"{type(session).__name__}")
        # Checked here, never clamped by the controls: what the user asked for is what runs, or an error.
        regions = validation.region_count(regions)
        lambda1, lambda2 = validation.lambdas(lambda1, lambda2)
        max_new_tokens = validation.integer(max_new_tokens, "max_new_tokens", minimum=1)
        if batch_size is not None:
            batch_size = validation.integer(batch_size, "batch_size", minimum=1)
        self.session = session
        self.max_new_tokens = max_new_tokens
        self.generation = self._answer(image, prompt, answer)
        self.reliance = session.reliance(self.generation)
        self.history: list[Question] = []  # earlier questions, with their explanations
        self.mode_params = dict(mode_params)
        self.batch_size = batch_size
        self.auto_run = auto_run
        self.result: Attribution | None = None
        self.error: str | None = None
        self.state = "idle"  # idle, running, done, cancelled, error
        self._cache: dict = {}
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._last_ui = 0.0

        gen, rel = self.generation, self.reliance
        self.strip = TokenStrip(gen.tokens, reliance=rel.evidence, special=gen.special)
        self.chart = ModalityChart.from_reliance(rel, special=gen.special)
        self.heatmap = HeatmapView(gen.image)
        self.curves = CurvesView()
        W.link((self.strip, "selection"), (self.chart, "selection"))
        W.dlink((self.heatmap, "step"), (self.curves, "step"))  # the insertion step, marked on the curves
        # Linked hover: a step on the curves reveals that step's regions; a region shows its step on the
        # curves; a token of the selection shows its own insertion curve.
        self._step_before_hover: int | None = None
        self.curves.observe(self._on_curve_hover, names="hover_step")
        self.heatmap.observe(self._on_region_hover, names="hover_region")
        self.strip.observe(self._on_token_hover, names="hover")

        methods = session.methods() if callable(getattr(session, "methods", None)) else ["eagle"]
        self.method_control = W.Dropdown(options=methods, value="eagle", description="method",
                                         tooltip="eagle: the greedy search; the others are baselines whose maps are "
                                         "scored like EAGLE's (regions in the order of their mean map value)",
                                         layout=W.Layout(width="190px"))
        self.mode_control = W.Dropdown(options=list(MODES), value=mode, description="mode",
                                       tooltip="exact: the paper's greedy search (N(N+1) model calls); "
                                       "efficient: the authors' faster variant; early_stop: stops when F saturates",
                                       layout=W.Layout(width="190px"))
        self.regions_by = W.Dropdown(options=["slico", "grid"], value="slico", description="regions by",
                                     tooltip="slico: superpixels that follow the image (the paper's); grid: equal "
                                     "cells; given: masks set from Python with explorer.use_regions(...)",
                                     layout=W.Layout(width="190px"))
        self._given_regions = None
        self._grids: dict = {}
        self._compared = None  # (selection, settings) the comparison on screen was made with
        # Not a BoundedIntText: that clamps a typed 1 or 5000 without a word; out-of-range values are said.
        self.regions_control = W.IntText(value=regions, description="regions",
                                                tooltip="how many SLICO superpixels to split the image "
                                                "into (more: finer maps, slower runs)",
                                                layout=W.Layout(width="150px"))
        self.lambda1_control = W.BoundedFloatText(value=lambda1, min=0, max=max(10.0, lambda1), step=0.1,
                                                  description="λ1",
                                                  tooltip="weight of insertion: p(token) with only the "
                                                  "chosen regions visible", layout=W.Layout(width="120px"))
        self.lambda2_control = W.BoundedFloatText(value=lambda2, min=0, max=max(10.0, lambda2), step=0.1,
                                                  description="λ2",
                                                  tooltip="weight of deletion: 1 - p(token) with the "
                                                  "chosen regions removed", layout=W.Layout(width="120px"))
        # What the search orders: image regions, the prompt's words/sentences, or both in one order.
        over = ["image", "prompt", "image + prompt"] if getattr(session, "attributes_prompt", False) else ["image"]
        self.over_control = W.Dropdown(options=over, value="image", description="explain over",
                                       tooltip="image: regions of the image (the paper's); prompt: the words of "
                                       "the question, the image fully visible; image + prompt: both in one order "
                                       "(this toolkit's extension)", layout=W.Layout(width="230px"),
                                       style={"description_width": "initial"})
        self.spans_control = W.Dropdown(options=["word", "sentence", "message"], value="word", description="prompt in",
                                        tooltip="the prompt's units: words, sentences, or the whole message (with "
                                        "the image: did the answer need the question at all?)",
                                        layout=W.Layout(width="170px"), style={"description_width": "initial"})
        for control in (self.method_control, self.mode_control, self.regions_by, self.regions_control,
                        self.lambda1_control, self.lambda2_control, self.over_control, self.spans_control):
            control.observe(self._on_params, names="value")
        self.run_button = W.Button(description="Run", icon="play", button_style="primary",
                                   layout=W.Layout(width="80px"))
        self.cancel_button = W.Button(description="Cancel", icon="stop", disabled=True, layout=W.Layout(width="90px"))
        self.progress = W.FloatProgress(value=0, min=0, max=1, layout=W.Layout(width="220px"))
        self._shown_key = None  # (selection, params) of the result on screen
        self.status = W.HTML(self._status_html("Select tokens in the answer to see where the model looked."))
        self.regions_control.observe(self._on_regions_typed, names="value")
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.strip.observe(self._on_selection, names="selection")

        self.header = W.HTML(self._header_html())
        # Ask in the widget: an uploaded image (or the current one), a typed question, Generate.
        self.upload = W.FileUpload(accept="image/*,video/*", multiple=True, description="Image/video",
                                   tooltip="a new image (PNG, JPEG, ...), a video file (MP4, WebM, ...), or several "
                                   "images as the frames of a video; without one the current input is used",
                                   layout=W.Layout(width="130px"))
        self.fps_control = W.BoundedFloatText(value=2.0, min=0.01, max=120.0, step=0.5, description="fps",
                                              tooltip="frames per second sampled from an uploaded video, or the "
                                              "spacing of uploaded frames (video models place frames in time)",
                                              layout=W.Layout(width="120px"))
        self.prompt_control = W.Text(value=gen.prompt, description="Ask", layout=W.Layout(width="360px"))
        self.generate_button = W.Button(description="Generate", icon="comment", layout=W.Layout(width="110px"))
        self.history_control = W.Dropdown(options=[], description="earlier", layout=W.Layout(width="300px"),
                                          tooltip="go back to an earlier question and its explanations")
        self._listing = False  # True while the history menu is refilled (not a user's choice)
        self.generate_button.on_click(lambda _: self._ask_from_widget())
        self.history_control.observe(self._on_history, names="value")
        ask = W.HBox([self.upload, self.fps_control, self.prompt_control, self.generate_button, self.history_control],
                     layout=W.Layout(flex_flow="row wrap"))
        controls = W.HBox([self.method_control, self.mode_control, self.over_control, self.spans_control,
                           self.regions_by, self.regions_control, self.lambda1_control, self.lambda2_control,
                           self.run_button, self.cancel_button], layout=W.Layout(flex_flow="row wrap"))
        # The prompt coloured by what the answer relies on (prompt and joint explanations).
        self.prompt_strip = W.HTML("", layout=W.Layout(margin="2px 0 6px 0"))
        views = W.HBox([self.heatmap, W.VBox([self.curves, self.chart])], layout=W.Layout(flex_flow="row wrap"))
        self.downloads = DownloadBar(self.export_file, EXPORTS)
        self.compare_control = W.Dropdown(options=methods, value=methods[-1], description="compare with",
                                          tooltip="the shown selection explained by another method, side by side "
                                          "on one colour scale", layout=W.Layout(width="240px"),
                                          style={"description_width": "initial"})
        self.compare_button = W.Button(description="Compare", icon="columns", layout=W.Layout(width="100px"))
        self.compare_button.on_click(lambda _: self._compare_from_widget())
        self.comparison = CompareView(gen.image)
        super().__init__([ask, self.header, self.strip, self.prompt_strip, controls,
                          W.HBox([self.progress, self.status]), views,
                          W.HBox([self.compare_control, self.compare_button]), self.comparison, self.downloads])

    # -- questions ------------------------------------------------------------------------------
    def _answer(self, image, prompt: str, answer=None):
        # A given answer (text or token ids) is teacher-forced instead of generated.
        if isinstance(image, Video):  # a video: its frames read once, here (see load_video)
            if not callable(getattr(self.session, "generate_video", None)):
                raise InputError(f"{self.session.display_name} does not take videos here")
            if answer is None:
                return self.session.generate_video(image, prompt, max_new_tokens=self.max_new_tokens)
            return self.session.teacher_force_video(image, prompt, answer)
        if answer is None:
            return self.session.generate(image, prompt, max_new_tokens=self.max_new_tokens)
        return self.session.teacher_force(image, prompt, answer)

    def ask(self, image=None, prompt: str | None = None, *, answer=None) -> Explorer:
        """A new question in the same Explorer: `image` (default: the current one), `prompt` (default: the
        current one), optionally a given `answer`. The strip, reliance colours and views switch to it; the
        question before, with its explanations, stays in `history` (`revisit(i)` goes back)."""
        if image is None:
            image = self.generation.video if self.generation.video is not None else self.generation.image
        prompt = self.generation.prompt if prompt is None else prompt
        generation = self._answer(image, prompt, answer)  # errors leave the current question as it is
        reliance = self.session.reliance(generation)
        self._stop_worker()
        with self._lock:
            self.history.append(Question(self.generation, self.reliance, dict(self._cache), tuple(self.selection)))
        self._switch_to(Question(generation, reliance, {}))
        return self

    def revisit(self, index: int) -> Explorer:
        """Go back to `history[index]`; the current question takes its place in the history."""
        if not self.history:
            raise InputError("there is no earlier question yet")
        index = validation.integer(index, "index", minimum=0, maximum=len(self.history) - 1)
        self._stop_worker()
        with self._lock:
            earlier = self.history.pop(index)
            self.history.append(Question(self.generation, self.reliance, dict(self._cache), tuple(self.selection)))
        self._switch_to(earlier)
        return self

    def _switch_to(self, question: Question) -> None:
        gen, rel = question.generation, question.reliance
        same_image = np.array_equal(self.generation.image, gen.image)
        with self._lock:
            self.generation, self.reliance, self._cache = gen, rel, dict(question.explanations)
        self.result, self._shown_key, self.state, self.error = None, None, "idle", None
        self.strip.set_answer(gen.tokens, rel.evidence, gen.special)
        self.chart.set_reliance(rel, gen.special)
        self.heatmap.set_image(gen.image)
        self.heatmap.clear()
        self.comparison.clear()
        if self._given_regions is not None and not same_image:
            self._given_regions = None  # masks of another image
            self.regions_by.options = ["slico", "grid"]
        self.curves.clear()
        self.prompt_strip.value = ""
        self.progress.value, self.progress.bar_style = 0, ""
        self.header.value = self._header_html()
        self.prompt_control.value = gen.prompt
        self._set_history_options()
        self._set_status("Select tokens in the answer to see where the model looked.")

    def _set_history_options(self) -> None:
        self._listing = True
        try:
            self.history_control.options = [(f"{i + 1}. {q.generation.prompt} → {q.generation.text}"[:80], i)
                                             for i, q in enumerate(self.history)]
            self.history_control.value = None
        finally:
            self._listing = False

    def _on_history(self, change) -> None:
        if change["new"] is not None and not self._listing:
            self.revisit(change["new"])

    def _ask_from_widget(self) -> None:
        """Generate from the widget's own inputs; a bad file or prompt is said in the status line."""
        try:
            image = None
            if self.upload.value:
                image = self._uploaded(list(self.upload.value))
            self._set_status("Generating…")
            self.ask(image, self.prompt_control.value)
            self.upload.value = ()
        except EagleError as err:
            self._set_status(f"Error: {err}", error=True)

    def _uploaded(self, files: list[dict]):
        """An uploaded image, video file, or several frame images (in natural order of their names) at the fps
        control's rate."""
        if len(files) > 1:
            files = sorted(files, key=lambda f: natural_key(f.get("name") or ""))
            frames = [load_image(f["content"], name=f.get("name") or f"frame {i}") for i, f in enumerate(files)]
            return load_video(frames, float(self.fps_control.value), name=f"{len(frames)} uploaded frames")
        upload = files[0]
        name = upload.get("name") or "the uploaded file"
        if str(upload.get("type", "")).startswith("video/") or Path(name).suffix.lower() in VIDEO_SUFFIXES:
            return load_video(upload["content"], float(self.fps_control.value), name=name)
        return load_image(upload["content"], name=name)

    def _header_html(self) -> str:
        gen = self.generation
        video = "" if gen.video is None else f"; video of {gen.video.n} frames at {gen.video.fps:g} fps"
        return markup("<b>Q:</b> {prompt} &nbsp; <b>A:</b> {answer} <span class='eagle-status'>({model}{video})</span>",
                      prompt=gen.prompt, answer=gen.text, model=self.session.display_name, video=video)

    def _on_regions_typed(self, change) -> None:
        try:
            validation.region_count(change["new"])
        except InputError as err:
            self.regions_control.value = change["old"]
            self._set_status(f"{err}; kept {change['old']}", error=True)

    # -- public API -----------------------------------------------------------------------------
    @property
    def selection(self) -> list[int]:
        return list(self.strip.selection)

    def select(self, tokens) -> Explorer:
        """Select tokens (indices into the answer) as a click would; runs the explanation if auto_run."""
        if isinstance(tokens, (int, np.integer)):
            tokens = [int(tokens)]
        picked = check_selection(tokens, len(self.generation.tokens))
        if picked == self.strip.selection and self.auto_run:
            self.run()  # re-selecting the same tokens still shows (or re-runs) their explanation
        else:
            self.strip.selection = picked
        return self

    def params(self) -> dict:
        return {"method": self.method_control.value, "mode": self.mode_control.value,
                "regions_by": self.regions_by.value, "regions": int(self.regions_control.value),
                "lambda1": float(self.lambda1_control.value), "lambda2": float(self.lambda2_control.value),
                "over": self.over_control.value, "spans": self.spans_control.value, **self.mode_params}

    def run(self) -> None:
        """Explain the current selection with the current controls (cached results come back at once)."""
        selection = self.selection
        if not selection:
            self._set_status("Select at least one token first.")
            return
        params = self.params()
        key = (tuple(selection), tuple(sorted(params.items())))
        self._stop_worker()
        if key in self._cache:
            self.progress.value, self.progress.bar_style = 1.0, "success"
            self._show(self._cache[key], f"Shown again (computed earlier): {summary(self._cache[key])}", key)
            self.state = "done"
            return
        self._cancel = threading.Event()
        self.state, self.error = "running", None
        self.progress.value, self.progress.bar_style = 0, ""
        self.run_button.disabled, self.cancel_button.disabled = True, False
        self.result, self._shown_key = None, None  # never report the previous selection's result as this one
        self.heatmap.clear()  # the views keep their size: no layout jump
        self.heatmap.phase, self.heatmap.caption = "running", f"{self._labels(selection)} · starting…"
        self.curves.clear()
        self.prompt_strip.value = ""
        how = params["mode"] if params["method"] == "eagle" else params["method"]
        where = "given regions" if params["regions_by"] == "given" else \
            f"{params['regions']} {'grid cells' if params['regions_by'] == 'grid' else 'regions'}"
        self._set_status(f"Explaining {self._labels(selection)} ({how}, {where})…")
        self._worker = threading.Thread(target=self._work, args=(key, selection, params, self._cancel), daemon=True,
                                        name="eagle-explorer")
        self._worker.start()

    def cancel(self) -> None:
        """Stop the running explanation; what was ranked so far stays as a partial result."""
        self._cancel.set()

    def show_result(self, result: Attribution, regions: int) -> Explorer:
        """Show a stored explanation of this answer (e.g. from a dataset run) without recomputing it: the
        controls take its settings (`regions`: the SLICO count it was computed with) and its tokens are
        selected. Refused when it explains another answer."""
        context = result.context
        if context is None or tuple(context.generated_ids) != tuple(self.generation.token_ids):
            raise InputError("this result explains another answer than the Explorer's")
        self._stop_worker()
        method = result.mode if result.mode in self.method_control.options else "eagle"
        over = {"image": "image", "prompt": "prompt", "joint": "image + prompt"}[result.kind]
        if over not in self.over_control.options:
            raise InputError("this result orders the prompt's words, which this session cannot explain")
        spans = result.prompt_spans
        for control, value in ((self.method_control, method), (self.mode_control, result.mode if method == "eagle"
                                                                else self.mode_control.value),
                               (self.over_control, over),
                               (self.spans_control, spans.granularity if spans else self.spans_control.value),
                               (self.regions_by, "slico"),
                               (self.regions_control, regions or self.regions_control.value),
                               (self.lambda1_control, result.lambda1), (self.lambda2_control, result.lambda2)):
            control.value = value
        selection = list(context.targets)
        with self._lock:
            self._cache[(tuple(selection), tuple(sorted(self.params().items())))] = result
        self.select(selection)
        return self

    def use_regions(self, regions) -> Explorer:
        """Explain over given regions (a RegionSet or an HxW integer label map, e.g. from a segmentation
        model) instead of SLICO or a grid; "given" is then chosen in the regions menu."""
        self._given_regions = self.session.regions(self.generation, regions)  # checked against the image
        if "given" not in self.regions_by.options:
            self.regions_by.options = [*self.regions_by.options, "given"]
        self.regions_by.value = "given"
        return self

    def _regions_for(self, params: dict):
        """What `session.request` takes for the controls' regions: a SLICO count, a grid or the given set."""
        if params["regions_by"] == "given":
            if self._given_regions is None:
                raise InputError("no regions were given; call explorer.use_regions(label_map) first")
            return self._given_regions
        if params["regions_by"] == "grid" and self.generation.video is not None:  # a grid on every frame
            h, w = self.generation.video.frame_shape
            rows = max(1, round(math.sqrt(params["regions"] * h / w)))
            return rows, max(1, round(params["regions"] / rows))
        if params["regions_by"] == "grid":
            key = (self.generation.image.shape[:2], params["regions"])
            if key not in self._grids:  # one object per grid, so the fast path's composition is reused
                self._grids[key] = RegionSet.grid(self.generation.image.shape[:2], n=params["regions"])
            return self._grids[key]
        return params["regions"]

    def _request(self, selection, params: dict):
        """The session's request for the controls: image regions, the prompt's spans, or both."""
        over = params.get("over", "image")
        if over != "image" and params["method"] != "eagle":
            raise InputError(f"{params['method']} maps the image only; explain the prompt with eagle")
        regions = None if over == "prompt" else self._regions_for(params)
        prompt = None if over == "image" else params.get("spans", "word")
        return self.session.request(self.generation, selection, regions,
                                    **({"prompt": prompt} if prompt is not None else {}))

    def compare(self, left: dict | None = None, right: dict | None = None) -> Explorer:
        """Two explanations side by side, on one colour scale, computed in the background (`wait()` blocks
        until both are there). Each side is {"selection": [...], "method": "..."}; what a side leaves out is
        taken from the current selection and controls. Results already computed are reused."""
        base = {"selection": self.selection, "method": self.method_control.value}
        sides = []
        for side in (left or {}, right or {}):
            if not isinstance(side, dict):
                raise InputError(f"a compared side is a dict such as {{'selection': [1]}}, got {side!r}")
            unknown = set(side) - {"selection", "method"}
            if unknown:
                raise InputError(f"a compared side takes selection and method; got "
                                 f"{', '.join(sorted(repr(k) for k in unknown))}")
            s = {**base, **side}
            s["selection"] = check_selection(s["selection"], len(self.generation.tokens))
            if not s["selection"]:
                raise InputError("select tokens (or give a selection) to compare")
            if s["method"] not in self.method_control.options:
                raise InputError(f"unknown method {s['method']!r}; choose one of "
                                 f"{', '.join(self.method_control.options)}")
            sides.append(s)
        self._stop_worker()
        self._cancel = threading.Event()
        self.state = "running"
        self._set_status("Comparing " + " with ".join(f"{self._labels(s['selection'])} ({s['method']})"
                                                      for s in sides) + "…")
        self._worker = threading.Thread(target=self._compare_work, args=(sides, self._cancel), daemon=True,
                                        name="eagle-compare")
        self._worker.start()
        return self

    def _compare_work(self, sides, cancel: threading.Event) -> None:
        results = []
        try:
            for side in sides:
                params = {**self.params(), "method": side["method"]}
                key = (tuple(side["selection"]), tuple(sorted(params.items())))
                with self._lock:
                    cached = self._cache.get(key)
                if cached is None:
                    request = self._request(side["selection"], params)
                    cached = self._explain(request, params, cancel)
                    if cancel.is_set() or not cached.complete:
                        self.state = "cancelled"
                        self._set_status("Comparison cancelled.")
                        return
                    with self._lock:
                        self._cache[key] = cached
                results.append(cached)
        except Exception as err:  # keep the kernel alive and say what went wrong in the widget
            self._fail(failure_message(err))
            return
        self.comparison.show(*results)
        self._compared = (tuple(self.selection), tuple(sorted(self.params().items())))
        self.state = "done"
        self._set_status("Compared: " + " vs ".join(
            f"{self._labels(list(r.context.targets))} ({r.mode}) insertion AUC {r.insertion_auc:.3f}, deletion AUC "
            f"{r.deletion_auc:.3f}" for r in results))

    def _compare_from_widget(self) -> None:
        try:
            self.compare(None, {"method": self.compare_control.value})
        except EagleError as err:
            self._set_status(f"Error: {err}", error=True)

    def questions(self) -> list[Question]:
        """Every question of this Explorer: the history, then the current one with its explanations so far (a
        cancelled partial result of the shown selection included)."""
        with self._lock:
            current = dict(self._cache)
            history = list(self.history)
        if self.result is not None and self.result.order and self._shown_key is not None \
                and self._shown_key not in current:
            current[self._shown_key] = self.result
        return [*history, Question(self.generation, self.reliance, current, tuple(self.selection))]

    def explanations(self) -> dict[tuple[int, ...], Attribution]:
        """Every explanation computed so far by selection (the latest settings win), with a cancelled partial
        result of the shown selection."""
        with self._lock:
            out = {tuple(selection): result for (selection, _params), result in self._cache.items()}
        if self.result is not None and self.result.order and self._shown_key is not None:
            out[self._shown_key[0]] = self.result
        return out

    def wait(self, timeout: float | None = None) -> Attribution | None:
        """Block until the current run ends (or `timeout` seconds pass); returns `result`."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
        return self.result

    def _check_comparison(self) -> None:
        """The comparison follows the selection and controls it was made with, or is marked out of date."""
        compared = self._compared
        if compared is None or self.comparison.results is None:
            return
        selection, params = compared
        now = (tuple(self.selection), tuple(sorted(self.params().items())))
        if now == compared:
            self.comparison.mark_current()
            return
        why = []
        if now[0] != selection:
            why.append(f"the selection is now {self._labels(list(now[0])) or 'empty'}")
        changed = [f"{k} {v!r} → {dict(now[1]).get(k)!r}" for k, v in params if dict(now[1]).get(k) != v
                   and k != "method"]
        if changed:
            why.append("the settings changed (" + ", ".join(changed) + ")")
        if why:
            self.comparison.mark_stale("; ".join(why))
        else:
            self.comparison.mark_current()

    def _on_selection(self, change) -> None:
        self._check_comparison()
        if change["new"]:
            if self.auto_run:
                self.run()
            return
        self._stop_worker()
        self.result, self.state = None, "idle"
        self.heatmap.clear()
        self.curves.clear()
        self.prompt_strip.value = ""
        self._set_status("Select tokens in the answer to see where the model looked.")

    # -- worker ---------------------------------------------------------------------------------
    def _work(self, key, selection, params, cancel: threading.Event) -> None:
        started = time.perf_counter()
        try:
            request = self._request(selection, params)
            label = selection_label(request.token_labels)
            self._say_cost(request, params, label)
            result = self._explain(request, params, cancel,
                                   progress=lambda update: self._on_progress(update, label, request.regions))
        except Exception as err:  # keep the kernel alive and say what went wrong in the widget
            self._fail(failure_message(err))
            return
        finally:
            self.run_button.disabled, self.cancel_button.disabled = False, True
        if cancel.is_set() and not result.complete:
            self.state = "cancelled"
            self.result = result
            self.progress.bar_style = "warning"
            if result.order:
                self._show(result, f"Cancelled: {summary(result)}. Partial map shown.", key)
            else:
                self.heatmap.clear()
                self._set_status("Cancelled before any region was ranked.")
            return
        with self._lock:
            self._cache[key] = result
        self.progress.value, self.progress.bar_style = 1.0, "success"
        self.state = "done"
        source = "From the disk cache" if result.from_cache else \
            f"Done in {time.perf_counter() - started:.1f} s"
        self._show(result, f"{source}: {summary(result)}", key)

    def _say_cost(self, request, params: dict, label: str) -> None:
        """Before an approximate session (a paid, rate-limited API) starts: how many calls it will make."""
        cost = getattr(self.session, "cost", None)
        if getattr(self.session, "exact", True) or not callable(cost) or params["method"] != "eagle":
            return
        own = {k: v for k, v in params.items() if k in DEFAULT_PARAMS[params["mode"]]}
        c = cost(request, mode=params["mode"], **own)
        calls = f"{'at least ' if c['at_least'] else ''}{c['requests']:,} API calls"
        self._set_status(f"Explaining {label} with APPROXIMATE scores (top-k API): {calls} "
                         f"({c['masked_images']:,} masked images)…")

    def _explain(self, request, params: dict, cancel: threading.Event, progress=None) -> Attribution:
        """The explanation of a checked request with these controls: EAGLE, or a baseline's map scored like
        EAGLE's (a baseline cannot be cancelled midway)."""
        if params["method"] != "eagle":
            return self.session.explain_method(request, method=params["method"], batch_size=self.batch_size)
        extra = {k: v for k, v in params.items() if k not in ("method", "mode", "regions", "regions_by", "over",
                                                              "spans")}
        return self.session.explain(request, mode=params["mode"], batch_size=self.batch_size, progress=progress,
                                    cancel=cancel, **extra)

    def _on_params(self, _change) -> None:
        """A shown map computed with other settings than the controls now hold is marked out of date."""
        self._check_comparison()
        if self._shown_key is None or self.state not in ("done", "cancelled"):
            return
        shown, now = dict(self._shown_key[1]), self.params()
        changed = [f"{k} {shown.get(k)!r} → {v!r}" for k, v in now.items() if shown.get(k) != v]
        if tuple(self.selection) != self._shown_key[0]:
            return
        if changed:
            self.heatmap.mark_stale("the map was computed with other settings (" + ", ".join(changed) + ")")
            self.curves.partial = "out of date"
            self.progress.bar_style = "warning"
            self._set_status("Out of date: the settings changed since this map was computed. Press Run.")
        elif self.heatmap.phase == "stale":  # back to the settings it was computed with
            self._show(self.result, summary(self.result), self._shown_key)

    def _on_progress(self, update, label: str, regions) -> None:
        now = time.perf_counter()
        if now - self._last_ui < 0.1 and update.step < update.total_steps:
            return  # keep the front end from drowning in messages
        self._last_ui = now
        self.progress.value = update.fraction
        eta = "" if update.eta_s is None else f", about {update.eta_s:.0f} s left"
        self._set_status(f"{update.mode}: {update.step}/{update.total_steps} regions ranked, "
                         f"{update.evaluations}/{update.total_evaluations} evaluations{eta}")
        if update.order:  # nothing ranked yet: no map to preview
            self.heatmap.preview(update, label, regions)

    def _fail(self, message: str) -> None:
        self.state, self.error = "error", message
        self.progress.bar_style = "danger"
        self.result, self._shown_key = None, None
        self.heatmap.clear()
        self.curves.clear()
        self.prompt_strip.value = ""
        self._set_status(f"Error: {message}", error=True)

    # -- linked hover ---------------------------------------------------------------------------
    def _on_curve_hover(self, change) -> None:
        if self.heatmap.result is None:
            return
        if change["new"] >= 0:
            if self._step_before_hover is None:
                self._step_before_hover = self.heatmap.step
            self.heatmap.step = min(change["new"], len(self.heatmap.result.order))
        elif self._step_before_hover is not None:
            self.heatmap.step, self._step_before_hover = self._step_before_hover, None

    def _on_region_hover(self, change) -> None:
        shown = self.heatmap.result
        if change["new"] >= 0 and shown is not None and change["new"] in shown.order:
            self.curves.step = shown.order.index(change["new"]) + 1  # the step that inserted it
        else:
            self.curves.step = self.heatmap.step

    def _on_token_hover(self, change) -> None:
        shown = self.heatmap.result
        targets = list(shown.context.targets) if shown is not None and shown.context is not None else []
        self.curves.highlight = targets.index(change["new"]) if change["new"] in targets else -1

    # -- helpers --------------------------------------------------------------------------------
    def _stop_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._cancel.set()
            self._worker.join()

    def _show(self, result: Attribution, message: str, key=None) -> None:
        self.result = result
        self._shown_key = key
        self.heatmap.show(result)
        self.curves.show(result)
        self.prompt_strip.value = (prompt_html(prompt_state(result, self.heatmap.encoding))
                                   + frames_html(frames_state(result, self.heatmap.encoding)))
        prior = self._language_prior_note(result)
        if prior and not self.heatmap.note:
            self.heatmap.note = prior
        self._set_status(message)

    def _language_prior_note(self, result: Attribution) -> str:
        """The strip marks tokens that barely gain from the image as language priors; their map says so too."""
        targets = list(result.context.targets) if result.context is not None else []
        delta = np.asarray(self.reliance.p_full) - np.asarray(self.reliance.p_black)
        if not targets or any(delta[t] > SENSITIVE_THRESHOLD for t in targets):
            return ""
        return (f"{selection_label(result.token_labels)} gains at most {max(delta[t] for t in targets):.2f} in "
                "probability from the image (the strip marks it as a language prior): its map ranks regions by "
                "small effects, not by what the answer rests on.")

    def _labels(self, selection) -> str:
        words = [repr(self.generation.tokens[i]) for i in selection[:4]]
        return ", ".join(words) + (f" and {len(selection) - 4} more" if len(selection) > 4 else "")

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.value = self._status_html(text, error)

    @staticmethod
    def _status_html(text: str, error: bool = False) -> str:
        return markup("<span class='eagle-status" + (" eagle-error" if error else "") + "'>{text}</span>", text=text)

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"Explorer(model={self.session.display_name!r}, answer={self.generation.text!r}, "
                f"tokens={len(self.generation.tokens)}, selection={self.selection!r}, state={self.state!r})")

    def export_html(self, path) -> Path:
        """Write one self-contained HTML file (no kernel, no network) with the image, the token strip and every
        explanation computed so far; clicking tokens in the page switches between them."""
        from .export import explorer_page, write_page

        return write_page(explorer_page(self), path)

    def export_file(self, what: str) -> tuple[str, bytes, str]:
        """(file name, bytes, MIME type) of an export: "png" or "svg" (the figure of what is shown), "html" (the
        self-contained page) or "bundle" (the shown result, for `Attribution.load`)."""

        stem = "explanation" if self.result is None else \
            "explanation-" + "-".join(str(i) for i in (self._shown_key[0] if self._shown_key else self.selection))
        if what == "png":
            return f"{stem}.png", self.snapshot_png(), "image/png"
        if what == "svg":
            buf = io.BytesIO()
            self._snapshot_figure().savefig(buf, format="svg")
            return f"{stem}.svg", buf.getvalue(), "image/svg+xml"
        if what == "html":
            from .export import explorer_page

            return "explorer.html", explorer_page(self).encode(), "text/html"
        if what == "bundle":
            if self.result is None or not self.result.order:
                raise InputError("no explanation is shown yet: select tokens first")
            return f"{stem}.eagle", bundle_bytes(self.result), "application/octet-stream"
        raise InputError(f"export one of {', '.join(f for f, _, _ in EXPORTS)}; got {what!r}")

    def _snapshot_figure(self):
        """The figure of the current state: image, shown map, answer and curves, drawn as the views draw them."""
        from ..display.figures import explanation_figure

        shown = self.result if self.state in ("done", "cancelled") else None
        return explanation_figure(self.generation.image, self.generation.tokens, self.strip.reliance, shown,
                                  self.selection, self.generation.special,
                                  title=f"{self.generation.prompt} → {self.generation.text}" + (
                                      f"\n{method_label(shown)} · {shown.num_regions} regions · "
                                      f"λ {shown.lambda1:g}/{shown.lambda2:g}" if shown else ""),
                                  encoding=self.heatmap.encoding, style=self.heatmap.map_style,
                                  note=image_note(shown) if shown else "")

    def snapshot_png(self) -> bytes:
        """A picture of the current state (what a saved notebook shows without a kernel)."""
        from ..display.figures import figure_png

        return figure_png(self._snapshot_figure())

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        if data is not None:
            data["text/plain"] = repr(self)
            data["image/png"] = base64.b64encode(self.snapshot_png()).decode()
        return bundle

