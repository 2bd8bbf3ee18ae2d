"""Stage 2 with real two-turn rollouts: the policy's own stage-1 proposal, then the refine turn.

A stage-2 prompt is the conversation of the self-correction protocol (:mod:`getok.eval.selfcorrect`),
token for token::

    user:      <image> Segment the red disc. ...        (the sample's stage-1 question)
    assistant: <g8_r3_c2><g8_r3_c3>...                  (the policy's own greedy stage-1 answer)
    user:      Refine your answer: for each proposed cell, in order, give an offset token or <DELETE>.

and the completion (one offset token or ``<DELETE>`` per proposed cell) is scored by the stage-2 reward
against *that* proposal (:func:`~getok.rl.rewards_stage2.score_stage2`, ``proposal=``).

* :func:`check_proposal` — is a stage-1 answer refinable (decodes, not ``none``, has cells, fits the
  completion budget)? Returns the answer or the reason it is not.
* :func:`fallback_proposal` — a builder-made noisy proposal of the target
  (:func:`~getok.data_builders.offsets.noisy_proposal`: true, jittered and distractor cells),
  deterministic per sample: what replaces an invalid / ``none`` proposal.
* :func:`two_turn_sample`, :func:`refine_prompt_messages` — the two-turn conversation (the builder's
  turn-2 wording, :data:`~getok.data_builders.offsets.DEFAULT_REFINE`).
* :func:`oracle_refinement_answer` — the offset builder's labels for a proposal (the target answer of a
  stage-2 sample made offline, e.g. for EasyR1).
* :class:`ProposalStore` — proposals of the current policy for the prompts of a generation batch, fresh
  each step or refreshed every N steps (:class:`~getok.rl.grpo_config.ProposalConfig`), with counts.
* :func:`make_stage2_samples` — a stage-1 model's proposals for a dataset → two-turn samples (the offline
  path of ``getok rl make-stage2-data``, for trainers without multi-turn rollouts).

>>> import numpy as np
>>> from getok.codecs import get_codec
>>> c = get_codec("grid_offset:n=4,r=1,step=0.5")
>>> check_proposal("<g4_r0_c0><g4_r0_c1>", c, (32, 32), max_cells=8)
('<g4_r0_c0><g4_r0_c1>', '')
>>> check_proposal("none", c, (32, 32), max_cells=8)
(None, 'none')
>>> m = np.zeros((32, 32), bool); m[0:16, 0:16] = True
>>> oracle_refinement_answer("<g4_r0_c0><g4_r3_c3>", [m], c, (32, 32))
'<off_0_0><DELETE>'
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..answers import extract_answer
from ..codecs.base import get_codec
from ..codecs.grid_offset import GridOffsetCodec
from ..data_builders.offsets import DEFAULT_REFINE, OffsetConfig, label_points, noisy_proposal
from ..data_builders.questions import stable_seed
from ..errors import ConfigError, DataError, GetokError
from ..eval.generate import prompt_messages
from ..geometry import Geometry
from ..ops.grid import cell_centers
from ..ops.masks import rle_decode
from ..samples import Sample, Turn
from .rewards_common import clean_response

__all__ = [
    "REFINE_PROMPT",
    "PROPOSAL_SOURCES",
    "check_proposal",
    "fallback_proposal",
    "truth_masks",
    "two_turn_sample",
    "refine_prompt_messages",
    "oracle_refinement_answer",
    "Proposal",
    "ProposalStore",
    "make_stage2_samples",
]

log = logging.getLogger(__name__)

#: The refine turn's user message (the offset builder's and the self-correction protocol's wording).
REFINE_PROMPT = DEFAULT_REFINE

#: Where a stage-2 prompt's proposal came from: the policy, the builder (invalid policy proposal), or the
#: builder with the group's rewards masked (``on_invalid="mask"``).
PROPOSAL_SOURCES = ("policy", "fallback", "masked")


def _grid_offset(codec) -> GridOffsetCodec:
    c = get_codec(codec) if isinstance(codec, str) else codec
    if not isinstance(c, GridOffsetCodec):
        raise ConfigError(f"stage 2 needs a grid_offset codec, got {getattr(c, 'spec', c)!r}")
    return c


def check_proposal(text: str, codec, size: tuple[int, int], max_cells: int) -> tuple[str | None, str]:
    """Whether a stage-1 answer can be refined; ``(answer, "")`` or ``(None, reason)``.

    Parameters
    ----------
    text : str
        The generated stage-1 text (envelope optional; end-of-turn tokens dropped).
    codec : str or GridOffsetCodec
    size : (H, W)
    max_cells : int
        Refinement tokens that fit the completion budget: one per proposed cell plus a line break between
        instances.

    Returns
    -------
    (str or None, str)
        The answer (envelope removed) and ``""``; or ``None`` and a reason: ``invalid:<decode reason>``,
        ``none`` (no-target answer), ``too_long``.
    """
    c = _grid_offset(codec)
    try:
        answer = extract_answer(clean_response(text))
    except GetokError as exc:
        return None, f"invalid:{getattr(exc, 'reason', 'not_text')}"
    res = c.try_decode(answer, size, "mask")
    if not res.valid:
        return None, f"invalid:{res.error.reason}"
    geoms = res.geometries
    if not geoms:
        return None, "none"
    n_tokens = sum(len(g.cells) for g in geoms) + len(geoms) - 1
    if n_tokens > max_cells:
        return None, "too_long"
    return answer, ""


def truth_masks(sample: Sample) -> list[np.ndarray]:
    """The sample's target masks ``(H, W)`` bool from its RLE truth."""
    return [rle_decode(r).astype(bool) for r in sample.truth.get("masks", [])]


