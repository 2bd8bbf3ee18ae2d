"""Constrained decoding: every grammar path parses; the random tiny model's constrained outputs all parse."""

from __future__ import annotations

import numpy as np
import pytest

from getok.answers import extract_answer
from getok.codecs import get_codec
from getok.codecs.token_names import grid_token
from getok.errors import ConfigError
from getok.eval.constrained import (
    GrammarMachine,
    TokenTables,
    grammar_for,
    grammar_for_sample,
    is_constrainable,
    refinement_grammar,
)
from getok.eval.grammar_logits import random_completion

from .conftest import BINS, SPEC

COVERED = ["grid:n=8", "grid_offset:n=8,r=1,step=0.5", "bins:bins=50", "polygon:vertex=grid_offset,n=8",
           "polygon:vertex=bins,bins=50", "polygon:vertex=grid,n=8"]  # fmt: skip
SIZE = (60, 90)


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import AddedToken

    from getok.vocab.layout import VocabLayout
    from getok.vocab.tiny import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in VocabLayout.from_codecs(COVERED).tokens])
    return tok


@pytest.mark.parametrize("spec", COVERED)
def test_random_grammar_paths_parse(tokenizer, spec):
    """Uniform random walks through the grammar (what the processor lets a model write) always decode."""
    rng = np.random.default_rng(0)
    c = get_codec(spec)
    tables = TokenTables.get(tokenizer, spec)
    for kind in c.kinds:
        for env in (False, True):
            m = GrammarMachine(grammar_for(spec, kind, envelope=env), tables)
            lo = m.min_complete(m.start())
            for _ in range(40):
                ids = random_completion(m, int(rng.integers(lo, lo + 25)), rng)
                text = tokenizer.decode(ids, skip_special_tokens=True)
                if env:
                    assert text.startswith("<think>") and text.endswith("</answer>"), text
                res = c.try_decode(extract_answer(text), SIZE, kind)
                assert res.valid, (spec, kind, text, res.error)


def test_box_corners_stay_ordered(tokenizer):
    for spec in ("grid:n=8", "grid_offset:n=8,r=1,step=0.5", "bins:bins=50"):
        c = get_codec(spec)
        m = GrammarMachine(grammar_for(spec, "box", allow_none=False, max_instances=1), TokenTables.get(tokenizer, spec))
        rng = np.random.default_rng(1)
        for _ in range(60):
            text = tokenizer.decode(random_completion(m, 8, rng, p_end=0.9), skip_special_tokens=True)
            (g,) = c.decode(text, SIZE, "box")
            assert g.box[0] <= g.box[2] and g.box[1] <= g.box[3]


def test_refinement_exact_counts_within_tight_budget(tokenizer):
    spec = "grid_offset:n=8,r=1,step=0.5"
    c = get_codec(spec)
    tables = TokenTables.get(tokenizer, spec)
    rng = np.random.default_rng(2)
    for counts in [(), (1,), (3, 1), (2, 4, 1)]:
        prop = [c.decode("".join(grid_token(j, i, 8) for j in range(k)), SIZE)[0] for i, k in enumerate(counts)]
        m = GrammarMachine(refinement_grammar(c, counts), tables)
        need = m.min_complete(m.start())
        assert need == (sum(counts) + max(len(counts) - 1, 0) * len(tables.literals["nl"]) if counts else len(tables.literals["none"]))
        for budget in (need, need + 3):
            text = tokenizer.decode(random_completion(m, budget, rng), skip_special_tokens=True)
            res = c.try_decode_refinement(text, prop)
            assert res.valid, (counts, text, res.error)
        # a budget too small: the best effort is returned, never an empty choice
        ids, eos = m.allowed(m.start(), 0)
        assert ids and not eos


