"""Training what must be trained: LoRA on the language model + the new token rows, or full fine-tuning.

* :func:`lora_config_for` — a peft ``LoraConfig`` whose ``target_modules`` is a regex on the language model's
  attention and MLP projections (a plain name list would also hit the vision tower's ``gate_proj`` /
  ``up_proj`` / ``down_proj``), with the layout's rows trainable through
  ``trainable_token_indices={"embed_tokens": ids, "lm_head": ids}``. The dict form matters for an untied
  head: the list form wraps only the embedding, so the head's new rows would stay at their init. With a
  tied head the dict form gives one shared set of rows and the head stays tied (checked in the tests).
* :func:`apply_trl_fused_head_fix` — TRL (>= 1.x) computes the loss with a fused LM head that reads
  ``lm_head.weight`` *and* ``lm_head.bias``. peft's ``TrainableTokensWrapper`` forwards ``weight`` (the
  merged weight, differentiable w.r.t. the trainable rows) but not ``bias``, so SFT / GRPO steps crash with
  ``AttributeError: 'TrainableTokensWrapper' object has no attribute 'bias'`` (peft 0.21.2, trl 1.16.0).
  The fix adds a read-only ``bias`` property delegating to the wrapped layer. It is applied only when a
  probe wrapper shows the attribute is missing, so a peft that fixes this upstream is left alone.
* :func:`get_peft_model_for`, :func:`save_adapter`, :func:`load_adapter`, :func:`merge_and_save`.
* :func:`full_finetune_setup` — the alternative (EasyR1's LoRA does not train new embedding rows).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_dir
from .add_tokens import add_spatial_tokens, save_with_layout, validate_layout
from .layout import VocabLayout
from .loading import ensure_processor, load_model_and_processor

__all__ = [
    "LANGUAGE_MODEL_LORA_REGEX",
    "PROJECTOR_NAMES",
    "language_model_prefix",
    "language_model_lora_regex",
    "parameter_part",
    "lora_config_for",
    "get_peft_model_for",
    "apply_trl_fused_head_fix",
    "trl_fused_head_fix_needed",
    "full_finetune_setup",
    "save_adapter",
    "load_adapter",
    "merge_and_save",
]

log = logging.getLogger(__name__)

#: Attention and MLP projections of the language model only (Qwen2-VL / Qwen2.5-VL module names).
LANGUAGE_MODEL_LORA_REGEX = (
    r"^(?:.*\.)?language_model\.(?:model\.)?layers\.\d+\."
    r"(?:self_attn\.(?:q_proj|k_proj|v_proj|o_proj)|mlp\.(?:gate_proj|up_proj|down_proj))$"
)

#: Module names of the vision → language projector across VLM families: Qwen-VL (``visual.merger``),
#: LLaVA / LLaVA-OneVision / Gemma 3 / Mistral 3 / InternVL (``multi_modal_projector``), Idefics3 / SmolVLM
#: (``connector``), older LLaVA ports (``mm_projector``), InternVL's remote code (``mlp1``).
PROJECTOR_NAMES = frozenset({"merger", "multi_modal_projector", "connector", "mm_projector", "mlp1"})


def language_model_prefix(model) -> str:
    """Module path of the language model inside a VLM (``model.language_model``, ``model.text_model`` ...),
    found through ``get_decoder()`` rather than by name."""
    get = getattr(model, "get_decoder", None)
    lm = get() if callable(get) else None
    if lm is None:
        raise ConfigError(f"{type(model).__name__} has no get_decoder(): cannot tell its language model apart")
    for name, mod in model.named_modules():
        if mod is lm:
            return name
    raise ConfigError(f"{type(model).__name__}.get_decoder() is not one of its modules")


def parameter_part(name: str, lm_prefix: str) -> str:
    """``language``, ``projector`` or ``vision`` for a parameter name (anything multimodal outside the
    language model and its projector counts as the vision side; the output head ``lm_head``, which every
    family keeps beside the language model, is language).

    >>> [parameter_part(n, "model.language_model") for n in ("model.language_model.layers.0.mlp.up_proj.weight",
    ...  "model.visual.merger.linear_fc1.weight", "model.vision_tower.encoder.layers.0.mlp.fc1.weight",
    ...  "model.connector.modality_projection.proj.weight", "lm_head.weight")]
    ['language', 'projector', 'vision', 'projector', 'language']
    """
    if lm_prefix and (name == lm_prefix or name.startswith(lm_prefix + ".")):
        return "language"
    if name.split(".")[0] == "lm_head":
        return "language"
    if PROJECTOR_NAMES.intersection(name.split(".")):
        return "projector"
    return "vision"


def language_model_lora_regex(model) -> str:
    """A regex (peft ``target_modules``) matching every linear layer of the model's language model — its
    attention and MLP projections whatever the family names them — and nothing of the vision side."""
    import torch

    prefix = language_model_prefix(model)
    pats = set()
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and name.startswith(prefix + "."):
            rel = name[len(prefix) + 1 :]
            pats.add(re.sub(r"\\\.(\d+)\\\.", r"\\.\\d+\\.", re.escape(rel)))
    if not pats:
        raise ConfigError(f"no linear layer under {prefix!r} in {type(model).__name__}")
    return r"^" + re.escape(prefix) + r"\.(?:" + "|".join(sorted(pats)) + r")$"


def language_model_expert_parameters(model) -> list[str]:
    """Names of the language model's mixture-of-experts weights that are fused ``nn.Parameter`` tensors (one
    slice per expert, 3-D: e.g. Qwen3-VL-MoE's ``mlp.experts.gate_up_proj`` / ``down_proj``), which no
    ``nn.Linear`` regex reaches; LoRA reaches them through peft's ``target_parameters``. Empty for dense models."""
    try:
        prefix = language_model_prefix(model)
    except ConfigError:
        return []
    return sorted(
        n for n, p in model.named_parameters() if p.ndim >= 3 and n.startswith(prefix + ".") and ".experts." in n
    )