def fallback_proposal(sample: Sample, codec, *, k: int = 6, seed: int = 0) -> str:
    """A builder-made noisy proposal (``k`` cells: true, jittered, background) of the sample's target.

    Deterministic in ``(seed, sample_id)``. Raises :class:`DataError` for a sample without exactly one
    non-empty target (stage 2 refines single-target proposals).
    """
    c = _grid_offset(codec)
    masks = truth_masks(sample)
    if len(masks) != 1 or not masks[0].any():
        raise DataError(f"sample {sample.sample_id}: stage 2 needs exactly one non-empty target, got {len(masks)}")
    rng = np.random.default_rng(stable_seed(seed, sample.sample_id))
    cfg = c.config
    prop = noisy_proposal(masks[0], cfg.n, cfg.r, cfg.step, OffsetConfig(k=k), rng=rng)
    return c.encode_cells(prop.cells)


def oracle_refinement_answer(proposal: str, masks: Sequence[np.ndarray], codec, size: tuple[int, int]) -> str:
    """The offset builder's refinement of ``proposal`` (Inside → ``<off_0_0>``, Ring → the deepest move,
    Far / Hard-Delete → ``<DELETE>``), every proposed instance labelled against the union of the target
    masks. Raises :class:`~getok.errors.DecodeError` when the proposal does not decode."""
    c = _grid_offset(codec)
    n, r, step = c.config.n, c.config.r, c.config.step
    union = np.zeros(tuple(size), dtype=bool)
    for m in masks:
        union |= np.asarray(m, dtype=bool)
    geoms = c.decode(proposal, size, "mask")
    out = []
    for g in geoms:
        pts = cell_centers(g.cells, n, size)
        lab = label_points(union, pts, n, r, step)
        out.append(
            Geometry(size=size, cells=g.cells, grid_n=n, offsets=lab.offsets, deleted=lab.deleted, offset_step=step)
        )
    return c.encode_refinement(out)


def two_turn_sample(
    sample: Sample, proposal_text: str, refine_answer: str = "", refine_prompt: str = REFINE_PROMPT
) -> Sample:
    """The stage-2 conversation of a single-turn stage-1 sample: its question, ``proposal_text`` as the
    assistant's answer, the refine turn (answered by ``refine_answer``)."""
    first = sample.turns[0]
    return dataclasses.replace(
        sample, turns=[Turn(first.user, proposal_text), Turn(refine_prompt, refine_answer)], task=sample.task
    )


def refine_prompt_messages(sample: Sample, proposal_text: str, refine_prompt: str = REFINE_PROMPT) -> list[dict]:
    """TRL conversational prompt of the refine turn (:func:`~getok.eval.generate.prompt_messages` of the
    two-turn sample: the same messages SFT and the self-correction evaluation use)."""

    return prompt_messages(two_turn_sample(sample, proposal_text, "", refine_prompt))


@dataclass
class Proposal:
    """One sample's stage-2 proposal.

    Attributes
    ----------
    text : str
        What goes into the conversation as the assistant's turn 1 (the generated text verbatim, or the
        fallback proposal).
    answer : str
        The proposal the refinement is scored against (envelope removed).
    source : str
        ``policy``, ``fallback`` or ``masked`` (:data:`PROPOSAL_SOURCES`).
    reason : str
        Why the policy's proposal was replaced (``""`` when it was used).
    step : int
        Optimiser step at which it was generated.
    """

    text: str
    answer: str
    source: str
    reason: str
    step: int


