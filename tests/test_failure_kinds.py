"""benchmarks/failure_kinds.py: each wrong step is found and named, read from records as the stages write them."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from lottogpt import formats, kata

from .conftest import benchmark_module

WINNING, BONUS = (1, 2, 3, 4, 5, 6), 7
THREE, FOUR, SIX = (1, 2, 3, 40, 41, 42), (1, 2, 3, 4, 41, 42), WINNING


@pytest.fixture(scope="module")
def failure_kinds():  # -> the benchmark module
    with benchmark_module("failure_kinds") as module:
        yield module


def record(tickets: list[tuple[int, ...]], work: list[str] | None = None, generated: str | None = None) -> dict:
    """A failures.jsonl record of these tickets: the reference answer, and the model's work (default: right)."""
    case = kata.Case.create(tickets, WINNING, BONUS)
    expected = kata.score(case).output
    return {"split": "compositions", "category": "rate", "input": case.to_json(), "expected": expected,
            "generated": expected if generated is None else generated,
            "work": formats.work_lines(case, "addends") if work is None else work}


def test_an_exact_multiple_written_one_short_is_a_division_step(failure_kinds) -> None:
    tickets = [SIX] * 7  # 14,000,000,003 / 7: the second step divides 14 by 7
    work = formats.work_lines(kata.Case.create(tickets, WINNING, BONUS), "addends")
    assert "10¹42⁰" in work[-1]
    work[-1] = work[-1].replace("10¹42⁰", "10¹41⁷", 1)
    kind = failure_kinds.classify(record(tickets, work), "addends")
    assert kind == {"split": "compositions", "n_tickets": 7, "kind": "division", "step": 1, "place": 9,
                    "partial": 14, "divisor": 7, "exact_multiple": True, "quotient_off_by": -1}


def test_a_dropped_carry_is_a_sum_column(failure_kinds) -> None:
    tickets = [THREE] * 19 + [FOUR]  # 145,010: the 10**4 column carries 1 into the 10**5 column
    work = formats.work_lines(kata.Case.create(tickets, WINNING, BONUS), "addends")
    columns = formats.addend_steps(work[-2])
    assert columns[4][2] == 1
    addends, digit, carry = columns[5]
    columns[5] = (addends, digit - 1, carry)
    work[-2] = formats.SUM_SIGN + "".join(f"{a}{d}{formats.SUPERSCRIPTS[c]}" for a, d, c in columns)
    kind = failure_kinds.classify(record(tickets, work), "addends")
    assert kind["kind"] == "sum_line" and kind["place"] == 5 and kind["carry_in"] == 1
    assert kind["digit_off_by"] == -1 and "addend_wrong" not in kind and kind["addends"] == addends


def test_right_work_and_a_wrong_line_is_an_answer_line(failure_kinds) -> None:
    tickets = [THREE, FOUR]
    expected = kata.score(kata.Case.create(tickets, WINNING, BONUS)).output.splitlines()
    count_wrong = "\n".join([expected[0].replace("- 1개", "- 2개"), *expected[1:]])
    rate_wrong = "\n".join([*expected[:-1], "총 수익률은 1.0%입니다."])
    assert failure_kinds.classify(record(tickets, generated=count_wrong), "addends")["kind"] == "count_line"
    assert failure_kinds.classify(record(tickets, generated=rate_wrong), "addends")["kind"] == "rate_line"
    wrong_flag = formats.work_lines(kata.Case.create(tickets, WINNING, BONUS), "addends")
    wrong_flag[1] = wrong_flag[1].replace("4+", "4.", 1)
    kind = failure_kinds.classify(record(tickets, wrong_flag), "addends")
    assert kind["kind"] == "ticket_line" and kind["ticket"] == 2


def test_the_script_summarizes_a_failures_file(failure_kinds, tmp_path: Path) -> None:
    tickets = [SIX] * 7
    work = formats.work_lines(kata.Case.create(tickets, WINNING, BONUS), "addends")
    work[-1] = work[-1].replace("10¹42⁰", "10¹41⁷", 1)
    failures = tmp_path / "failures.jsonl"
    failures.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (record(tickets, work),
                                                                               record([THREE, FOUR]))),
                        encoding="utf-8")
    # A corpus that shows the 7-ticket case twice and another case once: 14 / 7 at 10**9 twice.
    corpus = tmp_path / "train.parquet"
    cases = [kata.Case.create(t, WINNING, BONUS) for t in (tickets, tickets, [THREE, FOUR])]
    pl.DataFrame({"model_completion": [formats.render_completion(c, "addends") for c in cases]}).write_parquet(corpus)
    assert failure_kinds.main([str(failures), "--format", "addends", "--corpus", str(corpus),
                               "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "failure_kinds.json").read_text(encoding="utf-8"))
    summary = result["summary"]
    assert summary["failures"] == 2
    assert summary["by_kind"] == {"division": 1, "none": 1}
    assert summary["division"]["exact_multiple"] == 1
    division = result["failures"][0]
    assert division["train_count"] == 2 and division["train_count_at_place"] == 2
    assert summary["train_count_of_wrong_steps"] == {"sum_line": {"steps": 0},
                                                     "division": {"steps": 1, "min": 2, "median": 2, "max": 2}}


def test_a_line_that_divides_by_another_count_is_a_wrong_divisor(failure_kinds) -> None:
    tickets = [THREE] * 10
    work = formats.work_lines(kata.Case.create(tickets, WINNING, BONUS), "addends")
    assert work[-1].startswith("÷10:")
    work[-1] = work[-1].replace("÷10:", "÷11:", 1)
    kind = failure_kinds.classify(record(tickets, work), "addends")
    assert kind == {"split": "compositions", "n_tickets": 10, "kind": "division", "step": 0, "divisor": 10,
                    "divisor_written": 11}
    assert failure_kinds.summarize([kind])["division"]["divisor_wrong"] == [("10->11", 1)]
    work[-1] = "÷10: 5"  # a step without its quotient is no division line
    unreadable = failure_kinds.classify(record(tickets, work), "addends")
    assert unreadable["unreadable"] is True and "divisor_written" not in unreadable
    assert failure_kinds.summarize([kind, unreadable])["division"]["unreadable"] == 1
