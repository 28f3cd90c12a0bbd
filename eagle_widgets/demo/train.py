"""Train the demo model from scratch on procedural scenes (two stages, CPU, seeded).

    python -m eagle_widgets.demo.train --out DIR [--seed 0] [--scenes 30000]

Stage 1 trains only the CLIP vision tower on dense per-patch shape and colour labels taken from the
scene masks (the analogue of LLaVA's pretrained CLIP). Stage 2 trains the whole LLaVA on captions and
questions, with the loss on the answer tokens only and the vision tower at a lower learning rate.
A third of the training scenes are partly blacked out, so that the masked images EAGLE feeds the
model are in distribution.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .model import IMAGE_TOKENS, INPUT_SIZE, PATCH, build_model, build_processor, build_tokenizer
from .scenes import (
    CAPTION_PROMPT,
    COLOURS,
    SHAPES,
    TRAINING_BIAS,
    UNBIASED,
    Bias,
    Scene,
    colour_prompt,
    make_scene,
    presence_prompt,
)

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
GRID = INPUT_SIZE // PATCH


# -- data ---------------------------------------------------------------------------------------------
def _voronoi_cells(rng, size: int, n_cells: int) -> np.ndarray:
    """A random partition into about n_cells convex cells (a cheap stand-in for superpixels)."""
    step = 4
    g = size // step
    seeds = rng.uniform(0, g, (n_cells, 2))
    yy, xx = np.mgrid[0:g, 0:g]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return np.repeat(np.repeat(np.argmin(d, axis=2), step, 0), step, 1)


def augment(scene: Scene, rng) -> Scene:
    """Black out parts of the scene the way EAGLE's masks do; hidden objects leave the texts."""
    img = scene.image.copy()
    objects = list(scene.objects)
    hidden = []
    cells = _voronoi_cells(rng, img.shape[0], int(rng.integers(16, 48)))
    if len(objects) >= 2 and rng.random() < 0.4:
        cue_visible = {o.shape for o in objects}
        candidates = [o for o in objects if not (o.shape == TRAINING_BIAS.partner and TRAINING_BIAS.cue in cue_visible)]
        if candidates:
            gone = candidates[int(rng.integers(len(candidates)))]
            objects.remove(gone)
            hidden.append(gone)
            touched = np.unique(cells[gone.mask])
            others = np.zeros(img.shape[:2], bool)
            for o in objects:
                others |= o.mask
            img[(np.isin(cells, touched) & ~others) | gone.mask] = 0
    keep = np.zeros(img.shape[:2], bool)
    for o in objects:
        keep |= o.mask
    kind = rng.random()
    if kind < 0.3:  # object-tight: only the objects (sometimes with a thin rim) stay
        if rng.random() < 0.5:
            from scipy.ndimage import binary_dilation

            keep = binary_dilation(keep, iterations=int(rng.integers(1, 6)))
        img[~keep] = 0
    else:  # superpixel-like: a random share of the cells that touch no kept object
        free = np.setdiff1d(np.unique(cells), np.unique(cells[keep]))
        if len(free):
            chosen = free[rng.random(len(free)) < rng.uniform(0.1, 0.9)]
            img[np.isin(cells, chosen) & ~keep] = 0
    return Scene(img, objects, scene.seed, hidden)


def _resize(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))


