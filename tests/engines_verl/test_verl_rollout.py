"""Our rows, agent loop and reward driven through verl's own rollout code on CPU, with scripted responses.

verl's ``RLHFDataset`` reads the ``getok rl export-verl`` rows; verl's ``AgentLoopWorker`` (the worker a run starts per
rollout replica: it loads ``configs/verl/agent_loop.yaml`` into its registry, instantiates getok's loop per rollout,
pads, computes the multimodal inputs and M-RoPE positions and asks the reward loop for scores) runs
``generate_sequences`` on a batch repeated as the trainer repeats it (GRPO groups); the LLM server is a scripted
stand-in returning token ids as vLLM does (end-of-turn token included, cut at ``max_tokens``); the reward goes
through verl's ``RewardLoopWorker`` → ``naive`` reward manager → ``pkg://getok.rl.verl_reward``. What is not
verl here: the server's answers.
"""

from __future__ import annotations

import json
import types

import pytest

from .conftest import compose, require_verl, tiny_agent_loop_yaml, tiny_overrides

require_verl()

SPEC = "grid_offset:n=8,r=1,step=0.5"


class ScriptedServer:
    """Stands in for verl's ``LLMServerClient.generate``: per request, turn 1 then turn 2 of the script whose key
    (a question) the prompt contains; token ids + end-of-turn as vLLM returns them, cut at ``max_tokens``. A third
    script item ``False`` returns turn 1 without its end-of-turn token (a turn the token budget cut)."""

    def __init__(self, tokenizer, script: dict, response_length: int):
        self.tok, self.script, self.response_length, self.calls = tokenizer, script, response_length, []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **_):
        from verl.workers.rollout.replica import TokenOutput

        turn = sum(c["request_id"] == request_id for c in self.calls)
        text = self.tok.decode(prompt_ids)
        key = next(k for k in self.script if k in text)
        closed = turn == 1 or len(self.script[key]) < 3 or self.script[key][2]
        ids = self.tok.encode(self.script[key][turn], add_special_tokens=False) + [self.tok.eos_token_id] * closed
        ids = ids[: int(sampling_params.get("max_tokens", self.response_length))]
        self.calls.append({"request_id": request_id, "turn": turn, "key": key, "prompt_ids": list(prompt_ids),
                           "sampling_params": dict(sampling_params), "images": len(image_data or []), "ids": ids})  # fmt: skip
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids))


def _question(row) -> str:
    return next(c["text"] for c in row["raw_prompt"][0]["content"] if c["type"] == "text")


@pytest.fixture(scope="module")
def world(artefacts):
    """The composed config, verl's dataset over our rows, getok's samples by id, and the rows picked for scripts."""
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    from getok.data_builders.dataset import read_dataset

    cfg = compose(tiny_overrides(artefacts, agent_loop=tiny_agent_loop_yaml(artefacts, proposal_max_tokens=400)))
    tok, proc = hf_tokenizer(str(artefacts / "model")), hf_processor(str(artefacts / "model"))
    ds = RLHFDataset(cfg.data.train_files, tok, cfg.data, proc)
    samples = {s.sample_id: s for s in read_dataset(artefacts / "tasks")}
    rows = [ds[i] for i in range(len(ds))]
    counts = {}
    for r in rows:
        counts[_question(r)] = counts.get(_question(r), 0) + 1
    unique = [i for i, r in enumerate(rows) if counts[_question(r)] == 1]
    return types.SimpleNamespace(
        cfg=cfg, tok=tok, proc=proc, ds=ds, rows=rows, samples=samples, unique=unique, art=artefacts
    )


def test_rows_load_in_verls_dataset_as_sft_shows_the_question(world):
    from verl import DataProto
    from verl.utils.dataset.rl_dataset import collate_fn

    from getok.data_builders.export import trl_messages
    from getok.rl.stage2 import fallback_proposal
    from getok.rl.truth import unpack_truth

    assert len(world.ds) == 48  # none filtered as overlong at max_prompt_length 256
    for row in world.rows:
        s = world.samples[row["extra_info"]["sample_id"]]
        got = [{"type": c["type"]} if c["type"] == "image" else c for c in row["raw_prompt"][0]["content"]]
        want = [{"type": "image"} if c["type"] == "image" else c for c in trl_messages(s)[0]["content"]]
        assert got == want  # the user content SFT trained on (no newline at the image)
        assert row["agent_name"] == "getok_refine" and row["data_source"] == "getok/stage2"
        ikw = row["interaction_kwargs"]  # lifted from extra_info by verl's dataset
        assert (ikw["codec"], list(ikw["size"])) == (SPEC, list(s.size))
        assert ikw["fallback"] == fallback_proposal(s, SPEC, k=6, seed=0)
        truth = unpack_truth(row["reward_model"]["ground_truth"])
        assert truth.task == "stage2" and truth.n_targets == 1 and truth.proposal is None
    batch = DataProto.from_single_dict(collate_fn(world.rows[:3]))
    assert list(batch.non_tensor_batch["agent_name"]) == ["getok_refine"] * 3


