"""verl agent loop for getok's GRPO stage 2: propose (greedy) → getok's refine instruction → refine (sampled).

Registered for verl by ``configs/verl/agent_loop.yaml``::

    - name: getok_refine
      _target_: getok.rl.verl_agent.GetokRefineAgentLoop
      on_invalid: fallback        # or mask (getok.rl.verl_stage2)
      max_cells: 256              # longest refinable proposal (default: rollout.response_length - 2)
      proposal_max_tokens: 512    # turn-1 budget (default: rollout.response_length)

(``actor_rollout_ref.rollout.agent.agent_loop_config_path``; the rows' ``agent_name`` or
``agent.default_agent_loop`` selects it). verl builds one instance per rollout (``hydra.utils.instantiate``)
and awaits :meth:`run` with the dataset row. One rollout (:mod:`getok.rl.verl_stage2` says why):

1. the row's user message (question + image) → prompt tokens (verl's Continuous Token builder, with the
   processor: image placeholders expanded as in training);
2. **turn 1**: the policy answers greedily (``temperature 0``, ``max_tokens = proposal_max_tokens``);
   :func:`~getok.rl.verl_stage2.resolve_proposal` keeps it or swaps in the row's fallback proposal (then the
   fallback's tokens and the end-of-turn token stand as turn 1);
3. the simulated user turn: getok's refine instruction (:data:`~getok.rl.stage2.REFINE_PROMPT`) appended
   through the builder (``<|im_end|>\\n<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n`` on Qwen);
4. **turn 2**: sampled with the rollout's parameters; it is the returned response (``response_mask`` all 1).
   The prompt (question, turn 1, refine instruction) is ``prompt_ids``: it must fit
   ``rollout.prompt_length`` — a proposal that makes it too long is replaced by the fallback
   (``prompt_too_long``), a fallback too long is a configuration error.

The proposal goes to ``extra_fields`` (``proposal``, ``proposal_source``, ``proposal_reason``), which verl's
reward loop passes to :func:`getok.rl.verl_reward.compute_score` as ``extra_info``. Importing this module
needs no verl; the class is built from verl's ``AgentLoopBase`` on first access (an ImportError naming
``requirements/verl.txt`` where verl is missing, or where the ``verl`` on the path is EasyR1's).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from uuid import uuid4

from .stage2 import REFINE_PROMPT
from .verl_stage2 import AGENT_LOOP_KWARGS, ON_INVALID, RefineProposal, resolve_proposal

__all__ = ["GetokRefineAgentLoop", "AGENT_LOOP_KWARGS"]  # noqa: F822 (built on first access: __getattr__)

log = logging.getLogger("getok.rl.verl_agent")



def _greedy(sampling_params: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """Turn 1's sampling parameters: verl's own greedy settings (``apply_greedy_sampling_params``)."""
    return {**sampling_params, "temperature": 0, "top_p": 1.0, "top_k": -1, "max_tokens": int(max_tokens)}


def _end_of_turn(tokenizer) -> tuple[set[int], int]:
    """The ids that close an assistant turn (eos, and ChatML's ``<|im_end|>`` where the vocabulary has it) and the
    one a fallback turn 1 is closed with (``<|im_end|>`` first: what the chat template writes after an answer)."""
    im_end = tokenizer.get_vocab().get("<|im_end|>")
    ids = {int(i) for i in (tokenizer.eos_token_id, im_end) if i is not None}
    if not ids:
        raise ValueError("getok_refine: the tokenizer has no eos token: cannot tell where turn 1 ends")
    return ids, int(im_end if im_end is not None else tokenizer.eos_token_id)


def _build_class():
    try:
        from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput
    except ImportError as exc:  # no verl, or EasyR1's verl (no agent loops)
        raise ImportError(f"getok's verl agent loop needs verl >= 0.8 (requirements/verl.txt): {exc}") from exc

    class GetokRefineAgentLoop(AgentLoopBase):
        """getok's stage-2 rollout for verl (module docstring)."""

        def __init__(self, *args, on_invalid: str = "fallback", max_cells: int | None = None,
                     proposal_max_tokens: int | None = None, refine_prompt: str = REFINE_PROMPT, **kwargs):  # fmt: skip
            kwargs.pop("tools", None)  # verl hands every loop its tool list; this one calls none
            super().__init__(*args, **kwargs)
            if on_invalid not in ON_INVALID:
                raise ValueError(f"getok_refine: on_invalid must be one of {ON_INVALID}, got {on_invalid!r}")
            self.on_invalid = on_invalid
            self.prompt_length = int(self.rollout_config.prompt_length)
            self.response_length = int(self.rollout_config.response_length)
            self.max_cells = int(max_cells) if max_cells else max(1, self.response_length - 2)
            self.proposal_max_tokens = int(proposal_max_tokens or self.response_length)
            self.refine_prompt = refine_prompt
            self.end_ids, self.end_id = _end_of_turn(self.tokenizer)

        async def _generate(self, request_id, prompt_ids, sampling_params, mm: dict, metrics: dict):
            t0 = time.perf_counter()
            out = await self.server_manager.generate(
                request_id=request_id, prompt_ids=prompt_ids, sampling_params=sampling_params,
                image_data=mm.get("images"), video_data=mm.get("videos"), audio_data=mm.get("audios"),
                mm_processor_kwargs=mm.get("kwargs"),
            )  # fmt: skip
            metrics["generate_sequences"] = metrics.get("generate_sequences", 0.0) + time.perf_counter() - t0
            if out.num_preempted is not None:
                metrics["num_preempted"] = max(0, metrics.get("num_preempted", 0)) + int(out.num_preempted)
            return out

        async def _two_turn_prompt(self, messages, prompt_ids, proposal: RefineProposal, turn1_ids):
            """``prompt_ids`` + turn 1 + the refine instruction (and the generation prompt), via verl's builder."""
            if proposal.source != "policy":  # the fallback stands as turn 1, closed like a generated turn
                turn1_ids = [*self.tokenizer.encode(proposal.text, add_special_tokens=False), self.end_id]
            merged, _, _ = await self.ct_merge_assistant_token(prompt_ids, turn1_ids, [])
            history = [*messages, {"role": "assistant", "content": proposal.text}]
            merged, _, _ = await self.ct_merge_context_msg(
                history, [*history, {"role": "user", "content": self.refine_prompt}], merged.token_ids, []
            )
            return list(merged.token_ids)

        async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
            messages = list(kwargs["raw_prompt"])
            ikw = dict(
                kwargs.get("interaction_kwargs") or (kwargs.get("extra_info") or {}).get("interaction_kwargs") or {}
            )
            missing = [k for k in ("codec", "size", "fallback") if k not in ikw]
            if missing:
                raise ValueError(f"getok_refine: the row's extra_info.interaction_kwargs lacks {missing}: export the rows "
                                 "with getok rl export-verl")  # fmt: skip
            mm_data = await self.process_multi_modal_info(messages)
            self._assert_mm_supported(bool(mm_data))
            mm_kwargs = self._get_mm_processor_kwargs(mm_data.get("audios"))
            mm = {**mm_data, "kwargs": mm_kwargs}
            prompt_ids = await self.ct_build_initial_tokens(
                messages, images=mm_data.get("images"), videos=mm_data.get("videos"), audios=mm_data.get("audios")
            )
            request_id, metrics = uuid4().hex, {}
            # turn 1: the current policy's own proposal, greedy
            out1 = await self._generate(
                request_id, prompt_ids, _greedy(sampling_params, self.proposal_max_tokens), mm, metrics
            )
            ids1 = list(out1.token_ids)
            text1 = self.tokenizer.decode(ids1, skip_special_tokens=True)
            closed = bool(ids1) and ids1[-1] in self.end_ids
            rule = dict(codec=ikw["codec"], size=ikw["size"], fallback=ikw["fallback"], max_cells=self.max_cells,
                        on_invalid=self.on_invalid)  # fmt: skip
            proposal = resolve_proposal(text1, closed=closed, **rule)
            full = await self._two_turn_prompt(messages, prompt_ids, proposal, ids1)
            if len(full) > self.prompt_length and proposal.source == "policy":
                proposal = resolve_proposal(text1, reason="prompt_too_long", **rule)
                full = await self._two_turn_prompt(messages, prompt_ids, proposal, ids1)
            if len(full) > self.prompt_length:
                raise ValueError(f"getok_refine: the two-turn prompt with the fallback proposal has {len(full)} tokens, "
                                 f"more than rollout.prompt_length={self.prompt_length}: raise it")  # fmt: skip
            # the simulated user has spoken; turn 2: the refinement, sampled as the rollout says
            out2 = await self._generate(request_id, full, dict(sampling_params), mm, metrics)
            ids2 = list(out2.token_ids)[: self.response_length]
            logprobs = list(out2.log_probs)[: self.response_length] if out2.log_probs else None
            extra = dict(out1.extra_fields or {})
            if (out2.extra_fields or {}).get("max_global_steps") is not None:
                extra["max_global_steps"] = out2.extra_fields["max_global_steps"]
            extra.update(proposal.extra_fields(), turn_scores=[], tool_rewards=[])
            metrics.setdefault("num_preempted", -1)
            return AgentLoopOutput(
                prompt_ids=full, response_ids=ids2, response_mask=[1] * len(ids2), response_logprobs=logprobs,
                multi_modal_data={k: v for k, v in mm_data.items() if v is not None}, mm_processor_kwargs=mm_kwargs,
                num_turns=4, metrics=metrics, extra_fields=extra,
            )  # fmt: skip

    GetokRefineAgentLoop.__module__, GetokRefineAgentLoop.__qualname__ = __name__, "GetokRefineAgentLoop"
    return GetokRefineAgentLoop


def __getattr__(name: str):
    """``GetokRefineAgentLoop`` is built from verl's ``AgentLoopBase`` on first access (PEP 562)."""
    if name == "GetokRefineAgentLoop":
        cls = _build_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
