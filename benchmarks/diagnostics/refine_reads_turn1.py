"""Diagnostic: does the refine turn read the first turn at all?

For ``point>mask`` questions of a dataset, the conversation of stage-2 GRPO / ``getok eval --turns 2`` is
built with the cell the question names as the turn-1 answer (what a model that copies it proposes), and
the next-token distribution of the refine turn is compared across edits of the first turn:

* ``tv_move_swapped``: total-variation distance between the refine turn's distributions when the
  question's move (``<off_1_0>`` in ``<g8_r5_c3><off_1_0>``) is replaced by another move — mean over
  questions of the mean over the other moves. 0 means the question's move is never read.
* ``tv_cell_swapped``: the same when the question's cell *and* the proposed cell are replaced by another
  cell (the proposal is read at all?).
* ``p_question_move`` / ``p_another_move``: the probability of the question's own move, and the mean
  probability of the moves of the *other* questions (what it would be if the move were not read).
* ``attention``: per layer, at the refine turn's first answer position, the attention of the head that
  attends most to the first turn's spatial tokens (question cell, question move, proposed cell): its mass
  on them, and ``log_gap`` = log p(its top key) - log p(the question's move) — tens of nats mean a
  saturated softmax whose gradient towards the move vanishes. The same is reported at the turn-1 answer
  position (``attention_turn1``), where a model that copies the cell attends to it.

    python benchmarks/diagnostics/refine_reads_turn1.py --model runs/sft-tiny-rl/final \\
        --data runs/sft-tiny-rl/data/eval [--n 40] [--out FILE.json]
"""

from __future__ import annotations

import re

import numpy as np

_MOVE = re.compile(r"<off_-?\d+_-?\d+>")
_CELL = re.compile(r"<g\d+_r\d+_c\d+>")


def _conversation(proc, sample, question: str, proposal: str | None):
    from getok.eval.generate import prompt_messages
    from getok.rl.stage2 import REFINE_PROMPT
    from getok.samples import Turn

    turns = [Turn(question, "")] if proposal is None else [Turn(question, proposal), Turn(REFINE_PROMPT, "")]
    return proc.apply_chat_template(prompt_messages(sample, turns), tokenize=False, add_generation_prompt=True)


def _attention(o, toks: list[str], spatial: list[int], move: int) -> list[dict]:
    import torch

    rows = []
    for layer, a in enumerate(o.attentions):
        a = a[0, :, -1].double()  # heads x keys, the last position
        mass = a[:, spatial].sum(-1)
        h = int(mass.argmax())
        lp = torch.log(a[h].clamp_min(1e-300))
        rows.append(
            {
                "layer": layer,
                "head": h,
                "mass_on_spatial": round(float(mass[h]), 4),
                "top_key": toks[int(a[h].argmax())],
                "log_gap_to_move": round(float(lp.max() - lp[move]), 1),
            }
        )
    return rows


def reads_turn1(model_dir: str, data_dir: str, n: int = 40, seed: int = 0) -> dict:
    import torch
    from PIL import Image

    from getok.codecs import get_codec
    from getok.data_builders.dataset import read_dataset
    from getok.eval.generate import load_sample_image
    from getok.vocab.loading import load_model_and_processor

    model, proc = load_model_and_processor(model_dir)
    model.eval()
    for m in model.modules():  # attention weights need the eager implementation
        if hasattr(m, "config") and hasattr(m.config, "_attn_implementation"):
            m.config._attn_implementation = "eager"
    tok = proc.tokenizer
    ds = read_dataset(data_dir)
    rng = np.random.default_rng(seed)
    samples = [s for s in ds if s.task == "point>mask" and s.codec and s.codec.startswith("grid_offset")][:n]
    if not samples:
        raise SystemExit(f"no grid_offset point>mask samples in {data_dir}")
    codec = get_codec(samples[0].codec)
    rr, grid = codec.config.r, codec.config.n
    moves = [f"<off_{dx}_{dy}>" for dx in range(-rr, rr + 1) for dy in range(-rr, rr + 1)]

    def run(sample, image, question, proposal):
        text = _conversation(proc, sample, question, proposal)
        inp = proc(text=[text], images=[image], return_tensors="pt")
        with torch.inference_mode():
            o = model(**inp, output_attentions=True)
        return torch.softmax(o.logits[0, -1].double(), -1).numpy(), o, tok.convert_ids_to_tokens(inp["input_ids"][0])

    move_ids = tok.convert_tokens_to_ids(moves)
    tv_move, tv_cell, att2, att1, probs, asked = [], [], [], [], [], []
    for s in samples:
        q = s.turns[0].user
        mv, cell = _MOVE.search(q), _CELL.search(q)
        if mv is None or cell is None:
            continue
        image = Image.fromarray(load_sample_image(s, ds.root))
        p0, o, toks = run(s, image, q, cell.group(0))
        probs.append(p0[move_ids])
        asked.append(moves.index(mv.group(0)))
        spatial = [i for i, t in enumerate(toks) if _MOVE.fullmatch(t) or _CELL.fullmatch(t)]
        move_pos = next(i for i, t in enumerate(toks) if t == mv.group(0))
        att2.append(_attention(o, toks, spatial, move_pos))
        _, o1, toks1 = run(s, image, q, None)
        sp1 = [i for i, t in enumerate(toks1) if _MOVE.fullmatch(t) or _CELL.fullmatch(t)]
        att1.append(_attention(o1, toks1, sp1, next(i for i, t in enumerate(toks1) if t == mv.group(0))))
        tv = []
        for other in moves:
            if other != mv.group(0):
                p, _, _ = run(s, image, q.replace(mv.group(0), other, 1), cell.group(0))
                tv.append(0.5 * np.abs(p - p0).sum())
        tv_move.append(float(np.mean(tv)))
        cx, cy = rng.integers(0, grid, 2)
        other_cell = codec.encode_cells([(int(cx), int(cy))])
        p, _, _ = run(s, image, q.replace(cell.group(0), other_cell, 1), other_cell)
        tv_cell.append(float(0.5 * np.abs(p - p0).sum()))

    def summary(rows):
        out = []
        for layer in range(len(rows[0])):
            r = [x[layer] for x in rows]
            out.append(
                {
                    "layer": layer,
                    "mean_mass_on_spatial": round(float(np.mean([x["mass_on_spatial"] for x in r])), 4),
                    "median_log_gap_to_move": round(float(np.median([x["log_gap_to_move"] for x in r])), 1),
                }
            )
        return out

    pm, k = np.array(probs), np.array(asked)
    own = pm[np.arange(len(k)), k]
    another = [pm[i, np.delete(k, i)].mean() for i in range(len(k))] if len(k) > 1 else [float("nan")]
    return {
        "model": model_dir,
        "data": data_dir,
        "n": len(tv_move),
        "tv_move_swapped": round(float(np.mean(tv_move)), 5),
        "tv_cell_swapped": round(float(np.mean(tv_cell)), 5),
        "p_question_move": round(float(own.mean()), 4),
        "p_another_move": round(float(np.mean(another)), 4),
        "attention": summary(att2),
        "attention_turn1": summary(att1),
    }


def main(argv=None) -> int:
    from _cli import model_data_parser, report  # the diagnostics' shared options (run as a script)

    ap = model_data_parser(__doc__, "a dataset with grid_offset point>mask samples")
    ap.add_argument("--n", type=int, default=40, help="questions to use")
    args = ap.parse_args(argv)
    return report(reads_turn1(args.model, args.data, args.n), args.out)

if __name__ == "__main__":
    raise SystemExit(main())
