"""Stage 2's two-turn prompts and proposals (getok.rl.stage2): no model needed."""

from __future__ import annotations

import pytest

from getok.codecs import get_codec
from getok.data_builders.offsets import DEFAULT_REFINE
from getok.errors import ConfigError, DataError
from getok.eval.generate import prompt_messages
from getok.ops.masks import rle_encode
from getok.rl.rewards import score_response
from getok.rl.stage2 import (
    ProposalStore,
    check_proposal,
    fallback_proposal,
    make_stage2_samples,
    oracle_refinement_answer,
    refine_prompt_messages,
)
from getok.rl.truth import pack_truth
from getok.samples import Sample, Turn

from .conftest import rect

SPEC = "grid_offset:n=8,r=1,step=0.5"
SIZE = (64, 64)  # 8 px cells


def _sample(sid="s0", mask=None, n_targets=1) -> Sample:
    m = rect(SIZE, 16, 16, 40, 40) if mask is None else mask
    masks = [rle_encode(m)] * n_targets
    return Sample(
        sample_id=sid, image_id=f"img-{sid}", image="/nonexistent.png", size=SIZE, task="text>mask", kind="mask",
        codec=SPEC, turns=[Turn("<image>\nSegment the blue square.", "<g8_r2_c2>")],
        truth={"size": list(SIZE), "masks": masks, "boxes": [[16.0, 16.0, 40.0, 40.0]] * n_targets},
    )  # fmt: skip


def test_check_proposal_reasons():
    c = get_codec(SPEC)
    assert check_proposal("<g8_r2_c2><g8_r2_c3>", c, SIZE, 8) == ("<g8_r2_c2><g8_r2_c3>", "")
    assert check_proposal("<think>x</think><answer><g8_r2_c2></answer><|im_end|>", c, SIZE, 8)[0] == "<g8_r2_c2>"
    assert check_proposal("none", c, SIZE, 8) == (None, "none")
    assert check_proposal("", c, SIZE, 8)[1].startswith("invalid:")
    assert check_proposal("<g8_r2_c2><off_0_0>", c, SIZE, 8)[1].startswith("invalid:")
    assert check_proposal("<g8_r2_c2>blah", c, SIZE, 8)[1].startswith("invalid:")
    many = "".join(f"<g8_r0_c{i}>" for i in range(8))
    assert check_proposal(many, c, SIZE, 7) == (None, "too_long")
    assert check_proposal(many, c, SIZE, 8)[1] == ""
    with pytest.raises(ConfigError):
        check_proposal("<g8_r2_c2>", "grid:n=8", SIZE, 8)


def test_fallback_is_deterministic_noisy_and_valid():
    s = _sample()
    a, b = fallback_proposal(s, SPEC, k=6, seed=3), fallback_proposal(s, SPEC, k=6, seed=3)
    assert a == b
    assert check_proposal(a, SPEC, SIZE, 30)[1] == ""
    assert len(get_codec(SPEC).decode(a, SIZE, "mask")[0].cells) == 6
    with pytest.raises(DataError):
        fallback_proposal(_sample(n_targets=2), SPEC)


def test_oracle_refinement_keeps_inside_moves_ring_deletes_far():
    m = rect(SIZE, 16, 16, 40, 40)
    # inside (r3 c3: centre 28,28), far (r7 c7), ring just left of the square (r3 c1: centre 12,28)
    ans = oracle_refinement_answer("<g8_r3_c1><g8_r3_c3><g8_r7_c7>", [m], SPEC, SIZE)
    toks = ans.replace("><", ">\n<").split("\n")
    assert toks[1] == "<off_0_0>" and toks[2] == "<DELETE>"
    assert toks[0].startswith("<off_1_")  # moves right, into the square
    truth = pack_truth(SIZE, [m], codec=SPEC, task="stage2", proposal="<g8_r3_c1><g8_r3_c3><g8_r7_c7>")
    good = score_response(ans, truth, task="stage2", config={"stage2": {"envelope": "any"}})
    keep = score_response("<off_0_0>" * 3, truth, task="stage2", config={"stage2": {"envelope": "any"}})
    assert good["invalid"] == 0 and good["overall"] > keep["overall"]
    assert good["point_refine"] == pytest.approx(1.0)


def test_refine_prompt_is_the_selfcorrect_conversation():
    s = _sample()
    msgs = refine_prompt_messages(s, "<g8_r2_c2>")
    expected = prompt_messages(s, [Turn(s.turns[0].user, "<g8_r2_c2>"), Turn(DEFAULT_REFINE, "")])
    assert msgs == expected
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0]["content"][0]["type"] == "image"
    assert msgs[1]["content"][0]["text"] == "<g8_r2_c2>"


class _Gen:
    """A scripted policy: answers from a list per call, records what it was asked."""

    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def __call__(self, samples):
        self.calls.append([s.sample_id for s in samples])
        return [self.answers.pop(0) for _ in samples]