def _module_leaf_names(model) -> tuple[str, str]:
    """Leaf names of the input embedding and output head modules (``embed_tokens``, ``lm_head``)."""
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    e_name = h_name = None
    for name, mod in model.named_modules():
        if mod is emb and e_name is None:
            e_name = name.rsplit(".", 1)[-1]
        if head is not None and mod is head and h_name is None:
            h_name = name.rsplit(".", 1)[-1]
    if e_name is None or h_name is None:
        raise ConfigError("could not find the embedding / output head modules of the model")
    return e_name, h_name


def lora_config_for(
    model,
    layout: VocabLayout,
    rank: int = 64,
    alpha: float | None = None,
    dropout: float | None = None,
    train_new_rows: bool = True,
    target_modules: str | None = None,
    extra_token_ids: list[int] | None = None,
    experts: bool = True,
):
    """peft ``LoraConfig`` for the language model of a VLM, with the layout's rows trainable.

    Parameters
    ----------
    model
        The (already resized) model; used to check the regex and find the embedding / head names.
    layout
        Layout with ``ids`` (from :func:`~getok.vocab.add_spatial_tokens`).
    rank, alpha, dropout
        LoRA rank (GETok: 64), scaling numerator (default ``2 * rank``), dropout (default 0.05; 0 when the
        experts are targeted: peft's parameter LoRA has no dropout, and a non-zero one is refused).
    train_new_rows
        Put the layout's ids (plus ``extra_token_ids``) in ``trainable_token_indices`` for both the
        embedding and the head.
    target_modules
        Override of the default: every linear layer of the language model
        (:func:`language_model_lora_regex`, derived from the model's structure).
    experts
        Also put LoRA on a mixture-of-experts language model's fused expert weights
        (:func:`language_model_expert_parameters`, peft's ``target_parameters``).

    Raises
    ------
    ConfigError
        Bad sizes, a layout without ids, or a regex that matches nothing / matches the vision tower.
    """
    from peft import LoraConfig

    if not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"rank must be a positive int, got {rank!r}")
    expert_params = language_model_expert_parameters(model) if experts else []
    if dropout is None:
        dropout = 0.0 if expert_params else 0.05
    if not 0 <= dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
    if expert_params and dropout != 0:
        raise ConfigError(
            f"LoRA dropout {dropout} with the {len(expert_params)} fused expert weights targeted: peft's parameter "
            "LoRA has no dropout — set tuning.dropout to 0 (or leave it unset), or tuning.experts to false"
        )
    alpha = float(2 * rank if alpha is None else alpha)
    if alpha <= 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}")
    regex = target_modules or language_model_lora_regex(model)
    pat = re.compile(regex)
    hits = [n for n, _ in model.named_modules() if pat.fullmatch(n)]
    if not hits:
        raise ConfigError(f"target_modules regex {regex!r} matches no module of {type(model).__name__}")
    try:
        prefix = language_model_prefix(model)
    except ConfigError:
        prefix = ""
    if prefix:
        vis = [n for n in hits if parameter_part(n, prefix) != "language"]
    else:
        vis = [n for n in hits if "visual" in n or "vision" in n]
    if vis:
        raise ConfigError(f"target_modules regex hits the vision tower ({vis[0]}); restrict it to the language model")
    tti = None
    if train_new_rows:
        if layout.ids is None:
            raise ConfigError("layout has no ids; use the layout returned by add_spatial_tokens or layout.with_ids(tok)")
        ids = sorted(set(int(i) for i in layout.ids) | set(int(i) for i in (extra_token_ids or [])))
        e_name, h_name = _module_leaf_names(model)
        tti = {e_name: ids, h_name: ids} if ids else None
    return LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=regex,
        target_parameters=expert_params or None,
        trainable_token_indices=tti,
        task_type="CAUSAL_LM",
        bias="none",
    )


