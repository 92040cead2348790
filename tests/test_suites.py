"""Verification suites: exhaustive and uniform compositions, adversarial cases, their metrics, input policy."""

from __future__ import annotations

import json
from collections import Counter
from math import comb
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from lottogpt import cases, data, evaluate, kata, suites
from lottogpt.inference import ReferenceEngine
from lottogpt.params import DataParams, EvaluateParams
from lottogpt.serving import Settings, create_app

from .test_evaluate import ShiftedEngine

DEFAULT_DATA = DataParams()
SMALL_DATA = DataParams(min_tickets=1, max_tickets=4, answer_format="ledger")
SMALL_SUITES = EvaluateParams(exhaustive_tickets=2, sample_compositions=30)


def _composition(case: kata.Case) -> tuple[int, ...]:
    counts = kata.score(case).counts
    wins = tuple(counts[key] for key in kata.RANK_KEYS)
    return (*wins, len(case.tickets) - sum(wins))


def test_every_composition_of_1_to_10_tickets_once() -> None:
    found = suites.composition_cases(DEFAULT_DATA, EvaluateParams(sample_compositions=0))
    assert len(found) == sum(comb(n + 5, 5) for n in range(1, 11)) == 8_007
    realised = Counter(_composition(case) for case in found)
    assert set(realised.values()) == {1}
    assert set(realised) == {c for n in range(1, 11) for c in suites.coverage.compositions(n)}
    assert all(kata.Case.create(c.tickets, c.winning, c.bonus) == c for c in found[::97])


def test_the_sample_beyond_is_uniform_over_compositions() -> None:
    size, total = 20_000, sum(comb(n + 5, 5) for n in range(11, 21))
    assert total == 222_222
    sample = suites.sampled_compositions(np.random.default_rng(5), 11, 20, size)
    assert len(set(sample)) == size
    per_n = Counter(sum(c) for c in sample)
    expected = {n: size * comb(n + 5, 5) / total for n in range(11, 21)}
    chi_square = sum((per_n[n] - e) ** 2 / e for n, e in expected.items())
    assert chi_square < 27.9  # the 99.9% quantile of chi-square with 9 degrees of freedom
    # Within one ticket count too: of the compositions of 15 tickets, C(19, 4) / C(20, 5) = 1/4 have no 1st prize.
    fifteen = [c for c in sample if sum(c) == 15]
    share = sum(1 for c in fifteen if c[4] == 0) / len(fifteen)
    assert abs(share - comb(19, 4) / comb(20, 5)) < 0.05  # about 4 standard deviations
    assert suites.sampled_compositions(np.random.default_rng(1), 3, 4, 10**6) == suites.exhaustive_compositions(3, 4)


def test_the_default_suite_sizes() -> None:
    found = suites.composition_cases(DEFAULT_DATA, EvaluateParams())
    assert len(found) == 8_007 + 20_000
    assert Counter(len(c.tickets) for c in found[8_007:]).keys() == set(range(11, 21))


def test_adversarial_cases() -> None:
    found, typed = suites.adversarial_cases(DEFAULT_DATA, EvaluateParams())
    assert len(found) == len(typed) and len(set(found)) > 0.9 * len(found)
    for kind in range(6):  # one ticket bought 20 times, for every kind
        assert any(len(set(c.tickets)) == 1 and len(c.tickets) == 20 and _composition(c)[kind] == 20 for c in found)
    for rank in range(4):  # 20 tickets of one rank drawn apart (there are only 6 tickets of 5 + the bonus)
        assert any(_composition(c)[rank] == 20 and len(set(c.tickets)) >= 6 for c in found)
    largest = max(kata.score(c).total_prize for c in found)
    assert largest == 20 * kata.Rank.SIX.prize
    assert any(all(_composition(c)[:5]) for c in found)
    assert any(all(c.bonus in t and kata.score(c).total_prize == 0 for t in c.tickets) for c in found)
    assert kata.official_example() in found and kata.classic_example() in found
    unsorted = [(c, t) for c, t in zip(found, typed, strict=True) if t["winning"] != sorted(t["winning"])]
    assert len(unsorted) >= 30
    for case, raw in unsorted:
        assert kata.Case.create(raw["tickets"], raw["winning"], case.bonus) == case