def patch_labels(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Per 16-px patch of the model input: shape (0 = none) and colour of the object covering it most."""
    shape = np.zeros(GRID * GRID, np.int64)
    colour = np.zeros(GRID * GRID, np.int64)
    best = np.full(GRID * GRID, 0.15)
    for o in scene.objects:
        m = np.asarray(Image.fromarray(o.mask.astype(np.uint8) * 255).resize((INPUT_SIZE, INPUT_SIZE),
                                                                           Image.BILINEAR)) / 255.0
        cover = m.reshape(GRID, PATCH, GRID, PATCH).mean(axis=(1, 3)).ravel()
        win = cover > best
        best[win] = cover[win]
        shape[win] = SHAPES.index(o.shape) + 1
        colour[win] = COLOURS.index(o.colour) + 1
    return shape, colour


def _texts(scene: Scene) -> dict:
    return {"caption": scene.caption,
            "present": [s for s in SHAPES if scene.has(s)],
            "colours": {o.shape: o.colour for o in scene.objects}}


def _make_sample(args):
    index, seed, augment_share, bias, stream = args
    rng = np.random.default_rng([seed, index, stream])
    scene = make_scene(int(rng.integers(2 ** 62)), bias=bias)
    if rng.random() < augment_share:
        scene = augment(scene, rng)
    shape, colour = patch_labels(scene)
    return _resize(scene.image), shape, colour, _texts(scene)


def generate_dataset(n: int, seed: int, augment_share: float = 0.35, workers: int = 2, bias: Bias = TRAINING_BIAS,
                     stream: int = 1):
    """n scenes (resized images, per-patch labels, texts); `stream` keeps the two stages' scenes apart."""
    jobs = [(i, seed, augment_share, bias, stream) for i in range(n)]
    if workers > 1:
        with mp.get_context("fork").Pool(workers) as pool:
            samples = pool.map(_make_sample, jobs, chunksize=256)
    else:
        samples = [_make_sample(j) for j in jobs]
    images = np.stack([s[0] for s in samples])
    shapes = np.stack([s[1] for s in samples])
    colours = np.stack([s[2] for s in samples])
    return images, shapes, colours, [s[3] for s in samples]


def to_pixel_values(images_u8: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float() / 255.0
    return (x - CLIP_MEAN) / CLIP_STD


class Prompts:
    """Token ids of every prompt (through the real processor, so training matches inference) and answers."""

    def __init__(self, processor):
        self.tok = processor.tokenizer
        blank = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE))
        texts = [CAPTION_PROMPT] + [presence_prompt(s) for s in SHAPES] + [colour_prompt(s) for s in SHAPES]
        self.ids = {}
        for t in texts:
            msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": t}]}]
            prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            self.ids[t] = processor(images=[blank], text=[prompt], return_tensors="pt")["input_ids"][0].tolist()
        self.eos = self.tok.eos_token_id

    def answer(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"] + [self.eos]


def sample_task(rng, texts: dict, kind: str) -> tuple[str, str]:
    """One prompt and its answer: a caption, a balanced presence question, or a colour question."""
    if kind == "colour" and not texts["colours"]:
        kind = "presence"
    if kind == "caption":
        return CAPTION_PROMPT, texts["caption"]
    if kind == "presence":
        present = texts["present"]
        if present and rng.random() < 0.5:
            return presence_prompt(present[int(rng.integers(len(present)))]), "yes"
        absent = [s for s in SHAPES if s not in present]
        return presence_prompt(absent[int(rng.integers(len(absent)))]), "no"
    shape = list(texts["colours"])[int(rng.integers(len(texts["colours"])))]
    return colour_prompt(shape), texts["colours"][shape]


# Each image is asked three things in a step; its vision features are computed once and shared.
TASKS_PER_IMAGE = ("caption", "presence", "colour")


def make_batch(prompts: Prompts, rng, texts_batch, pad_id: int):
    seqs, labels = [], []
    for texts in texts_batch:
        for kind in TASKS_PER_IMAGE:
            q, a = sample_task(rng, texts, kind)
            p, ans = prompts.ids[q], prompts.answer(a)
            seqs.append(p + ans)
            labels.append([-100] * len(p) + ans)
    return pad_batch(seqs, labels, pad_id)


def pad_batch(seqs: list[list[int]], labels: list[list[int]], pad_id: int):
    """Input ids, labels (-100 where no loss) and attention mask, right-padded to the longest sequence."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id)
    lab = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, lbl) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        lab[i, : len(lbl)] = torch.tensor(lbl)
        mask[i, : len(s)] = 1
    return ids, lab, mask


def answer_loss(model, ids, labels, mask, features) -> torch.Tensor:
    """Cross-entropy on the answer tokens, with the images' vision features computed beforehand (shared)."""
    out = model(input_ids=ids, attention_mask=mask, mm_encoder_outputs={"image": features})
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    return torch.nn.functional.cross_entropy(logits, labels[:, 1:].reshape(-1), ignore_index=-100)


# -- optimisation ---------------------------------------------------------------------------------------
def param_groups(named_params, lr: float, weight_decay: float):
    decay, no_decay = [], []
    for name, p in named_params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in name or "embed" in name else decay).append(p)
    return [{"params": decay, "lr": lr, "weight_decay": weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0}]


