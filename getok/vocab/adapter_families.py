"""The adapters of the VLM families that differ from :class:`~getok.vocab.adapter_base.GenericAdapter`:
Qwen2 / 2.5-VL, Qwen3-VL, LLaVA, Idefics3 / SmolVLM, InternVL, LLaVA-OneVision, Gemma 3, Mistral 3, and
PaliGemma (refused). Importing this module registers them; each overrides only what its processor / model
does differently. :mod:`getok.vocab.adapters` re-exports every name here.
"""

from __future__ import annotations

import logging
import math

from .adapter_base import GenericAdapter, ModelAdapter, _blank, _set_size_bounds, register_adapter

__all__ = [
    "QwenVLAdapter",
    "Qwen3VLAdapter",
    "LlavaAdapter",
    "Idefics3Adapter",
    "InternVLAdapter",
    "LlavaOnevisionAdapter",
    "Gemma3Adapter",
    "Mistral3Adapter",
    "PaliGemmaAdapter",
]

log = logging.getLogger("getok.vocab.adapters")


@register_adapter
class QwenVLAdapter(GenericAdapter):
    """Qwen2-VL / Qwen2.5-VL: the image processor counts its patches; bounds are ``size`` ``shortest_edge`` /
    ``longest_edge`` in pixels (``H * W``)."""

    name = "qwen_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    processor_classes = ("Qwen2VLProcessor", "Qwen2_5_VLProcessor")

    def image_token_count(self, processor, size) -> int:
        ip = processor.image_processor
        h, w = int(size[0]), int(size[1])
        patches = ip.get_number_of_image_patches(h, w, {})
        merge = int(getattr(ip, "merge_size", None) or 1)
        return int(patches) // (merge * merge)

    def image_tokens_added(self, processor, size) -> int:
        # the placeholder is one <|image_pad|>, expanded to the image's tokens (vision start / end are text)
        return self.image_token_count(processor, size) - 1

    def image_placeholder(self, processor) -> str:
        return getattr(processor, "image_token", None) or "<|image_pad|>"

    def _bounds(self, processor, min_pixels, max_pixels):
        return min_pixels, max_pixels

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        if min_pixels is None and max_pixels is None:
            return False
        return _set_size_bounds(processor, *self._bounds(processor, min_pixels, max_pixels))


@register_adapter
class Qwen3VLAdapter(QwenVLAdapter):
    """Qwen3-VL (+ MoE): Qwen2-VL's image processor with a patch × merge unit of 32 px (16 × 2; the tiny
    model's: 7 × 2). The processor rounds each side to the nearest unit and only then checks the bounds, so a
    bound written for a 28-px unit (112² = 4 × 28 per side) cuts a 112-px image to 96 px (3 × 3 tokens
    instead of 4 × 4). Here a bound is widened to the square of its side rounded to the unit: an image of
    area ``max_pixels`` keeps round(side / unit) tokens per side (``min_pixels`` is lowered likewise)."""

    name = "qwen3_vl"
    model_types = ("qwen3_vl", "qwen3_vl_moe")
    processor_classes = ("Qwen3VLProcessor", "Qwen3VLMoeProcessor")

    @staticmethod
    def unit(processor) -> int:
        ip = processor.image_processor
        return int(getattr(ip, "patch_size", 16) or 16) * int(getattr(ip, "merge_size", 2) or 2)

    def _bounds(self, processor, min_pixels, max_pixels):
        u = self.unit(processor)

        def rounded(px):
            return (max(1, round(math.sqrt(px) / u)) * u) ** 2

        lo = None if min_pixels is None else min(int(min_pixels), rounded(min_pixels))
        hi = None if max_pixels is None else max(int(max_pixels), rounded(max_pixels))
        if (lo, hi) != (min_pixels, max_pixels):
            log.info("Qwen3-VL pixel bounds in its %d-px unit: min %s -> %s, max %s -> %s",
                     u, min_pixels, lo, max_pixels, hi)  # fmt: skip
        return lo, hi


@register_adapter
class LlavaAdapter(GenericAdapter):
    """LLaVA (CLIP tower): a fixed-size resize and centre crop; no pixel bounds to set (Qwen's bounds would
    make it resize to ``min_pixels`` px per side and crop the centre). Image tokens rendered."""

    name = "llava"
    model_types = ("llava",)
    processor_classes = ("LlavaProcessor",)

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        return ModelAdapter.set_pixel_bounds(self, processor, min_pixels, max_pixels)


