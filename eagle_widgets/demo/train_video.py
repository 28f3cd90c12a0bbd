"""Teach the demo model to answer about clips: fine-tune the image demo on procedural clips (CPU, seeded).

    python -m eagle_widgets.demo.train_video --out DIR [--base eagle_widgets/demo/weights] [--steps 800]

The video demo reads a clip as its frames in order, each an image of the image demo (`<image>` per frame, 64
tokens each): the frames-as-images input of LLaVA-style models. It starts from the image demo's weights (its
vision tower already knows the shapes and colours), adds the word "video" to the vocabulary and learns which
objects a clip shows at all ("is there a star ?" is "yes" when the star is in any frame), their colours and a
caption of the clip in order of appearance. A share of the training clips are partly blacked out (whole
frames, cells, whole objects in some frames), as EAGLE's masks black them out, and hidden objects leave the
answers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .clips import CLIP_FRAMES, VIDEO_CAPTION_PROMPT, Clip, make_clip
from .model import INPUT_SIZE, WORDS, build_tokenizer
from .scenes import COLOURS, SHAPES, colour_prompt, presence_prompt
from .train import Optimiser, answer_loss, pad_batch, param_groups, to_pixel_values

VIDEO_WORDS = ["video"]
TASKS = ("caption", "presence", "colour")


def build_video_tokenizer():
    """The demo's word-level tokenizer with the video words appended (existing ids unchanged)."""
    from tokenizers import Tokenizer

    tok = build_tokenizer()
    raw = json.loads(tok.backend_tokenizer.to_str())
    vocab = raw["model"]["vocab"]
    for w in VIDEO_WORDS:
        vocab.setdefault(w, len(vocab))
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(raw)), bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                                   extra_special_tokens={"image_token": "<image>"}, padding_side="left",
                                   model_max_length=1024)


def augment(clip: Clip, rng) -> Clip:
    """Black out parts of a clip the way EAGLE's masks do: whole frames, grid cells, an object in some frames."""
    frames = clip.frames.copy()
    shown = [list(s) for s in clip.shown]
    n, size = frames.shape[0], frames.shape[1]
    for f in range(n):
        if rng.random() < 0.3:
            frames[f] = 0
            for s in shown:
                if f in s:
                    s.remove(f)
            continue
        kept = np.zeros((size, size), bool)
        for o, s in zip(clip.objects, shown):
            if f in s and rng.random() < 0.2:  # this object blacked out in this frame
                frames[f][o.mask] = 0
                s.remove(f)
            elif f in s:
                kept |= o.mask
        cells = int(rng.integers(3, 7))
        grid = (np.arange(size)[:, None] * cells // size) * cells + np.arange(size)[None, :] * cells // size
        dark = rng.random(cells * cells) < rng.uniform(0.0, 0.8)
        frames[f][dark[grid] & ~kept] = 0
    return Clip(frames, clip.objects, [tuple(s) for s in shown], clip.seed)


def sample_task(rng, clip: Clip, kind: str) -> tuple[str, str]:
    present = clip.present
    if kind == "colour" and not present:
        kind = "presence"
    if kind == "caption":
        return VIDEO_CAPTION_PROMPT, clip.caption
    if kind == "presence":
        shapes = [o.shape for o in present]
        if shapes and rng.random() < 0.5:
            return presence_prompt(shapes[int(rng.integers(len(shapes)))]), "yes"
        absent = [s for s in SHAPES if s not in shapes]
        return presence_prompt(absent[int(rng.integers(len(absent)))]), "no"
    o = present[int(rng.integers(len(present)))]
    return colour_prompt(o.shape), o.colour


class ClipPrompts:
    """Token ids of each prompt with a clip's frames, through the real processor (training matches inference)."""

    def __init__(self, processor, frames: int):
        self.tok = processor.tokenizer
        blank = [Image.new("RGB", (INPUT_SIZE, INPUT_SIZE))] * frames
        texts = [VIDEO_CAPTION_PROMPT] + [presence_prompt(s) for s in SHAPES] + [colour_prompt(s) for s in SHAPES]
        self.ids = {}
        for t in texts:
            content = [{"type": "image"}] * frames + [{"type": "text", "text": t}]
            prompt = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                   tokenize=False)
            self.ids[t] = processor(images=blank, text=[prompt], return_tensors="pt")["input_ids"][0].tolist()

    def answer(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] + [self.tok.eos_token_id]


def _frames_u8(clip: Clip) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))
                     for f in clip.frames])


def make_batch(prompts: ClipPrompts, rng, clips: list[Clip]):
    seqs, labels = [], []
    for clip in clips:
        for kind in TASKS:
            q, a = sample_task(rng, clip, kind)
            p, ans = prompts.ids[q], prompts.answer(a)
            seqs.append(p + ans)
            labels.append([-100] * len(p) + ans)
    return pad_batch(seqs, labels, prompts.tok.pad_token_id)


def train(model, prompts: ClipPrompts, steps: int, clips_per_step: int, lr: float, seed: int, log) -> None:
    vision = [(n, p) for n, p in model.named_parameters() if "vision_tower" in n]
    rest = [(n, p) for n, p in model.named_parameters() if "vision_tower" not in n]
    groups = param_groups(rest, lr, 0.05) + param_groups(vision, lr * 0.1, 0.05)
    opt = Optimiser(groups, list(model.parameters()), steps, 100, "video", log)
    rng = np.random.default_rng(seed)
    model.train()
    for step in range(steps):
        clips = []
        for _ in range(clips_per_step):
            clip = make_clip(int(rng.integers(2 ** 62)))
            clips.append(augment(clip, rng) if rng.random() < 0.5 else clip)
        frames = np.concatenate([_frames_u8(c) for c in clips])  # [clips * F, S, S, 3]
        ids, labels, mask = make_batch(prompts, rng, clips)
        features = model.model.get_image_features(pixel_values=to_pixel_values(frames), vision_feature_layer=-1,
                                                  vision_feature_select_strategy="default", return_dict=True)
        per_image = list(features.pooler_output)
        n = clips[0].frames.shape[0]
        features.pooler_output = [per_image[c * n + f] for c in range(len(clips)) for _ in TASKS for f in range(n)]
        opt.step(step, answer_loss(model, ids, labels, mask, features))
    model.eval()


def main(argv=None) -> int:
    from transformers import LlavaForConditionalGeneration

    from . import WEIGHTS
    from .model import build_processor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", type=Path, default=WEIGHTS, help="the image demo's weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--clips", type=int, default=8, help="clips per step, each asked 3 things")
    parser.add_argument("--frames", type=int, default=CLIP_FRAMES)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)

    tokenizer = build_video_tokenizer()
    processor = build_processor(tokenizer)
    model = LlavaForConditionalGeneration.from_pretrained(args.base, dtype=torch.float32)
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    text = model.config.text_config
    text.max_position_embeddings = max(text.max_position_embeddings, 1024)
    log(f"from {args.base}: vocabulary {old} -> {len(tokenizer)}, {args.frames} frames per clip")
    train(model, ClipPrompts(processor, args.frames), args.steps, args.clips, args.lr, args.seed, log)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    info["base"] = "eagle_widgets/demo/weights" if args.base == WEIGHTS else str(args.base)
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    info["words"] = len(WORDS) + len(VIDEO_WORDS)
    info["colours"], info["shapes"] = list(COLOURS), list(SHAPES)
    (args.out / "training.json").write_text(json.dumps(info, indent=1))
    log(f"saved to {args.out} after {info['train_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
