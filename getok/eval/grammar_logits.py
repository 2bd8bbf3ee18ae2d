"""Constrained decoding in ``model.generate``: :class:`GrammarLogitsProcessor` applies one
:class:`~getok.eval.constrained.GrammarMachine` per batch row (torch imported only when called), and
:func:`random_completion` walks a machine at random (a testing aid: every walk must decode)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .constrained import GrammarMachine

__all__ = ["GrammarLogitsProcessor", "random_completion"]

log = logging.getLogger("getok.eval.constrained")


# ------------------------------------------------------------------------------------------------ HF processor
class GrammarLogitsProcessor:
    """A transformers logits processor (``__call__(input_ids, scores) -> scores``) applying one grammar per row.

    Parameters
    ----------
    machines : sequence of GrammarMachine or None
        One per batch row (``None``: that row is not constrained).
    eos_token_ids : sequence of int
        End-of-sequence ids (allowed only where the answer may end).
    max_new_tokens : int
        The generation budget (the processor keeps every row completable within it).

    Notes
    -----
    Create one per ``generate`` call: it remembers the prompt length (the input length at its first
    call; left padding gives every row the same) and each row's state. Disallowed tokens get ``-inf``.
    Rows that ended (EOS) are left alone. A row whose generated token the grammar does not allow (e.g.
    another processor overrode the choice) stops being constrained and is logged.
    """

    def __init__(self, machines: Sequence[GrammarMachine | None], eos_token_ids: Sequence[int], max_new_tokens: int) -> None:
        self.machines = list(machines)
        self.eos = sorted({int(i) for i in eos_token_ids})
        if not self.eos:
            raise ConfigError("constrained decoding needs at least one end-of-sequence token id")
        self.max_new_tokens = int(max_new_tokens)
        self.states = [m.start() if m is not None else None for m in self.machines]
        self.ended = [False] * len(self.machines)
        self.prompt_len: int | None = None
        self._seen = 0
        self._tensors: dict = {}

    def _ids_tensor(self, arr: np.ndarray, device, cache: bool):
        """``arr`` as a tensor on ``device``; tables' own arrays (``cache``) are converted once."""
        import torch

        if not cache:
            return torch.from_numpy(np.ascontiguousarray(arr)).to(device)
        k = (id(arr), str(device))
        hit = self._tensors.get(k)
        if hit is None or hit[0] is not arr:
            hit = (arr, torch.from_numpy(np.ascontiguousarray(arr)).to(device))
            self._tensors[k] = hit
        return hit[1]

    def __call__(self, input_ids, scores):
        import torch

        b, length = input_ids.shape
        if b != len(self.machines):
            raise ConfigError(f"logits processor built for {len(self.machines)} rows, got a batch of {b}")
        if self.prompt_len is None:
            self.prompt_len = length
            self._seen = length
        # consume the tokens generated since the last call
        if length > self._seen:
            new = input_ids[:, self._seen : length].tolist()
            for row, toks in enumerate(new):
                m = self.machines[row]
                for t in toks:
                    if self.ended[row]:
                        break
                    if t in self.eos:
                        self.ended[row] = True
                        break
                    if m is None:
                        continue
                    st = m.advance(self.states[row], t)
                    if st.phase == "dead" and self.states[row].phase != "dead":
                        log.warning("row %d: generated token %d is outside the grammar; row no longer constrained", row, t)
                    self.states[row] = st
            self._seen = length
        remaining = self.max_new_tokens - (length - self.prompt_len)
        mask = torch.full_like(scores, -math.inf)
        touched = False
        for row, m in enumerate(self.machines):
            if m is None or self.ended[row] or self.states[row].phase == "dead":
                mask[row] = 0.0
                continue
            touched = True
            ids_list, eos_ok = m.allowed(self.states[row], remaining)
            for ids in ids_list:
                if isinstance(ids, str):  # "plain": every ordinary text token
                    mask[row, self._ids_tensor(m.t.plain_ids(scores.shape[1]), scores.device, True)] = 0.0
                else:
                    table = ids is m.t.cells or ids is m.t.offset_ids or ids is m.t.bins
                    mask[row, self._ids_tensor(ids, scores.device, table)] = 0.0
            if eos_ok:
                mask[row, self.eos] = 0.0
        if not touched:
            return scores
        return scores + mask.to(scores.dtype)


# ------------------------------------------------------------------------------------------------ testing aid
def random_completion(machine: GrammarMachine, budget: int, rng: np.random.Generator, p_end: float = 0.3) -> list[int]:
    """A random answer of the grammar within ``budget`` tokens, as token ids (EOS not included).

    What the logits processor lets a model write, with uniform choices: used to fuzz the grammars
    (every result must parse). ``p_end`` is the chance of stopping where the answer may end.
    """
    s = machine.start()
    out: list[int] = []
    while len(out) < budget:
        ids_list, eos_ok = machine.allowed(s, budget - len(out))
        if eos_ok and (not ids_list or rng.random() < p_end):
            break
        if not ids_list:
            break
        pick = ids_list[int(rng.integers(len(ids_list)))]
        if isinstance(pick, str):
            pick = machine.t.plain_ids(len(machine.t.plain))
        tid = int(pick[int(rng.integers(len(pick)))])
        s = machine.advance(s, tid)
        if s.phase == "dead":
            raise AssertionError(f"random_completion chose token {tid} the grammar does not allow")
        out.append(tid)
    return out
