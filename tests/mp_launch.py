"""Run ``getok ARGV`` (one process, or one rank of ``torchrun`` / ``accelerate launch``) while recording what
each rank does, for the multi-process tests (tests/train/test_multiprocess.py, tests/rl/test_multiprocess.py).

    python -m tests.mp_launch RECORD_DIR train sft ...                       # one process
    torchrun --nproc_per_node 2 -m tests.mp_launch RECORD_DIR train sft ...  # two CPU ranks (gloo)

Each rank appends JSON lines to ``RECORD_DIR/rank<RANK>.jsonl``:

* ``{"event": "batch", "world": W, "ids": [...]}`` for every SFT batch the collator builds (``ids``: a digest
  of each example's messages and image pixels) and every GRPO generation batch (``ids``: ``sample_id`` of
  each completion's prompt);
* ``{"event": "build_base"}`` / ``{"event": "save", "dir": ...}`` when the rank builds the tiny base model or
  saves a model directory (start policy, final model) — things only rank 0 may do;
* ``{"event": "done", "world": W}`` at the end.

With ``GETOK_MP_SCRIPTED=1`` GRPO's sampling is replaced by scripted completions: spatial tokens (stage 1:
grid cells; stage 2: offsets / ``<DELETE>``) drawn from a generator seeded with the prompt's tokens and the
completion's place in its group, so one process and two processes generate the same completions for the
same global batch (sampled generation draws different random streams per rank, so only scripted completions
make the trained weights comparable). Everything after the sampling (rewards, group advantages gathered
across ranks, log-probabilities, KL, loss, all-reduced gradients, optimiser) is the real code path.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _world() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class Recorder:
    def __init__(self, root: str | Path):
        self.path = Path(root) / f"rank{_rank()}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, **rec) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({"rank": _rank(), **rec}) + "\n")


def example_digest(ex: dict) -> str:
    h = hashlib.sha256(json.dumps(ex.get("messages"), sort_keys=True, default=str).encode())
    for im in ex.get("images") or []:
        h.update(im.tobytes() if hasattr(im, "tobytes") else str(im).encode())
    return h.hexdigest()[:16]


def scripted_completions(prompt_ids, vocab_ids: list[int], eos: int, max_len: int = 12) -> list[list[int]]:
    """1 to ``max_len`` distinct tokens of ``vocab_ids`` then ``eos`` for each prompt, a function of the
    prompt's tokens and of the completion's index among the equal prompts before it in the batch (its place
    in its group): answers of different sizes, so the rewards within a group differ."""
    import torch

    seen: dict[tuple, int] = {}
    out = []
    for ids in prompt_ids:
        key = tuple(int(t) for t in ids)
        k = seen.get(key, 0)
        seen[key] = k + 1
        seed = int(hashlib.sha256(repr((key, k)).encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        n = int(torch.randint(1, min(max_len, len(vocab_ids)) + 1, (1,), generator=g))
        pick = torch.randperm(len(vocab_ids), generator=g)[:n].tolist()
        out.append([vocab_ids[i] for i in pick] + [eos])
    return out


def install(root: str | Path) -> Recorder:
    rec = Recorder(root)
    import getok.rl.grpo  # noqa: F401  (loaded, so that its imported names are patched below)
    import getok.train.sft as sft
    import getok.vocab as vocab
    import getok.vocab.tiny as tiny

    def patch_everywhere(original, replacement):
        """Rebind ``original`` in every loaded getok module that imported it by name."""
        for mod in [m for k, m in sys.modules.items() if k.startswith("getok") and m is not None]:
            for attr, value in list(vars(mod).items()):
                if value is original:
                    setattr(mod, attr, replacement)

    build = tiny.build_tiny_model

    def build_tiny_model(*a, **k):
        rec(event="build_base")
        return build(*a, **k)

    patch_everywhere(build, build_tiny_model)
    for name in ("save_with_layout", "save_adapter"):
        fn = getattr(vocab, name)

        def saver(model, processor, layout, out, *a, _fn=fn, **k):
            rec(event="save", dir=str(out))
            return _fn(model, processor, layout, out, *a, **k)

        patch_everywhere(fn, saver)

    make_sft = sft.make_trainer

    def make_trainer(*a, **k):
        trainer = make_sft(*a, **k)
        inner = trainer.data_collator

        def collate(examples):
            rec(event="batch", world=_world(), ids=[example_digest(e) for e in examples])
            return inner(examples)

        trainer.data_collator = collate
        return trainer

    sft.make_trainer = make_trainer

    import getok.rl.grpo as grpo

    trainer_class = grpo._trainer_class
    scripted = os.environ.get("GETOK_MP_SCRIPTED") == "1"

    def _trainer_class():
        base = trainer_class()

        class Recorded(base):
            def _generate_and_score_completions(self, inputs):
                rec(event="batch", world=_world(), ids=[x["sample_id"] for x in inputs],
                    step=int(self.state.global_step))  # fmt: skip
                return super()._generate_and_score_completions(inputs)

            def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, **kw):
                if not scripted:
                    return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, **kw)
                from getok.vocab import tokenizer_of

                tok = tokenizer_of(self.processing_class)
                stage2 = self.getok_proposals is not None  # refinements: offsets / <DELETE>; stage 1: cells
                pattern = r"<off_-?\d+_-?\d+>|<DELETE>" if stage2 else r"<g\d+_r\d+_c\d+>"
                added = tok.get_added_vocab()
                vocab_ids = sorted(i for t, i in added.items() if re.fullmatch(pattern, t))
                return scripted_completions(prompt_ids, vocab_ids, self.eos_token_ids[0],
                                            max_len=6 if stage2 else 12), None  # fmt: skip

        return Recorded

    grpo._trainer_class = _trainer_class
    return rec


def main(argv: list[str]) -> int:
    rec = install(argv[0])
    from getok.cli.main import main as getok_main

    rc = getok_main(argv[1:])
    rec(event="done", world=_world())
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---------------------------------------------------------------------------------------------- test helpers
REPO = Path(__file__).resolve().parents[1]


def run(argv: list[str], record: Path, *, launcher: str | None = None, env: dict | None = None,
        timeout: float = 600) -> str:  # fmt: skip
    """Run ``getok ARGV`` through this module: one process (``launcher=None``), or two CPU ranks with
    ``"torchrun"`` (``torchrun --standalone --nproc_per_node 2``) or ``"accelerate"`` (``accelerate launch
    --multi_gpu --num_processes 2``: accelerate's ``--cpu`` starts one process). Returns the stdout; the
    stderr goes to ``RECORD/stderr.log``; a failed run fails with its stderr's tail."""
    import subprocess

    module = ["-m", "tests.mp_launch", str(record), *argv]
    if launcher is None:
        cmd = [sys.executable, *module]
    elif launcher == "torchrun":  # = torchrun
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *module]
    elif launcher == "accelerate":  # = accelerate launch
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
               *module]  # fmt: skip
    else:
        raise ValueError(launcher)
    record.mkdir(parents=True, exist_ok=True)
    # no GPU even where there is one (the test is about CPU ranks); one intra-op thread per rank
    full_env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **(env or {})}
    with open(record / "stderr.log", "w") as err:
        p = subprocess.run(cmd, cwd=REPO, env=full_env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout)
    assert p.returncode == 0, (record / "stderr.log").read_text()[-6000:]
    return p.stdout


def records(record: Path) -> dict[int, list[dict]]:
    """``{rank: [record, ...]}`` of a run."""
    out = {}
    for f in sorted(Path(record).glob("rank*.jsonl")):
        out[int(f.stem[4:])] = [json.loads(x) for x in f.read_text().splitlines() if x.strip()]
    return out


def weight_differences(one: Path, two: Path, start: Path) -> dict:
    """Largest absolute difference between two saved models, its norm relative to how far training moved
    the first one from ``start`` (tensors of the same name and shape), and that largest move."""
    import numpy as np

    from tests.conftest import safetensors_tensors

    a, b, s = safetensors_tensors(one), safetensors_tensors(two), safetensors_tensors(start)
    assert a.keys() == b.keys() and len(a) > 0
    diff = np.concatenate([(a[k].astype(np.float64) - b[k]).ravel() for k in a])
    moved = np.concatenate([(a[k].astype(np.float64) - s[k]).ravel() for k in a if k in s and s[k].shape == a[k].shape])
    return {"max_abs": float(np.abs(diff).max()), "max_moved": float(np.abs(moved).max()),
            "rel_norm": float(np.linalg.norm(diff) / np.linalg.norm(moved))}  # fmt: skip
