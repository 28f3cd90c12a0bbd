"""Model-family adapters: how each family's processor is driven and lays the image out.

Adapters are chosen from the model's config (`model_type`), never from the model id.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling

from ..core.errors import InputError, UnsupportedModel
from .token_grid import TokenPixelMap, square_blocks

_REGISTRY: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    for model_type in cls.model_types:
        _REGISTRY[model_type] = cls
    return cls


def adapter_class_for(config) -> type[Adapter]:
    return _REGISTRY.get(getattr(config, "model_type", None), Adapter)


class Adapter:
    """The generic adapter: AutoModelForImageTextToText, AutoProcessor and the processor's chat template.

    Layout: the model-input position of every pixel is found by running the family's own image processor
    on an image of region labels with nearest-neighbour resampling and no rescaling or normalisation, so
    resizing, cropping, tiling and patch flattening follow exactly the geometry of the real input.
    """

    family = "generic"
    model_types: tuple[str, ...] = ()
    nested_images = False  # Idefics3 / SmolVLM take one list of images per sample
    encodes_tiles_apart = False  # the vision encoder sees each tile alone: its features can be reused (`tiles`)
    layout_note = "as the model's image processor lays it out"

    def __init__(self, model, processor):
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.image_processor = processor.image_processor

    @property
    def image_backend(self) -> str:
        """'torchvision' (transformers' default where torchvision imports) or 'pillow' (its fallback)."""
        names = {cls.__name__ for cls in type(self.image_processor).__mro__}
        return "torchvision" if "TorchvisionBackend" in names else "pillow"

    # -- prompt -------------------------------------------------------------------------------
    def prompt_text(self, prompt: str) -> str:
        return self.chat_text([{"type": "image"}, {"type": "text", "text": prompt}])

    def chat_text(self, content: list[dict]) -> str:
        """One user turn of `content` (images, videos, text) through the chat template, ready for the answer."""
        messages = [{"role": "user", "content": content}]
        template = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
        if not template:
            raise InputError(f"the processor of this {self.family} model has no chat template; "
                             "pass a processor with one (processor.chat_template = ...)")
        try:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except (AttributeError, TypeError, ValueError):
            # Some processors' own apply_chat_template reads their (absent) video processor.
            return self.tokenizer.apply_chat_template(messages, chat_template=template, add_generation_prompt=True,
                                                      tokenize=False)

    def fixed_forward_inputs(self, text_inputs: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, int]]:
        """Inputs that are the same for every masked image, computed once: name -> (tensor, batch dim)."""
        return {}

    # -- inputs -------------------------------------------------------------------------------
    def _images_arg(self, images):
        pil = [Image.fromarray(im) for im in images]
        return [[im] for im in pil] if self.nested_images else pil

    def encode(self, images: list[np.ndarray], text: str) -> dict[str, torch.Tensor]:
        """Model inputs for one prompt per image."""
        texts = [text] * len(images)
        try:
            out = self.processor(images=self._images_arg(images), text=texts, return_tensors="pt")
        except ValueError as err:
            # Processors refuse a prompt whose template left out the image placeholder.
            raise InputError(f"the {self.family} processor could not combine the image with the prompt: {err}. "
                             "Does the chat template place the image in the prompt?") from None
        return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}

    def pixel_values(self, images: list[np.ndarray]) -> torch.Tensor:
        """The image processor's pixel input for equal-size RGB images, one equal part per image along dim 0."""
        return self.image_processor(images=self._images_arg(images), return_tensors="pt")["pixel_values"]

    def layout(self, labels: np.ndarray) -> torch.Tensor:
        """Region label of every element of `pixel_values` (int64, -1 where no pixel maps: padding)."""
        shifted = labels.astype(np.int64) + 1  # 0 is kept for padding
        planes = []
        for shift in (0, 8, 16):  # up to 2**24 labels, one byte per processor call
            byte = ((shifted >> shift) & 255).astype(np.uint8)
            if shift and not byte.any():
                break
            rgb = np.repeat(byte[:, :, None], 3, axis=2)
            out = self.image_processor(images=self._images_arg([rgb]), return_tensors="pt", resample=Image.NEAREST,
                                       do_rescale=False, do_normalize=False)
            planes.append(out["pixel_values"].round().to(torch.int64) << shift)
        return sum(planes) - 1

    # -- image tokens -------------------------------------------------------------------------
    def token_blocks(self, layout: torch.Tensor, inputs: dict) -> tuple[torch.Tensor, list[tuple[int, int]], int]:
        """Group the model input into the image tokens the language model sees.

        `layout` is `layout(labels)`. Returns ([n_tokens, k] labels each token covers (-1 = none),
        the (rows, cols) of each token grid in token order, and the number of leading tokens outside any
        grid (a CLS token)). Families whose token order is not a plain grid raise.
        """
        raise UnsupportedModel(f"the image-token layout of the {self.family} family is not mapped; "
                               "token-based methods (LLaVA-CAM, TAM) need it")

    def token_map(self, image_shape: tuple[int, int], inputs: dict) -> TokenPixelMap:
        """Which image pixels each image token sees, found through `layout` on an image of pixel indices."""
        h, w = image_shape
        layout = self.layout(np.arange(h * w, dtype=np.int64).reshape(h, w))
        blocks, grids, lead = self.token_blocks(layout, inputs)
        return TokenPixelMap.build(blocks, grids, lead, (h, w))