def test_eos_only_where_the_answer_may_end(tokenizer):
    spec = "grid_offset:n=8,r=1,step=0.5"
    tables = TokenTables.get(tokenizer, spec)
    m = GrammarMachine(grammar_for(spec, "point"), tables)
    s = m.start()
    assert m.allowed(s, 10)[1] is False
    s = m.advance(s, int(tables.cells[5]))
    ids, eos = m.allowed(s, 10)
    assert not eos and set(np.concatenate(ids).tolist()) == set(tables.offset_ids.tolist())
    s = m.advance(s, int(tables.offset_ids[0]))
    assert m.complete(s) and m.advance(s, int(tables.cells[0])).phase == "dead"  # one point only


def test_uncovered_codecs_are_refused():
    for spec in ("text_coords", "polygon:vertex=text", "rle_descriptors:rows=16"):
        assert not is_constrainable(spec)
        with pytest.raises(ConfigError, match="constrained decoding"):
            grammar_for(spec, "mask")
    assert is_constrainable("grid_offset:n=32", "box")
    with pytest.raises(ConfigError, match="refinement"):
        refinement_grammar("grid:n=8", (2,))


def test_tokenizer_without_codec_tokens_is_refused():
    from getok.vocab.tiny import build_tiny_tokenizer

    with pytest.raises(ConfigError, match="add_spatial_tokens"):
        TokenTables(build_tiny_tokenizer(), "grid:n=8")


def test_tiny_model_constrained_outputs_all_parse(tiny_model, scene_dataset):
    """The random tiny model writes garbage unconstrained and only parseable answers constrained."""
    from getok.data_builders.dataset import read_dataset
    from getok.eval.generate import generate_answers

    model, proc = tiny_model
    ds = read_dataset(scene_dataset)
    base = [s for s in ds.samples if s.task != "refine"][:2]
    refine = next(s for s in ds.samples if s.task == "refine")
    cases = []  # (sample, grammar, how to decode)
    for s in base:
        for spec, kind in [(SPEC, "mask"), (SPEC, "box"), (SPEC, "point"), (SPEC, "polyline"), (BINS, "mask"), (BINS, "box"),
                           ("polygon:vertex=bins,bins=100", "mask")]:  # fmt: skip
            cases.append((s, grammar_for(spec, kind, allow_none=False, envelope=(kind == "box")), spec, kind))
    cases.append((refine, grammar_for_sample(refine), SPEC, "refine"))
    samples = [c[0] for c in cases]
    grammars = [c[1] for c in cases]
    free = generate_answers(model, proc, samples, image_root=scene_dataset, max_new_tokens=16, batch_size=15, progress=False)
    con = generate_answers(model, proc, samples, image_root=scene_dataset, max_new_tokens=16, batch_size=15,
                           constrained=grammars, progress=False)  # fmt: skip

    def valid(text, s, spec, kind):
        c = get_codec(spec)
        if kind == "refine":
            prop = c.decode(s.turns[0].assistant, s.size, "mask")
            return c.try_decode_refinement(extract_answer(text), prop).valid
        return c.try_decode(extract_answer(text), s.size, kind).valid

    ok_free = [valid(t, s, spec, kind) for t, (s, _, spec, kind) in zip(free, cases)]
    ok_con = [valid(t, s, spec, kind) for t, (s, _, spec, kind) in zip(con, cases)]
    assert all(ok_con), [t for t, ok in zip(con, ok_con) if not ok]
    assert sum(ok_free) < len(cases) / 2  # unconstrained: mostly garbage
    assert all(t.strip() and t.strip() != "none" for t in con)  # allow_none=False: real answers
    assert con[-1].count("\n") == 0 and len(con[-1].split(">")) - 1 == len(refine.truth["proposal_cells"])


def test_runner_invalid_rate_with_and_without_constraints(tiny_model_dir, scene_dataset, tmp_path):
    from getok.eval.runner import evaluate_path

    kw = dict(limit=8, batch_size=8, max_new_tokens=16, progress=False, boundary=False)
    free = evaluate_path(tiny_model_dir, scene_dataset, **kw)
    con = evaluate_path(tiny_model_dir, scene_dataset, constrained=True, **kw)
    assert con["overall"]["invalid_rate"] == 0.0
    assert free["overall"]["invalid_rate"] > 0.5