# ------------------------------------------------------------------------------------------------ TRL fix
def _wrapper_bias(self):
    """``bias`` of the wrapped layer (``None`` for bias-free heads), read-only."""
    return getattr(self.token_adapter.base_layer, "bias", None)


def trl_fused_head_fix_needed() -> bool:
    """Whether peft's ``TrainableTokensWrapper`` lacks ``bias`` (probed on a 3 x 2 linear layer)."""
    import torch
    from peft.utils.other import TrainableTokensWrapper

    if isinstance(TrainableTokensWrapper.__dict__.get("bias"), property):
        return False
    probe = TrainableTokensWrapper(torch.nn.Linear(2, 3, bias=False), "probe", token_indices=[0])
    try:
        probe.bias  # noqa: B018 - the probe is the attribute access
    except AttributeError:
        return True
    return False


def apply_trl_fused_head_fix() -> bool:
    """Give peft's ``TrainableTokensWrapper`` a ``bias`` property (TRL's fused LM head reads it).

    Returns ``True`` when the patch was applied now, ``False`` when it is not needed (already applied,
    or a peft version that handles ``bias`` itself). Idempotent; safe to call before every trainer.
    Checked with peft 0.21.2 + trl 1.16.0; the weight TRL reads is the wrapper's merged weight, so the new
    head rows do receive gradients through the fused loss (tested).
    """
    from peft.utils.other import TrainableTokensWrapper

    if not trl_fused_head_fix_needed():
        return False
    TrainableTokensWrapper.bias = property(_wrapper_bias)
    log.info("patched peft TrainableTokensWrapper with a 'bias' property for TRL's fused LM head")
    return True


def get_peft_model_for(model, layout: VocabLayout, fix_trl: bool = True, **lora_kwargs):
    """``peft.get_peft_model(model, lora_config_for(model, layout, ...))`` (+ the TRL fix when needed)."""
    from peft import get_peft_model

    if fix_trl:
        apply_trl_fused_head_fix()
    return get_peft_model(model, lora_config_for(model, layout, **lora_kwargs))


