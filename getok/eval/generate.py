"""Batched greedy generation through the processor's chat template, with images (Qwen2.5-VL and the tiny model).

The prompt of a sample is what SFT trains on minus the answer: :func:`getok.data_builders.export.trl_messages`
(one ``{"type": "image"}`` entry where the user message had ``<image>``) without the final assistant
message, rendered with ``apply_chat_template(..., add_generation_prompt=True)``; the images go through the
same processor call (``processor(text=..., images=..., padding=True)``) as TRL's collator, so training
and evaluation prompts are identical token for token.

Generation is greedy (``do_sample=False``, one beam, no repetition penalty: offset answers repeat
``<off_0_0>`` legitimately) with left padding; the new tokens are decoded with
``skip_special_tokens=True`` (spatial tokens are non-special, so they survive). Device and dtype come
from the model. torch / transformers are imported inside the functions.

A *generate function* (:class:`GenerateFn`) is anything with the call signature of
:meth:`ModelGenerator.__call__`; the evaluation runner takes one, so a scripted fake model can stand in
for a real one in tests.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from ..data_builders.export import trl_messages
from ..errors import ConfigError, DataError
from ..records import load_image_rgb
from ..samples import Sample, Turn
from .constrained import grammar_for_sample, machine_for
from .grammar_logits import GrammarLogitsProcessor

__all__ = [
    "GenerateFn",
    "ModelGenerator",
    "generate_answers",
    "prompt_messages",
    "sample_image_path",
    "load_sample_image",
    "eos_token_ids",
]

log = logging.getLogger(__name__)


class GenerateFn(Protocol):
    """What the runner calls to get answers: one string per sample (the generated assistant text).

    ``turns_context[i]``, when given, replaces ``samples[i].turns`` (the last assistant message is the
    one to generate and is ignored); ``constrained`` is ``None`` or one
    :class:`~getok.eval.constrained.AnswerGrammar` (or ``None``) per sample.
    """

    def __call__(
        self,
        samples: Sequence[Sample],
        *,
        turns_context: Sequence[Sequence[Turn]] | None = None,
        constrained=None,
        max_new_tokens: int = 128,
    ) -> list[str]: ...


def prompt_messages(sample: Sample, turns: Sequence[Turn] | None = None) -> list[dict]:
    """Chat messages of the prompt: :func:`trl_messages` of the sample (or of ``turns``) minus the last answer.

    >>> s = Sample("s", "i", "x.png", (4, 4), "text>mask", "mask", "grid:n=4",
    ...            [Turn("<image>Segment it.", "<g4_r0_c0>")], {})
    >>> [m["role"] for m in prompt_messages(s)], prompt_messages(s)[0]["content"][0]["type"]
    (['user'], 'image')
    """
    s = sample if turns is None else dataclasses.replace(sample, turns=[t if isinstance(t, Turn) else Turn(*t) for t in turns])
    msgs = trl_messages(s)
    if not msgs or msgs[-1]["role"] != "assistant":
        raise DataError(f"sample {sample.sample_id}: the conversation must end with an assistant message")
    return msgs[:-1]


def sample_image_path(sample: Sample, image_root: str | Path | None = None) -> Path:
    """Where a sample's image is: its absolute path, or its path relative to ``image_root`` (default: cwd)."""
    p = Path(sample.image)
    if p.is_absolute() or image_root is None:
        return p
    return Path(image_root) / p


def load_sample_image(sample: Sample, image_root: str | Path | None = None) -> np.ndarray:
    """The sample's image as ``(H, W, 3)`` uint8 RGB; :class:`DataError` when missing or of the wrong size."""

    img = load_image_rgb(sample_image_path(sample, image_root))
    if tuple(img.shape[:2]) != tuple(sample.size):
        raise DataError(f"sample {sample.sample_id}: image is {img.shape[:2]}, the sample says (H, W)={tuple(sample.size)}")
    return img


