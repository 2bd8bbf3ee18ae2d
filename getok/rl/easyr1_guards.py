"""EasyR1 launch guards: what must hold before a cluster run, checked here instead of failing there.

The guards (:func:`check_spatial_tokens`, :func:`check_easyr1`) are run by ``getok rl export-easyr1 --model``
and ``getok rl check-easyr1`` (the launch scripts call it first):

* every spatial token is one id and **non-special** — EasyR1 decodes responses with
  ``skip_special_tokens=True`` by default, which silently deletes special tokens (then every response
  scores as invalid); with ``worker.reward.skip_special_tokens=false`` special tokens would survive, and
  the check only asks for one id each;
* the exported rows' vocabulary layout is the model's;
* the YAML, merged with the launch's ``key=value`` overrides, is accepted by **EasyR1's own schema**:
  ``OmegaConf.structured(PPOConfig())`` merged with the file and the overrides, ``to_object`` and
  ``deep_post_init`` exactly as ``verl/trainer/main.py`` does (:func:`easyr1_schema_check`) — an unknown key
  such as ``worker.reward.reward_type`` fails here as it would fail the launch. EasyR1's source is found by
  :func:`find_easyr1` (``--easyr1`` / ``$GETOK_EASYR1`` / ``../shared/third_party/EasyR1`` beside the checkout /
  an installed EasyR1 ``verl``); without it (or without omegaconf) the report says so and only our own
  checks run;
* our own checks: the reward is this package's file with ``:compute_score`` (its module sets
  ``REWARD_TYPE = "batch"``; EasyR1 has no config key for it), the data keys are ``problem`` / ``answer`` /
  ``images``, no flat dotted keys, and with ``rollout.n > 1`` a validation (``val_before_train`` /
  ``val_freq``) needs ``worker.rollout.val_override_config.n: 1`` (else EasyR1's first validation returns
  ``n`` rows per prompt and fails to concatenate them);
* EasyR1's LoRA (``worker.actor.model.lora.rank > 0``) trains no embedding rows: the spatial tokens' rows
  stay frozen. We recommend **full fine-tuning** (``lora.rank: 0``) from a merged SFT checkpoint
  (``getok train merge``); LoRA is accepted only when the model is such a merged checkpoint (its rows were
  trained by SFT and then stay frozen during RL) and the check says so.

:mod:`getok.rl.easyr1` (stage-2 data and the row exports) re-exports every name here.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import logging
import os
import sys
import types
from pathlib import Path

from ..errors import ConfigError
from ..vocab.layout import LAYOUT_FILE, VocabLayout

__all__ = [
    "REWARD_FILE",
    "EASYR1_ENV",
    "check_spatial_tokens",
    "check_model_for_data",
    "check_easyr1",
    "find_easyr1",
    "easyr1_schema_check",
]

log = logging.getLogger("getok.rl.easyr1")

#: The reward file EasyR1 loads (``worker.reward.reward_function=<REWARD_FILE>:compute_score``).
REWARD_FILE = Path(__file__).resolve().parent / "easyr1_reward.py"


def _tokenizer(model_or_tokenizer):
    if isinstance(model_or_tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(model_or_tokenizer))
    return getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)


def check_spatial_tokens(model_or_tokenizer, codecs, *, skip_special_tokens: bool = True) -> list[str]:
    """Check that the codecs' tokens survive EasyR1's decoding; returns report lines, raises on failure.

    Every token must be in the vocabulary as one id; with ``skip_special_tokens`` (EasyR1's default) it
    must also be non-special and come back from ``decode(..., skip_special_tokens=True)``.

    Raises
    ------
    ConfigError
        Naming the first offending token and what to do.
    """
    tok = _tokenizer(model_or_tokenizer)
    layout = VocabLayout.from_codecs(list(codecs))
    vocab = tok.get_vocab()
    added = getattr(tok, "added_tokens_decoder", {}) or {}
    missing = [t for t in layout.tokens if t not in vocab]
    if missing:
        raise ConfigError(f"{len(missing)} spatial tokens are not in the tokenizer (first {missing[0]!r}): "
                          "train / merge with getok so the model has its vocabulary")  # fmt: skip
    special = [t for t in layout.tokens if getattr(added.get(int(vocab[t])), "special", False)]
    for t in layout.tokens:
        ids = tok.encode(t, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"spatial token {t!r} encodes to {len(ids)} ids; it must be one")
    if skip_special_tokens:
        if special:
            raise ConfigError(
                f"{len(special)} spatial tokens are special (first {special[0]!r}): EasyR1 decodes responses with "
                "skip_special_tokens=True and would delete them. Re-add them as non-special tokens "
                "(getok.vocab.add_spatial_tokens) or set worker.reward.skip_special_tokens=false"
            )
        probe = "".join(layout.tokens[:16])
        back = tok.decode(tok.encode(probe, add_special_tokens=False), skip_special_tokens=True)
        if back.replace(" ", "") != probe:
            raise ConfigError(f"spatial tokens do not survive decode(skip_special_tokens=True): {probe!r} -> {back!r}")
    return [f"ok: {len(layout.tokens)} spatial tokens of {layout.codecs} are single ids"
            + (", non-special, and survive skip_special_tokens=True" if skip_special_tokens else
               f" ({len(special)} special: fine only with worker.reward.skip_special_tokens=false)")]  # fmt: skip


#: Environment variable naming EasyR1's source checkout (the folder holding ``verl/``).
EASYR1_ENV = "GETOK_EASYR1"

#: The pinned snapshot beside a workspace checkout (``../shared/third_party/EasyR1``).
_SNAPSHOT = Path(__file__).resolve().parents[2].parent / "shared" / "third_party" / "EasyR1"


def _is_easyr1(root: Path) -> bool:
    return (root / "verl" / "trainer" / "config.py").is_file() and (root / "verl" / "workers" / "reward" / "config.py").is_file()


def find_easyr1(path: str | Path | None = None) -> Path | None:
    """EasyR1's source root (the folder with ``verl/``): ``path``, else ``$GETOK_EASYR1``, else the snapshot in
    ``../shared/third_party/EasyR1`` beside the checkout, else an installed EasyR1 ``verl`` package; ``None``
    when none is found. A ``path`` (or the variable) that is not an EasyR1 checkout raises ConfigError."""
    given = path if path is not None else os.environ.get(EASYR1_ENV) or None
    if given is not None:
        root = Path(given).expanduser().resolve()
        if not _is_easyr1(root):
            raise ConfigError(f"{root} is not an EasyR1 checkout (no verl/trainer/config.py, verl/workers/reward/config.py)")
        return root
    if _is_easyr1(_SNAPSHOT):
        return _SNAPSHOT.resolve()
    spec = importlib.util.find_spec("verl") if "verl" not in sys.modules else sys.modules["verl"].__spec__
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))).resolve().parent
        if _is_easyr1(root):
            return root
    return None


def _import_easyr1_config(root: Path):
    """EasyR1's ``PPOConfig`` imported from ``root`` (never copied). The packages ``verl.workers.rollout``
    (imports vLLM) and ``verl.workers.reward`` (imports Ray / tensordict through ``DataProto``) are entered
    through their ``config`` modules when their ``__init__`` cannot import here."""
    importlib.import_module("omegaconf")  # ImportError: the caller reports it
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    verl = importlib.import_module("verl")
    got = Path(verl.__file__).resolve().parent
    if got != root / "verl":
        raise ImportError(f"another 'verl' is imported ({got}), not EasyR1's {root / 'verl'}")
    for pkg in ("verl.workers.rollout", "verl.workers.reward"):
        if pkg in sys.modules:
            continue
        try:
            importlib.import_module(pkg)
        except ImportError as exc:
            if (getattr(exc, "name", None) or "verl").split(".")[0] == "verl":
                raise
            log.debug("%s does not import here (%s): using its config module", pkg, exc)
            stub = types.ModuleType(pkg)
            stub.__path__ = [str(root / Path(*pkg.split(".")))]
            sys.modules[pkg] = stub
            cfg_mod = importlib.import_module(pkg + ".config")
            for name, obj in vars(cfg_mod).items():
                if name.endswith("Config"):
                    setattr(stub, name, obj)
    return importlib.import_module("verl.trainer.config").PPOConfig


def easyr1_schema_check(config: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
                        easyr1: str | Path | None = None):  # fmt: skip
    """Merge ``config`` (and ``key=value`` ``overrides``) into EasyR1's own ``PPOConfig`` exactly as
    ``verl/trainer/main.py`` does; returns ``(ppo_config, root)`` or ``(None, reason)`` when EasyR1's source
    or omegaconf is not available.

    Raises
    ------
    ConfigError
        EasyR1's config code rejects the file (unknown key, wrong type, ...), with its message.
    """
    root = find_easyr1(easyr1)
    if root is None:
        return None, (f"EasyR1's source not found (--easyr1 PATH, ${EASYR1_ENV}, {_SNAPSHOT} or an installed "
                      "EasyR1 verl)")  # fmt: skip
    try:
        ppo_cls = _import_easyr1_config(root)
        from omegaconf import OmegaConf
        from omegaconf.errors import OmegaConfBaseException
    except ImportError as exc:
        return None, f"EasyR1's config code at {root} does not import here ({exc})"
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # get_abs_path prints "... not found." for absent files
            default = OmegaConf.structured(ppo_cls())
            default = OmegaConf.merge(default, OmegaConf.load(str(config)))
            merged = OmegaConf.merge(default, OmegaConf.from_dotlist(list(overrides)))
            obj = OmegaConf.to_object(merged)
            obj.deep_post_init()
    except OmegaConfBaseException as exc:
        raise ConfigError(f"EasyR1's config schema ({root}) rejects {config}: {type(exc).__name__}: {exc}") from exc
    for line in printed.getvalue().splitlines():
        if line.strip():
            log.info("EasyR1: %s", line.strip())
    return obj, root


def _set(d: dict, dotted: str, value) -> None:
    node = d
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {part} is not a mapping")
    node[parts[-1]] = value


def _apply_overrides(cfg: dict, overrides) -> dict:
    import yaml

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        _set(cfg, key.strip(), yaml.safe_load(value) if value else None)
    return cfg


def _own_config_checks(cfg: dict) -> list[str]:
    """Checks EasyR1's schema cannot make (and, without EasyR1, the mismatches we know of)."""
    flat = [k for k in cfg if "." in str(k)]
    if flat:
        raise ConfigError(f"flat dotted keys {flat}: an EasyR1 config file needs nested mappings (data: {{train_files: ...}})")
    if _get(cfg, "worker.reward.reward_type") is not None:
        raise ConfigError("worker.reward.reward_type is not an EasyR1 key (its RewardConfig has none; the merge fails): "
                          "EasyR1 reads REWARD_TYPE from the reward module (getok's is 'batch'); remove the key")  # fmt: skip
    n = int(_get(cfg, "worker.rollout.n", 1) or 1)
    validates = bool(_get(cfg, "trainer.val_before_train", True)) or int(_get(cfg, "trainer.val_freq", -1) or -1) > 0
    val_n = (_get(cfg, "worker.rollout.val_override_config", {}) or {}).get("n", n)  # unset: the rollout's n
    if n > 1 and validates and int(val_n) != 1:
        raise ConfigError(f"worker.rollout.n is {n} and the run validates (val_before_train / val_freq) without "
                          "worker.rollout.val_override_config.n: 1: EasyR1's validation would return n rows per prompt "
                          "and fail to concatenate them; set val_override_config: {n: 1, ...}")  # fmt: skip
    return [f"ok: rollout.n {n}, validation with n {val_n}; no flat dotted keys"]


def _get(d: dict, dotted: str, default=None):
    node = d
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def check_model_for_data(model, data, manifest: dict, *, skip_special_tokens: bool = True) -> None:
    """Before an export for a cluster engine: the model's spatial tokens are usable
    (:func:`check_spatial_tokens`) and its vocabulary layout is the dataset's (:class:`ConfigError` otherwise)."""
    check_spatial_tokens(model, manifest.get("codecs") or [], skip_special_tokens=skip_special_tokens)
    ml = _model_layout(model)
    if ml is not None and ml.hash != manifest.get("layout_hash"):
        raise ConfigError(f"{data} has layout {manifest.get('layout_hash')}, the model {ml.hash}")


def _model_layout(model: str | Path) -> VocabLayout | None:
    p = Path(model) / LAYOUT_FILE
    return VocabLayout.load(Path(model)) if p.is_file() else None


def check_easyr1(model: str | Path | None = None, data: str | Path | None = None, config: str | Path | None = None,
                 *, overrides: list[str] | tuple[str, ...] = (), easyr1: str | Path | bool | None = None,
                 reward_file: str | Path | None = None) -> list[str]:  # fmt: skip
    """Guards before an EasyR1 launch (module docstring); returns report lines, raises ConfigError.

    Parameters
    ----------
    model : path, optional
        The model directory EasyR1 loads (``worker.actor.model.model_path``; default: the YAML's).
    data : path, optional
        An :func:`export_easyr1_stage` directory.
    config : path, optional
        The EasyR1 YAML.
    overrides : list of str
        The ``key=value`` arguments the launch passes after ``config=`` (merged last, as EasyR1 does).
    easyr1 : path, bool or None
        EasyR1's source root for the schema check (:func:`find_easyr1`; ``None``: found automatically,
        ``False``: our own checks only).
    reward_file : path, optional
        What the reward must point to (default :data:`REWARD_FILE`).
    """
    import yaml

    lines: list[str] = []
    cfg: dict = {}
    model_from_yaml = False
    if config is not None:
        p = Path(config)
        if not p.is_file():
            raise ConfigError(f"EasyR1 config {p} not found")
        if easyr1 is False:
            lines.append("note: EasyR1's schema not checked (disabled): getok's own checks only")
        else:
            obj, where = easyr1_schema_check(p, overrides, easyr1=easyr1)
            if obj is None:
                lines.append(f"note: {where}: EasyR1's own schema NOT checked, getok's own checks only")
            else:
                lines.append(f"ok: EasyR1's own schema (PPOConfig of {where}) accepts {p}"
                             + (f" with {len(overrides)} overrides" if overrides else "")
                             + ", merged as verl/trainer/main.py does")  # fmt: skip
        cfg = _apply_overrides(yaml.safe_load(p.read_text()) or {}, overrides)
        lines += _own_config_checks(cfg)
        fn = _get(cfg, "worker.reward.reward_function")
        if not isinstance(fn, str) or ":" not in fn:
            raise ConfigError("worker.reward.reward_function must be '<path>/getok/rl/easyr1_reward.py:compute_score'")
        path, name = fn.rsplit(":", 1)
        want = Path(reward_file or REWARD_FILE).resolve()
        if Path(path).name != want.name or name != "compute_score":
            raise ConfigError(f"worker.reward.reward_function is {fn!r}; use {want}:compute_score")
        if "$" not in path and not Path(path).is_file():
            raise ConfigError(f"worker.reward.reward_function names {path}, which does not exist (use {want})")
        for key, want_key in (
            ("data.prompt_key", "problem"),
            ("data.answer_key", "answer"),
            ("data.image_key", "images"),
        ):
            v = _get(cfg, key)
            if v not in (None, want_key):
                raise ConfigError(f"{key} is {v!r}; getok's export writes {want_key!r}")
        lines.append(f"ok: reward {fn} (REWARD_TYPE batch); data keys problem / answer / images")
        if model is None:
            model = _get(cfg, "worker.actor.model.model_path")
            model_from_yaml = model is not None
    skip = bool(_get(cfg, "worker.reward.skip_special_tokens", True))
    codecs = None
    data_hash = None
    if data is not None:
        man_p = Path(data) / "manifest.json"
        if not man_p.is_file():
            raise ConfigError(f"{data} is not an export directory (no manifest.json)")
        man = json.loads(man_p.read_text())
        if man.get("export", {}).get("format") != "easyr1":
            raise ConfigError(f"{data} is not an EasyR1 export (format {man.get('export', {}).get('format')!r})")
        codecs, data_hash = man.get("codecs"), man.get("layout_hash")
        lines.append(f"ok: {man['export'].get('rows')} EasyR1 rows, codecs {codecs}")
    if model_from_yaml and not Path(str(model)).is_dir():
        lines.append(f"note: worker.actor.model.model_path {model} does not exist here: its tokenizer is not checked "
                     "(give --model or the override)")  # fmt: skip
        model = None
    if model is not None and not str(model).startswith(("$", "/path")):
        ml = _model_layout(model)
        codecs = codecs or (ml.codecs if ml else None)
        if codecs is None:
            raise ConfigError(f"{model} has no {LAYOUT_FILE} and no data was given: cannot tell its spatial codecs")
        lines += check_spatial_tokens(model, codecs, skip_special_tokens=skip)
        if ml is not None and data_hash is not None and ml.hash != data_hash:
            raise ConfigError(
                f"the rows' vocabulary layout {data_hash} is not the model's {ml.hash}: export with this model"
            )
        rank = int(_get(cfg, "worker.actor.model.lora.rank", 0) or 0)
        if rank > 0:
            info_p = Path(model) / "getok_checkpoint.json"
            info = json.loads(info_p.read_text()) if info_p.is_file() else {}
            if info.get("tuning") not in ("merged", "full"):
                raise ConfigError(
                    "EasyR1's LoRA (worker.actor.model.lora.rank > 0) does not train embedding rows, and this model's "
                    "spatial rows were not trained by SFT (not a merged / full getok checkpoint). Use full fine-tuning "
                    "(lora.rank: 0), or merge the SFT checkpoint first (getok train merge) to keep its rows frozen"
                )
            lines.append("warning: EasyR1 LoRA keeps the spatial token rows frozen at their SFT values (recommended: "
                         "full fine-tuning, lora.rank: 0)")  # fmt: skip
    elif cfg and _get(cfg, "worker.actor.model.lora.rank", 0):
        lines.append("warning: EasyR1 LoRA keeps the spatial token rows frozen (recommended: lora.rank: 0)")
    if not lines:
        raise ConfigError("nothing to check: give --model, --data and/or --config")
    return lines