def _expected_prompt(world, sample, proposal_text):
    """The token ids of TRL's stage-2 prompt for ``proposal_text`` (getok.rl.stage2.refine_prompt_messages
    through the model's processor, image included)."""
    from PIL import Image

    from getok.eval.generate import load_sample_image
    from getok.rl.stage2 import refine_prompt_messages

    msgs = refine_prompt_messages(sample, proposal_text)
    text = world.proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    img = Image.fromarray(load_sample_image(sample, world.art / "tasks"))
    return world.proc(text=[text], images=[img], return_tensors="pt")["input_ids"][0].tolist()


def _run(world, loop, idx: list[int], script: dict, agent_loop=None, n: int = 2):
    """verl's AgentLoopWorker.generate_sequences on rows ``idx``, each repeated ``n`` times (a GRPO group)."""
    from verl import DataProto
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
    from verl.experimental.reward_loop.reward_loop import RewardLoopWorker
    from verl.utils.dataset.rl_dataset import collate_fn

    cfg = world.cfg if agent_loop is None else compose(tiny_overrides(world.art, agent_loop=agent_loop))
    reward = RewardLoopWorker(cfg)  # a Ray actor in a run; called in-process here
    handle = types.SimpleNamespace(compute_score=types.SimpleNamespace(remote=reward.compute_score))
    server = ScriptedServer(world.tok, script, int(cfg.actor_rollout_ref.rollout.response_length))
    worker = AgentLoopWorker(cfg, llm_client=server, reward_loop_worker_handles=[handle])
    batch = DataProto.from_single_dict(collate_fn([world.rows[i] for i in idx]))
    batch = batch.repeat(repeat_times=n, interleave=True)
    out = loop.run_until_complete(worker.generate_sequences(batch))
    return out, server