def _schedule(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


class Optimiser:
    """AdamW steps with warm-up and cosine decay, gradient clipping at 1.0 and a smoothed loss in the log."""

    def __init__(self, groups, clipped, steps: int, warmup: int, stage: str, log):
        self.opt = torch.optim.AdamW(groups, betas=(0.9, 0.98))
        self.base = [g["lr"] for g in self.opt.param_groups]
        self.clipped, self.steps, self.warmup, self.stage, self.log = clipped, steps, warmup, stage, log
        self.ema = None

    def step(self, step: int, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.clipped, 1.0)
        scale = _schedule(step, self.steps, self.warmup)
        for g, b in zip(self.opt.param_groups, self.base):
            g["lr"] = b * scale
        self.opt.step()
        self.ema = loss.item() if self.ema is None else 0.98 * self.ema + 0.02 * loss.item()
        if step % 200 == 0 or step == self.steps - 1:
            self.log(f"{self.stage} step {step}/{self.steps} loss {self.ema:.4f}")


def train_stage1(model, images, shapes, colours, steps: int, batch: int, lr: float, rng, log) -> None:
    tower = model.model.vision_tower
    hidden = model.config.vision_config.hidden_size
    heads = torch.nn.ModuleDict({"shape": torch.nn.Linear(hidden, len(SHAPES) + 1),
                                 "colour": torch.nn.Linear(hidden, len(COLOURS) + 1)})
    params = list(tower.named_parameters()) + list(heads.named_parameters())
    opt = Optimiser(param_groups(params, lr, 0.05), [p for _, p in params], steps, 100, "stage 1", log)
    tower.train()
    for step in range(steps):
        idx = rng.integers(0, len(images), batch)
        pv = to_pixel_values(images[idx])
        feats = tower(pixel_values=pv).last_hidden_state[:, 1:]  # drop CLS: one feature per patch
        loss = (torch.nn.functional.cross_entropy(heads["shape"](feats).flatten(0, 1),
                                                  torch.from_numpy(shapes[idx]).flatten())
                + torch.nn.functional.cross_entropy(heads["colour"](feats).flatten(0, 1),
                                                    torch.from_numpy(colours[idx]).flatten()))
        opt.step(step, loss)


def train_stage2(model, prompts: Prompts, images, texts, steps: int, batch: int, lr: float, rng, log) -> None:
    vision = [(n, p) for n, p in model.named_parameters() if "vision_tower" in n]
    rest = [(n, p) for n, p in model.named_parameters() if "vision_tower" not in n]
    groups = param_groups(rest, lr, 0.05) + param_groups(vision, lr * 0.25, 0.05)
    opt = Optimiser(groups, list(model.parameters()), steps, 150, "stage 2", log)
    pad = prompts.tok.pad_token_id
    model.train()
    for step in range(steps):
        idx = rng.integers(0, len(images), batch)
        ids, labels, mask = make_batch(prompts, rng, [texts[i] for i in idx], pad)
        features = model.model.get_image_features(pixel_values=to_pixel_values(images[idx]), vision_feature_layer=-1,
                                                  vision_feature_select_strategy="default", return_dict=True)
        features.pooler_output = [f for f in features.pooler_output for _ in TASKS_PER_IMAGE]
        opt.step(step, answer_loss(model, ids, labels, mask, features))
    model.eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=30000)
    parser.add_argument("--stage1-steps", type=int, default=2400)
    parser.add_argument("--stage2-steps", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=64, help="images per stage-1 step")
    parser.add_argument("--stage2-images", type=int, default=32, help="images per stage-2 step, each asked 3 things")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="processes generating the scenes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)

    # Stage 1 sees unbiased scenes: the planted priors belong to the language side, and a vision tower that
    # learnt stars from 90%-yellow examples misnames stars of other colours.
    n_vision = args.scenes * 2 // 3
    log(f"generating {n_vision} unbiased scenes for stage 1 (seed {args.seed})")
    images, shapes, colours, _ = generate_dataset(n_vision, args.seed, workers=args.workers, bias=UNBIASED, stream=2)
    log("stage 1: vision tower on per-patch labels")
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    model = build_model(tokenizer)
    train_stage1(model, images, shapes, colours, args.stage1_steps, args.batch, args.lr, rng, log)
    del images, shapes, colours
    log(f"generating {args.scenes} training scenes with the planted priors")
    images, _, _, texts = generate_dataset(args.scenes, args.seed, workers=args.workers)
    log("stage 2: whole model on captions and questions")
    train_stage2(model, Prompts(processor), images, texts, args.stage2_steps, args.stage2_images, args.lr, rng, log)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    info["train_seconds"] = round(time.perf_counter() - t0, 1)
    info["image_tokens"] = IMAGE_TOKENS
    (args.out / "training.json").write_text(json.dumps(info, indent=1))
    log(f"saved to {args.out} after {info['train_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