def eos_token_ids(model, tokenizer) -> list[int]:
    """End-of-sequence ids: the model's generation config, else the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError("neither the model's generation config nor the tokenizer names an end-of-sequence token")
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _tokenizer(processor):
    return getattr(processor, "tokenizer", processor)


def _grammars(samples, turns_context, constrained) -> list | None:
    """``constrained`` → one grammar (or ``None``) per sample, or ``None`` when off."""
    if constrained is None or constrained is False:
        return None
    if constrained is True:
        return [
            grammar_for_sample(s, None if turns_context is None else turns_context[i]) for i, s in enumerate(samples)
        ]
    gs = list(constrained)
    if len(gs) != len(samples):
        raise ConfigError(f"constrained has {len(gs)} grammars for {len(samples)} samples")
    return gs


def generate_answers(
    model,
    processor,
    samples: Sequence[Sample],
    *,
    image_root: str | Path | None = None,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    constrained=None,
    turns_context: Sequence[Sequence[Turn]] | None = None,
    progress: bool = True,
    seed: int = 0,
    images: Sequence[np.ndarray] | None = None,
    generation_kwargs: dict | None = None,
) -> list[str]:
    """Greedy answers of a VLM for samples, batched, with their images.

    Parameters
    ----------
    model
        A ``Qwen2_5_VLForConditionalGeneration`` (tiny or real, any device / dtype) or another
        image-text-to-text model whose processor takes ``text=`` and ``images=``.
    processor
        Its processor (chat template, tokenizer, image processor).
    samples : sequence of Sample
        The prompt of each is every turn but the final assistant answer (:func:`prompt_messages`).
    image_root : path, optional
        Root of relative image paths (a dataset directory).
    max_new_tokens : int
    batch_size : int
    constrained : None, bool or sequence
        ``True``: each sample's grammar (:func:`~getok.eval.constrained.grammar_for_sample`); a sequence:
        one :class:`~getok.eval.constrained.AnswerGrammar` or ``None`` per sample; ``None`` / ``False``: off.
    turns_context : sequence of sequence of Turn, optional
        Per sample, the conversation to prompt with instead of ``sample.turns`` (self-correction turns).
    progress : bool
        A tqdm bar over batches.
    seed : int
        Torch seed set before each batch (greedy decoding does not sample; this pins anything else).
    images : sequence of (H, W, 3) uint8, optional
        The samples' images when already loaded.
    generation_kwargs : dict, optional
        Extra ``generate`` arguments (override the greedy defaults).

    Returns
    -------
    list of str
        The generated text of each sample (new tokens only, special tokens skipped), in order.
    """
    import torch
    from PIL import Image

    samples = list(samples)
    if turns_context is not None and len(turns_context) != len(samples):
        raise ConfigError(f"turns_context has {len(turns_context)} entries for {len(samples)} samples")
    if images is not None and len(images) != len(samples):
        raise ConfigError(f"images has {len(images)} entries for {len(samples)} samples")
    if int(batch_size) < 1 or int(max_new_tokens) < 1:
        raise ConfigError(f"batch_size and max_new_tokens must be >= 1, got {batch_size}, {max_new_tokens}")
    if not samples:
        return []
    tok = _tokenizer(processor)
    grammars = _grammars(samples, turns_context, constrained)
    eos = eos_token_ids(model, tok)
    gen_kw = {
        "max_new_tokens": int(max_new_tokens),
        "do_sample": False,
        "num_beams": 1,
        "temperature": None,
        "top_p": None,
        "top_k": None,
        "repetition_penalty": None,
        "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else eos[0],
        "eos_token_id": eos,
    }
    cfg = getattr(model, "config", None)
    text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    if getattr(text_cfg, "output_router_logits", False):
        # an MoE model trained by TRL keeps output_router_logits=True in its config; generating with it computes
        # the load-balancing loss against the whole padded attention mask and fails after the first token
        gen_kw["output_router_logits"] = False
    gen_kw.update(generation_kwargs or {})
    budget = int(gen_kw["max_new_tokens"])
    first = next(model.parameters())
    device = getattr(model, "device", None) or first.device  # the input device (first shard with device_map)
    dtype = getattr(model, "dtype", None) or first.dtype

    starts = range(0, len(samples), int(batch_size))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(samples), desc="generate", unit="sample")
    out: list[str] = []
    old_side = getattr(tok, "padding_side", None)
    tok.padding_side = "left"
    try:
        for b0 in starts:
            idx = list(range(b0, min(b0 + int(batch_size), len(samples))))
            texts, pil = [], []  # pil: one list of images per sample
            for i in idx:
                s = samples[i]
                msgs = prompt_messages(s, None if turns_context is None else turns_context[i])
                texts.append(processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
                n_img = sum(1 for m in msgs for c in m["content"] if c.get("type") == "image")
                arr = (images[i] if images is not None else load_sample_image(s, image_root)) if n_img else None
                pil.append([Image.fromarray(np.asarray(arr, dtype=np.uint8))] * n_img if n_img else [])
            call = {"text": texts, "padding": True, "return_tensors": "pt"}
            if all(pil):  # per-sample lists: processors that pair images with samples (Gemma 3) need them
                call["images"] = pil
            elif any(pil):  # some samples without an image: the flat list every Qwen processor accepts
                call["images"] = [im for ims in pil for im in ims]
            inputs = processor(**call)
            inputs = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in inputs.items()}
            if "pixel_values" in inputs and torch.is_floating_point(inputs["pixel_values"]):
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            kw = dict(gen_kw)
            if grammars is not None and any(grammars[i] is not None for i in idx):
                machines = [None if grammars[i] is None else machine_for(grammars[i], tok) for i in idx]
                from transformers import LogitsProcessorList

                kw["logits_processor"] = LogitsProcessorList([GrammarLogitsProcessor(machines, eos, budget)])
            torch.manual_seed(int(seed))
            with torch.inference_mode():
                seq = model.generate(**inputs, **kw)
            new = seq[:, inputs["input_ids"].shape[1] :]
            out.extend(tok.batch_decode(new, skip_special_tokens=True))
            if bar:
                bar.update(len(idx))
    finally:
        if old_side is not None:
            tok.padding_side = old_side
        if bar:
            bar.close()
    return out


class ModelGenerator:
    """A :class:`GenerateFn` bound to a model and processor (and the runner's image root / batch size).

    Parameters are :func:`generate_answers`'s; ``__call__`` forwards the per-call ones.
    """

    def __init__(self, model, processor, *, image_root=None, batch_size: int = 8, progress: bool = True, seed: int = 0,
                 generation_kwargs: dict | None = None) -> None:
        self.model = model
        self.processor = processor
        self.image_root = image_root
        self.batch_size = int(batch_size)
        self.progress = progress
        self.seed = int(seed)
        self.generation_kwargs = generation_kwargs

    @property
    def tokenizer(self):
        return _tokenizer(self.processor)

    def __call__(self, samples, *, turns_context=None, constrained=None, max_new_tokens: int = 128, images=None) -> list[str]:
        return generate_answers(
            self.model, self.processor, samples, image_root=self.image_root, max_new_tokens=max_new_tokens,
            batch_size=self.batch_size, constrained=constrained, turns_context=turns_context,
            progress=self.progress, seed=self.seed, images=images, generation_kwargs=self.generation_kwargs,
        )  # fmt: skip
