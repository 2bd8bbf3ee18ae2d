"""The tiny model's text side: Qwen's special tokens, the ChatML chat template with ``{% generation %}``
markers (:func:`chat_template`) and the byte-level BPE tokenizer trained on the built-in corpus
(:func:`build_tiny_tokenizer`). :mod:`getok.vocab.tiny` re-exports every name here.
"""

from __future__ import annotations

from ..errors import ConfigError
from ._corpus import tokenizer_corpus
from .tiny_config import TinyModelConfig

__all__ = ["QWEN_SPECIAL_TOKENS", "CHAT_TEMPLATE", "chat_template", "build_tiny_tokenizer"]

#: Qwen2.5-VL's special tokens, in Qwen's id order (they follow the BPE vocabulary).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

#: Pre-tokenizer split (ours, in the spirit of Qwen's): contractions, letter runs with one optional leading
#: non-letter, single digits, punctuation runs, newlines, spaces.
_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_MEDIA = (
    "{%- if item['type'] == 'image' or 'image' in item or 'image_url' in item -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif item['type'] == 'video' or 'video' in item -%}"
    "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}"
)
_IS_MEDIA = "(item['type'] in ('image', 'video') or 'image' in item or 'image_url' in item or 'video' in item)"


def chat_template(system_prompt: str | None = "You are a helpful assistant.", text_before_image: bool = False) -> str:
    """ChatML with Qwen's image / video placeholders.

    Assistant content (and its ``<|im_end|>``) sits inside ``{% generation %}`` so
    ``return_assistant_tokens_mask`` marks exactly what the model must learn to write. ``system_prompt``
    ``None`` writes no system turn; ``text_before_image`` renders a user turn's text items before its images
    (the order of the items is otherwise kept).

    >>> "<|im_start|>system" in chat_template(None)
    False
    """
    system = ""
    if system_prompt is not None:
        if "'" in system_prompt or "{" in system_prompt:
            raise ConfigError("system_prompt must not contain quotes or braces")
        system = (
            "{%- if loop.first and message['role'] != 'system' -%}"
            f"{{{{- '<|im_start|>system\\n{system_prompt}<|im_end|>\\n' -}}}}"
            "{%- endif -%}"
        )
    text_item = "{%- if 'text' in item -%}{{- item['text'] -}}{%- endif -%}"
    if text_before_image:
        user_items = (
            "{%- for item in message['content'] -%}{%- if not " + _IS_MEDIA + " -%}" + text_item
            + "{%- endif -%}{%- endfor -%}"
            "{%- for item in message['content'] -%}" + _MEDIA + "{%- endif -%}{%- endfor -%}"
        )
    else:
        user_items = "{%- for item in message['content'] -%}" + _MEDIA + "{%- elif 'text' in item -%}{{- item['text'] -}}{%- endif -%}{%- endfor -%}"
    return (
        "{%- for message in messages -%}"
        + system
        + "{%- if message['role'] == 'assistant' -%}"
        "{{- '<|im_start|>assistant\\n' -}}"
        "{% generation %}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] == 'text' -%}{{- item['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>' -}}"
        "{% endgeneration %}"
        "{{- '\\n' -}}"
        "{%- else -%}"
        "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}" + user_items + "{%- endif -%}"
        "{{- '<|im_end|>\\n' -}}"
        "{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


#: The Qwen2.5-VL-style template (system turn, images where the message puts them).
CHAT_TEMPLATE = chat_template()


def _train_tokenizer(cfg: TinyModelConfig):
    """Byte-level BPE trained on the built-in corpus, wrapped as a transformers fast tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.bpe_vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(tokenizer_corpus(), trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        padding_side="left",
        model_max_length=cfg.max_position_embeddings,
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        extra_special_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        chat_template=chat_template(cfg.system_prompt, cfg.text_before_image),
    )


def build_tiny_tokenizer(config: TinyModelConfig | None = None):
    """Only the tiny model's tokenizer (``PreTrainedTokenizerFast``, trained locally, deterministic)."""
    return _train_tokenizer(config or TinyModelConfig())