#: ``generate(samples) -> texts``: greedy stage-1 answers of the current policy.
GenerateProposals = Callable[[Sequence[Sample]], list[str]]


class ProposalStore:
    """Stage-1 proposals for stage-2 prompts: generated by the current policy when a batch needs them.

    Parameters
    ----------
    samples : sequence of Sample
        Single-turn, single-target mask samples (the stage-1 questions), by ``sample_id``.
    codec : str or GridOffsetCodec
    refresh_steps : int
        1: regenerate for every step that uses a sample (fresh); N: reuse for N steps; 0: never regenerate.
    on_invalid : {"fallback", "mask"}
    max_cells : int
        Longest refinable proposal (:func:`check_proposal`).
    fallback_k : int
    seed : int
    refine_prompt : str
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        codec,
        *,
        refresh_steps: int = 1,
        on_invalid: str = "fallback",
        max_cells: int = 30,
        fallback_k: int = 6,
        seed: int = 0,
        refine_prompt: str = REFINE_PROMPT,
    ) -> None:
        self.samples = {s.sample_id: s for s in samples}
        self.codec = _grid_offset(codec)
        if refresh_steps < 0:
            raise ConfigError(f"refresh_steps must be >= 0, got {refresh_steps}")
        if on_invalid not in ("fallback", "mask"):
            raise ConfigError(f"on_invalid must be 'fallback' or 'mask', got {on_invalid!r}")
        self.refresh_steps = int(refresh_steps)
        self.on_invalid = on_invalid
        self.max_cells = int(max_cells)
        self.fallback_k = int(fallback_k)
        self.seed = int(seed)
        self.refine_prompt = refine_prompt
        self.cache: dict[str, Proposal] = {}
        self._fallbacks: dict[str, str] = {}
        self.counts: Counter = Counter()  # cumulative: generated, policy, fallback, masked, reason:<r>
        self.last: Counter = Counter()  # the last fill() call only

    def stale(self, sample_id: str, step: int) -> bool:
        p = self.cache.get(sample_id)
        if p is None:
            return True
        if self.refresh_steps == 0:
            return False
        return step - p.step >= self.refresh_steps

    def fallback(self, sample_id: str) -> str:
        if sample_id not in self._fallbacks:
            self._fallbacks[sample_id] = fallback_proposal(
                self.samples[sample_id], self.codec, k=self.fallback_k, seed=self.seed
            )
        return self._fallbacks[sample_id]

    def resolve(self, sample_id: str, text: str, step: int) -> Proposal:
        """The proposal of a generated stage-1 text (or the fallback, with the reason)."""
        s = self.samples[sample_id]
        answer, reason = check_proposal(text, self.codec, s.size, self.max_cells)
        if answer is not None:
            return Proposal(text=clean_response(text), answer=answer, source="policy", reason="", step=step)
        fb = self.fallback(sample_id)
        source = "fallback" if self.on_invalid == "fallback" else "masked"
        return Proposal(text=fb, answer=fb, source=source, reason=reason, step=step)

    def proposals(self, sample_ids: Sequence[str], step: int, generate: GenerateProposals) -> dict[str, Proposal]:
        """Proposals of ``sample_ids`` (unique, in order), generating those that are missing or stale."""
        ids = list(dict.fromkeys(sample_ids))
        unknown = [i for i in ids if i not in self.samples]
        if unknown:
            raise DataError(f"no stage-2 sample with id {unknown[0]!r} in the proposal store")
        need = [i for i in ids if self.stale(i, step)]
        self.last = Counter()
        if need:
            texts = generate([self.samples[i] for i in need])
            if len(texts) != len(need):
                raise DataError(f"proposal generation returned {len(texts)} texts for {len(need)} samples")
            for i, t in zip(need, texts):
                p = self.resolve(i, t, step)
                self.cache[i] = p
                self.last["generated"] += 1
                self.last[p.source] += 1
                if p.reason:
                    self.last[f"reason:{p.reason.split(':')[0]}"] += 1
        self.last["reused"] = len(ids) - len(need)
        self.counts.update(self.last)
        return {i: self.cache[i] for i in ids}

    def fill(self, inputs: list[dict], step: int, generate: GenerateProposals) -> list[dict]:
        """Rewrite TRL input rows (``sample_id`` column) into refine-turn rows: ``prompt`` becomes the
        two-turn conversation, ``proposal`` the answer to refine, ``proposal_source`` where it came from.
        Rows of the same sample (a GRPO group) share one proposal. Returns new dicts, in order."""
        props = self.proposals([r["sample_id"] for r in inputs], step, generate)
        out = []
        for r in inputs:
            p = props[r["sample_id"]]
            msgs = refine_prompt_messages(self.samples[r["sample_id"]], p.text, self.refine_prompt)
            out.append({**r, "prompt": msgs, "proposal": p.answer, "proposal_source": p.source})
        return out

    def state_dict(self) -> dict:
        """The store's state as JSON-able data (cached proposals and cumulative counts), for checkpoints:
        with ``refresh_steps`` other than 1, a resumed run must reuse the proposals the killed one made."""
        return {"cache": {k: dataclasses.asdict(p) for k, p in self.cache.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (raises :class:`~getok.errors.DataError` on a malformed state)."""
        try:
            cache = {str(k): Proposal(**v) for k, v in state["cache"].items()}
            counts = Counter({str(k): int(v) for k, v in state["counts"].items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"malformed proposal-store state: {exc}") from None
        unknown = [k for k in cache if k not in self.samples]
        if unknown:
            raise DataError(f"proposal-store state names samples this run does not have (e.g. {unknown[0]!r})")
        self.cache, self.counts, self.last = cache, counts, Counter()

    def rates(self, last: bool = True) -> dict[str, float]:
        """``{"policy": ..., "fallback": ..., "masked": ..., "reused": ...}`` fractions (of the last call)."""
        c = self.last if last else self.counts
        gen = c.get("generated", 0)
        tot = gen + c.get("reused", 0)
        out = {k: (c.get(k, 0) / gen if gen else 0.0) for k in PROPOSAL_SOURCES}
        out["reused"] = c.get("reused", 0) / tot if tot else 0.0
        return out


def make_stage2_samples(
    samples: Sequence[Sample],
    texts: Sequence[str],
    codec,
    *,
    on_invalid: str = "fallback",
    max_cells: int = 64,
    fallback_k: int = 6,
    seed: int = 0,
    refine_prompt: str = REFINE_PROMPT,
) -> tuple[list[Sample], Counter]:
    """Two-turn stage-2 samples from stage-1 samples and a stage-1 model's answers to them.

    Each result has turn 1 = (the question, the model's answer) and turn 2 = (the refine prompt, the
    oracle refinement, :func:`oracle_refinement_answer`); ``task="refine"``; ``truth["proposal"]`` is
    the answer to refine and ``meta["proposal_source"]`` is ``policy`` or ``fallback``. A proposal that
    cannot be refined (:func:`check_proposal`) is replaced by :func:`fallback_proposal`
    (``on_invalid="fallback"``) or the sample is dropped (``"skip"``). Samples without exactly one
    target are dropped. Returns the samples and counts (``policy``, ``fallback``, ``skipped``,
    ``not_single_target``, ``reason:*``).
    """
    if on_invalid not in ("fallback", "skip"):
        raise ConfigError(f"on_invalid must be 'fallback' or 'skip', got {on_invalid!r}")
    if len(samples) != len(texts):
        raise DataError(f"{len(texts)} answers for {len(samples)} samples")
    c = _grid_offset(codec)
    out, counts = [], Counter()
    for s, text in zip(samples, texts):
        masks = truth_masks(s)
        if len(masks) != 1 or not masks[0].any():
            counts["not_single_target"] += 1
            continue
        answer, reason = check_proposal(text, c, s.size, max_cells)
        raw, source = (clean_response(text), "policy") if answer is not None else (None, "fallback")
        if answer is None:
            counts[f"reason:{reason.split(':')[0]}"] += 1
            if on_invalid == "skip":
                counts["skipped"] += 1
                continue
            raw = answer = fallback_proposal(s, c, k=fallback_k, seed=seed)
        counts[source] += 1
        target = oracle_refinement_answer(answer, masks, c, s.size)
        two = two_turn_sample(s, raw, target, refine_prompt)
        truth = {**s.truth, "proposal": answer}
        meta = {**s.meta, "proposal_source": source, "stage1_task": s.task, "proposal_reason": reason}
        out.append(
            dataclasses.replace(two, sample_id=f"{s.sample_id}-s2", task="refine", codec=c.spec, truth=truth, meta=meta)
        )
    return out, counts
