"""GRPO on one machine with TRL's ``GRPOTrainer``: stage 1 (propose grid cells) and stage 2 (refine them).

:func:`run_grpo` is the whole run, in this order (everything that can fail on bad input fails before the
first rollout):

1. **Start policy** (:func:`load_start_policy`): an SFT checkpoint of ``getok train sft`` (full, LoRA —
   merged into its base in memory —, or merged), a plain model directory (``vocab.codecs`` added or
   validated) or ``tiny``. It is also the KL anchor, so it must be reloadable from a directory
   (:func:`ensure_start_dir`): a LoRA run's adapter refers to it as its base, and full fine-tuning with
   ``rl.beta > 0`` makes TRL rebuild the reference model from ``config._name_or_path``. A policy that
   only exists in memory (merged LoRA, vocabulary just added) is written to ``OUTPUT/start`` and
   reloaded from there; a full / merged checkpoint directory is used as it is.
2. **Prompts** (:func:`build_prompt_data`): query tasks on procedural scenes (or a dataset dir) as a
   getok dataset directory ``OUTPUT/data/train`` (reused on resume), then TRL rows
   (:func:`grpo_rows`): ``prompt`` (conversational, the SFT / evaluation prompt), ``images``,
   ``truth`` (packed, :mod:`getok.rl.truth`), ``sample_id``. Stage 2 keeps single-target mask samples.
3. **Tuning**: LoRA on the language model + trainable new rows (dict-form ``trainable_token_indices``,
   TRL's fused-head fix) or full fine-tuning, as in SFT.
4. **Rewards**: :func:`getok.rl.rewards_trl.make_reward_fn` for the stage with the configured decoder
   (``proposals:proposer=exact`` on scenes via :class:`~getok.decoding.scenes.SceneExactDecoder`) and weights.
5. **Stage 2's real two-turn rollouts**: before each generation batch :class:`GetokGRPOTrainer` asks a
   :class:`~getok.rl.stage2.ProposalStore` for the current policy's greedy stage-1 answer of each
   prompt (fresh by default), writes it into the conversation as the assistant's first turn followed by
   the refine prompt, and passes it to the reward as the ``proposal`` column; invalid / ``none``
   proposals fall back to a builder-made noisy proposal (or mask the group), counted as
   ``proposals/*`` metrics.
6. Held-out evaluation before, every ``eval.every_steps`` and after (stage 2: the two-turn
   self-correction protocol: turn-1 IoU, turn-2 IoU, the oracle's); metrics per step in
   ``OUTPUT/metrics.jsonl``; self-describing checkpoints (SFT's layout: weights or adapter +
   ``getok_layout.json`` + ``getok_train.yaml`` + the ``getok_checkpoint.json`` marker, written last);
   ``OUTPUT/final``; ``OUTPUT/summary.json`` (timings wall and CPU, evaluation, proposal counts);
   ``OUTPUT/reward_curve.png``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from ..io import atomic_write_json, atomic_write_text
from ..provenance import cpu_seconds, fingerprint
from ..train.callbacks import (
    CHECKPOINT_INFO_FILE,
    CONFIG_FILE,
    CheckpointInfoCallback,
    JsonlMetricsCallback,
    last_complete_checkpoint,
    read_checkpoint_info,
    read_metrics,
    write_checkpoint_info,
)
from ..train.checkpoints import truncate_jsonl
from ..vocab.layout import VocabLayout
from .grpo_config import GRPORunConfig, grpo_config_yaml

__all__ = [
    "StartPolicy",
    "load_start_policy",
    "ensure_start_dir",
    "setup_tuning",
    "build_prompt_data",
    "grpo_rows",
    "reward_functions",
    "grpo_arguments",
    "make_trainer",
    "evaluate_policy",
    "plot_reward_curve",
    "run_grpo",
]

log = logging.getLogger("getok.rl.grpo")

START_DIR = "start"
PROPOSALS_FILE = "getok_proposals.json"  # stage 2's proposal store in a checkpoint (exact resume)


# ---------------------------------------------------------------------------------------------- policy
@dataclass
class StartPolicy:
    """The starting (SFT) policy.

    Attributes
    ----------
    model, processor
    layout : VocabLayout
        With ids.
    source_dir : Path or None
        A directory whose ``from_pretrained`` reproduces ``model`` exactly (``None``: in memory only).
    origin : str
        What it was loaded from (for the summary).
    """

    model: object
    processor: object
    layout: VocabLayout
    source_dir: Path | None
    origin: str


def _dtype(cfg: GRPORunConfig):
    return None if cfg.model.dtype == "auto" else cfg.model.dtype


def load_start_policy(cfg: GRPORunConfig, output_dir: str | Path) -> StartPolicy:
    """Load ``model.path`` (module docstring, step 1) with the vocabulary; pixel bounds set."""
    from ..train.sft import prepare_base, set_pixel_bounds
    from ..vocab import add_spatial_tokens, load_model_and_processor, tokenizer_of, validate_layout

    m = cfg.model
    kw = {"dtype": _dtype(cfg), "trust_remote_code": m.trust_remote_code, "attn_implementation": m.attn_implementation}
    path = Path(m.path)
    if m.is_tiny:
        base = prepare_base(cfg, output_dir)  # the embedded tiny model in OUTPUT/base (SFT's helper)
        model, processor = load_model_and_processor(base, **kw)
        layout = add_spatial_tokens(processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed)
        source, origin = None, f"tiny (untrained, seed {m.tiny_seed}) + {cfg.vocab.codecs}"
    elif (path / CHECKPOINT_INFO_FILE).is_file():
        info = read_checkpoint_info(path)
        layout = VocabLayout.load(path)
        if (path / "adapter_config.json").is_file():
            from ..vocab import load_adapter

            peft_model, processor, got = load_adapter(path, base=m.base or info.get("base_model"), **{
                k: v for k, v in kw.items() if v is not None})  # fmt: skip
            got.check_matches(layout, what=f"checkpoint {path}")
            model = peft_model.merge_and_unload()  # the SFT policy = base + LoRA + trained rows
            source, origin = None, f"{path} (LoRA, merged in memory)"
        else:
            model, processor = load_model_and_processor(path, **kw)
            source, origin = path, f"{path} ({info.get('tuning', 'full')})"
        validate_layout(layout, processor, model)
        layout = layout.with_ids(tokenizer_of(processor)) if layout.ids is None else layout
    else:
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.path {path} is neither an SFT checkpoint, a model directory nor 'tiny'")
        model, processor = load_model_and_processor(path, **kw)
        n_before = len(tokenizer_of(processor))
        layout = add_spatial_tokens(processor, model, cfg.vocab.codecs, init=cfg.vocab.init, seed=cfg.vocab.init_seed)
        source = path if len(tokenizer_of(processor)) == n_before else None
        origin = f"{path} (+ {cfg.vocab.codecs})" if source is None else str(path)
    set_pixel_bounds(processor, m.min_pixels, m.max_pixels)
    validate_layout(layout, processor, model)
    return StartPolicy(model, processor, layout, source, origin)


def ensure_start_dir(policy: StartPolicy, cfg: GRPORunConfig, output_dir: str | Path) -> StartPolicy:
    """Make the start policy reloadable from a directory (module docstring, step 1).

    A policy with a ``source_dir`` is returned as it is. Otherwise it is written to ``OUTPUT/start``
    (weights, processor, layout, marker; kept on resume when its layout hash matches) and reloaded from
    there, so that ``model.config._name_or_path`` names that directory.
    """
    from ..vocab import load_model_and_processor, save_with_layout

    if policy.source_dir is not None:
        return policy
    d = Path(output_dir) / START_DIR
    if (d / CHECKPOINT_INFO_FILE).is_file():
        if read_checkpoint_info(d).get("layout_hash") != policy.layout.hash:
            raise DataError(f"{d} holds a start policy with another vocabulary; remove it or change output_dir")
    else:
        save_with_layout(policy.model, policy.processor, policy.layout, d, overwrite=True)
        write_checkpoint_info(d, policy.layout, grpo_config_yaml(cfg), {"tuning": "merged", "start_of": "grpo",
                                                                         "origin": policy.origin})  # fmt: skip
    model, processor = load_model_and_processor(
        d, dtype=_dtype(cfg), trust_remote_code=cfg.model.trust_remote_code, attn_implementation=cfg.model.attn_implementation
    )  # fmt: skip
    from ..train.sft import set_pixel_bounds

    set_pixel_bounds(processor, cfg.model.min_pixels, cfg.model.max_pixels)
    return StartPolicy(model, processor, policy.layout, d, policy.origin)


def setup_tuning(model, layout: VocabLayout, cfg: GRPORunConfig):
    """LoRA (+ trainable new rows, TRL fused-head fix) or full fine-tuning; returns ``(model, counts)``
    (:func:`getok.train.sft.setup_tuning` with the run's ``tuning`` section)."""
    from ..train.sft import setup_tuning as _setup

    return _setup(model, layout, cfg.tuning)


def answer_codec(cfg: GRPORunConfig, layout: VocabLayout) -> str:
    """``data.codec`` (checked against the model's layout), else the layout's first ``grid_offset`` codec."""
    from ..codecs.base import get_codec

    if cfg.data.codec is not None:
        if cfg.data.codec not in layout.codecs and get_codec(cfg.data.codec).new_tokens():
            raise ConfigError(f"data.codec {cfg.data.codec!r} is not in the model's vocabulary {layout.codecs}")
        return cfg.data.codec
    for spec in layout.codecs:
        if get_codec(spec).name == "grid_offset":
            return spec
    if cfg.rl.stage == 2:
        raise ConfigError(f"stage 2 needs a grid_offset codec in the model's vocabulary, got {layout.codecs}")
    return layout.codecs[0]


def _single_target(s) -> bool:
    return len(s.truth.get("masks") or []) == 1


def build_prompt_data(cfg: GRPORunConfig, spec: str, out_dir: str | Path, *, progress: bool = False) -> Path:
    """The prompts as a getok dataset directory (reused when already built with the same settings).

    Procedural scenes (``data.scenes``) → query tasks ``data.tasks`` in ``spec`` (mask answers: greedy
    cells over the exact regions, the SFT targets), or the samples of ``data.dataset`` with those tasks;
    stage 2 keeps single-target samples; at most ``data.num_samples`` (shuffled with ``seed``).
    """
    from ..config import config_to_dict
    from ..data_builders.dataset import read_dataset, write_dataset
    from ..data_builders.tasks import SampleList
    from ..train.config import MixtureEntry
    from ..train.data import _scenes_source, build_pool, check_dataset_layout

    out = Path(out_dir)
    d = cfg.data
    spec_fp = {"data": config_to_dict(d), "codec": spec, "tasks": cfg.tasks, "stage": cfg.rl.stage, "seed": cfg.seed}
    fp = fingerprint(spec_fp)
    if out.exists():
        if read_dataset(out, check_images=False).manifest.get("builder", {}).get("fingerprint") == fp:
            return out
        raise DataError(f"{out} holds GRPO prompts built with other settings; remove it or use another output_dir")
    images, sources = {}, []
    if d.dataset is not None:
        ds = read_dataset(d.dataset)
        check_dataset_layout(ds.manifest, [spec], where=str(d.dataset))
        pool = SampleList(settings={"type": "dataset", "path": str(Path(d.dataset).resolve())})
        for s in ds:
            if s.task in cfg.tasks:
                s.image = str(ds.image_path(s).resolve())
                pool.append(s)
        sources = list(ds.manifest.get("sources") or [])
    else:
        from ..data_builders.scenes import generate_scenes

        scenes = generate_scenes(d.scenes.n, d.scenes.seed, d.scenes.scene_config())
        entry = MixtureEntry(type="tasks", tasks=list(cfg.tasks), codec=spec, greedy="exact")
        pool = build_pool(entry, [spec], scenes, d.task_seed)
        images = dict(getattr(pool, "images", {}))
        sources = [_scenes_source(d.scenes.n, d.scenes.seed, d)]
    samples = list(pool)
    dropped = 0
    if cfg.rl.stage == 2:
        keep = [s for s in samples if _single_target(s)]
        dropped = len(samples) - len(keep)
        samples = keep
    if d.num_samples is not None and len(samples) > d.num_samples:
        rng = np.random.default_rng(cfg.seed)
        samples = [samples[i] for i in sorted(rng.choice(len(samples), d.num_samples, replace=False))]
    if not samples:
        raise DataError(f"no prompts for stage {cfg.rl.stage} with tasks {cfg.tasks}")
    used = {s.image_id for s in samples}
    images = {k: v for k, v in images.items() if k in used}
    manifest = {
        "builder": {"fingerprint": fp, **spec_fp, "not_single_target": dropped, "kind": "grpo-prompts"},
        "sources": sources,
        "skipped": list(getattr(pool, "skipped", [])),
    }
    return write_dataset(samples, out, manifest, images=images)


def sample_truth(sample, stage: int, layout_hash: str | None) -> str:
    """The packed truth of a prompt (:func:`~getok.data_builders.export.easyr1_truth`, task ``stage<k>``)."""
    from ..data_builders.export import easyr1_truth

    t = easyr1_truth(sample, layout_hash)
    t["task"] = f"stage{stage}"
    t.pop("proposal", None)  # stage 2: the policy's own proposal comes with each rollout
    return json.dumps(t, separators=(",", ":"))


def grpo_rows(ds, stage: int, layout_hash: str | None = None):
    """TRL rows of a prompt dataset: ``prompt`` (conversational), ``images``, ``truth``, ``sample_id``.

    Returns
    -------
    datasets.Dataset
        ``images`` is a list of ``datasets.Image`` (file paths, decoded to PIL when read).
    """
    from ..errors import require
    from ..eval.generate import prompt_messages

    datasets = require("datasets", "train", "GRPO prompts")
    f = datasets
    rows = {"prompt": [], "images": [], "truth": [], "sample_id": []}
    for s in ds:
        rows["prompt"].append(prompt_messages(s))
        rows["images"].append([{"path": str(ds.image_path(s).resolve()), "bytes": None}])
        rows["truth"].append(sample_truth(s, stage, layout_hash))
        rows["sample_id"].append(s.sample_id)
    content = f.List({"type": f.Value("string"), "text": f.Value("string")})
    features = f.Features({
        "prompt": f.List({"role": f.Value("string"), "content": content}),
        "images": f.List(f.Image()),
        "truth": f.Value("string"),
        "sample_id": f.Value("string"),
    })  # fmt: skip
    return f.Dataset.from_dict(rows, features=features)


# ---------------------------------------------------------------------------------------------- rewards
def reward_functions(cfg: GRPORunConfig, manifest: dict | None = None) -> list:
    """The stage's TRL reward function (one; components logged as ``getok_stage<k>/<name>``).

    With ``proposals.on_invalid = "mask"``, completions whose prompt carries a fallback proposal
    (``proposal_source == "masked"``) all score 0, so their group has zero advantage.
    """
    from ..decoding import get_decoder
    from .rewards_decoding import DecoderSession
    from .rewards_trl import make_reward_fn

    stage = cfg.rl.stage
    session = DecoderSession(get_decoder(cfg.reward.decoder, manifest=manifest))
    fn = make_reward_fn(f"stage{stage}", cfg.reward.reward_config(), decoder=session, name=f"getok_stage{stage}")
    if stage == 2 and cfg.proposals.on_invalid == "mask":
        inner = fn

        def reward(completions, **kwargs):
            r = inner(completions, **kwargs)
            src = kwargs.get("proposal_source")
            return r if src is None else [0.0 if s == "masked" else v for v, s in zip(r, src)]

        reward.__name__ = inner.__name__
        reward.scorer = inner.scorer
        fn = reward
    return [fn]


# ---------------------------------------------------------------------------------------------- trainer
def grpo_arguments(cfg: GRPORunConfig, output_dir: str | Path, *, progress: bool = True):
    """TRL ``GRPOConfig`` of a run."""
    from trl import GRPOConfig

    from ..train.sft import common_trainer_kwargs

    rl, tr = cfg.rl, cfg.train
    return GRPOConfig(
        **common_trainer_kwargs(tr, output_dir, seed=cfg.seed, progress=progress),
        per_device_train_batch_size=cfg.per_device_batch,
        num_generations=rl.num_generations,
        dataloader_num_workers=0,  # stage 2 rewrites rows in the main process; images are small
        # the algorithm
        beta=rl.beta,
        importance_sampling_level=rl.importance_sampling_level,
        loss_type=rl.loss_type,
        epsilon=rl.epsilon,
        epsilon_high=rl.epsilon_high,
        temperature=rl.temperature,
        top_p=rl.top_p,
        max_completion_length=rl.max_completion_length,
        scale_rewards=rl.scale_rewards,
        num_iterations=rl.num_iterations,
        mask_truncated_completions=rl.mask_truncated_completions,
        entropy_coef=rl.entropy_coef,
        log_completions=False,
    )


def _trainer_class():
    from trl import GRPOTrainer

    from ..train.checkpoints import CheckpointMixin

    class GetokGRPOTrainer(CheckpointMixin, GRPOTrainer):
        """``GRPOTrainer`` with stage 2's real two-turn rollouts and getok's checkpoints.

        With a :class:`~getok.rl.stage2.ProposalStore` (``proposal_store=``), every generation batch is
        rewritten before the rollouts: each row's prompt becomes the two-turn conversation with the
        current policy's own greedy stage-1 answer (module docstring, step 5). The proposal generation
        runs in eval mode under a forked torch RNG, so the rollouts' sampling stream is unchanged.
        Checkpoints as SFT's (:mod:`getok.train.checkpoints`: compact adapters, exact full resume).
        """

        def __init__(self, *args, proposal_store=None, proposal_kwargs=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.getok_proposals = proposal_store
            self.getok_proposal_kwargs = dict(proposal_kwargs or {})

        def _getok_generate(self, samples):
            from ..eval.generate import generate_answers

            model = self.accelerator.unwrap_model(self.model)
            was = model.training
            model.eval()
            try:
                with fork_torch_rng():
                    return generate_answers(model, self.processing_class, samples, progress=False,
                                            **self.getok_proposal_kwargs)  # fmt: skip
            finally:
                model.train(was)

        def _generate(self, prompts):
            # an MoE config with output_router_logits=True (TRL sets it for the aux loss) makes generate()
            # compute the load-balancing loss against the padded prompt mask, which fails after the first
            # token: off while generating (the loss forward asks for router logits itself)
            cfg = self.accelerator.unwrap_model(self.model).config
            text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
            was = getattr(text_cfg, "output_router_logits", None)
            if was:
                text_cfg.output_router_logits = False
            try:
                return super()._generate(prompts)
            finally:
                if was:
                    text_cfg.output_router_logits = was

        def _get_per_token_logps_and_entropies(self, *args, **kwargs):
            from ..vocab.adapters import adapter_for

            for k in adapter_for(self.processing_class).trl_dropped_inputs:  # e.g. LLaVA-OneVision's
                v = kwargs.pop(k, None)
                if v is not None and any(int(n) != 1 for n in np.asarray(v.cpu() if hasattr(v, "cpu") else v).ravel()):
                    raise ConfigError(f"{k}: TRL cannot pass it to the model; getok drops it only when every "
                                      "sample has one image")  # fmt: skip
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)  # the marker (CheckpointInfoCallback.on_save) comes after
            if self.getok_proposals is not None and self.is_world_process_zero():
                d = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
                atomic_write_json(d / PROPOSALS_FILE, self.getok_proposals.state_dict())

        def _generate_and_score_completions(self, inputs):
            if self.getok_proposals is not None:
                inputs = self.getok_proposals.fill(inputs, int(self.state.global_step), self._getok_generate)
                for k, v in self.getok_proposals.rates().items():
                    self._log_metric(f"proposals/{k}", v)
            return super()._generate_and_score_completions(inputs)

    return GetokGRPOTrainer


def make_trainer(model, processor, rows, args, reward_funcs, callbacks=(), proposal_store=None, proposal_kwargs=None):
    """The :class:`GetokGRPOTrainer` (a ``GRPOTrainer`` subclass) over :func:`grpo_rows`."""
    from ..vocab.adapters import adapter_for

    cls = _trainer_class()
    trainer = cls(
        model=model, reward_funcs=reward_funcs, args=args, train_dataset=rows, processing_class=processor,
        callbacks=list(callbacks), proposal_store=proposal_store, proposal_kwargs=proposal_kwargs,
    )  # fmt: skip
    extra = adapter_for(processor).trl_chat_template_kwargs(processor)  # e.g. Pixtral: token lists, not tensors
    if extra:
        trainer.chat_template_kwargs = {**trainer.chat_template_kwargs, **extra}
    return trainer


# ---------------------------------------------------------------------------------------------- eval
def _turn(table: dict, t: int) -> dict:
    return table.get(t) or table.get(str(t)) or {}


def eval_headline(summary: dict, stage: int) -> dict:
    """The numbers worth a line: mIoU (gIoU), cIoU, invalid rate; stage 2: per-turn mIoU, the gain of the
    refinement turn, the oracle's, improved / worse counts."""
    ov = summary.get("overall", {})
    out = {"n": ov.get("n"), "mIoU": ov.get("gIoU"), "cIoU": ov.get("cIoU"), "invalid_rate": ov.get("invalid_rate")}
    per_task = summary.get("per_task") or {}
    if stage == 1 and len(per_task) > 1:
        out["per_task"] = {t: {"n": s.get("n"), "mIoU": s.get("gIoU")} for t, s in per_task.items()}
    sc = summary.get("selfcorrect")
    if stage == 2 and sc and sc.get("turns"):
        t1, t2 = _turn(sc["turns"], 1), _turn(sc["turns"], 2)
        o2 = _turn(sc.get("oracle", {}), 2)
        out.update(
            mIoU_turn1=t1.get("gIoU"), mIoU_turn2=t2.get("gIoU"),
            gain=None if t1.get("gIoU") is None or t2.get("gIoU") is None else t2["gIoU"] - t1["gIoU"],
            oracle_mIoU_turn2=o2.get("gIoU"),
            oracle_gain=None if t1.get("gIoU") is None or o2.get("gIoU") is None else o2["gIoU"] - t1["gIoU"],
            improved=t2.get("improved"), worse=t2.get("worse"), same=t2.get("same"),
            refine_invalid_rate=t2.get("refine_invalid_rate"), n_no_proposal=sc.get("n_no_proposal"),
            point_score=(t2.get("points") or {}).get("point_score"),
        )  # fmt: skip
    return out


def fork_torch_rng():
    """``torch.random.fork_rng`` over the CPU and every visible CUDA device: greedy generation
    (:func:`~getok.eval.generate.generate_answers`) seeds torch before each batch, and a held-out evaluation
    or a stage-2 proposal in the middle of training must not change the rollouts' random stream (a run with
    evaluations every 50 steps trains exactly as one without; tested)."""
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    return torch.random.fork_rng(devices=devices)


def evaluate_policy(model, processor, eval_dir, cfg: GRPORunConfig, out_dir, *, progress: bool = False) -> dict:
    """Held-out evaluation (:func:`getok.eval.runner.evaluate`); stage 2 with two self-correction turns.

    Returns :func:`eval_headline` of the summary (records and tables are written under ``out_dir``).
    """
    from ..eval.runner import evaluate

    ev = cfg.eval
    was = model.training
    model.eval()
    try:
        with fork_torch_rng():  # generation re-seeds torch per batch: keep the training stream untouched
            summary = evaluate(
                model, processor, str(eval_dir), decoder=ev.decoder, out_dir=str(out_dir), limit=ev.limit,
                batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens, resume=False, progress=progress,
                seed=cfg.seed, turns=2 if cfg.rl.stage == 2 else 1, oracle=True,
                model_name=f"{cfg.output_dir} ({Path(out_dir).name})",
            )  # fmt: skip
    finally:
        model.train(was)
    return eval_headline(summary, cfg.rl.stage)


def _periodic_eval_callback(processor, eval_dir, cfg: GRPORunConfig, out: Path):
    from transformers import TrainerCallback

    class PeriodicEval(TrainerCallback):
        """Evaluate every ``eval.every_steps`` steps; one JSON row per evaluation in ``eval_curve.jsonl``."""

        def on_step_end(self, args, state, control, model=None, **kwargs):
            n = cfg.eval.every_steps
            if not n or state.global_step % n or not state.is_world_process_zero:
                return
            t0 = time.perf_counter()
            head = evaluate_policy(model, processor, eval_dir, cfg, out / "eval" / f"step-{state.global_step}")
            row = {"step": int(state.global_step), **head, "eval_s": round(time.perf_counter() - t0, 1)}
            with open(out / "eval_curve.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")

    return PeriodicEval()


# ---------------------------------------------------------------------------------------------- plots
def _moving_average(x: np.ndarray, k: int) -> np.ndarray:
    if len(x) < 2 or k <= 1:
        return x
    k = min(k, len(x))
    c = np.cumsum(np.insert(x, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def plot_reward_curve(metrics_path: str | Path, out_png: str | Path, *, eval_rows: list[dict] | None = None,
                      title: str = "", window: int = 10) -> Path | None:  # fmt: skip
    """Mean reward per step (and its moving average) from ``metrics.jsonl``; held-out mIoU points when
    given. Returns the PNG path (``None`` when there is nothing to plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in read_metrics(metrics_path) if "reward" in r]
    if not recs:
        return None
    steps = np.array([r["step"] for r in recs])
    reward = np.array([r["reward"] for r in recs], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, reward, color="0.75", lw=0.8, label="mean reward (per step)")
    ax.plot(steps, _moving_average(reward, window), color="C0", lw=2, label=f"moving average ({window})")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    if eval_rows:
        key = "mIoU_turn2" if any("mIoU_turn2" in r for r in eval_rows) else "mIoU"
        es = [r["step"] for r in eval_rows if r.get(key) is not None]
        ev = [r[key] for r in eval_rows if r.get(key) is not None]
        ax2 = ax.twinx()
        ax2.plot(es, ev, "o-", color="C3", label=f"held-out {key}")
        ax2.set_ylabel(f"held-out {key}")
        ax2.legend(loc="lower right")
    ax.legend(loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------- run
def checkpoint_info(cfg: GRPORunConfig, start: StartPolicy) -> dict:
    from .._version import __version__

    return {
        "base_model": str(Path(start.source_dir).resolve()) if start.source_dir else None,
        "tuning": cfg.tuning.mode,
        "trainer": "grpo",
        "stage": cfg.rl.stage,
        "start_policy": start.origin,
        "getok_version": __version__,
    }


def resolve_resume(cfg: GRPORunConfig, output_dir: Path) -> Path | None:
    r = cfg.train.resume
    if r == "never":
        return None
    if r == "auto":
        return last_complete_checkpoint(output_dir)
    p = Path(r)
    read_checkpoint_info(p)
    return p


def _save_final(model, processor, layout, cfg, info: dict, out: Path, step: int, state_dict=None) -> Path:
    from ..train.sft import save_model_dir

    save_model_dir(model, processor, layout, out, lora=cfg.tuning.mode == "lora", state_dict=state_dict)
    write_checkpoint_info(out, layout, grpo_config_yaml(cfg), {**info, "step": step, "final": True})
    return out


def _reward_stats(metrics: list[dict], key: str = "reward", k: int = 20) -> dict:
    vals = [r[key] for r in metrics if key in r]
    if not vals:
        return {}
    k = max(1, min(k, len(vals) // 2 or 1))
    return {"first_mean": float(np.mean(vals[:k])), "last_mean": float(np.mean(vals[-k:])), "window": k,
            "steps_logged": len(vals)}  # fmt: skip


def run_grpo(cfg: GRPORunConfig, *, progress: bool = True) -> dict:
    """Run GRPO as configured; returns (and writes to ``OUTPUT/summary.json``) the run summary.

    Returns
    -------
    dict
        ``output_dir``, ``final``, ``start_policy``, ``data`` (prompt counts), ``params``, ``train``
        (steps, reward first / last window means, wall and CPU seconds, s/step), ``proposals`` (stage 2
        counts), ``eval_before`` / ``eval_after`` (:func:`eval_headline`), ``curve`` (the PNG).
    """
    from accelerate import PartialState
    from transformers import set_seed

    from ..data_builders.dataset import read_dataset
    from ..train.data import build_eval_set
    from ..train.sft import resolve_use_cpu, zero3_state_dict
    from .stage2 import ProposalStore

    if not cfg.model.is_tiny:  # a family getok cannot drive (PaliGemma) fails here, in one line
        from ..vocab.adapters import check_supported_dir

        check_supported_dir(cfg.model.path, trust_remote_code=cfg.model.trust_remote_code)
    t_wall, t_cpu = time.perf_counter(), cpu_seconds()
    state = PartialState(cpu=resolve_use_cpu(cfg.train))  # several CPU processes: one gloo group
    out = Path(cfg.output_dir)
    set_seed(cfg.seed)
    if cfg.train.torch_threads is not None:
        import torch

        torch.set_num_threads(cfg.train.torch_threads)

    eval_dir = None
    with state.main_process_first():  # rank 0 writes base, start policy and prompts; the others reuse them
        if state.is_main_process:
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / CONFIG_FILE, grpo_config_yaml(cfg))
        start = load_start_policy(cfg, out)
        start = ensure_start_dir(start, cfg, out)
        layout = start.layout
        spec = answer_codec(cfg, layout)
        train_dir = build_prompt_data(cfg, spec, out / "data" / "train", progress=progress)
        if cfg.eval.enabled:
            eval_dir = build_eval_set(cfg.eval, cfg.data, spec, out / "data" / "eval")
    ds = read_dataset(train_dir)
    rows = grpo_rows(ds, cfg.rl.stage, layout.hash)
    rewards = reward_functions(cfg, ds.manifest)

    processor = start.processor
    summary: dict = {"output_dir": str(out), "start_policy": start.origin, "start_dir": str(start.source_dir),
                     "codec": spec, "layout_hash": layout.hash, "stage": cfg.rl.stage,
                     "data": {"prompts": len(ds), "path": str(train_dir)}}  # fmt: skip
    resume = resolve_resume(cfg, out)
    if cfg.eval.enabled and cfg.eval.before and resume is None and state.is_main_process:
        summary["eval_before"] = evaluate_policy(start.model, processor, eval_dir, cfg, out / "eval" / "before",
                                                 progress=progress)  # fmt: skip
        log.info("held-out before: %s", summary["eval_before"])
    elif (out / "summary.json").is_file():
        prev = json.loads((out / "summary.json").read_text())
        if "eval_before" in prev:
            summary["eval_before"] = prev["eval_before"]

    model, counts = setup_tuning(start.model, layout, cfg)
    summary["params"] = counts
    store, pkw = None, None
    if cfg.rl.stage == 2:
        p = cfg.proposals
        store = ProposalStore(
            ds.samples, spec, refresh_steps=p.refresh_steps, on_invalid=p.on_invalid, max_cells=cfg.max_cells,
            fallback_k=p.fallback_k, seed=cfg.seed,
        )  # fmt: skip
        pkw = {
            "max_new_tokens": p.max_new_tokens,
            "batch_size": p.batch_size,
            "seed": cfg.seed,
            "image_root": str(ds.root),
        }

    args = grpo_arguments(cfg, out, progress=progress)
    info = checkpoint_info(cfg, start)
    callbacks = [
        JsonlMetricsCallback(out / "metrics.jsonl"),
        CheckpointInfoCallback(layout, grpo_config_yaml(cfg), info),
    ]
    if cfg.eval.enabled and cfg.eval.every_steps:
        callbacks.append(_periodic_eval_callback(processor, eval_dir, cfg, out))
    trainer = make_trainer(model, processor, rows, args, rewards, callbacks, store, pkw)
    if resume is not None:
        log.info("resuming from %s", resume)
        done = read_checkpoint_info(resume)["step"]
        if trainer.is_world_process_zero():
            for log_file in ("metrics.jsonl", "eval_curve.jsonl"):
                truncate_jsonl(out / log_file, done)
        if store is not None and (resume / PROPOSALS_FILE).is_file():
            store.load_state_dict(json.loads((resume / PROPOSALS_FILE).read_text()))
    t0w, t0c = time.perf_counter(), cpu_seconds()
    trainer.train(resume_from_checkpoint=str(resume) if resume is not None else None)
    train_wall, train_cpu = time.perf_counter() - t0w, cpu_seconds() - t0c
    step = int(trainer.state.global_step)
    state_dict = zero3_state_dict(trainer)  # every rank: ZeRO-3 gathers the shards
    if trainer.is_world_process_zero():
        summary["final"] = str(_save_final(trainer.model, processor, layout, cfg, info, out / "final", step,
                                           state_dict))  # fmt: skip
    metrics = read_metrics(out / "metrics.jsonl")
    summary["train"] = {
        "steps": step,
        "resumed_from": str(resume) if resume else None,
        "reward": _reward_stats(metrics),
        "train_wall_s": round(train_wall, 1),
        "train_cpu_s": round(train_cpu, 1),
        "s_per_step": round(train_wall / max(1, step - (int(resume.name.split("-")[-1]) if resume else 0)), 3),
        "completions_per_step": cfg.per_device_batch * cfg.train.grad_accum * state.num_processes,
    }
    if store is not None:
        counts = dict(store.counts)
        if state.num_processes > 1:  # each rank fills the proposals of its own prompts: sum over ranks
            from accelerate.utils import gather_object

            counts = {}
            for c in gather_object([dict(store.counts)]):
                for k, v in c.items():
                    counts[k] = counts.get(k, 0) + v
        summary["proposals"] = counts
    if cfg.eval.enabled and trainer.is_world_process_zero():
        summary["eval_after"] = evaluate_policy(trainer.model, processor, eval_dir, cfg, out / "eval" / "after",
                                                progress=progress)  # fmt: skip
        log.info("held-out after: %s", summary["eval_after"])
    curve_rows = []
    if (out / "eval_curve.jsonl").is_file():
        curve_rows = [json.loads(x) for x in (out / "eval_curve.jsonl").read_text().splitlines() if x.strip()]
    if "eval_before" in summary:
        curve_rows = [{"step": 0, **summary["eval_before"]}] + [r for r in curve_rows if r["step"] != 0]
    if "eval_after" in summary:
        curve_rows = [r for r in curve_rows if r["step"] != step] + [{"step": step, **summary["eval_after"]}]
    png = None
    if trainer.is_world_process_zero():
        png = plot_reward_curve(out / "metrics.jsonl", out / "reward_curve.png", eval_rows=curve_rows,
                                title=f"GRPO stage {cfg.rl.stage}: {Path(cfg.output_dir).name}")  # fmt: skip
    summary["curve"] = str(png) if png else None
    summary["total_wall_s"] = round(time.perf_counter() - t_wall, 1)
    summary["total_cpu_s"] = round(cpu_seconds() - t_cpu, 1)
    if trainer.is_world_process_zero():
        atomic_write_json(out / "summary.json", summary)
    state.wait_for_everyone()  # several processes: no rank exits while rank 0 still writes
    return summary
