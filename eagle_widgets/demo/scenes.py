"""Procedural scenes with known ground truth: coloured shapes on a light textured background.

Every object's pixel mask is kept, so where the model *should* look is known exactly. The training
distribution has two deliberate language priors (see `Bias`), documented in the model card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "cross", "moon")
COLOURS = ("red", "green", "blue", "yellow", "purple")
COLOUR_RGB = {
    "red": (215, 40, 40), "green": (40, 165, 60), "blue": (45, 80, 215),
    "yellow": (235, 205, 35), "purple": (145, 55, 185),
}
SIZE = 224
CAPTION_PROMPT = "describe the image ."


def presence_prompt(shape: str) -> str:
    return f"is there a {shape} ?"


def colour_prompt(shape: str) -> str:
    return f"what color is the {shape} ?"


@dataclass(frozen=True)
class Bias:
    """The language priors planted in the training data.

    partner: when a `cue` shape is present, its `partner` is added with probability `co_occurrence`.
    colour: the `cue` shape takes `cue_colour` with probability `colour_prior`.
    """

    cue: str = "star"
    partner: str = "moon"
    co_occurrence: float = 0.98
    cue_colour: str = "yellow"
    colour_prior: float = 0.9


UNBIASED = Bias(co_occurrence=0.0, colour_prior=0.0)
TRAINING_BIAS = Bias()


@dataclass
class SceneObject:
    shape: str
    colour: str
    mask: np.ndarray  # bool HxW
    centre: tuple[float, float]  # (x, y)
    size: float

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) with exclusive ends."""
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    @property
    def words(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    image: np.ndarray  # HxWx3 uint8
    objects: list[SceneObject]  # left to right
    seed: int = 0
    hidden: list[SceneObject] = field(default_factory=list)  # objects blacked out by augmentation

    @property
    def caption(self) -> str:
        """Objects from left to right: 'a red circle and a blue square .' ('.' alone when none is visible)."""
        if not self.objects:
            return "."
        return " and ".join(f"a {o.words}" for o in self.objects) + " ."

    def has(self, shape: str) -> bool:
        return any(o.shape == shape for o in self.objects)

    def answer(self, prompt: str) -> str | None:
        """The correct answer to one of the three prompt forms (None for anything else)."""
        words = prompt.lower().split()
        if words == CAPTION_PROMPT.split():
            return self.caption
        if len(words) == 5 and words[:3] == ["is", "there", "a"] and words[4] == "?":
            return "yes" if self.has(words[3]) else "no"
        if len(words) == 6 and words[:4] == ["what", "color", "is", "the"] and words[5] == "?":
            hit = [o.colour for o in self.objects if o.shape == words[4]]
            return hit[0] if hit else None
        return None

    def mask_of(self, word_shape: str) -> np.ndarray:
        hit = [o.mask for o in self.objects if o.shape == word_shape]
        if not hit:
            raise KeyError(f"no {word_shape} in this scene")
        return hit[0]


def _polygon(kind: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    def pts(radii, n, offset=0.0):
        return [(cx + rad * math.cos(rot + offset + 2 * math.pi * i / n),
                 cy + rad * math.sin(rot + offset + 2 * math.pi * i / n)) for i, rad in enumerate(radii)]

    if kind == "square":
        return pts([r * 0.95] * 4, 4, math.pi / 4)
    if kind == "triangle":
        return pts([r] * 3, 3, -math.pi / 2)
    if kind == "star":
        return pts([r if i % 2 == 0 else r * 0.5 for i in range(10)], 10, -math.pi / 2)
    if kind == "cross":
        a, b = r, r * 0.36
        local = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b), (-a, b), (-a, -b),
                 (-b, -b)]
        c, s = math.cos(rot), math.sin(rot)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in local]
    raise ValueError(kind)