def test_store_fresh_refresh_and_frozen():
    samples = [_sample("a"), _sample("b")]
    fresh = ProposalStore(samples, SPEC, refresh_steps=1)
    gen = _Gen(["<g8_r2_c2>", "<g8_r3_c3>", "<g8_r4_c4>", "<g8_r2_c3>"])
    p0 = fresh.proposals(["a", "b", "a"], 0, gen)
    assert gen.calls == [["a", "b"]] and p0["a"].answer == "<g8_r2_c2>" and p0["a"].source == "policy"
    p1 = fresh.proposals(["a", "b"], 1, gen)  # fresh: regenerated at the next step
    assert gen.calls[-1] == ["a", "b"] and p1["a"].answer == "<g8_r4_c4>"

    every2 = ProposalStore(samples, SPEC, refresh_steps=2)
    gen = _Gen(["<g8_r2_c2>", "<g8_r3_c3>"])
    every2.proposals(["a"], 0, gen)
    every2.proposals(["a"], 1, gen)  # reused
    assert gen.calls == [["a"]] and every2.rates()["reused"] == 1.0
    every2.proposals(["a"], 2, gen)
    assert len(gen.calls) == 2

    frozen = ProposalStore(samples, SPEC, refresh_steps=0)
    gen = _Gen(["<g8_r2_c2>"])
    frozen.proposals(["a"], 0, gen)
    frozen.proposals(["a"], 500, gen)
    assert gen.calls == [["a"]]
    with pytest.raises(DataError):
        frozen.proposals(["zzz"], 0, gen)


def test_store_state_round_trips_and_rejects_garbage():
    """What a checkpoint keeps of the store: a restored store reuses the proposals instead of generating."""
    import json

    samples = [_sample("a"), _sample("b")]
    store = ProposalStore(samples, SPEC, refresh_steps=0)
    store.proposals(["a", "b"], 1, _Gen(["garbage", "<g8_r3_c3>"]))
    again = ProposalStore(samples, SPEC, refresh_steps=0)
    again.load_state_dict(json.loads(json.dumps(store.state_dict())))
    assert again.cache == store.cache and again.counts == store.counts
    assert again.cache["a"].source == "fallback" and again.cache["b"].answer == "<g8_r3_c3>"
    gen = _Gen([])
    assert again.proposals(["a", "b"], 5, gen) == store.cache and gen.calls == []
    ok = {"text": "", "answer": "", "source": "policy", "reason": "", "step": 0}
    for bad in ({}, {"cache": 5, "counts": {}}, {"cache": {"a": {"text": 1}}, "counts": {}},
                {"cache": {"a": ok}, "counts": {"generated": "x"}}, {"cache": {"zzz": ok}, "counts": {}}):
        with pytest.raises(DataError):
            again.load_state_dict(bad)


def test_store_invalid_proposals_fall_back_or_mask_and_fill_rows():
    samples = [_sample("a"), _sample("b")]
    store = ProposalStore(samples, SPEC, on_invalid="fallback", seed=1)
    rows = [{"sample_id": "a", "prompt": None, "truth": "t"}] * 2 + [
        {"sample_id": "b", "prompt": None, "truth": "t"}
    ] * 2
    out = store.fill(rows, 0, _Gen(["none", "<g8_r3_c3>"]))
    assert [r["proposal_source"] for r in out] == ["fallback", "fallback", "policy", "policy"]
    assert out[0]["proposal"] == fallback_proposal(samples[0], SPEC, k=6, seed=1)
    assert out[0]["proposal"] == out[1]["proposal"]  # a group shares its proposal
    assert out[2]["prompt"][1]["content"][0]["text"] == "<g8_r3_c3>" and out[2]["proposal"] == "<g8_r3_c3>"
    assert out[0]["prompt"][1]["content"][0]["text"] == out[0]["proposal"]
    assert rows[0]["prompt"] is None  # inputs are not mutated
    assert store.rates() == {"policy": 0.5, "fallback": 0.5, "masked": 0.0, "reused": 0.0}
    assert store.counts["reason:none"] == 1
    masked = ProposalStore(samples, SPEC, on_invalid="mask")
    out = masked.fill(rows[:1], 0, _Gen(["garbage"]))
    assert out[0]["proposal_source"] == "masked"


def test_make_stage2_samples_fallback_skip_and_targets():
    samples = [_sample("a"), _sample("b"), _sample("c", n_targets=2)]
    out, counts = make_stage2_samples(samples, ["<g8_r3_c3><g8_r7_c7>", "junk", "<g8_r3_c3>"], SPEC)
    assert [s.sample_id for s in out] == ["a-s2", "b-s2"]
    assert counts["policy"] == 1 and counts["fallback"] == 1 and counts["not_single_target"] == 1
    a = out[0]
    assert a.task == "refine" and a.truth["proposal"] == "<g8_r3_c3><g8_r7_c7>"
    assert a.turns[0].assistant == "<g8_r3_c3><g8_r7_c7>" and a.turns[1].user == DEFAULT_REFINE
    assert a.answer == "<off_0_0><DELETE>"
    assert out[1].meta["proposal_source"] == "fallback"
    out, counts = make_stage2_samples(samples[:2], ["<g8_r3_c3>", "junk"], SPEC, on_invalid="skip")
    assert len(out) == 1 and counts["skipped"] == 1
