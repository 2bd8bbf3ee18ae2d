import pytest

from getok.errors import ConfigError
from getok.rl.rewards_trl import make_reward_fn, stage1_reward, stage2_reward
from getok.rl.truth import pack_truth

from .conftest import rect, wrap

SIZE = (32, 32)


def test_trl_signature_strings_and_messages_and_logging():
    truth = pack_truth(SIZE, [rect(SIZE, 0, 0, 16, 16)], codec="grid:n=2")
    texts = [wrap("<g2_r0_c0>"), wrap("<g2_r1_c1>"), "junk"]
    metrics, extra = {}, {}
    kwargs = dict(
        prompts=["p"] * 3,
        completion_ids=[[1], [2], [3]],
        truth=[truth] * 3,
        trainer_state=None,
        log_metric=lambda name, value: metrics.__setitem__(name, value),
        log_extra=lambda column, values: extra.__setitem__(column, values),
    )
    as_strings = stage1_reward(completions=texts, **kwargs)
    conversational = [[{"role": "assistant", "content": t}] for t in texts[:2]] + [
        [{"role": "assistant", "content": [{"type": "text", "text": "junk"}]}]
    ]
    as_messages = stage1_reward(completions=conversational, **kwargs)
    assert as_strings == as_messages
    assert all(isinstance(v, float) for v in as_strings)
    assert as_strings[0] > as_strings[1] > as_strings[2] == 0.0
    assert stage1_reward.__name__ == "getok_stage1"
    assert metrics["getok_stage1/mask_iou"] == pytest.approx(1 / 3)
    assert metrics["getok_stage1/invalid"] == pytest.approx(1 / 3)
    assert extra["getok_stage1/reason"] == ["", "", "format"]
    assert stage1_reward.last_scores[0]["mask"] == 1.0


def test_missing_truth_column_is_a_config_error():
    with pytest.raises(ConfigError, match="truth"):
        stage1_reward(completions=["x"], prompts=["p"])


def test_stage2_uses_the_proposal_column():
    truth = pack_truth(SIZE, [rect(SIZE, 0, 0, 12, 8)], codec="grid_offset:n=4", task="stage2")
    out = stage2_reward(
        completions=[wrap("<off_0_0><off_-1_0>"), wrap("<off_0_0>")],
        truth=[truth, truth],
        proposal=["<g4_r0_c0><g4_r0_c1>", "<g4_r0_c0>"],
    )
    assert out[0] > 0.9 and 0.0 < out[1] < out[0]
    assert stage2_reward(completions=[wrap("<off_0_0>")], truth=[truth])[0] == 0.0  # no proposal at all


def test_custom_reward_fn_name_and_config():
    fn = make_reward_fn("stage1", config={"stage1": {"w_points": 0.0, "w_box": 0.0}}, name="seg")
    truth = pack_truth(SIZE, [rect(SIZE, 0, 0, 16, 16)], codec="grid:n=2")
    assert fn.__name__ == "seg"
    assert fn(completions=[wrap("<g2_r0_c0>")], truth=[truth]) == [1.0]


def test_images_column_reaches_decoders_that_need_pixels():
    import numpy as np

    from .test_rewards_stage1 import BoxDecoder

    dec = BoxDecoder()
    fn = make_reward_fn("stage1", decoder=dec)
    truth = pack_truth(SIZE, [rect(SIZE, 0, 0, 16, 16)], codec="grid:n=2")
    img_a, img_b = np.zeros((*SIZE, 3), np.uint8), np.full((*SIZE, 3), 7, np.uint8)
    out = fn(completions=[wrap("<g2_r0_c0>")] * 4, truth=[truth] * 4, images=[[img_a], [img_a], [img_b], [img_b]])
    assert len(out) == 4 and len(dec.calls) == 2 and dec.calls[0] != dec.calls[1]  # one set_image per image
