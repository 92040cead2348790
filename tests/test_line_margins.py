"""benchmarks/line_margins.py: every line the model writes is scored, and only what the runtime does not feed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from lottogpt import kata, tokenizer

from .conftest import Oracle, benchmark_module, train_format_tokenizer

WINNING, BONUS = (1, 2, 3, 4, 5, 6), 7
SECOND, FOURTH, LOSER = (1, 2, 3, 4, 5, 7), (1, 2, 3, 4, 30, 40), (20, 21, 22, 23, 24, 25)


@pytest.fixture(scope="module")
def line_margins():  # -> the benchmark module
    with benchmark_module("line_margins") as module:
        yield module


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """What the script reads of a ModelEngine, in the default ``addends`` format (fed ticket numbers)."""
    tok = train_format_tokenizer(tmp_path_factory.mktemp("addends_tok"), "addends", 768, value_pieces=True)
    return SimpleNamespace(tokenizer=tok, answer_format="addends", device=torch.device("cpu"))


def test_lines_have_their_kinds_and_only_written_tokens(line_margins, engine: SimpleNamespace) -> None:
    case = kata.Case.create([SECOND, LOSER, FOURTH], list(WINNING), BONUS)
    tokens, lines = line_margins.encode_case(engine, case)
    assert [line["kind"] for line in lines] == ["ticket"] * 3 + ["count"] * 5 + ["sum", "division", "rate"]
    assert tokens[-1] == engine.tokenizer.eos_id and lines[-1]["at"][-1] == len(tokens) - 1
    tok: tokenizer.Tokenizer = engine.tokenizer
    for index, (line, ticket) in enumerate(zip(lines, case.tickets, strict=False), start=1):
        span = range(line["at"][0] - 2, line["at"][-1] + 1)  # from the marker to the newline
        fed = [tokens[p] for p in span if p not in line["at"]]
        assert fed == [tok.marker_id(index), *(tok.number_id(n) for n in ticket)]
        assert tokens[line["at"][-1]] == tok.newline_id
    for line in lines[3:]:  # written whole: every token from the first to the terminator
        assert line["at"] == list(range(line["at"][0], line["at"][-1] + 1))
        assert tok.decode([tokens[p] for p in line["at"][:-1]]) == line["text"]


def test_a_wrong_token_fails_its_line_only(line_margins, engine: SimpleNamespace) -> None:
    cases = [kata.Case.create([SECOND, LOSER, FOURTH], list(WINNING), BONUS),
             kata.Case.create([LOSER, FOURTH], list(WINNING), BONUS)]
    encoded = [line_margins.encode_case(engine, case) for case in cases]
    engine.model = Oracle(engine.tokenizer.vocab_size)
    rows = line_margins.score_batch(engine, cases, encoded)
    assert len(rows) == 11 + 10 and all(r["right"] and r["margin"] == 1.0 for r in rows)
    division = encoded[0][1][9]
    assert division["kind"] == "division"
    engine.model = Oracle(engine.tokenizer.vocab_size, frozenset({division["at"][3] - 1}))
    rows = line_margins.score_batch(engine, cases, encoded)[:11]  # the first case's (the Oracle errs in each row)
    wrong = [r for r in rows if not r["right"]]
    assert len(wrong) == 1 and wrong[0]["kind"] == "division" and wrong[0]["margin"] == -1.0
    assert wrong[0]["line"] == 9 and wrong[0]["text"] == division["text"]
    assert wrong[0]["want_id"] != wrong[0]["chose_id"]
