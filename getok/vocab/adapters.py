"""One adapter per VLM family: what differs between families, in one place.

A :class:`ModelAdapter` answers the questions getok's training code used to answer with Qwen2-VL's API:

* **image tokens** — :meth:`~ModelAdapter.image_token_count` (the image tokens one image of a size puts in
  the sequence) and :meth:`~ModelAdapter.image_tokens_added` (how much longer the processed sequence is than
  the templated text with the image's placeholder in it). Qwen-VL asks its image processor (patches /
  merge²); every other family *renders* once per image size — the processor runs on a blank image of that
  size with one placeholder — and the answer is cached per processor and size;
* **pixel bounds** — :meth:`~ModelAdapter.set_pixel_bounds` sets ``min_pixels`` / ``max_pixels`` only
  where the processor has such bounds, in its own units (Qwen2 / 2.5-VL: ``size`` ``shortest_edge`` /
  ``longest_edge``; Qwen3-VL: the same, rounded to its patch × merge unit); a CLIP / SigLIP / Idefics3
  processor is left alone (with a log line saying so);
* **parts** — the language model, projector and vision tower (:meth:`~ModelAdapter.parameter_part`) and
  the LoRA targets (:meth:`~ModelAdapter.lora_target_modules`), derived from the model's structure by
  :mod:`getok.vocab.peft_utils`;
* **end of turn** — :meth:`~ModelAdapter.end_of_turn_tokens`: eos and the marker the chat template writes
  after an assistant answer;
* **the SFT chat template** — :meth:`~ModelAdapter.training_chat_template`: the template TRL's
  ``assistant_only_loss`` renders with (the processor's own when it has ``{% generation %}`` markers, TRL's
  training template for a real template TRL knows); any other template is refused at the start of SFT.

:func:`adapter_for` picks the adapter from a model, a config or a processor (``config.model_type``; a
processor by its class name); an unknown family gets :class:`GenericAdapter`. Adding a family is one
subclass and :func:`register_adapter`::

    @register_adapter
    class MyAdapter(GenericAdapter):
        name = "my_family"
        model_types = ("my_vl",)
        processor_classes = ("MyVLProcessor",)

Where the code lives: the base class, :class:`GenericAdapter`, the registry, the lookup and the support checks
in :mod:`getok.vocab.adapter_base`; the other families in :mod:`getok.vocab.adapter_families` (importing this
module registers them). This module is the one to import from: it re-exports every name of both.
"""

from __future__ import annotations

from .adapter_base import (
    ADAPTERS,
    END_OF_TURN_MARKERS,
    GenericAdapter,
    ModelAdapter,
    adapter_for,
    check_supported,
    check_supported_dir,
    model_type_of,
    register_adapter,
    training_template_refusal,
)
from .adapter_families import (
    Gemma3Adapter,
    Idefics3Adapter,
    InternVLAdapter,
    LlavaAdapter,
    LlavaOnevisionAdapter,
    Mistral3Adapter,
    PaliGemmaAdapter,
    Qwen3VLAdapter,
    QwenVLAdapter,
)

__all__ = [
    "ModelAdapter",
    "GenericAdapter",
    "QwenVLAdapter",
    "Qwen3VLAdapter",
    "LlavaAdapter",
    "Idefics3Adapter",
    "InternVLAdapter",
    "LlavaOnevisionAdapter",
    "Gemma3Adapter",
    "Mistral3Adapter",
    "PaliGemmaAdapter",
    "ADAPTERS",
    "END_OF_TURN_MARKERS",
    "check_supported",
    "check_supported_dir",
    "training_template_refusal",
    "register_adapter",
    "adapter_for",
    "model_type_of",
]
