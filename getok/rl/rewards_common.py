"""What every reward shares: the typed contract, the envelope, non-repeat, shaping functions, decoding.

Contract (EasyR1's ``RewardInput`` → ``RewardScore``, extended):

* :class:`RewardInput` — ``response`` (the completion text), ``truth`` (packed JSON, dict or
  :class:`~getok.rl.truth.Truth`), optional ``codec`` / ``proposal`` / ``image`` overrides.
* :class:`RewardScore` — ``overall`` in [0, 1], every component of the stage, ``n_pred`` / ``n_gt``,
  ``invalid`` (0.0 or 1.0) and ``reason`` (``""`` when valid, else a short tag such as ``format``,
  ``unknown_token``, ``count_mismatch``). The scoring functions never raise on model output: a malformed
  answer scores 0 on every component with ``invalid = 1``.

Decoding answers into instances (masks, boxes, points) is in :mod:`getok.rl.rewards_decoding`.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from ..answers import extract_answer, extract_think, parse_response
from ..codecs import NO_TARGET
from ..codecs.token_names import TOKEN_RE
from ..errors import ConfigError, DecodeError
from ..vocab.adapters import END_OF_TURN_MARKERS

__all__ = [
    "RewardInput",
    "RewardScore",
    "ENVELOPES",
    "clean_response",
    "completion_text",
    "split_envelope",
    "ramp",
    "normalized_gain",
    "signed_to_unit",
    "weighted_overall",
    "repetition_ratio",
    "think_sentences",
    "line_key",
    "non_repeat",
    "answer_lines",
    "invalid_score",
]

#: ``"think"``: the strict ``<think>…</think><answer>…</answer>`` envelope is required;
#: ``"any"``: the envelope's answer when present, else the whole text is the answer.
ENVELOPES = ("think", "any")


class RewardInput(TypedDict, total=False):
    """One item to score. ``response`` and ``truth`` are required."""

    response: str
    truth: Any  # str (packed JSON) | dict | Truth
    codec: str  # overrides truth.codec
    proposal: str  # overrides truth.proposal (stage 2: the policy's own stage-1 answer)
    image: Any  # (H, W, 3) uint8 or PIL image, for decoders that need pixels
    response_length: int  # EasyR1 passes it; unused


class RewardScore(TypedDict, total=False):
    """``overall`` in [0, 1] plus the stage's components (see each stage module) and the flags."""

    overall: float
    format: float
    invalid: float
    reason: str
    n_pred: float
    n_gt: float


# ---------------------------------------------------------------------------------------------- text
#: End-of-turn / end-of-text markers of the open VLM families: the model adapters' own lists
#: (:data:`getok.vocab.adapters.END_OF_TURN_MARKERS`: Qwen / InternVL / LLaVA-OneVision ``<|im_end|>``,
#: ``<|endoftext|>``; Llama / Mistral ``<|eot_id|>``, ``</s>``; Gemma 3 ``<end_of_turn>``, ``<eos>``;
#: Idefics3 / SmolVLM ``<end_of_utterance>``; Phi ``<|end|>``), one source; a newly registered family's
#: markers are stripped too.
_END_TOKENS = END_OF_TURN_MARKERS


def clean_response(text: str) -> str:
    """Drop end-of-turn tokens a decoder with ``skip_special_tokens=False`` leaves (``<|im_end|>`` ...).

    >>> clean_response("<think>a</think><answer>none</answer><|im_end|>")
    '<think>a</think><answer>none</answer>'
    """
    if not isinstance(text, str):
        return text
    out = text.rstrip()
    # strip from the end by index (no token is a suffix of another, so the order does not matter); slicing
    # per token would copy the text once per token: quadratic on a runaway "<|im_end|>" tail
    end = len(out)
    while True:
        tok = next((t for t in _END_TOKENS if out.endswith(t, 0, end)), None)
        if tok is None:
            return out[:end]
        end -= len(tok)
        while end and out[end - 1].isspace():
            end -= 1