# ------------------------------------------------------------------------------------------------ full FT
def full_finetune_setup(
    model,
    train_vision: bool = False,
    train_merger: bool = True,
    train_embeddings: bool = True,
    layout: VocabLayout | None = None,
    new_rows_only: bool = False,
) -> dict[str, int]:
    """Set ``requires_grad`` for full fine-tuning of the language model; returns parameter counts.

    Parameters
    ----------
    train_vision
        Train the vision side: every parameter outside the language model (found by ``get_decoder()``) and
        the projector — Qwen's ``visual`` blocks, LLaVA's ``vision_tower``, Idefics3's ``vision_model`` ...;
        off by default.
    train_merger
        Train the vision → language projector (:data:`PROJECTOR_NAMES`: ``visual.merger``,
        ``multi_modal_projector``, ``connector`` ...).
    train_embeddings
        Train the embedding and output head.
    new_rows_only
        With ``layout``: gradient hooks zero the gradient of every embedding / head row outside the layout,
        so only new rows move (use ``weight_decay=0`` for those parameters: decoupled weight decay would
        still shrink the old rows).

    Returns
    -------
    ``{"trainable": ..., "frozen": ...}`` parameter counts.
    """
    import torch

    prefix = language_model_prefix(model)
    for name, p in model.named_parameters():
        part = parameter_part(name, prefix)
        p.requires_grad_({"language": True, "projector": train_merger, "vision": train_vision}[part])
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    for mod in (emb, head):
        if mod is not None:
            mod.weight.requires_grad_(train_embeddings)
    if new_rows_only:
        if layout is None or layout.ids is None:
            raise ConfigError("new_rows_only needs a layout with ids")
        rows = emb.weight.shape[0]
        mask = torch.zeros(rows, 1, dtype=torch.bool)
        mask[torch.as_tensor(layout.ids)] = True
        seen = set()
        for mod in (emb, head):
            if mod is None or id(mod.weight) in seen or not mod.weight.requires_grad:
                continue
            seen.add(id(mod.weight))
            m = mask.to(mod.weight.device)
            mod.weight.register_hook(lambda g, m=m: g * m.to(g.dtype))
    counts = {"trainable": 0, "frozen": 0}
    seen_ids = set()
    for p in model.parameters():
        if id(p) in seen_ids:
            continue
        seen_ids.add(id(p))
        counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    return counts


# ------------------------------------------------------------------------------------------------ save / load
def save_adapter(peft_model, processor, layout: VocabLayout, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the adapter (LoRA + trainable rows only), the processor and the layout to ``out_dir`` atomically."""

    out = Path(out_dir)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        peft_model.save_pretrained(tmp, save_embedding_layers=False)
        processor.save_pretrained(tmp)
        layout.save(tmp)
    return out


def load_adapter(adapter_dir: str | Path, base: str | Path | None = None, is_trainable: bool = False, **load_kwargs):
    """Load a saved adapter onto its base model, resized for the adapter's tokenizer.

    ``base`` defaults to the ``base_model_name_or_path`` recorded in ``adapter_config.json``. The base is
    loaded with :func:`~getok.vocab.loading.load_model_and_processor`, resized with
    :func:`~getok.vocab.add_spatial_tokens` (same codecs, init and seed as recorded in the layout; the
    trainable rows then come from the adapter) and wrapped with ``PeftModel.from_pretrained``.

    Returns
    -------
    (peft_model, processor, layout)
    """
    from peft import PeftModel

    adapter_dir = Path(adapter_dir)
    cfg_path = adapter_dir / "adapter_config.json"
    if not cfg_path.is_file():
        raise ConfigError(f"{adapter_dir} has no adapter_config.json")
    if base is None:
        base = json.loads(cfg_path.read_text()).get("base_model_name_or_path")
        if not base:
            raise ConfigError(f"{cfg_path} names no base model; pass base=...")
    layout = VocabLayout.load(adapter_dir)
    model, _ = load_model_and_processor(base, check_layout=False, **load_kwargs)
    from transformers import AutoProcessor

    processor = ensure_processor(AutoProcessor.from_pretrained(adapter_dir), adapter_dir)
    got = add_spatial_tokens(
        processor, model, layout.codecs, init=layout.extra.get("init", "mean"), seed=int(layout.extra.get("seed", 0))
    )
    got.check_matches(layout, what=f"adapter {adapter_dir}")
    validate_layout(layout, processor, model)
    apply_trl_fused_head_fix()
    peft_model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=is_trainable)
    return peft_model, processor, layout


def merge_and_save(peft_model, processor, layout: VocabLayout, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Merge LoRA and trainable rows into the base weights and write a standalone model directory.

    The directory (safetensors model, processor, ``getok_layout.json``) loads with
    :func:`~getok.vocab.loading.load_model_and_processor` / the Auto classes and gives the adapter model's
    logits. ``peft_model`` is merged in place (``merge_and_unload``) and should not be used afterwards.
    Written atomically.
    """

    merged = peft_model.merge_and_unload()
    return save_with_layout(merged, processor, layout, out_dir, overwrite=overwrite)
