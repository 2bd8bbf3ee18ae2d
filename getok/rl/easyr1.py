"""EasyR1 on a cluster: stage-2 data from a stage-1 model, stage-1 / stage-2 row exports, launch guards.

EasyR1 (DESIGN.md "Engines") has no multi-turn rollouts and passes only ``ground_truth`` to the reward,
so both stages are single-turn prompts whose packed truth carries everything the reward needs:

* stage 1 — the query tasks of a dataset directory (grid mask answers), exported with
  :func:`~getok.data_builders.export.export_easyr1` (``problem`` / ``answer`` = packed truth / ``images``);
* stage 2 — :func:`make_stage2_data` runs a stage-1 policy greedily on the questions and writes two-turn
  refine samples (turn 1 = the question and the policy's answer, turn 2 = the refine prompt and the oracle
  refinement); the export folds turn 1 into the prompt (``Previous answer: …``) and packs the proposal
  into the truth, so ``getok/rl/easyr1_reward.py`` scores the refinement against it. Invalid / ``none``
  proposals are replaced by a builder-made noisy proposal (or dropped), as in the one-machine engine.

Guards (:func:`check_spatial_tokens`, :func:`check_easyr1`), run by ``getok rl export-easyr1 --model``
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
from collections import Counter
from pathlib import Path

from ..errors import ConfigError, DataError
from ..io import atomic_write_text
from ..vocab.layout import LAYOUT_FILE, VocabLayout

__all__ = [
    "REWARD_FILE",
    "STAGE2_TASKS",
    "load_policy",
    "make_stage2_data",
    "export_easyr1_stage",
    "check_spatial_tokens",
    "check_easyr1",
    "find_easyr1",
    "easyr1_schema_check",
    "EASYR1_ENV",
]

log = logging.getLogger("getok.rl.easyr1")

#: The reward file EasyR1 loads (``worker.reward.reward_function=<REWARD_FILE>:compute_score``).
REWARD_FILE = Path(__file__).resolve().parent / "easyr1_reward.py"

#: Stage-1 tasks whose samples can be refined (single target, mask answer).
STAGE2_TASKS = ("text>mask", "point>mask", "box>mask")


def load_policy(path: str | Path, *, base: str | Path | None = None, dtype=None, trust_remote_code: bool = False):
    """A getok checkpoint (SFT / GRPO; LoRA ones merged in memory) or a model directory that already has
    its spatial tokens (``getok_layout.json``) → ``(model, processor, layout)`` in eval mode."""
    from ..train.callbacks import CHECKPOINT_INFO_FILE, read_checkpoint_info
    from ..vocab import load_adapter, load_model_and_processor, validate_layout

    p = Path(path)
    if not (p / LAYOUT_FILE).is_file():
        raise ConfigError(f"{p} has no {LAYOUT_FILE}: give a getok checkpoint (getok train sft / grpo / merge)")
    layout = VocabLayout.load(p)
    if (p / "adapter_config.json").is_file():
        info = read_checkpoint_info(p) if (p / CHECKPOINT_INFO_FILE).is_file() else {}
        kw = {} if dtype is None else {"dtype": dtype}
        peft_model, processor, got = load_adapter(p, base=base or info.get("base_model"), **kw)
        got.check_matches(layout, what=f"checkpoint {p}")
        model = peft_model.merge_and_unload()
    else:
        model, processor = load_model_and_processor(p, dtype=dtype, trust_remote_code=trust_remote_code)
    validate_layout(layout, processor, model)
    model.eval()
    return model, processor, layout


def make_stage2_data(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    tasks: tuple[str, ...] | None = None,
    on_invalid: str = "fallback",
    max_cells: int = 64,
    fallback_k: int = 6,
    limit: int | None = None,
    batch_size: int = 16,
    max_new_tokens: int = 64,
    seed: int = 0,
    base: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
    generate_fn=None,
) -> tuple[Path, Counter]:
    """Stage-2 samples whose turn 1 is a stage-1 model's own (greedy) answer; a getok dataset directory.

    Parameters
    ----------
    model : path
        The stage-1 policy (:func:`load_policy`); ignored when ``generate_fn`` is given.
    data : path
        A dataset directory with single-target mask samples of a ``grid_offset`` codec (other samples are
        skipped and counted).
    out : path
        Written atomically; images are copied in, so the directory is self-contained.
    tasks : tuple of str, optional
        Default :data:`STAGE2_TASKS`.
    on_invalid, max_cells, fallback_k, seed
        See :func:`getok.rl.stage2.make_stage2_samples`.
    generate_fn : callable, optional
        ``generate_fn(samples, image_root) -> texts`` instead of the model (tests).

    Returns
    -------
    (Path, Counter)
        The directory and the counts (``policy``, ``fallback``, ``skipped``, ``not_single_target``,
        ``wrong_task``, ``reason:*``), also recorded in the manifest's ``builder``.
    """
    from ..codecs.base import get_codec
    from ..data_builders.dataset import read_dataset, write_dataset
    from .stage2 import make_stage2_samples

    ds = read_dataset(data)
    tasks = tuple(tasks or STAGE2_TASKS)
    bad = [t for t in tasks if t not in STAGE2_TASKS]
    if bad:
        raise ConfigError(f"stage-2 tasks must be among {STAGE2_TASKS}, got {bad}")
    counts: Counter = Counter()
    chosen = []
    for s in ds:
        if s.task not in tasks or s.kind != "mask" or get_codec(s.codec).name != "grid_offset" or len(s.turns) != 1:
            counts["wrong_task"] += 1
            continue
        if len(s.truth.get("masks") or []) != 1:
            counts["not_single_target"] += 1
            continue
        s.image = str(ds.image_path(s).resolve())
        chosen.append(s)
    if limit is not None:
        chosen = chosen[: int(limit)]
    if not chosen:
        raise DataError(f"{data}: no single-target mask samples of a grid_offset codec with tasks {tasks}")
    codecs = {s.codec for s in chosen}
    if len(codecs) != 1:
        raise DataError(f"{data}: samples use several codecs {sorted(codecs)}; stage 2 needs one")
    spec = codecs.pop()
    model_name = str(model)
    if generate_fn is None:
        from ..eval.generate import generate_answers

        m, processor, layout = load_policy(model, base=base)
        if spec not in layout.codecs:
            raise ConfigError(f"the model's vocabulary {layout.codecs} lacks the data's codec {spec!r}")
        texts = generate_answers(m, processor, chosen, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 progress=progress, seed=seed)  # fmt: skip
    else:
        texts = generate_fn(chosen, None)
    samples, c2 = make_stage2_samples(
        chosen, texts, spec, on_invalid=on_invalid, max_cells=max_cells, fallback_k=fallback_k, seed=seed
    )
    counts.update(c2)
    if not samples:
        raise DataError(f"no stage-2 sample left ({dict(counts)})")
    manifest = {
        "builder": {
            "kind": "stage2",
            "model": model_name,
            "source": str(Path(data).resolve()),
            "tasks": list(tasks),
            "on_invalid": on_invalid,
            "max_cells": max_cells,
            "fallback_k": fallback_k,
            "seed": seed,
            "counts": dict(counts),
        },  # fmt: skip
        "sources": ds.manifest.get("sources") or [],
    }
    path = write_dataset(samples, out, manifest, copy_images=True, overwrite=overwrite)
    log.info("stage-2 samples: %s", dict(counts))
    return path, counts


# ---------------------------------------------------------------------------------------------- guards
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


# ---------------------------------------------------------------------------------------------- export
def export_easyr1_stage(
    data: str | Path,
    out: str | Path,
    *,
    stage: int,
    model: str | Path | None = None,
    embed_images: bool = True,
    skip_special_tokens: bool = True,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """EasyR1 rows of one stage (:func:`~getok.data_builders.export.export_easyr1`), after the guards.

    Every sample must belong to the stage (:func:`~getok.data_builders.export.reward_task`: ``stage1``
    for grid mask answers, ``stage2`` for :func:`make_stage2_data` samples); with ``model`` the spatial
    tokens are checked (:func:`check_spatial_tokens`) and the data's layout must be the model's. Also
    writes ``OUT/easyr1_data.yaml``: the ``data`` settings as a nested mapping (EasyR1 merges config files
    as nested keys: flat ``data.x: ...`` keys would fail its schema).
    """
    from ..data_builders.dataset import read_dataset
    from ..data_builders.export import export_easyr1, reward_task

    if stage not in (1, 2):
        raise ConfigError(f"stage must be 1 or 2, got {stage!r}")
    ds = read_dataset(data)
    tasks = Counter(reward_task(s) for s in ds)
    want = f"stage{stage}"
    if set(tasks) != {want}:
        hint = " (stage 2 rows come from getok rl make-stage2-data)" if stage == 2 else ""
        raise DataError(f"{data}: every sample must be a {want} sample, found {dict(tasks)}{hint}")
    if model is not None:
        check_model_for_data(model, data, ds.manifest, skip_special_tokens=skip_special_tokens)
    path = export_easyr1(ds, out, embed_images=embed_images, overwrite=overwrite, progress=progress)
    import yaml

    keys = {
        "train_files": str((Path(out) / "train.parquet").resolve()),
        "prompt_key": "problem",
        "answer_key": "answer",
        "image_key": "images",
    }
    if not embed_images:
        keys["image_dir"] = str(Path(out).resolve())
    text = ("# EasyR1 data settings for this export: a config file EasyR1 merges (nested keys), or pass them as\n"
            "# data.<key>=<value> overrides\n")  # fmt: skip
    text += yaml.safe_dump({"data": keys}, sort_keys=False)
    atomic_write_text(Path(out) / "easyr1_data.yaml", text)
    return path
