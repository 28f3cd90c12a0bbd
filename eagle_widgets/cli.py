"""Command line: `eagle-widgets explain` for any image and model, `eagle-widgets demo` on a demo scene."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _terminal_progress(update) -> None:
    eta = "" if update.eta_s is None else f", about {update.eta_s:4.0f} s left"
    sys.stderr.write(f"\r  {update.mode}: {update.step:3d}/{update.total_steps} regions, "
                     f"{update.evaluations}/{update.total_evaluations} evaluations{eta}   ")
    if update.step == update.total_steps:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _write(out: Path, name: str, result, gen, reliance) -> None:
    from .core.errors import EagleError
    from .display.figures import attribution_figure, explanation_figure
    from .widgets.state import image_note

    result.save(out / f"{name}.eagle")
    if result.frames:  # a video: its frames on one scale, which frames matter, the answer
        fig = attribution_figure(result, reliance=list(reliance.evidence), title=f"{gen.prompt} → {gen.text}",
                                 dpi=110)
    else:
        fig = explanation_figure(gen.image, gen.tokens, reliance.evidence, result, list(result.context.targets),
                                 gen.special, title=f"{gen.prompt} → {gen.text}", note=image_note(result))
    try:
        fig.savefig(out / f"{name}.png", dpi=110)
    except OSError as err:
        raise EagleError(f"the result is saved in {out / name}.eagle, but the figure could not be written: "
                         f"{err.strerror or err}") from None
    m = result.metrics()
    print(f"  {name}: tokens {result.token_labels}, {result.evaluations} evaluations in "
          f"{result.timings['total_s']:.1f} s, insertion AUC {m['insertion_auc']:.3f}, "
          f"deletion AUC {m['deletion_auc']:.3f} -> {out / name}.eagle, {out / name}.png")


def _output_folder(out: Path) -> Path:
    from .core.errors import InputError

    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder for the results")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".eagle-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"cannot write the results to {out}: {err.strerror or err}") from None
    return out


def _explain(session, image, prompt, out: Path, tokens, words, mode, regions, max_new_tokens, answer=None,
             prompt_spans=None) -> int:
    from .core.errors import InputError

    if tokens and words:
        raise InputError("give --tokens or --words, not both")
    out = _output_folder(out)
    from .core.video import Video

    if isinstance(image, Video):  # read once here: the answer and its explanation see the same frames
        gen = session.teacher_force_video(image, prompt, answer) if answer is not None else \
            session.generate_video(image, prompt, max_new_tokens=max_new_tokens)
        print(f"video: {image.n} frames of {image.frame_shape[1]}x{image.frame_shape[0]} at {image.fps:g} fps")
    else:
        gen = session.teacher_force(image, prompt, answer) if answer is not None else \
            session.generate(image, prompt, max_new_tokens=max_new_tokens)
    print(f"Q: {prompt}\nA: {gen.text}")
    print("tokens: " + " ".join(f"[{i}]{t!r}" for i, t in enumerate(gen.tokens)))
    reliance = session.reliance(gen)
    selection = gen.positions_of(words) if words else (tokens or None)
    if regions == 0 and prompt_spans is None:
        raise InputError("--regions 0 leaves nothing to explain over; add --prompt-spans word|sentence|message")
    result = session.explain(gen, tokens=selection, regions=regions or None, mode=mode, progress=_terminal_progress,
                             **({"prompt": prompt_spans} if prompt_spans else {}))
    # The answer first: whatever happens to the figure, the outputs that exist belong together.
    (out / "answer.json").write_text(json.dumps({
        "prompt": prompt, "answer": gen.text, "tokens": gen.tokens, "token_ids": gen.token_ids,
        "p_image": reliance.p_full.tolist(), "p_black": reliance.p_black.tolist(),
        "sensitive": reliance.sensitive.tolist(), "model": session.name}, indent=1))
    _write(out, "attribution", result, gen, reliance)
    return 0


def _evaluate(args) -> int:
    from .evaluation import EvaluationOptions, evaluate, format_summary

    options = EvaluationOptions(model=args.model, mode=args.mode, regions=args.regions, lambda1=args.lambda1,
                                lambda2=args.lambda2, batch_size=args.batch_size, dtype=args.dtype,
                                device=args.device, max_new_tokens=args.max_new_tokens,
                                served_model=args.served_model, api=args.api, max_in_flight=args.max_in_flight,
                                prompt_spans=args.prompt_spans)
    summary = evaluate(args.manifest, args.out, options, backend=args.backend, workers=args.workers,
                       address=args.address)
    print(format_summary(summary, options))
    print(f"{summary['computed']} computed now ({summary['samples_per_minute']:.1f} per minute); results in "
          f"{args.out / 'results.csv'}")
    return 0 if summary["errors"] == 0 else 1


def _dataset(args) -> int:
    from .core.errors import InputError
    from .evaluation import from_authors, from_coco, make_demo_dataset

    if args.source == "demo":
        path, skipped = make_demo_dataset(args.out, captions=args.captions, words=args.words,
                                          hallucinations=args.hallucinations), []
    else:
        if args.annotations is None or args.images is None:
            raise InputError(f"{args.source} needs --annotations and --images")
        reader = from_coco if args.source == "coco" else from_authors
        path, skipped = reader(args.annotations, args.images, args.out, limit=args.limit)
    for name, why in skipped:
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"wrote {path}")
    return 0


def _seed(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"a scene seed is 0 or more, got {value}")
    return value


def main(argv=None) -> int:
    from .core.search import MODES

    parser = argparse.ArgumentParser(prog="eagle-widgets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=Path("eagle-output"), help="folder for the results")
    common.add_argument("--mode", default="efficient", choices=list(MODES))
    common.add_argument("--regions", type=int, default=36, help="number of SLICO superpixels (d); 0 with "
                        "--prompt-spans: the prompt's spans alone, the image fully visible")
    common.add_argument("--prompt-spans", choices=["word", "sentence", "message"], default=None,
                        help="also order the prompt's words or sentences (with --regions 0: only them)")
    common.add_argument("--max-new-tokens", type=int, default=48)
    ex = sub.add_parser("explain", parents=[common], help="explain a model's answer about an image")
    media = ex.add_mutually_exclusive_group(required=True)
    media.add_argument("--image", type=Path)
    media.add_argument("--video", type=Path, help="a video file or a folder of frames (--regions is then per frame)")
    ex.add_argument("--fps", type=float, default=None, help="video: frames per second to sample (a file: 2 by "
                    "default) or the spacing of a folder's frames (required there)")
    ex.add_argument("--max-frames", type=int, default=32, help="video: at most this many frames (sampled evenly)")
    ex.add_argument("--prompt", required=True)
    ex.add_argument("--model", default=None, help="Hugging Face model id or folder, or a server's address "
                    "(http://host:8000/v1); default: the demo model")
    ex.add_argument("--answer", default=None, help="explain this given answer (teacher forced) instead of "
                    "generating one")
    ex.add_argument("--device", default=None)
    ex.add_argument("--dtype", default="auto")
    ex.add_argument("--tokens", type=int, nargs="*", help="indices of the answer tokens (default: all)")
    ex.add_argument("--words", nargs="*", help="explain these answer words instead of indices")
    demo = sub.add_parser("demo", parents=[common], help="explain the demo model's caption of a demo scene")
    demo.add_argument("--seed", type=_seed, default=1_000_025, help="a scene seed, 0 or more")
    ev = sub.add_parser("evaluate", help="explain every sample of a dataset manifest (resumable)")
    ev.add_argument("manifest", type=Path, help="a JSONL manifest (see docs/datasets.md)")
    ev.add_argument("--out", type=Path, required=True, help="results folder (a killed run resumes from it)")
    ev.add_argument("--model", default="demo", help="'demo', a model folder, a Hugging Face id, or a server's "
                    "address (http://host:8000/v1)")
    ev.add_argument("--mode", default="exact", choices=list(MODES))
    ev.add_argument("--regions", type=int, default=64, help="number of SLICO superpixels (d); 0 with "
                    "--prompt-spans: the prompt's spans alone")
    ev.add_argument("--prompt-spans", choices=["word", "sentence", "message"], default=None,
                    help="also order the prompt's words or sentences")
    ev.add_argument("--lambda1", type=float, default=1.0)
    ev.add_argument("--lambda2", type=float, default=1.0)
    ev.add_argument("--batch-size", type=int, default=None)
    ev.add_argument("--dtype", default="auto")
    ev.add_argument("--device", default=None)
    ev.add_argument("--max-new-tokens", type=int, default=32)
    ev.add_argument("--backend", default="local", choices=["local", "ray"])
    ev.add_argument("--workers", type=int, default=None, help="local: processes (default one per GPU, else 1); "
                    "ray: actors (default one per GPU, else one per CPU)")
    ev.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    for p in (ex, ev):  # a served model (--model http://...)
        p.add_argument("--served-model", default=None, help="served: the model's name on the server (default: its "
                       "only model)")
        p.add_argument("--api", default="auto", choices=["auto", "vllm", "sglang", "openai-topk"],
                       help="served: the server's API (auto: vLLM or SGLang; openai-topk is approximate); an API "
                       "key is read from $EAGLE_WIDGETS_API_KEY")
        p.add_argument("--max-in-flight", type=int, default=8, help="served: requests at once")
    ds = sub.add_parser("dataset", help="write a dataset manifest: demo scenes, COCO or the authors' files")
    ds.add_argument("source", choices=["demo", "coco", "authors"])
    ds.add_argument("--out", type=Path, required=True, help="folder for manifest.jsonl (and images, masks)")
    ds.add_argument("--annotations", type=Path, help="coco: the annotation JSON; authors: their dataset JSON")
    ds.add_argument("--images", type=Path, help="coco/authors: the folder of the images")
    ds.add_argument("--captions", type=int, default=8)
    ds.add_argument("--words", type=int, default=8)
    ds.add_argument("--hallucinations", type=int, default=4)
    ds.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)

    from .core.errors import EagleError

    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "dataset":
            return _dataset(args)
        if args.command == "demo":
            from .demo import CAPTION_PROMPT, UNBIASED, load_demo_session, make_scene

            scene = make_scene(args.seed, bias=UNBIASED)
            print(f"demo scene {args.seed}: {scene.caption}")
            session = load_demo_session()
            words = [scene.objects[0].shape]
            return _explain(session, scene.image, CAPTION_PROMPT, args.out, None, words, args.mode, args.regions,
                            args.max_new_tokens, prompt_spans=args.prompt_spans)
        from .core.images import load_image
        from .models import load_session

        if args.video is not None:
            from .core.video import load_video

            image = load_video(args.video, args.fps, max_frames=args.max_frames)
        else:
            image = load_image(args.image)
        if args.model is None:
            from .demo import load_demo_session

            session = load_demo_session(device=args.device or "cpu")
        elif args.model.startswith(("http://", "https://")):
            session = load_session(args.model, served_model=args.served_model, api=args.api,
                                   max_in_flight=args.max_in_flight)
        else:
            session = load_session(args.model, device=args.device, dtype=args.dtype)
        return _explain(session, image, args.prompt, args.out, args.tokens, args.words, args.mode, args.regions,
                        args.max_new_tokens, args.answer, args.prompt_spans)
    except EagleError as err:
        print(f"eagle-widgets: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("eagle-widgets: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # the disk or a path said no (read-only, full, a file where a folder goes): no bug
        where = f" {err.filename}" if err.filename else ""
        print(f"eagle-widgets: cannot write or read{where}: {err.strerror or err}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug or an unforeseen failure: one line, not a traceback (unless debugging)
        if os.environ.get("EAGLE_WIDGETS_DEBUG"):
            raise
        print(f"eagle-widgets: unexpected {type(err).__name__}: {err} (set EAGLE_WIDGETS_DEBUG=1 for the traceback, "
              "and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
