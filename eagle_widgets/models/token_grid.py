"""Image tokens <-> image pixels: the grid of tokens each family lays the image out as, and how one value
per token is spread back onto the image (token-based baselines draw their maps through it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import InputError, UnsupportedModel


def square_blocks(planes: torch.Tensor, block: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """[n, S, S] label planes cut into block x block tokens, row-major per plane -> [n * g * g, block**2]."""
    n, s1, s2 = planes.shape
    if s1 % block or s2 % block:
        raise UnsupportedModel(f"the input side {s1}x{s2} is not a multiple of the token size {block}")
    g1, g2 = s1 // block, s2 // block
    tokens = planes.reshape(n, g1, block, g2, block).permute(0, 1, 3, 2, 4).reshape(n * g1 * g2, block * block)
    return tokens, (g1, g2)


@dataclass
class TokenPixelMap:
    """Image tokens <-> image pixels: spreads one value per image token back onto the image."""

    token_index: np.ndarray  # [M] token of each (token, pixel) pair
    pixel_index: np.ndarray  # [M] flat pixel of each pair
    grids: list[tuple[int, int]]
    lead: int  # tokens before the first grid (not spatial)
    shape: tuple[int, int]
    fill_from: np.ndarray  # [H*W] the nearest pixel some token sees, for each pixel
    unseen: np.ndarray  # [H*W] bool: pixels far from anything the model sees (cropped away)

    @property
    def num_tokens(self) -> int:
        return self.lead + sum(r * c for r, c in self.grids)

    @classmethod
    def build(cls, blocks: torch.Tensor, grids, lead: int, shape) -> TokenPixelMap:
        from scipy.ndimage import distance_transform_edt

        blocks = blocks.cpu().numpy()
        tok = np.repeat(np.arange(blocks.shape[0]), blocks.shape[1])
        pix = blocks.ravel()
        keep = pix >= 0
        tok, pix = tok[keep], pix[keep]
        h, w = shape
        seen = np.zeros(h * w, bool)
        seen[pix] = True
        if not seen.any():
            raise UnsupportedModel("no image pixel reaches any image token")
        dist, nearest = distance_transform_edt(~seen.reshape(h, w), return_indices=True)
        step = np.sqrt(h * w / seen.sum())  # the input's sampling step in image pixels
        fill = (nearest[0] * w + nearest[1]).ravel()
        return cls(tok, pix, list(grids), int(lead), (h, w), fill, (dist > 2 * step + 1).ravel())

    def to_pixels(self, token_values) -> np.ndarray:
        """HxW float32: each pixel gets the mean value of the tokens that see it; unseen pixels the minimum."""
        v = np.asarray(token_values, dtype=np.float64)
        if v.shape != (self.num_tokens,):
            raise InputError(f"expected {self.num_tokens} token values, got {v.shape}")
        n = self.shape[0] * self.shape[1]
        total = np.bincount(self.pixel_index, weights=v[self.token_index], minlength=n)
        count = np.bincount(self.pixel_index, minlength=n)
        mean = total / np.maximum(count, 1)
        out = mean[self.fill_from]
        out[self.unseen] = v[self.lead:].min() if len(v) > self.lead else 0.0
        return out.reshape(self.shape).astype(np.float32)

    def split_grids(self, token_values) -> list[np.ndarray]:
        """The token values as one 2-D array per grid (tile), leading tokens dropped."""
        v = np.asarray(token_values)
        out, start = [], self.lead
        for r, c in self.grids:
            out.append(v[start:start + r * c].reshape(r, c))
            start += r * c
        return out

    def join_grids(self, grids: list[np.ndarray], lead_values=None) -> np.ndarray:
        lead = np.zeros(self.lead) if lead_values is None else np.asarray(lead_values, dtype=np.float64)
        return np.concatenate([lead, *[g.ravel() for g in grids]])
