"""The demo model's architecture, tokenizer and processor: a real LLaVA (CLIP + Llama), tiny and word level."""

from __future__ import annotations

from .scenes import COLOURS, SHAPES

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
WORDS = ["user", "assistant", ":", "a", "and", ".", "?", "describe", "the", "image", "is", "there", "what", "color",
         "yes", "no", *COLOURS, *SHAPES]
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
INPUT_SIZE = 128
PATCH = 16
IMAGE_TOKENS = (INPUT_SIZE // PATCH) ** 2


def build_tokenizer():
    """Word-level tokenizer: lower-cases, splits words and punctuation, prepends <s>."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"}, padding_side="left", model_max_length=256)


def build_processor(tokenizer=None):
    from transformers import CLIPImageProcessor, LlavaProcessor

    image_processor = CLIPImageProcessor(size={"shortest_edge": INPUT_SIZE},
                                         crop_size={"height": INPUT_SIZE, "width": INPUT_SIZE})
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer or build_tokenizer(),
                          patch_size=PATCH, vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          chat_template=CHAT_TEMPLATE)


def build_model(tokenizer):
    """LlavaForConditionalGeneration: CLIP 128-d x 3 layers (patch 16, 128 px -> 64 image tokens), a 2-layer
    GELU projector and Llama 128-d x 2 layers; about 0.9 M parameters."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=3, num_attention_heads=4,
                              image_size=INPUT_SIZE, patch_size=PATCH)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id,
                         vision_feature_select_strategy="default", vision_feature_layer=-1,
                         projector_hidden_act="gelu", image_seq_length=IMAGE_TOKENS)
    return LlavaForConditionalGeneration(config)