@register
class LlavaAdapter(Adapter):
    family = "llava"
    model_types = ("llava",)
    layout_note = "CLIP: resize the shortest edge, centre crop, one square of patches"

    def token_blocks(self, layout, inputs):
        patch = self.model.config.vision_config.patch_size
        tokens, grid = square_blocks(layout[:, 0], patch)
        lead = 0
        if getattr(self.model.config, "vision_feature_select_strategy", "default") == "full":
            tokens = torch.cat([torch.full((1, tokens.shape[1]), -1, dtype=tokens.dtype), tokens])
            lead = 1  # the CLS token sees the whole image, not a place in it
        return tokens, [grid] * layout.shape[0], lead


@register
class LlavaNextAdapter(Adapter):
    family = "llava-next"
    model_types = ("llava_next", "llava_onevision")
    layout_note = "any-resolution tiles plus a base image"

    @property
    def encodes_tiles_apart(self) -> bool:
        return getattr(self.model.config, "model_type", "") == "llava_next"  # OneVision pools in the model

    def tile_features(self, tiles, positions, text_inputs):
        # The per-tile half of LlavaNextModel.get_image_features (its other half packs the tiles of an image).
        cfg, inner = self.model.config, self.model.model
        out = inner.vision_tower(tiles, output_hidden_states=True, return_dict=True)
        layer = cfg.vision_feature_layer
        chosen = out.hidden_states[layer] if isinstance(layer, int) else torch.cat(
            [out.hidden_states[i] for i in layer], dim=-1)
        if cfg.vision_feature_select_strategy == "default":
            chosen = chosen[:, 1:]
        return inner.multi_modal_projector(chosen)

    def encoder_outputs(self, samples, text_inputs):
        inner = self.model.model
        sizes = text_inputs["image_sizes"].expand(len(samples), -1)
        packed, _ = inner.pack_image_features(list(samples), sizes, self.model.config.vision_feature_select_strategy,
                                              image_newline=inner.image_newline)
        return BaseModelOutputWithPooling(pooler_output=packed)


@register
class QwenVLAdapter(Adapter):
    family = "qwen-vl"
    model_types = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
    layout_note = "smart resize to a multiple of 28, 14-px patches flattened (2 frames), merged 2x2 into tokens"

    def fixed_forward_inputs(self, text_inputs):
        # The multimodal rope positions depend only on the text and the image grid: compute them once
        # instead of in every batch (they cost a third of a tiny model's forward).
        inner = getattr(self.model, "model", None)
        grids = ("image_grid_thw", "video_grid_thw")
        if inner is None or not hasattr(inner, "get_rope_index") or not any(g in text_inputs for g in grids):
            return {}
        kwargs = {k: text_inputs[k] for k in ("mm_token_type_ids", "attention_mask", *grids, "second_per_grid_ts")
                  if k in text_inputs}
        try:
            position_ids, _ = inner.get_rope_index(text_inputs["input_ids"], **kwargs)
        except TypeError:  # another transformers signature: let the model compute them itself
            return {}
        return {"position_ids": (position_ids, 1)}

    def token_blocks(self, layout, inputs):
        # Rows of pixel_values are 14-px patches already ordered merge window by merge window.
        merge = int(getattr(self.image_processor, "merge_size", 2))
        grids = []
        for t, h, w in inputs["image_grid_thw"].tolist():
            grids += [(h // merge, w // merge)] * t
        return layout.reshape(-1, merge * merge * layout.shape[1]), grids, 0


@register
class InternVLAdapter(Adapter):
    family = "internvl"
    model_types = ("internvl",)
    layout_note = "448-px tiles of the best aspect ratio plus a thumbnail, pixel-shuffled to 256 tokens each"
    encodes_tiles_apart = True

    def tile_features(self, tiles, positions, text_inputs):
        cfg = self.model.config
        return self.model.get_image_features(pixel_values=tiles, vision_feature_layer=cfg.vision_feature_layer,
                                             vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                                             return_dict=True).pooler_output

    def encoder_outputs(self, samples, text_inputs):
        return BaseModelOutputWithPooling(pooler_output=torch.cat(samples))

    def token_blocks(self, layout, inputs):
        cfg = self.model.config
        block = int(round(cfg.vision_config.patch_size[0] if isinstance(cfg.vision_config.patch_size, (list, tuple))
                          else cfg.vision_config.patch_size) / cfg.downsample_ratio)
        tokens, grid = square_blocks(layout[:, 0], block)  # tiles first, the thumbnail last
        return tokens, [grid] * layout.shape[0], 0


@register
class IdeficsAdapter(Adapter):
    family = "idefics3"
    model_types = ("idefics3", "smolvlm")
    nested_images = True
    layout_note = "resize the longest edge, optional splitting into tiles plus a global image, padded"
    encodes_tiles_apart = True

    def tile_features(self, tiles, positions, text_inputs):
        # Each tile with its own pixel mask (the global image is padded to a square).
        held = text_inputs.get("pixel_attention_mask")
        masks = (held.reshape(-1, *tiles.shape[-2:])[positions] if held is not None
                 else torch.ones(tiles.shape[0], *tiles.shape[-2:], dtype=torch.bool, device=tiles.device))
        pooled = self.model.get_image_features(pixel_values=tiles[None], pixel_attention_mask=masks[None],
                                               return_dict=True).pooler_output[0]
        return pooled.reshape(tiles.shape[0], -1, pooled.shape[-1])

    def encoder_outputs(self, samples, text_inputs):
        return BaseModelOutputWithPooling(pooler_output=[s.reshape(-1, s.shape[-1]) for s in samples])

    def token_blocks(self, layout, inputs):
        cfg = self.model.config
        planes = layout.reshape(-1, *layout.shape[-3:])[:, 0]  # [images, S, S]
        tokens, grid = square_blocks(planes, cfg.vision_config.patch_size * cfg.scale_factor)
        return tokens, [grid] * planes.shape[0], 0