@register_adapter
class Idefics3Adapter(GenericAdapter):
    """Idefics3 / SmolVLM (SigLIP tower): the processor splits an image into crops plus a global view, each
    framed by marker tokens; counts rendered per image size; its ``size`` / ``max_image_size`` stay."""

    name = "idefics3"
    model_types = ("idefics3", "smolvlm")
    processor_classes = ("Idefics3Processor", "SmolVLMProcessor")
    end_markers = ("<end_of_utterance>",)

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        return ModelAdapter.set_pixel_bounds(self, processor, min_pixels, max_pixels)


@register_adapter
class InternVLAdapter(GenericAdapter):
    """InternVL (InternViT tower, pixel-shuffle projector): a fixed-size resize (or tiles of it), each image
    ``<img>`` + ``image_seq_length`` context tokens + ``</img>``; no pixel bounds; ChatML turns."""

    name = "internvl"
    model_types = ("internvl",)
    processor_classes = ("InternVLProcessor",)

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        return ModelAdapter.set_pixel_bounds(self, processor, min_pixels, max_pixels)


@register_adapter
class LlavaOnevisionAdapter(GenericAdapter):
    """LLaVA-OneVision (SigLIP tower, anyres tiles + a base view, un-padded per image): counts rendered;
    no pixel bounds. Its processor returns ``batch_num_images``, which TRL's GRPO cannot pass on: dropped
    (one image per sample, the model's default)."""

    name = "llava_onevision"
    model_types = ("llava_onevision",)
    processor_classes = ("LlavaOnevisionProcessor",)
    trl_dropped_inputs = ("batch_num_images",)

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        return ModelAdapter.set_pixel_bounds(self, processor, min_pixels, max_pixels)


@register_adapter
class Gemma3Adapter(GenericAdapter):
    """Gemma 3 (SigLIP tower, pooled to ``mm_tokens_per_image``): the template writes ``<start_of_image>``,
    which the processor expands to ``<start_of_image>`` + soft tokens + ``<end_of_image>`` (so the image
    tokens counted are the soft tokens, not the marker); turns end with ``<end_of_turn>``; images are passed
    per sample (a flat list breaks at batch > 1)."""

    name = "gemma3"
    model_types = ("gemma3",)
    processor_classes = ("Gemma3Processor",)
    end_markers = ("<end_of_turn>", "<eos>")

    def _render(self, processor, size):
        added, _ = super()._render(processor, size)
        tok = processor.tokenizer
        soft = getattr(tok, "image_token", None)
        out = processor(text=[self.image_placeholder(processor)], images=[_blank(size)])
        ids = [int(t) for t in list(out["input_ids"][0])]
        return added, ids.count(tok.convert_tokens_to_ids(soft)) if soft else added

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        return ModelAdapter.set_pixel_bounds(self, processor, min_pixels, max_pixels)


@register_adapter
class Mistral3Adapter(GenericAdapter):
    """Mistral 3 (Pixtral tower: rows of ``[IMG]`` tokens closed by ``[IMG_BREAK]`` / ``[IMG_END]``; its
    ``size`` is a longest edge, not pixel bounds, and stays). The Pixtral processor returns tensors by
    default, which fails on TRL's batch of unpadded prompts of different lengths: GRPO asks it for lists."""

    name = "mistral3"
    model_types = ("mistral3",)
    processor_classes = ("PixtralProcessor",)
    end_markers = ("</s>",)

    def trl_chat_template_kwargs(self, processor) -> dict:
        return {"text_kwargs": {"return_tensors": None}}

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        return ModelAdapter.set_pixel_bounds(self, processor, min_pixels, max_pixels)


@register_adapter
class PaliGemmaAdapter(GenericAdapter):
    """PaliGemma: a prefix-LM prompt format without a chat template; getok refuses it at start
    (:func:`check_supported`)."""

    name = "paligemma"
    model_types = ("paligemma",)
    processor_classes = ("PaliGemmaProcessor",)

    def refusal(self, processor) -> str | None:
        return "PaliGemma has no chat template (a prefix-LM prompt format); getok's prompts are chat turns"
