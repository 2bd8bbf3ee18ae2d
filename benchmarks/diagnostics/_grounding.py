"""What the text>mask grounding diagnostics share: their question sets, how a model or baseline is scored
(per-question IoU through the exact-region decoder, greedy answers) and how a score is summarised."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TASK = "text>mask"
DECODER = "point_masks:proposer=exact,n=8"


def question_set(out_dir: Path, n_scenes: int, series: int) -> Path:
    """The text>mask questions of ``n_scenes`` procedural scenes of ``series`` (the tiny recipe's codec and
    scene settings), built once into ``out_dir``."""
    from getok.train.config import EvalConfig, load_sft_config
    from getok.train.data import build_eval_set

    cfg = load_sft_config(REPO / "configs/sft/tiny-cpu.yaml", [])
    ev = EvalConfig(n_scenes=n_scenes, seed=series, tasks=[TASK])
    return build_eval_set(ev, cfg.data, cfg.vocab.codecs[0], out_dir)


def score(model, processor, data: Path, out: Path, generate_fn=None) -> dict:
    """Per-question IoU (sample order) of one model or baseline (``generate_fn`` with no model)."""
    import torch

    from getok.eval.runner import evaluate, question_ious

    with torch.inference_mode():
        evaluate(model, processor, str(data), decoder=DECODER, out_dir=str(out), turns=1, batch_size=32,
                 max_new_tokens=16, resume=True, progress=False, generate_fn=generate_fn)  # fmt: skip
    return {i: q["t1"] for i, q in question_ious(out).items()}


def summarise(ious: dict, ids: list[str], kinds: dict | None = None) -> dict:
    """mIoU over ``ids`` with its bootstrap interval (and per expression kind, given ``kinds``)."""
    from getok.eval.stats import bootstrap_mean

    v = [ious[i] for i in ids]
    out = {"miou": round(sum(v) / len(v), 4)}
    ci = bootstrap_mean(v)
    out["ci"] = [round(ci["lo"], 4), round(ci["hi"], 4)]
    if kinds is not None:
        by: dict = {}
        for i in ids:
            by.setdefault(kinds[i], []).append(ious[i])
        out["by_kind"] = {k: {"n": len(x), "miou": round(sum(x) / len(x), 4)} for k, x in sorted(by.items())}
    return out
