"""Evaluation metrics: exact match, per-line accuracy, rate consistency, failure categories, files."""

from __future__ import annotations

import json
from pathlib import Path

from lottogpt import data, evaluate, formats, kata
from lottogpt.inference import Prediction, ReferenceEngine, prediction_from_completion


class ShiftedEngine(ReferenceEngine):
    """Answers like the reference but reports one more 3-match ticket, and keeps the rate consistent."""

    name = "shifted"

    def predict(self, cases: list[kata.Case]) -> list[Prediction]:
        answers = []
        for case in cases:
            counts = dict(kata.score(case).counts)
            counts["3"] += 1
            rate = kata.rate_for_counts(counts, len(case.tickets))
            answers.append(Prediction("\n".join(kata.render_statistics(counts, rate)), counts, rate))
        return answers


def test_reference_engine_scores_perfectly(tiny_corpus: Path, tmp_path: Path) -> None:
    metrics = evaluate.evaluate(ReferenceEngine(), tiny_corpus, tmp_path)
    for split in ("test", "test_natural"):
        assert metrics[split]["exact_match"] == 1.0
        assert metrics[split]["rate_consistent"] == 1.0
        assert all(metrics[split][name] == 1.0 for name in evaluate.LINE_NAMES)
    assert metrics["official_example"]["exact_match"] == 1.0
    assert (tmp_path / "failures.jsonl").read_text() == ""
    breakdown = json.loads((tmp_path / "breakdown.json").read_text())
    assert set(breakdown["test"]["by_tickets"]) == {str(n) for n in range(1, 9)}
    assert "by_top_rank" in breakdown["test_natural"]
    assert (tmp_path / "by_tickets.csv").read_text().startswith("split,n_tickets,exact_match")


def test_wrong_counts_are_categorised(tiny_corpus: Path, tmp_path: Path) -> None:
    metrics = evaluate.evaluate(ShiftedEngine(), tiny_corpus, tmp_path, max_cases=20)
    test = metrics["test"]
    assert test["cases"] == 20
    assert test["exact_match"] == 0.0 and test["counts_exact"] == 0.0
    assert test["format_valid"] == 1.0 and test["rate_consistent"] == 1.0
    assert test["line_4"] == 1.0 and test["line_3"] == 0.0
    failures = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 41  # 20 + 20 + the official example
    assert {f["category"] for f in failures} == {"counts:line_3"}
    assert set(failures[0]) >= {"input", "expected", "generated", "category", "split"}


def test_format_and_rate_failures() -> None:
    case = kata.official_example()
    expected = kata.score(case)
    garbage = prediction_from_completion("3개 일치 (5,000원) - 1개\nnonsense", 8)
    wrong_rate_lines = [*expected.lines[:5], "총 수익률은 99.9%입니다."]
    wrong_rate = prediction_from_completion("\n".join(wrong_rate_lines), 8)
    scored = evaluate.score([case, case], [garbage, wrong_rate])
    assert scored[0].category == "format" and not scored[0].prediction.format_valid
    assert scored[1].category == "rate" and not scored[1].rate_consistent and scored[1].counts_exact
    summary = evaluate.summarize(scored)
    assert summary["format_valid"] == 0.5 and summary["exact_match"] == 0.0


def test_tool_answers_are_reported_apart() -> None:
    case = kata.official_example()
    lines = [*kata.score(case).lines[:5], "총 수익률은 ⟨rate⟩%입니다."]
    prediction = prediction_from_completion("\n".join(lines), len(case.tickets))
    assert prediction.tool_used and prediction.return_rate == "62.5"
    summary = evaluate.summarize(evaluate.score([case], [prediction]))
    assert summary["exact_match"] == 0.0  # the calculator's answer is not the model's
    assert summary["exact_match_tool"] == 1.0


def test_longdiv_answers_keep_the_division_in_the_work() -> None:
    case = kata.official_example()
    completion = formats.render_completion(case, "longdiv")
    prediction = prediction_from_completion(completion, len(case.tickets))
    assert prediction.output == kata.score(case).output and not prediction.tool_used
    assert prediction.work[-1] == "5004÷8=0⁵6²2⁴5⁴"
    summary = evaluate.summarize(evaluate.score([case], [prediction]))
    assert summary["exact_match"] == 1.0 and summary["work_exact"] == 1.0
    # A wrong division that the model copies into the rate line is a rate failure, not a format one.
    wrong = completion.replace("5004÷8=0⁵6²2⁴5⁴", "5004÷8=0⁵6²3⁴5⁴").replace("62.5%", "63.5%")
    scored = evaluate.score([case], [prediction_from_completion(wrong, len(case.tickets))])[0]
    assert scored.category == "rate" and scored.work_exact


def test_top_rank() -> None:
    assert data.top_rank({"3": 1, "4": 0, "5": 0, "5+bonus": 1, "6": 0}) == "5+bonus"
    assert data.top_rank(dict.fromkeys(kata.RANK_KEYS, 0)) == "none"