def test_two_turn_rollouts_through_verls_agent_loop_worker(world, event_loop_here):
    from getok.rl.rewards_decoding import DecoderSession
    from getok.rl.rewards_stage2 import Stage2Config, score_stage2
    from getok.rl.stage2 import REFINE_PROMPT, oracle_refinement_answer, truth_masks
    from getok.rl.truth import unpack_truth

    a, b, c, d, e = world.unique[:5]
    picked = {"valid": a, "bad_proposal": b, "bad_refine": c, "truncated": d, "too_long": e}
    S = {k: world.samples[world.rows[i]["extra_info"]["sample_id"]] for k, i in picked.items()}
    fb = {k: world.rows[i]["interaction_kwargs"]["fallback"] for k, i in picked.items()}
    target = {k: json.loads(world.rows[i]["reward_model"]["ground_truth"])["target"] for k, i in picked.items()}

    def oracle(k, proposal):
        return oracle_refinement_answer(proposal, truth_masks(S[k]), SPEC, S[k].size)

    long = 200 // len(
        world.tok.encode("look ", add_special_tokens=False)
    )  # ~200 tokens: fits turn 1's 400, not the prompt
    script = {
        _question(world.rows[a]): (f"<think>It is there.</think><answer>{target['valid']}</answer>", oracle("valid", target["valid"])),
        _question(world.rows[b]): ("<answer><g8_r9", oracle("bad_proposal", fb["bad_proposal"])),
        _question(world.rows[c]): (target["bad_refine"], "<answer><off_0_0>oops"),
        _question(world.rows[d]): (target["truncated"], oracle("truncated", fb["truncated"]), False),
        _question(world.rows[e]): ("<think>" + "look " * long + f"</think><answer>{target['too_long']}</answer>",
                                   oracle("too_long", fb["too_long"])),
    }  # fmt: skip
    out, server = _run(world, event_loop_here, [a, b, c, d, e], script)

    # turn 1 greedy with the loop's budget, turn 2 with the rollout's sampling; the image goes with both
    t1 = [x for x in server.calls if x["turn"] == 0]
    t2 = [x for x in server.calls if x["turn"] == 1]
    assert len(t1) == len(t2) == 10
    assert all(x["sampling_params"]["temperature"] == 0 and x["sampling_params"]["top_k"] == -1 for x in t1)
    assert all(x["sampling_params"]["temperature"] == 1.0 and "max_tokens" not in x["sampling_params"] for x in t2)
    assert all(x["images"] == 1 for x in server.calls)

    nt = out.non_tensor_batch
    by_key = {}
    for i in range(len(out)):  # rows come back in batch order: 5 groups of 2
        by_key.setdefault(list(picked)[i // 2], []).append(i)
    want_source = {"valid": ("policy", ""), "bad_proposal": ("fallback", "invalid"), "bad_refine": ("policy", ""),
                   "truncated": ("fallback", "truncated"), "too_long": ("fallback", "prompt_too_long")}  # fmt: skip
    want_proposal = {"valid": target["valid"], "bad_refine": target["bad_refine"], "bad_proposal": fb["bad_proposal"],
                     "truncated": fb["truncated"], "too_long": fb["too_long"]}  # fmt: skip
    cfg2 = Stage2Config(envelope="any")
    session = DecoderSession("raster")
    for k, rows in by_key.items():
        for i in rows:
            assert nt["proposal"][i] == want_proposal[k], k
            assert nt["proposal_source"][i] == want_source[k][0], k
            assert str(nt["proposal_reason"][i]).startswith(want_source[k][1]), (k, nt["proposal_reason"][i])
            # the response is turn 2 only; the prompt holds the question, turn 1 and the refine instruction
            mask = out.batch["response_mask"][i].bool()
            resp = out.batch["responses"][i][mask].tolist()
            call = next(x for x in t2 if x["key"] == _question(world.rows[picked[k]]))
            assert resp == call["ids"]
            prompt = out.batch["prompts"][i][
                out.batch["attention_mask"][i][: out.batch["prompts"].shape[1]].bool()
            ].tolist()
            assert prompt == call["prompt_ids"]
            assert f"<|im_start|>user\n{REFINE_PROMPT}<|im_end|>\n<|im_start|>assistant\n" in world.tok.decode(prompt)
            # verl's reward (naive manager -> getok.rl.verl_reward) equals getok's stage-2 scorer on the same answer
            answer = world.tok.decode(resp, skip_special_tokens=True)
            truth = unpack_truth(world.rows[picked[k]]["reward_model"]["ground_truth"])
            want = score_stage2(answer, truth, session, cfg2, proposal=want_proposal[k])
            assert float(out.batch["rm_scores"][i].sum()) == pytest.approx(want["overall"], abs=1e-6), k
            assert float(nt["score"][i]) == pytest.approx(want["overall"], abs=1e-6)
            assert float(nt["invalid"][i]) == (1.0 if k == "bad_refine" else 0.0), k
            assert float(nt[f"proposal_{want_source[k][0]}"][i]) == 1.0
    assert float(out.batch["rm_scores"][by_key["valid"][0]].sum()) > 0.5  # the oracle refinement of a true proposal
    # token for token the prompt TRL's stage 2 (and getok eval --turns 2) builds, for the policy's and a fallback turn 1
    call = next(x for x in t2 if x["key"] == _question(world.rows[a]))
    assert call["prompt_ids"] == _expected_prompt(world, S["valid"], script[_question(world.rows[a])][0])
    call = next(x for x in t2 if x["key"] == _question(world.rows[b]))
    assert call["prompt_ids"] == _expected_prompt(world, S["bad_proposal"], fb["bad_proposal"])
    # what the trainer receives: multimodal inputs and M-RoPE positions over the whole two-turn sequence
    assert out.batch["position_ids"].shape[:2] == (10, 4)
    assert "image_grid_thw" in out.non_tensor_batch["multi_modal_inputs"][0]
    assert set(out.non_tensor_batch["__num_turns__"]) == {4}


def test_masked_invalid_proposal_scores_zero_for_the_whole_group(world, event_loop_here, artefacts):
    a, b = world.unique[:2]
    masked_yaml = tiny_agent_loop_yaml(artefacts, on_invalid="mask", proposal_max_tokens=400)
    script = {_question(world.rows[a]): (json.loads(world.rows[a]["reward_model"]["ground_truth"])["target"], "<off_0_0>"),
              _question(world.rows[b]): ("garbage", "<off_0_0>")}  # fmt: skip
    out, _ = _run(world, event_loop_here, [a, b], script, agent_loop=masked_yaml, n=2)
    nt = out.non_tensor_batch
    assert list(nt["proposal_source"]) == ["policy", "policy", "masked", "masked"]
    assert list(nt["proposal_masked"]) == [0.0, 0.0, 1.0, 1.0]
    assert out.batch["rm_scores"][2:].sum().item() == 0.0  # the group teaches nothing (zero advantage)
