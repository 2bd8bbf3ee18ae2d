"""The main job: ``getok demo --out DIR`` runs the whole GETok pipeline in miniature and writes a report.

Procedural scenes → the tiny offline Qwen3-VL with the grid + offset vocabulary (``grid_offset:n=8``) and
polygon answers written with the same tokens (``polygon:vertex=grid_offset,n=8``) → vision warm-up + SFT
(:func:`getok.train.sft.run_sft`) → GRPO stage 1 and stage 2 (:func:`getok.rl.grpo.run_grpo`) → held-out
evaluation of every model (:func:`getok.eval.runner.evaluate`, two-turn self-correction with the oracle and
no-refinement baselines, polygon answers through the ``polygon`` decoder) and of trivial answer baselines
→ a report folder::

    DIR/
      summary.md        the tables (per task and model, self-correction per turn, polygon mode, baselines,
                        timings per stage) and what the CPU miniature can and cannot show
      run.json          configuration, seeds, versions, per-stage wall / CPU time, invocations
      figures/          training_curves.png (SFT loss, GRPO rewards), miou_by_model.png
      viz/              per-sample overlays and index.html of the final model (getok.eval.viz / report)
      data/ sft/ grpo1/ grpo2/ eval/   the stages' outputs (datasets, checkpoints, evaluation records)
      stages/<stage>.json              completion markers (settings fingerprint, timing, results)

**Resumable.** Each stage writes ``stages/<stage>.json`` last; a re-run skips a stage whose marker exists
and was made with the same settings (its fingerprint chains those of the stages it depends on), and
continues an interrupted training from its last checkpoint. A marker made with other settings is a
:class:`~getok.errors.ConfigError` (use another ``--out``). ``summary.md`` / ``run.json`` are rewritten
from the markers on every run.

**Deterministic.** Everything is seeded from ``seed`` (model weights, token rows, training order, GRPO
sampling; the scene series are fixed, :mod:`getok_lab.series`: 0 SFT, 1 GRPO, 30000 held-out — the ``test`` series, which no
design decision looked at); evaluation is greedy. The same seed
gives the same numbers; only the timings differ.

**Budget.** The defaults (:class:`DemoConfig`, repeated in ``configs/demo/tiny-cpu.yaml``) are sized for
about 12.5 minutes on an idle 2-core machine (target: 15); ``--fast`` (:data:`~getok_lab.demo.config.FAST`) is a 1–2 minute smoke run of the same code.

The task mix: finding the object a sentence names from pixels (``text>mask``, 40 % of SFT and the GRPO
prompts), which the warmed-up tiny model learns far above the location prior (docs/tiny_grounding.md), and
queries that carry their answer's position in tokens (``point>mask``, ``box>mask``, and polygons asked for
the object in a box, ``box>polygon``). Every stage is compared with the one before on the same held-out

Modules: :mod:`.config` (stages, models, :class:`DemoConfig`, the SFT / GRPO configs), :mod:`.data`
(the box>polygon set), :mod:`.stages` (the resumable stage runner), :mod:`.evaluate`, :mod:`.compare`
(paired tests), :mod:`.figures`, :mod:`.report` (``summary.md`` from ``templates/summary.md.j2``),
:mod:`.run` (:func:`run_demo`), :mod:`.cli`.
"""

from .cli import main, register
from .compare import compare_runs
from .config import BASELINES, FAST, MODELS, STAGES, DemoConfig, grpo_config, load_demo_config, sft_config
from .data import build_box_polygon_set
from .report import summary_markdown
from .run import lock_differences, run_demo

__all__ = [
    "DemoConfig",
    "FAST",
    "STAGES",
    "MODELS",
    "BASELINES",
    "load_demo_config",
    "sft_config",
    "grpo_config",
    "build_box_polygon_set",
    "compare_runs",
    "summary_markdown",
    "lock_differences",
    "run_demo",
    "register",
    "main",
]