def shape_mask(kind: str, cx: float, cy: float, size: float, rot: float, hw: tuple[int, int] = (SIZE, SIZE)):
    """Boolean mask of one shape with its centre at (cx, cy) and overall extent about `size` pixels."""
    img = Image.new("L", (hw[1], hw[0]), 0)
    draw = ImageDraw.Draw(img)
    r = size / 2
    if kind == "circle":
        draw.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=255)
    elif kind == "moon":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        dx, dy = math.cos(rot) * r * 0.55, math.sin(rot) * r * 0.55
        draw.ellipse([cx - r * 0.85 + dx, cy - r * 0.85 + dy, cx + r * 0.85 + dx, cy + r * 0.85 + dy], fill=0)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, rot), fill=255)
    return np.asarray(img) > 127


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(185, 245, 3)
    tint = rng.normal(0, 7, (7, 7, 3))
    low = np.asarray(Image.fromarray(np.clip(128 + tint, 0, 255).astype(np.uint8)).resize((size, size),
                                                                                          Image.BICUBIC))
    img = base + (low.astype(np.float32) - 128) + rng.normal(0, 5, (size, size, 3))
    return img


def _choose_objects(rng: np.random.Generator, bias: Bias, n_objects: int | None,
                    shapes: list[str] | None, colours: list[str] | None):
    if shapes is None:
        n = n_objects if n_objects is not None else int(rng.integers(1, 4))
        shapes = list(rng.choice(SHAPES, size=n, replace=False))
        if bias.cue in shapes and bias.partner not in shapes and rng.random() < bias.co_occurrence:
            if len(shapes) < 3 and rng.random() < 0.5:
                shapes.append(bias.partner)
            else:
                swap = [i for i, s in enumerate(shapes) if s != bias.cue]
                if swap:
                    shapes[int(rng.choice(swap))] = bias.partner
                else:
                    shapes.append(bias.partner)
    if colours is None:
        colours = []
        for s in shapes:
            if s == bias.cue and rng.random() < bias.colour_prior:
                colours.append(bias.cue_colour)
            else:
                colours.append(str(rng.choice(COLOURS)))
    return [str(s) for s in shapes], [str(c) for c in colours]


def make_scene(seed: int, *, bias: Bias = UNBIASED, n_objects: int | None = None, shapes: list[str] | None = None,
               colours: list[str] | None = None, size: int = SIZE) -> Scene:
    """One scene, fully determined by `seed` (and the optional fixed shapes/colours)."""
    rng = np.random.default_rng(seed)
    shapes, colours = _choose_objects(rng, bias, n_objects, shapes, colours)
    for _ in range(200):  # rejection sampling of non-overlapping placements
        sizes = rng.uniform(0.22, 0.38, len(shapes)) * size
        xs = rng.uniform(sizes / 2 + 2, size - sizes / 2 - 2)
        ys = rng.uniform(sizes / 2 + 2, size - sizes / 2 - 2)
        ok = all(
            math.hypot(xs[i] - xs[j], ys[i] - ys[j]) > (sizes[i] + sizes[j]) / 2 + 4 and abs(xs[i] - xs[j]) > 14
            for i in range(len(shapes)) for j in range(i)
        )
        if ok:
            break
    else:  # pragma: no cover - 3 objects always fit
        raise RuntimeError("could not place the objects")
    img = background(rng, size)
    objects = []
    for shape, colour, s, x, y in zip(shapes, colours, sizes, xs, ys):
        mask = shape_mask(shape, x, y, s, rng.uniform(-0.25, 0.25), (size, size))
        rgb = np.asarray(COLOUR_RGB[colour], np.float32) + rng.uniform(-18, 18, 3)
        img[mask] = rgb + rng.normal(0, 6, (int(mask.sum()), 3))
        objects.append(SceneObject(shape, colour, mask, (float(x), float(y)), float(s)))
    objects.sort(key=lambda o: o.centre[0])
    return Scene(np.clip(img, 0, 255).astype(np.uint8), objects, seed)


def bias_breaking_scene(seed: int, bias: Bias = TRAINING_BIAS) -> Scene:
    """A scene with the cue shape but without its partner (where the co-occurrence prior misleads)."""
    rng = np.random.default_rng(seed + 7_000_003)
    others = [s for s in SHAPES if s not in (bias.cue, bias.partner)]
    n_other = int(rng.integers(0, 3))
    shapes = [bias.cue, *rng.choice(others, size=n_other, replace=False)]
    return make_scene(seed, shapes=[str(s) for s in shapes],
                      colours=[str(c) for c in rng.choice(COLOURS, size=len(shapes))])
