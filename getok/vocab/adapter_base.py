"""What a model adapter is, how adapters are registered and looked up, and which models getok refuses.

* :class:`ModelAdapter` — the base class: image placeholder and token counts, pixel bounds, parts and LoRA
  targets, support, the SFT chat template, end of turn; :class:`GenericAdapter` — the adapter of any family
  without its own (and the base of every family's);
* the registry — :data:`ADAPTERS`, :func:`register_adapter`, :data:`END_OF_TURN_MARKERS`; the lookup —
  :func:`adapter_for`, :func:`model_type_of`;
* the support checks — :func:`check_supported`, :func:`check_supported_dir`, :func:`training_template_refusal`.

The families' own adapters live in :mod:`getok.vocab.adapter_families`; :mod:`getok.vocab.adapters`
re-exports every name of both.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path

from ..errors import ConfigError, GetokError
from ..registry import Registry
from .peft_utils import language_model_lora_regex, language_model_prefix, parameter_part

__all__ = [
    "ModelAdapter",
    "GenericAdapter",
    "ADAPTERS",
    "END_OF_TURN_MARKERS",
    "check_supported",
    "check_supported_dir",
    "training_template_refusal",
    "register_adapter",
    "adapter_for",
    "model_type_of",
]

log = logging.getLogger("getok.vocab.adapters")  # one logger for the adapters, wherever their code lives

#: Adapter classes by ``model_type`` (:func:`register_adapter` fills it).
ADAPTERS = Registry("model adapter")
_BY_PROCESSOR: dict[str, str] = {}  # processor class name -> model_type
_INSTANCES: dict[type, ModelAdapter] = {}

#: End-of-turn / end-of-text markers of every registered family (each adapter's ``end_markers``, in
#: registration order): what a decoder with ``skip_special_tokens=False`` may leave after an answer.
#: :func:`getok.rl.rewards_common.clean_response` strips these; :func:`register_adapter` extends the list.
END_OF_TURN_MARKERS: list[str] = []


def register_adapter(cls):
    """Class decorator: register an adapter under each of its ``model_types`` and ``processor_classes``."""
    if not cls.model_types:
        raise ConfigError(f"{cls.__name__} names no model_types")
    for mt in cls.model_types:
        ADAPTERS.register(mt)(cls)
    for pc in cls.processor_classes:
        _BY_PROCESSOR.setdefault(pc, cls.model_types[0])
    for t in cls.end_markers:
        if t not in END_OF_TURN_MARKERS:
            END_OF_TURN_MARKERS.append(t)
    return cls


def check_supported(processor) -> None:
    """Refuse, in one line, a model getok cannot drive (its adapter's :meth:`~ModelAdapter.refusal`).

    Raises
    ------
    GetokError
        ``model family 'paligemma' is not supported: its processor has no chat template ...``
    """
    ad = adapter_for(processor)
    reason = ad.refusal(processor)
    if reason:
        raise GetokError(f"model family {model_type_of(processor) or ad.name!r} is not supported: {reason}")


def model_type_of(obj) -> str | None:
    """``model_type`` of a model, a config or (through its class name) a processor; ``None`` if unknown."""
    mt = getattr(obj, "model_type", None)
    if isinstance(mt, str):
        return mt
    cfg = getattr(obj, "config", None)
    mt = getattr(cfg, "model_type", None)
    if isinstance(mt, str):
        return mt
    for klass in type(obj).__mro__:
        if klass.__name__ in _BY_PROCESSOR:
            return _BY_PROCESSOR[klass.__name__]
    return None


def adapter_for(obj) -> ModelAdapter:
    """The adapter of ``obj`` (a model, its config, its processor, or a ``model_type`` string): the registered
    one for its ``model_type``, :class:`GenericAdapter` otherwise."""
    mt = obj if isinstance(obj, str) else model_type_of(obj)
    cls = ADAPTERS._factories.get(mt, GenericAdapter) if mt else GenericAdapter
    if cls not in _INSTANCES:
        _INSTANCES[cls] = cls()
    return _INSTANCES[cls]


def _blank(size: tuple[int, int]):
    from PIL import Image

    h, w = int(size[0]), int(size[1])
    return Image.new("RGB", (w, h))


def _size_key(processor) -> str:
    """What of the image processor changes the token count (its size settings): part of the cache key."""
    ip = getattr(processor, "image_processor", None)
    keys = ("size", "crop_size", "max_image_size", "min_pixels", "max_pixels", "do_image_splitting", "do_resize")
    return repr([(k, getattr(ip, k, None)) for k in keys])


def check_supported_dir(path, trust_remote_code: bool = False):
    """:func:`check_supported` on the processor saved in a model / checkpoint directory, before any weights
    load (the commands call it first). Returns the processor (SFT checks its chat template next,
    :meth:`ModelAdapter.training_chat_template`), or ``None`` for a directory whose processor does not load
    (left to the loader)."""

    if not (Path(path) / "processor_config.json").is_file() and not (Path(path) / "tokenizer_config.json").is_file():
        return None
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - the model loader reports a broken directory properly
        log.debug("check_supported_dir: processor of %s did not load (%s)", path, exc)
        return None
    check_supported(processor)
    return processor


def training_template_refusal(processor) -> str:
    """The one-line refusal of a chat template SFT cannot mask (:meth:`ModelAdapter.training_chat_template`)."""
    import trl

    family = model_type_of(processor) or adapter_for(processor).name
    return (f"model family {family!r}: its chat template has no {{% generation %}} markers and TRL {trl.__version__} "
            "has no training template for it, so SFT's assistant-only loss cannot tell the answer from the prompt; "
            "fix: wrap each assistant answer and its end-of-turn token in {% generation %} ... {% endgeneration %} "
            "in the model directory's chat_template.jinja (getok.vocab.families.family_template writes such "
            "a template)")  # fmt: skip


# ------------------------------------------------------------------------------------------------ base
class ModelAdapter:
    """What differs between VLM families. Subclasses override what their processor / model do differently."""

    name = "base"
    model_types: tuple[str, ...] = ()
    processor_classes: tuple[str, ...] = ()
    #: End-of-turn / end-of-text markers this family's chat template and tokenizer write (for
    #: :data:`END_OF_TURN_MARKERS`; :meth:`end_of_turn_tokens` reads the real ones off a tokenizer).
    end_markers: tuple[str, ...] = ()
    #: Processor outputs TRL's GRPO cannot pass on (its log-prob function has no such argument); dropped
    #: by :class:`getok.rl.grpo` when every sample has one image.
    trl_dropped_inputs: tuple[str, ...] = ()

    def trl_chat_template_kwargs(self, processor) -> dict:
        """Extra ``apply_chat_template`` arguments TRL's GRPO must pass this processor (none by default)."""
        return {}

    def __init__(self) -> None:
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _memo(self, processor, key, fn):
        try:
            per = self._cache.setdefault(processor, {})
        except TypeError:  # not weak-referenceable: no cache
            return fn()
        k = (key, _size_key(processor))
        if k not in per:
            per[k] = fn()
        return per[k]

    # ------------------------------------------------------------------ placeholder and rendering
    def image_placeholder(self, processor) -> str:
        """The text that stands for one image in a templated conversation and that the processor expands
        (``<|image_pad|>``, ``<image>``, Gemma 3's ``<start_of_image>`` ...): the processor's ``image_token``
        when the chat template writes it, otherwise what the template writes for an image."""
        return self._memo(processor, "placeholder", lambda: self._placeholder(processor))

    def _placeholder(self, processor) -> str:
        token = getattr(processor, "image_token", None)
        diff = None
        if getattr(processor, "chat_template", None):
            def render(content):
                return processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False)

            text = [{"type": "text", "text": "Q"}]
            a, b = render([{"type": "image"}, *text]), render(text)
            i = 0
            while i < min(len(a), len(b)) and a[i] == b[i]:
                i += 1
            j = 0
            while j < min(len(a), len(b)) - i and a[len(a) - 1 - j] == b[len(b) - 1 - j]:
                j += 1
            diff = a[i : len(a) - j]
        if token and (diff is None or token in diff):
            return token
        if diff and diff.strip():
            return diff.strip()
        raise ConfigError(f"{type(processor).__name__}: cannot tell which text stands for an image")

    def _render(self, processor, size: tuple[int, int]) -> tuple[int, int]:
        """(tokens the image adds to its placeholder's text, image tokens in the output) for one blank image."""
        ph = self.image_placeholder(processor)
        tok = processor.tokenizer
        out = processor(text=[ph], images=[_blank(size)])
        ids = [int(t) for t in list(out["input_ids"][0])]
        base = tok([ph])["input_ids"][0]
        img_id = getattr(processor, "image_token_id", None)
        if img_id is None and getattr(processor, "image_token", None):
            img_id = tok.convert_tokens_to_ids(processor.image_token)
        n_img = sum(1 for t in ids if t == img_id) if img_id is not None else len(ids) - len(base)
        return len(ids) - len(base), n_img

    # ------------------------------------------------------------------ image tokens
    def image_token_count(self, processor, size: tuple[int, int]) -> int:
        """Image tokens (the processor's ``image_token``) one image of ``size`` (H, W) puts in the sequence."""
        h, w = int(size[0]), int(size[1])
        return self._memo(processor, ("render", h, w), lambda: self._render(processor, (h, w)))[1]

    def image_tokens_added(self, processor, size: tuple[int, int]) -> int:
        """How many tokens longer the processed sequence is than the text with one image placeholder, for
        an image of ``size`` (H, W): image tokens plus any markers the processor writes around them, minus
        the placeholder's own tokens."""
        h, w = int(size[0]), int(size[1])
        return self._memo(processor, ("render", h, w), lambda: self._render(processor, (h, w)))[0]

    # ------------------------------------------------------------------ pixel bounds
    def set_pixel_bounds(self, processor, min_pixels: int | None, max_pixels: int | None) -> bool:
        """Bound ``H * W`` after the image processor's resize where the processor has such bounds; returns
        whether the processor was changed. The base leaves it alone."""
        if min_pixels is not None or max_pixels is not None:
            ip = getattr(processor, "image_processor", None)
            log.info("%s (%s): min_pixels / max_pixels not applied; the processor's own sizes stay (%s)",
                     type(ip).__name__, self.name, getattr(ip, "size", None))  # fmt: skip
        return False

    # ------------------------------------------------------------------ parts and LoRA
    def language_model_prefix(self, model) -> str:
        return language_model_prefix(model)

    def parameter_part(self, name: str, model) -> str:
        """``language``, ``projector`` or ``vision`` for a parameter of ``model``."""

        return parameter_part(name, self.language_model_prefix(model))

    def lora_target_modules(self, model) -> str:
        """peft ``target_modules`` regex: every linear layer of the language model."""

        return language_model_lora_regex(model)

    # ------------------------------------------------------------------ support
    def refusal(self, processor) -> str | None:
        """Why getok cannot drive this model (one line), or ``None``: the base refuses a processor without a
        chat template (getok's prompts are conversations)."""
        if not getattr(processor, "chat_template", None):
            return "its processor has no chat template (getok's prompts and answers are chat turns)"
        return None

    # ------------------------------------------------------------------ SFT chat template
    def training_chat_template(self, processor) -> str | None:
        """The chat template TRL's SFT (``assistant_only_loss=True``) renders this processor's samples with,
        checked before any training starts: ``None`` when the processor's template has ``{% generation %}``
        markers (TRL uses it as is); TRL's training template when the template is one TRL knows (the real
        Qwen2.5-VL, Qwen3-VL, Gemma 3, Idefics3 / SmolVLM, LLaVA-NeXT ... templates: TRL swaps it in,
        :func:`trl.chat_template_utils.get_training_chat_template`).

        Raises
        ------
        ConfigError
            Any other template (TRL would fail inside the trainer, or the mask would not mark the answer),
            in one line naming the family and the fix (:func:`training_template_refusal`).
        """
        from trl.chat_template_utils import get_training_chat_template, has_generation_markers

        template = getattr(processor, "chat_template", None)
        if not template:
            raise ConfigError(training_template_refusal(processor))
        if has_generation_markers(template):
            return None
        try:
            swapped = get_training_chat_template(processor)
        except ValueError:  # TRL: "patching is not supported for this template"
            raise ConfigError(training_template_refusal(processor)) from None
        if swapped is None or not has_generation_markers(swapped):  # a TRL without markers in its swap
            raise ConfigError(training_template_refusal(processor))
        return swapped

    # ------------------------------------------------------------------ end of turn
    def end_of_turn_tokens(self, processor_or_tokenizer) -> list[str]:
        """eos and the marker the chat template writes right after an assistant answer (``<|im_end|>``,
        ``<end_of_utterance>``, ``<end_of_turn>`` ...), as found in the tokenizer; eos first."""
        obj = processor_or_tokenizer
        tok = getattr(obj, "tokenizer", obj)
        out: list[str] = []
        if getattr(tok, "eos_token", None):
            out.append(str(tok.eos_token))
        if getattr(obj, "chat_template", None):
            answer = "GETOKANSWER"
            msgs = [{"role": "user", "content": [{"type": "text", "text": "Q"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": answer}]}]  # fmt: skip
            try:
                text = obj.apply_chat_template(msgs, tokenize=False)
            except Exception as exc:  # a template that wants other messages: eos only
                log.info("end_of_turn_tokens: chat template failed (%s); eos only", exc)
                text = ""
            after = text[text.rfind(answer) + len(answer) :] if answer in text else ""
            added = sorted(tok.get_added_vocab(), key=len, reverse=True) if hasattr(tok, "get_added_vocab") else []
            for t in added:
                if after.lstrip(" ").startswith(t):
                    if t not in out:
                        out.append(t)
                    break
        return out


# ------------------------------------------------------------------------------------------------ generic
def _is_qwen2vl_image_processor(ip) -> bool:
    return any(k.__name__.startswith("Qwen2VLImageProcessor") for k in type(ip).__mro__)


def _set_size_bounds(processor, min_pixels, max_pixels) -> bool:
    """Qwen2-VL image processor: ``size = {shortest_edge: min_pixels, longest_edge: max_pixels}`` (pixel
    counts ``H * W``); a bound left ``None`` keeps the processor's."""
    if min_pixels is None and max_pixels is None:
        return False
    ip = processor.image_processor
    size = dict(ip.size) if ip.size is not None else {}
    size = {k: v for k, v in size.items() if v is not None}
    if min_pixels is not None:
        size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        size["longest_edge"] = int(max_pixels)
    ip.size = {"shortest_edge": size.get("shortest_edge"), "longest_edge": size.get("longest_edge")}
    return True


@register_adapter
class GenericAdapter(ModelAdapter):
    """Any family without its own adapter: renders image-token counts; sets pixel bounds only on a Qwen2-VL
    image processor (the one whose ``size`` holds pixel-count bounds), leaves any other alone."""

    name = "generic"
    model_types = ("generic",)
    end_markers = ("<|im_end|>", "<|endoftext|>", "</s>", "<|eot_id|>", "<|end|>")  # ChatML, Llama, Mistral, Phi

    def set_pixel_bounds(self, processor, min_pixels, max_pixels) -> bool:
        ip = getattr(processor, "image_processor", None)
        if _is_qwen2vl_image_processor(ip):
            return _set_size_bounds(processor, min_pixels, max_pixels)
        return super().set_pixel_bounds(processor, min_pixels, max_pixels)
