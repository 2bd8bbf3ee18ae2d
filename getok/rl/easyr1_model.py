"""A model directory that loads under transformers 4.5x (EasyR1's range, ``>=4.54,<5``) and 5.x.

A directory saved by transformers 5 does not load under 4.5x:

* ``tokenizer_config.json`` names ``"tokenizer_class": "TokenizersBackend"`` (a 5.x class: 4.x raises
  ``Tokenizer class TokenizersBackend does not exist``) and writes ``extra_special_tokens`` as a list
  (4.x expects a dict of named tokens and fails with ``'list' object has no attribute 'keys'``);
* the image / video processor settings live nested in ``processor_config.json`` (4.x reads
  ``preprocessor_config.json`` / ``video_preprocessor_config.json``);
* the M-RoPE sections are in ``text_config.rope_parameters`` (4.x reads ``rope_scaling`` /
  ``rope_theta``: without them a 4.x Qwen-VL would run without its M-RoPE sections) and the dtype in
  ``dtype`` (4.x: ``torch_dtype``).

:func:`export_easyr1_model` copies a directory (weights hard-linked where the file system allows) and
rewrites those files so that both readers find what they need; the weights are untouched. 5.x keeps
reading its own keys (``rope_parameters``, ``dtype``, ``processor_config.json``), 4.x reads the legacy ones
that are added beside them. ``getok rl export-easyr1-model --model SRC --out DIR`` is the command; the
engine contract test (``tests/engines``) loads the result with EasyR1's own helpers under transformers 4.5x.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..errors import ConfigError
from ..io import atomic_dir

__all__ = ["export_easyr1_model", "portable_tokenizer_config", "portable_model_config", "FAST_TOKENIZERS"]

#: model_type → the concrete fast tokenizer class both 4.x and 5.x know (default: PreTrainedTokenizerFast).
FAST_TOKENIZERS = {
    "qwen2_vl": "Qwen2TokenizerFast",
    "qwen2_5_vl": "Qwen2TokenizerFast",
    "qwen3_vl": "Qwen2TokenizerFast",
    "qwen3_vl_moe": "Qwen2TokenizerFast",
}

#: Tokenizer classes that exist only in transformers 5.
_V5_ONLY_CLASSES = ("TokenizersBackend",)

#: Top-level named multimodal tokens that 4.x reads from ``extra_special_tokens`` (a dict).
_NAMED_TOKENS = ("image_token", "video_token", "vision_start_token", "vision_end_token")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def portable_tokenizer_config(tc: dict, model_type: str | None, tokenizer_class: str | None = None) -> dict:
    """``tokenizer_config.json`` readable by 4.5x and 5.x (a new dict).

    ``tokenizer_class``: the given class, else a 5-only class (``TokenizersBackend``) becomes the
    model family's fast class (:data:`FAST_TOKENIZERS`, else ``PreTrainedTokenizerFast``); a slow-class name
    gets ``Fast`` appended (4.x then uses ``tokenizer.json``). ``extra_special_tokens``: a list is moved to
    ``additional_special_tokens`` (what it means in 4.x) and the key becomes a dict of the named
    multimodal tokens (``image_token`` …) that the config names.
    """
    out = dict(tc)
    cls = tokenizer_class or out.get("tokenizer_class")
    if cls is None or cls in _V5_ONLY_CLASSES:
        cls = FAST_TOKENIZERS.get(model_type or "", "PreTrainedTokenizerFast")
    elif not cls.endswith("Fast") and cls != "PreTrainedTokenizerFast":
        cls = cls + "Fast"
    out["tokenizer_class"] = cls
    extra = out.get("extra_special_tokens")
    if isinstance(extra, list):
        add = list(out.get("additional_special_tokens") or [])
        add += [t if isinstance(t, str) else t.get("content") for t in extra if t not in add]
        if add:
            out["additional_special_tokens"] = add
        extra = {}
    named = dict(extra or {})
    for key in _NAMED_TOKENS:
        if isinstance(out.get(key), str):
            named.setdefault(key, out[key])
    if named:
        out["extra_special_tokens"] = named
    else:
        out.pop("extra_special_tokens", None)
    out.pop("backend", None)  # 5.x only
    return out


def _legacy_rope(sub: dict) -> None:
    rp = sub.get("rope_parameters")
    if not isinstance(rp, dict):
        return
    if "rope_theta" in rp:
        sub.setdefault("rope_theta", rp["rope_theta"])
    if "mrope_section" in rp:
        legacy = {k: v for k, v in rp.items() if k not in ("rope_theta", "rope_type")}
        legacy["type"] = "mrope"
        sub.setdefault("rope_scaling", legacy)


def portable_model_config(cfg: dict) -> dict:
    """``config.json`` with the 4.x keys beside the 5.x ones (a new dict): ``torch_dtype`` from ``dtype``,
    and in the text config (or the top level) ``rope_theta`` / ``rope_scaling`` (``{"type": "mrope",
    "mrope_section": …}``, as Qwen-VL checkpoints on the hub write it) from ``rope_parameters``."""
    out = json.loads(json.dumps(cfg))
    if "dtype" in out:
        out.setdefault("torch_dtype", out["dtype"])
    _legacy_rope(out)
    if isinstance(out.get("text_config"), dict):
        _legacy_rope(out["text_config"])
        if "dtype" in out["text_config"]:
            out["text_config"].setdefault("torch_dtype", out["text_config"]["dtype"])
    return out


def _legacy_processor_files(pc: dict) -> dict[str, dict]:
    """``processor_config.json`` (5.x, nested) → the 4.x files: ``preprocessor_config.json`` (image
    processor, with ``min_pixels`` / ``max_pixels`` from ``size``), ``video_preprocessor_config.json`` and
    a ``processor_config.json`` without the nested parts (4.x passes its keys to the processor)."""
    files: dict[str, dict] = {}
    cls = pc.get("processor_class")
    rest = {k: v for k, v in pc.items() if k not in ("image_processor", "video_processor")}
    for key, name in (("image_processor", "preprocessor_config.json"),
                      ("video_processor", "video_preprocessor_config.json")):  # fmt: skip
        sub = pc.get(key)
        if not isinstance(sub, dict):
            continue
        sub = dict(sub)
        size = sub.get("size") or {}
        if "shortest_edge" in size and "longest_edge" in size:
            sub.setdefault("min_pixels", size["shortest_edge"])
            sub.setdefault("max_pixels", size["longest_edge"])
        if cls:
            sub.setdefault("processor_class", cls)
        files[name] = sub
    files["processor_config.json"] = rest
    return files


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def export_easyr1_model(
    model: str | Path, out: str | Path, *, tokenizer_class: str | None = None, overwrite: bool = False
) -> Path:
    """Copy the model directory ``model`` to ``out`` in a layout that transformers 4.5x and 5.x both load.

    Parameters
    ----------
    model : path
        A full model directory (``getok train merge`` output, a full fine-tuning checkpoint, a tiny model);
        a LoRA adapter directory is refused (merge it first).
    out : path
        Written atomically. Files are hard-linked when possible (weights are never rewritten).
    tokenizer_class : str, optional
        Force ``tokenizer_config.json``'s class (default: :func:`portable_tokenizer_config`'s choice).

    Raises
    ------
    ConfigError
        ``model`` is not a model directory, or is a LoRA adapter.
    """
    src = Path(model)
    if not (src / "config.json").is_file():
        raise ConfigError(f"{src} is not a model directory (no config.json)")
    if (src / "adapter_config.json").is_file():
        raise ConfigError(f"{src} is a LoRA adapter: merge it first (getok train merge), then export the merged model")
    cfg = _read_json(src / "config.json")
    rewritten: dict[str, dict] = {"config.json": portable_model_config(cfg)}
    if (src / "tokenizer_config.json").is_file():
        tc = _read_json(src / "tokenizer_config.json")
        rewritten["tokenizer_config.json"] = portable_tokenizer_config(tc, cfg.get("model_type"), tokenizer_class)
    if (src / "processor_config.json").is_file():
        pc = _read_json(src / "processor_config.json")
        for name, obj in _legacy_processor_files(pc).items():
            if name != "processor_config.json" and (src / name).is_file():
                continue  # the source already has the 4.x file
            rewritten[name] = obj
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for f in sorted(src.iterdir()):
            if f.is_file() and f.name not in rewritten:
                _link_or_copy(f, tmp / f.name)
        # processor_config.json loses its nested parts (4.x would pass them to the processor as keyword
        # arguments); 5.x then reads preprocessor_config.json / video_preprocessor_config.json like a hub checkpoint
        for name, obj in rewritten.items():
            _write_json(tmp / name, obj)
    return Path(out)
