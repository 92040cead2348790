"""benchmarks/count_lookup.py: a count line is right exactly when the model picks every one of its tokens."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from lottogpt import kata
from lottogpt.tokenizer import Tokenizer

from .conftest import TINY, Oracle, benchmark_module

WINNING, BONUS = (1, 2, 3, 4, 5, 6), 7
SECOND, THIRD, LOSER = (1, 2, 3, 4, 5, 7), (1, 2, 3, 4, 5, 40), (20, 21, 22, 23, 24, 25)


@pytest.fixture(scope="module")
def count_lookup():  # -> the benchmark module
    with benchmark_module("count_lookup") as module:
        yield module


def test_lookup_context_says_value_and_distance(count_lookup) -> None:
    case = kata.Case.create([SECOND, LOSER, SECOND, THIRD, LOSER], list(WINNING), BONUS)
    second = [r.key for r in kata.Rank].index("5+bonus")
    third = [r.key for r in kata.Rank].index("5")
    assert count_lookup.lookup_context(case, second) == {"value": 2, "distance": 2, "n_tickets": 5}
    assert count_lookup.lookup_context(case, third) == {"value": 1, "distance": 1, "n_tickets": 5}
    assert count_lookup.lookup_context(case, 0) == {"value": 0, "distance": -1, "n_tickets": 5}


def test_a_wrong_token_fails_its_line_only(count_lookup, tiny_tokenizer: Path) -> None:
    tokenizer = Tokenizer.load(tiny_tokenizer)
    engine = SimpleNamespace(tokenizer=tokenizer, answer_format=TINY.answer_format, device=torch.device("cpu"))
    cases = [kata.Case.create([SECOND, LOSER, THIRD], list(WINNING), BONUS),
             kata.Case.create([LOSER, SECOND], list(WINNING), BONUS)]
    encoded = [count_lookup.encode_case(engine, case) for case in cases]
    for (tokens, spans), case in zip(encoded, cases, strict=True):
        assert len(spans) == 5 and all(a < b <= len(tokens) for a, b in spans)
        lines = [tokenizer.decode(tokens[a:b]) for a, b in spans]
        assert lines == kata.score(case).lines[:5]
    engine.model = Oracle(tokenizer.vocab_size)
    assert count_lookup.score_batch(engine, encoded) == [[(True, 1.0)] * 5, [(True, 1.0)] * 5]
    _, b = encoded[0][1][3]  # the 2nd prize's line of the first case: its last token predicted wrong
    engine.model = Oracle(tokenizer.vocab_size, {b - 2})
    scored = count_lookup.score_batch(engine, encoded)
    assert scored[0] == [(True, 1.0), (True, 1.0), (True, 1.0), (False, -1.0), (True, 1.0)]
