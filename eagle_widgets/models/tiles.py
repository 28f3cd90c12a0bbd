"""Vision features of image tiles, computed once per tile and reused across masked images.

Tiled families (InternVL, Idefics3/SmolVLM, LLaVA-NeXT) run their vision encoder on each tile (and the global
image) independently. Within a greedy step the masked images differ in one region, which lies in a few tiles: every
other tile holds the same pixels as in the step's other candidates. The fast scorers therefore encode only tiles not
seen before and hand the model the features through its own seam for precomputed encoder outputs
(`mm_encoder_outputs`), so the language model runs as before. Exact: a tile's features are what the model computes
for those very pixels (a hit is confirmed by comparing every pixel, not by a hash alone).
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch

# Tiles and their features kept per scorer (a 448-px float32 tile is 2.4 MB); least recently used go first.
TILE_CACHE_BYTES = int(os.environ.get("EAGLE_WIDGETS_TILE_CACHE_MB", "512")) << 20
_FINGERPRINT_STRIDE = 97  # a cheap first key over every 97th value; equality of all values decides


class TileFeatures:
    """Per-tile vision features of a scorer's pixel inputs, kept by tile position and content.

    `adapter` encodes tiles (`tile_features`) and assembles the model's encoder outputs (`encoder_outputs`);
    `text_inputs` are the sequence's own (on the scorer's device)."""

    def __init__(self, adapter, text_inputs: dict[str, torch.Tensor], budget_bytes: int = TILE_CACHE_BYTES):
        self.adapter = adapter
        self.text_inputs = text_inputs
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict = OrderedDict()  # (position, fingerprint) -> [(tile, features), ...]
        self.nbytes = 0
        self.hits = self.misses = 0

    def encoder_outputs(self, pixel_values: torch.Tensor, batch: int):
        tiles = pixel_values.reshape(-1, *pixel_values.shape[-3:])
        per_sample = tiles.shape[0] // batch
        flat = tiles.reshape(tiles.shape[0], -1)[:, ::_FINGERPRINT_STRIDE].double()
        weights = torch.arange(1, flat.shape[1] + 1, dtype=flat.dtype, device=flat.device)
        prints = torch.stack([flat.sum(1), (flat * weights).sum(1)], 1).tolist()
        found: list[torch.Tensor | None] = [None] * tiles.shape[0]
        new: dict[tuple, list[int]] = {}  # key -> indices in this batch of tiles to encode (one per content)
        same_as: dict[int, int] = {}
        for i, fp in enumerate(prints):
            key = (i % per_sample, *fp)
            held = self._lookup(key, tiles[i])
            if held is not None:
                found[i] = held
                self.hits += 1
                continue
            twin = next((j for j in new.get(key, ()) if torch.equal(tiles[j], tiles[i])), None)
            if twin is not None:
                same_as[i] = twin
                self.hits += 1
            else:
                new.setdefault(key, []).append(i)
                self.misses += 1
        todo = [i for indices in new.values() for i in indices]
        if todo:
            index = torch.tensor(todo, device=tiles.device)
            features = self.adapter.tile_features(tiles[index], [i % per_sample for i in todo], self.text_inputs)
            for i, feature in zip(todo, features):
                found[i] = feature
                self._store((i % per_sample, *prints[i]), tiles[i], feature)
        for i, j in same_as.items():
            found[i] = found[j]
        samples = [torch.stack(found[b * per_sample:(b + 1) * per_sample]) for b in range(batch)]
        return self.adapter.encoder_outputs(samples, self.text_inputs)

    def _lookup(self, key, tile: torch.Tensor):
        entries = self.entries.get(key)
        if entries is None:
            return None
        for held, feature in entries:
            if torch.equal(held, tile):
                self.entries.move_to_end(key)
                return feature
        return None

    def _store(self, key, tile: torch.Tensor, feature: torch.Tensor) -> None:
        tile, feature = tile.clone(), feature.clone()  # not views: they would keep the whole batch alive
        self.entries.setdefault(key, []).append((tile, feature))
        self.entries.move_to_end(key)
        self.nbytes += tile.numel() * tile.element_size() + feature.numel() * feature.element_size()
        while self.nbytes > self.budget_bytes and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.nbytes -= sum(t.numel() * t.element_size() + f.numel() * f.element_size() for t, f in old)

    def describe(self) -> dict:
        seen = self.hits + self.misses
        return {"vision_tiles": f"{self.hits} of {seen} tiles' vision features reused, {self.misses} encoded "
                                "(each tile's features computed once per content)"}
