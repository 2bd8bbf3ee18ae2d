"""SFT step-cost benchmark on the tiny model: batch preparation vs optimiser step, by torch thread count.

    .venv/bin/python benchmarks/bench_sft.py            # writes benchmarks/results/sft_steps.json
    .venv/bin/python benchmarks/bench_sft.py --batch 8 --repeats 10

What it measures (wall and CPU seconds, mean over ``--repeats``): TRL's vision collator on one batch of the
tiny-cpu mixture (chat template, tokenizer, Qwen image processor: the work ``train.dataloader_workers``
moves to another process) and one forward + backward + AdamW step of the tiny Qwen2.5-VL with 1 and 2
torch threads (``train.torch_threads``). The machine is usually shared: read CPU time beside wall time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "sft_steps.json"


def _timed(fn, repeats: int) -> dict:
    w, c = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return {"wall_s": (time.perf_counter() - w) / repeats, "cpu_s": (time.process_time() - c) / repeats}


def main(argv: list[str] | None = None) -> int:
    import torch
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from getok.train.config import load_sft_config
    from getok.train.data import build_mixture, prepare_examples
    from getok.train.sft import prepare_base, setup_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_sft_config(REPO / "configs" / "sft" / "tiny-cpu.yaml",
                              [f"output_dir={tmp}", "data.scenes.n=60", f"data.num_samples={4 * args.batch}"])  # fmt: skip
        base = prepare_base(cfg, tmp)
        data = build_mixture(cfg.data, cfg.vocab.codecs, Path(tmp) / "data", progress=False)
        model, proc, _, _ = setup_model(cfg, base)
        ex, _ = prepare_examples(data, proc, cfg.data.max_length)
        rows = [ex[i] for i in range(args.batch)]
        col = DataCollatorForVisionLanguageModeling(processor=proc, assistant_only_loss=True)
        batch = col([dict(r) for r in rows])
        res = {"batch": args.batch, "seq_len": int(batch["input_ids"].shape[1]),
               "collate": _timed(lambda: col([dict(r) for r in rows]), args.repeats)}  # fmt: skip
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step():
            out = model(**batch)
            out.loss.backward()
            opt.step()
            opt.zero_grad()

        for threads in (1, 2):
            torch.set_num_threads(threads)
            step()  # warm-up
            res[f"step_threads{threads}"] = _timed(step, args.repeats)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
