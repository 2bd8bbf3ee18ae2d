"""Diagnostic: how much next-token probability does a model put on the question's own move in the refine turn?

For every held-out ``point>mask`` question whose turn-1 answer (from a ``getok eval --turns 2`` run) is
exactly the cell the question names, the refine turn is prompted with that answer (the self-correction
conversation of ``getok eval`` / stage-2 GRPO) and the first refinement token's distribution is read:
P(the question's move), P(``<off_0_0>``), and — the baseline that tells copying from guessing — the mean
P of *another* question's move (the moves of the other samples: what P(question's move) would be if the
answer did not depend on the question, i.e. the model's marginal over the moves questions use). A model
that has learned "refine a copied cell by the move written in the question" puts clearly more mass on
its own question's move than on another question's.

    python benchmarks/diagnostics/refine_move_probs.py --model runs/sft-tiny-rl/final \\
        --data runs/sft-tiny-rl/data/eval --records EVAL_RUN/records.jsonl [--out FILE.json]
"""

from __future__ import annotations

import json

import numpy as np


def move_probs(model_dir: str, data_dir: str, records: str) -> dict:
    import torch
    from PIL import Image

    from getok.codecs import get_codec
    from getok.data_builders.dataset import read_dataset
    from getok.data_builders.refine import query_anchor
    from getok.eval.generate import load_sample_image, prompt_messages
    from getok.rl.stage2 import REFINE_PROMPT
    from getok.samples import Turn
    from getok.vocab.loading import load_model_and_processor

    model, proc = load_model_and_processor(model_dir)
    model.eval()
    ds = read_dataset(data_dir)
    recs = {}
    with open(records) as f:
        for line in f:
            r = json.loads(line)
            recs[r["id"]] = r
    tok = proc.tokenizer
    stats: dict[str, list] = {"question_move": [], "off_0_0": [], "question_move_on_miss": []}
    rows: list[tuple[np.ndarray, int]] = []  # (P over the moves, index of the question's move)
    for s in ds:
        r = recs.get(s.sample_id)
        if s.task != "point>mask" or r is None or s.codec is None or not s.codec.startswith("grid_offset"):
            continue
        c = get_codec(s.codec)
        a = query_anchor(s, c)
        first = r["turns"][0]["answer"]
        if a is None or first != c.encode_cells([a[0]]):
            continue
        rr = c.config.r
        names = [f"<off_{dx}_{dy}>" for dx in range(-rr, rr + 1) for dy in range(-rr, rr + 1)]
        ids = tok.convert_tokens_to_ids(names)
        q = "<off_{}_{}>".format(*a[1])
        msgs = prompt_messages(s, [Turn(s.turns[0].user, first), Turn(REFINE_PROMPT, "")])
        text = proc.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        inp = proc(text=[text], images=[Image.fromarray(load_sample_image(s, ds.root))], return_tensors="pt")
        with torch.inference_mode():
            p = torch.softmax(model(**inp).logits[0, -1].float(), -1)[ids].numpy()
        if q == "<off_0_0>":
            continue  # the question's move is the null move: nothing to tell apart
        stats["question_move"].append(float(p[names.index(q)]))
        stats["off_0_0"].append(float(p[names.index("<off_0_0>")]))
        rows.append((p, names.index(q)))
        if r["turns"][0]["iou"] == 0:
            stats["question_move_on_miss"].append(float(p[names.index(q)]))
    # P_i(move of question j), j != i: the question-independent baseline
    another = [float(np.mean([p[k] for j, (_, k) in enumerate(rows) if j != i])) for i, (p, _) in enumerate(rows)]
    stats["another_question_move"] = another if len(rows) > 1 else []
    out = {"model": model_dir, "data": data_dir, "records": records}
    out["n"] = len(stats["question_move"])
    out["n_miss"] = len(stats["question_move_on_miss"])
    out.update({f"mean_p_{k}": round(float(np.mean(v)), 4) if v else None for k, v in stats.items()})
    return out


def main(argv=None) -> int:
    from _cli import model_data_parser, report  # the diagnostics' shared options (run as a script)

    ap = model_data_parser(__doc__, "the dataset the records were made on")
    ap.add_argument("--records", required=True, help="records.jsonl of a `getok eval --turns 2` run on --data")
    args = ap.parse_args(argv)
    return report(move_probs(args.model, args.data, args.records), args.out)

if __name__ == "__main__":
    raise SystemExit(main())