def test_suites_are_written_and_scored(tmp_path: Path) -> None:
    sizes = suites.write_suites(SMALL_DATA, SMALL_SUITES, tmp_path / "suites", workers=1)
    assert sizes["compositions"] == comb(6, 5) + comb(7, 5) + 30
    frame = data.read_split(tmp_path / "suites", "adversarial")
    assert frame.columns == list(data.SCHEMA) and len(frame) == sizes["adversarial"]
    assert any(w != sorted(w) for w in frame["winning"].to_list())  # kept as typed ...
    assert all(list(c.winning) == sorted(c.winning) for c in data.frame_cases(frame))  # ... read back sorted
    metrics = evaluate.evaluate(ReferenceEngine(), tmp_path / "suites", tmp_path / "out", splits=suites.SUITES)
    for suite in suites.SUITES:
        assert metrics[suite]["cases"] == sizes[suite] and metrics[suite]["errors"] == 0
        assert metrics[suite]["exact_match_wilson_lower"] == evaluate.wilson_lower(sizes[suite], sizes[suite])
    breakdown = json.loads((tmp_path / "out" / "breakdown.json").read_text())
    assert set(breakdown["compositions"]["by_tickets"]) == {"1", "2", "3", "4"}
    shifted = evaluate.evaluate(ShiftedEngine(), tmp_path / "suites", tmp_path / "shifted", splits=("adversarial",))
    assert shifted["adversarial"]["errors"] == sizes["adversarial"]


def test_same_params_same_suite_bytes(tmp_path: Path) -> None:
    for name in ("a", "b"):
        suites.write_suites(SMALL_DATA, SMALL_SUITES, tmp_path / name, workers=1)
    for suite in suites.SUITES:
        assert (tmp_path / "a" / f"{suite}.parquet").read_bytes() == (tmp_path / "b" / f"{suite}.parquet").read_bytes()


def test_wilson_lower_bound() -> None:
    assert evaluate.wilson_lower(4_000, 4_000) >= 0.999  # 0 errors in about 4,000 cases
    assert evaluate.wilson_lower(3_999, 4_000) < 0.999
    assert abs(evaluate.wilson_lower(50, 100) - 0.40383) < 2e-5
    assert evaluate.wilson_lower(0, 0) == 0.0


def test_an_unsorted_ticket_is_the_sorted_one_on_every_path(tmp_path: Path) -> None:
    """Input policy: a ticket (or the winning numbers) typed in any order is the set of its numbers."""
    sorted_line = {"tickets": [[1, 2, 3, 10, 11, 12], [4, 5, 6, 7, 20, 30]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7}
    typed_line = {"tickets": [[12, 3, 10, 1, 11, 2], [30, 7, 6, 20, 5, 4]], "winning": [6, 1, 5, 2, 4, 3], "bonus": 7}
    answers, failed = cases.predict_lines(ReferenceEngine(), [json.dumps(sorted_line), json.dumps(typed_line)], True)
    assert failed == 0 and answers[0] == answers[1]
    assert cases.parse_case_line(json.dumps(typed_line)) == cases.parse_case_line(json.dumps(sorted_line))
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(typed_line) + "\n")
    read, errors = cases.read_cases(path)
    assert not errors and read == [cases.parse_case_line(json.dumps(sorted_line))]
    assert kata.parse_winning("6,1,5,2,4,3") == (1, 2, 3, 4, 5, 6)


SHARED_CLASSIC = Path(__file__).resolve().parents[2] / "shared" / "kata" / "classic_14_example.json"


@pytest.mark.skipif(not SHARED_CLASSIC.exists(), reason="no ../shared/kata checkout next to the repo")
def test_the_classic_example_is_the_published_one() -> None:
    published = json.loads(SHARED_CLASSIC.read_text(encoding="utf-8"))
    case = kata.classic_example()
    assert [list(t) for t in case.tickets] == published["tickets"]
    assert (list(case.winning), case.bonus) == (published["winning"], published["bonus"])
    assert kata.score(case).lines == published["expected_output"]


def test_the_server_reads_an_unsorted_ticket_as_the_sorted_one() -> None:
    sorted_case = {"tickets": [[1, 2, 3, 10, 11, 12]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7}
    typed_case = {"tickets": [[12, 3, 10, 1, 11, 2]], "winning": [6, 1, 5, 2, 4, 3], "bonus": 7}
    with TestClient(create_app(ReferenceEngine, Settings(engine="reference", background_load=False))) as client:
        answers = [client.post("/v1/predict", json={**c, "show_work": True}) for c in (sorted_case, typed_case)]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