def completion_text(completion) -> str:
    """The text of a TRL completion: a string, or a list of message dicts (last assistant message),
    whose ``content`` is a string or a list of ``{"type": "text", "text": ...}`` parts.

    >>> completion_text([{"role": "assistant", "content": "hi"}])
    'hi'
    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    'ab'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        msgs = [m for m in completion if isinstance(m, dict)]
        chosen = [m for m in msgs if m.get("role", "assistant") == "assistant"] or msgs
        if not chosen:
            return ""
        content = chosen[-1].get("content", "")
        if isinstance(content, str):
            return content
        if isinstance(content, (list, tuple)):
            return "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type", "text") == "text"
            )
    return ""


def split_envelope(response: str, envelope: str = "think") -> tuple[str, str]:
    """``(think, answer)`` of a response; raises :class:`DecodeError` (reason ``format``) when the
    envelope is required and missing. With ``envelope="any"`` a bare answer has an empty think."""
    if envelope not in ENVELOPES:
        raise ConfigError(f"envelope must be one of {ENVELOPES}, got {envelope!r}")
    text = clean_response(response)
    if envelope == "think":
        return parse_response(text)
    try:
        return parse_response(text)
    except DecodeError:
        return extract_think(text), extract_answer(text)


# ----------------------------------------------------------------------------------------- shaping
def ramp(x: float, floor: float, ceil: float) -> float:
    """Piecewise-linear: 0 below ``floor``, 1 above ``ceil``, linear between (a step at ``floor`` when
    ``floor == ceil``).

    >>> [ramp(v, 0.25, 0.75) for v in (0.1, 0.5, 0.9)]
    [0.0, 0.5, 1.0]
    """
    if x >= ceil:
        return 1.0
    if x < floor:
        return 0.0
    return float((x - floor) / (ceil - floor)) if ceil > floor else 1.0


def normalized_gain(ref: float, init: float, eps: float = 1e-9) -> float:
    """``(ref - init) / (1 - init)`` clipped to [-1, 1]: the fraction of the remaining error fixed.

    ``init = 1`` (nothing left to fix) takes the formula's limit: +1 when the refinement keeps it
    perfect (``ref = 1``), -1 when it breaks it (the clipped limit of any ``ref < 1``).

    >>> normalized_gain(0.75, 0.5), normalized_gain(0.25, 0.5), normalized_gain(1.0, 1.0), normalized_gain(0.9, 1.0)
    (0.5, -0.5, 1.0, -1.0)
    """
    if init >= 1.0 - eps:
        return 1.0 if ref >= 1.0 - eps else -1.0
    return min(1.0, max(-1.0, float((ref - init) / (1.0 - init))))


def signed_to_unit(x: float) -> float:
    """Map a signed component in [-1, 1] to [0, 1] for the overall score: ``(x + 1) / 2``."""
    return min(1.0, max(0.0, (float(x) + 1.0) / 2.0))


def weighted_overall(values: dict[str, float], weights: dict[str, float]) -> float:
    """``sum(w_k * v_k) / sum(w_k)`` over the weighted keys, clipped to [0, 1] (0 when all weights are 0)."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return min(1.0, max(0.0, float(sum(w * values[k] for k, w in weights.items()) / total)))


# -------------------------------------------------------------------------------------- non-repeat
_SENTENCE_SPLIT = re.compile(r"[.!?;。！？\n]+")
_WS = re.compile(r"\s+")


def think_sentences(think: str) -> list[str]:
    """Sentences of the reasoning, normalised (lower case, single spaces); empty ones dropped."""
    return [s for s in (_WS.sub(" ", p).strip().lower() for p in _SENTENCE_SPLIT.split(think or "")) if s]


def line_key(line: str) -> str:
    """Canonical form of an answer line: its tokens sorted when it is made of ``<...>`` tokens (so the
    same cells in another order count as the same instance), else the whitespace-normalised text."""
    toks = TOKEN_RE.findall(line)
    if toks and ("".join(toks) == line or "".join(toks) == _WS.sub("", line)):
        return "".join(sorted(toks))
    return _WS.sub(" ", line).strip()


def repetition_ratio(items: list[str]) -> float:
    """``1 - #unique / #items`` (0 for no items): the fraction of items that repeat an earlier one.

    >>> repetition_ratio(["a", "b", "a", "a"])
    0.5
    """
    if not items:
        return 0.0
    return 1.0 - len(set(items)) / len(items)


def non_repeat(think: str, answer_lines: list[str], keys: list[str] | None = None) -> float:
    """``(1 - rep(think sentences)) * (1 - rep(answer lines))`` in [0, 1]; 1 without repetition.

    Lines are compared by :func:`line_key` (pass ``keys`` when already computed).

    >>> non_repeat("Look left. Look left.", ["<g4_r0_c0>", "<g4_r1_c1>"])
    0.5
    """
    keys = [line_key(x) for x in answer_lines] if keys is None else keys
    return (1.0 - repetition_ratio(think_sentences(think))) * (1.0 - repetition_ratio(keys))


def answer_lines(answer: str) -> list[str]:
    """Instance lines of an answer (the codecs' grammar: non-empty lines; none for ``none``)."""
    body = answer.strip()
    if body.lower() == NO_TARGET:
        return []
    return [ln.strip() for ln in body.split("\n") if ln.strip()]


def invalid_score(keys: tuple[str, ...], reason: str, n_gt: int = 0) -> dict:
    """Every component 0, ``invalid = 1`` and the reason."""
    out: dict[str, Any] = {k: 0.0 for k in keys}
    out.update(overall=0.0, invalid=1.0, reason=reason or "invalid", n_pred=0.0, n_gt=float(n_gt))
    return out
