"""``getok rl train`` and ``getok rl …``: GRPO on one machine, and the EasyR1 data path for clusters.

::

    getok rl train --stage 1 configs/grpo/tiny-cpu-stage1.yaml            # TRL GRPOTrainer, stage 1
    getok rl train --stage 2 configs/grpo/tiny-cpu-stage2.yaml model.path=runs/grpo-s1/final
    getok rl train configs/grpo/qwen2_5_vl_7b-stage1.yaml --dry-run        # validate + print, no compute

    getok rl make-stage2-data --model runs/grpo-s1/final --data runs/tasks --out runs/stage2-data
    getok rl export-easyr1 --stage 1 --data runs/tasks --out runs/easyr1-s1 --model MODEL_DIR
    getok rl export-easyr1 --stage 2 --data runs/stage2-data --out runs/easyr1-s2 --model MODEL_DIR
    getok rl check-easyr1 --model MODEL_DIR --config configs/easyr1/qwen2_5_vl_7b-stage1.yaml [key=value ...]
    getok rl export-easyr1-model --model runs/sft/merged --out runs/sft/easyr1-model   # for transformers 4.5x
    getok rl export-verl --data runs/tasks --out runs/verl-s2 --model MODEL_DIR   # verl stage 2 (multi-turn rollouts)
    getok rl check-verl --config configs/verl/qwen2_5_vl_7b-stage2.yaml [key=value ...]  # in verl's environment

GRPO training and its data share one group: ``getok rl train --stage 1|2 CONFIG.yaml [k=v ...]`` beside the
data commands above.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..cli.main import main as cli_main
from ..train.cli import add_train_command
from ..train.sft import is_rank_zero
from .easyr1 import check_easyr1, export_easyr1_stage, make_stage2_data
from .easyr1_model import export_easyr1_model
from .grpo import run_grpo
from .grpo_config import grpo_config_yaml, load_grpo_config
from .verl_stage2 import check_verl, export_verl_stage2

__all__ = [
    "register",
    "cmd_grpo",
    "cmd_make_stage2_data",
    "cmd_export_easyr1",
    "cmd_check_easyr1",
    "cmd_export_easyr1_model",
    "cmd_export_verl",
    "cmd_check_verl",
    "main",
]

log = logging.getLogger("getok.rl.cli")


# ---------------------------------------------------------------------------------------------- rl train
def _stage_override(args, overrides: list[str]) -> list[str]:
    if getattr(args, "stage", None) is None:
        return overrides
    return [*overrides, f"rl.stage={args.stage}"]  # --stage wins over the YAML's rl.stage


def cmd_grpo(config: str | None, overrides: list[str], args) -> int:
    cfg = load_grpo_config(config, _stage_override(args, overrides))  # ConfigError before anything heavy
    if args.dry_run:
        print(grpo_config_yaml(cfg), end="")
        return 0

    s = run_grpo(cfg, progress=not args.quiet)
    if not is_rank_zero():  # several processes: rank 0 reports
        return 0
    tr = s.get("train", {})
    rw = tr.get("reward", {})
    print(f"stage {cfg.rl.stage}: {tr.get('steps')} steps in {tr.get('train_wall_s')} s (CPU {tr.get('train_cpu_s')} s, "
          f"{tr.get('s_per_step')} s/step); mean reward {rw.get('first_mean')} -> {rw.get('last_mean')}")  # fmt: skip
    print(f"final: {s.get('final')}")
    for key in ("eval_before", "eval_after", "proposals"):
        if key in s:
            print(f"{key}: {json.dumps(s[key])}")
    print(f"summary: {cfg.output_dir}/summary.json  curve: {s.get('curve')}")
    return 0


# ---------------------------------------------------------------------------------------------- rl group
def cmd_make_stage2_data(args) -> int:
    out, counts = make_stage2_data(
        args.model, args.data, args.out, tasks=tuple(args.tasks.split(",")) if args.tasks else None,
        on_invalid=args.on_invalid, max_cells=args.max_cells, fallback_k=args.fallback_k, limit=args.limit,
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, seed=args.seed, base=args.base,
        overwrite=args.overwrite, progress=not args.quiet,
    )  # fmt: skip
    print(f"wrote stage-2 samples to {out}: {json.dumps(dict(counts), sort_keys=True)}")
    return 0


def cmd_export_easyr1(args) -> int:
    out = export_easyr1_stage(
        args.data, args.out, stage=args.stage, model=args.model, embed_images=not args.image_paths,
        skip_special_tokens=not args.keep_special_tokens, overwrite=args.overwrite, progress=not args.quiet,
    )  # fmt: skip
    man = json.loads((Path(out) / "manifest.json").read_text())
    print(f"wrote {man.get('export', {}).get('rows')} EasyR1 rows (stage {args.stage}) to {out}/train.parquet")
    return 0


def cmd_check_easyr1(args) -> int:
    easyr1 = False if args.no_easyr1 else args.easyr1
    report = check_easyr1(model=args.model, data=args.data, config=args.config, overrides=args.overrides, easyr1=easyr1)
    for line in report:
        print(line)
    return 0


def cmd_export_easyr1_model(args) -> int:
    out = export_easyr1_model(args.model, args.out, tokenizer_class=args.tokenizer_class, overwrite=args.overwrite)
    print(f"wrote {out}: loads under transformers 4.5x (EasyR1) and 5.x")
    return 0


def cmd_export_verl(args) -> int:
    out, counts = export_verl_stage2(
        args.data, args.out, model=args.model, tasks=tuple(args.tasks.split(",")) if args.tasks else None,
        fallback_k=args.fallback_k, seed=args.seed, limit=args.limit, overwrite=args.overwrite, progress=not args.quiet,
    )  # fmt: skip
    print(f"wrote {counts['rows']} verl stage-2 rows to {out}/train.parquet: {json.dumps(dict(counts), sort_keys=True)}")
    return 0


def cmd_check_verl(args) -> int:
    for line in check_verl(args.config, args.overrides, model=args.model, data=args.data):
        print(line)
    return 0


def register(subparsers) -> None:
    """Add the ``rl`` group: ``train`` (GRPO with TRL) and its data commands (``make-stage2-data``,
    ``export-easyr1``, ``check-easyr1``, ``export-easyr1-model``, ``export-verl``, ``check-verl``)."""

    rl = subparsers.add_parser("rl", help="GRPO: train (TRL, one machine), stage-2 data, EasyR1 / verl exports and guards")
    sub = rl.add_subparsers(dest="rl_command", metavar="WHAT")
    rl.set_defaults(func=lambda args: (rl.print_help(), 1)[1])

    p = add_train_command(
        sub, "train", cmd_grpo,
        help="GRPO with TRL (stage 1: propose grid cells; stage 2: refine them): getok rl train --stage 1|2 CONFIG.yaml [k=v ...]",
    )  # fmt: skip
    p.add_argument("--stage", type=int, choices=(1, 2), help="GRPO stage (overrides rl.stage; put it before CONFIG)")

    p = sub.add_parser("make-stage2-data", help="stage-2 samples whose prompts embed a stage-1 model's proposals")
    p.add_argument(
        "--model", required=True, help="stage-1 policy: a getok checkpoint (SFT / GRPO stage 1) or model dir"
    )
    p.add_argument("--base", help="base model of a LoRA checkpoint (default: the recorded one)")
    p.add_argument("--data", required=True, type=Path, help="getok dataset dir with single-target mask samples")
    p.add_argument("--out", required=True, type=Path, help="dataset dir to write (two-turn refine samples)")
    p.add_argument("--tasks", help="comma-separated tasks to use (default: text>mask,point>mask,box>mask)")
    p.add_argument("--on-invalid", choices=("fallback", "skip"), default="fallback",
                   help="invalid / none proposals: a builder-made noisy proposal (default) or drop the sample")  # fmt: skip
    p.add_argument("--max-cells", type=int, default=64, help="longest refinable proposal (cells; default 64)")
    p.add_argument("--fallback-k", type=int, default=6, help="cells of a fallback proposal (default 6)")
    p.add_argument("--limit", type=int, help="at most this many samples")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_make_stage2_data)

    p = sub.add_parser("export-easyr1", help="EasyR1 rows (problem / answer / images) for stage 1 or 2")
    p.add_argument("--stage", type=int, choices=(1, 2), required=True)
    p.add_argument("--data", required=True, type=Path,
                   help="stage 1: a dataset of grid mask tasks; stage 2: the output of make-stage2-data")  # fmt: skip
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--model", help="the model EasyR1 will train: its tokenizer is checked (spatial tokens non-special)")
    p.add_argument("--keep-special-tokens", action="store_true",
                   help="the EasyR1 run sets worker.reward.skip_special_tokens=false (relaxes the token guard)")  # fmt: skip
    p.add_argument("--image-paths", action="store_true", help="store image paths (set data.image_dir=OUT), not bytes")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export_easyr1)

    p = sub.add_parser(
        "check-easyr1",
        help="guards before an EasyR1 launch: the YAML in EasyR1's own schema, tokens, data layout, settings",
        description="Merges --config and the key=value overrides into EasyR1's own PPOConfig exactly as "
                    "verl/trainer/main.py does (when EasyR1's source and omegaconf import; otherwise says so and runs "
                    "getok's own checks only), then checks the model's spatial tokens, the rows' layout and the settings.",
    )  # fmt: skip
    p.add_argument("--model", help="model directory EasyR1 will load (worker.actor.model.model_path)")
    p.add_argument("--data", type=Path, help="an export-easyr1 directory")
    p.add_argument("--config", type=Path, help="the EasyR1 YAML")
    p.add_argument("--easyr1", type=Path,
                   help="EasyR1's source checkout (default: $GETOK_EASYR1, ../shared/third_party/EasyR1 beside the "
                        "checkout, or an installed EasyR1 verl)")  # fmt: skip
    p.add_argument("--no-easyr1", action="store_true", help="skip EasyR1's schema: getok's own checks only")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the overrides the launch passes after config=")
    p.set_defaults(func=cmd_check_easyr1)

    p = sub.add_parser(
        "export-easyr1-model",
        help="copy a model directory into a layout transformers 4.5x (EasyR1) and 5.x both load",
        description="Copies MODEL (weights hard-linked when possible) and rewrites tokenizer_config.json (a concrete "
                    "fast tokenizer class, extra_special_tokens as 4.x's dict), config.json (rope_scaling / "
                    "torch_dtype beside rope_parameters / dtype) and the processor files (preprocessor_config.json, "
                    "video_preprocessor_config.json) so that EasyR1's transformers 4.5x loads what getok saved with 5.x.",
    )  # fmt: skip
    p.add_argument("--model", required=True, type=Path, help="a full model directory (merge LoRA checkpoints first)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--tokenizer-class", help="force tokenizer_config.json's tokenizer_class (default: by model type)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_export_easyr1_model)

    p = sub.add_parser(
        "export-verl",
        help="verl rows for stage 2 with multi-turn rollouts (getok's agent loop: propose, refine instruction, refine)",
        description="Writes OUT/train.parquet: verl RLHFDataset rows (data_source, prompt, images, reward_model, "
                    "agent_name, extra_info.interaction_kwargs with the codec, image size and a builder-made fallback "
                    "proposal) from the single-target mask questions of a dataset. See configs/verl/ and docs/rl.md.",
    )  # fmt: skip
    p.add_argument("--data", required=True, type=Path, help="getok dataset dir with single-target grid mask questions")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--model", help="the model verl will train: its spatial tokens are checked (non-special, one id)")
    p.add_argument("--tasks", help="comma-separated tasks to use (default: text>mask,point>mask,box>mask)")
    p.add_argument("--fallback-k", type=int, default=6, help="cells of the fallback proposal (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_export_verl)

    p = sub.add_parser(
        "check-verl",
        help="guards before a verl launch: the YAML + overrides through verl's own config code, agent loop, reward, tokens",
        description="Composes --config with the key=value overrides exactly as python -m verl.trainer.main_ppo "
                    "--config-path DIR --config-name NAME does (Hydra over verl's ppo_trainer), runs verl's validate_config "
                    "and config dataclasses, then getok's checks (agent loop YAML, reward path and kwargs, data keys, "
                    "the model's spatial tokens, the rows' layout). Run it in verl's environment.",
    )  # fmt: skip
    p.add_argument("--config", required=True, type=Path, help="the verl YAML (configs/verl/qwen2_5_vl_7b-stage2.yaml)")
    p.add_argument("--model", help="model directory verl will load (default: actor_rollout_ref.model.path)")
    p.add_argument("--data", type=Path, help="an export-verl directory")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the overrides the launch passes")
    p.set_defaults(func=cmd_check_verl)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m getok.rl.cli``): the ``rl`` group (``train`` = GRPO included)."""

    return cli_main(argv, modules=['getok.rl.cli'])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
