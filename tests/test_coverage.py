"""Fact coverage: facts read from rendered completions, exact reachable sets, and the top-up to the floor."""

from __future__ import annotations

import dataclasses
from collections import Counter
from math import comb

import numpy as np
import pytest

from lottogpt import coverage, data, formats, kata
from lottogpt.params import DataParams

SMALL = DataParams(seed=11, n_train=3000, n_val=20, n_test=40, n_test_natural=40, min_tickets=1, max_tickets=3,
                   natural_share=0.2, prize_share=0.5, coverage_floor=40, division_floor=50, place_floor=10,
                   answer_format="ledger")
FLOORS = coverage.floors(SMALL)


def test_facts_of_the_official_example() -> None:
    facts = coverage.completion_facts(formats.render_completion(kata.official_example(), "ledger"))
    assert facts["tally"] == [("3", 1)]
    assert facts["match"] == ["0", "2", "0b", "1", "0", "0b", "1", "3"]
    assert facts["count"] == [("3", 1), ("4", 0), ("5", 0), ("5+bonus", 0), ("6", 0)]
    assert facts["division"] == [(8, 0, 5), (8, 5, 0), (8, 2, 0), (8, 4, 4)]  # 5004 ÷ 8
    assert facts["division_place"] == [(8, 3, 0, 5), (8, 2, 5, 0), (8, 1, 2, 0), (8, 0, 4, 4)]
    assert facts["flag"][:2] == [(8, "."), (21, ".")] and facts["flag"].count((7, "b")) == 2
    assert len(facts["flag"]) == 48


@pytest.mark.parametrize("answer_format", ["longdiv", "stepwise", "ledger"])
def test_division_facts_are_those_of_the_rendered_lines(answer_format: str) -> None:
    """The arithmetic that enumerates the reachable steps says what every rendered division line shows."""
    style = formats.DIVISION_STYLES[answer_format]
    for n in (*range(1, 7), 13, 20):
        comps = coverage.composition_list(n)
        assert len(comps) == comb(n + 5, 5)
        for composition in comps[:: max(1, len(comps) // 300)]:
            prize = coverage.composition_prize(composition)
            line = formats.division_line(prize, n, style)
            facts = coverage.completion_facts(line)
            assert {f: facts[f] for f in coverage.DIVISION_FAMILIES} == coverage.division_facts(prize, n)


def test_division_index_is_exact() -> None:
    for family in coverage.DIVISION_FAMILIES:
        index = coverage.division_index(7, family)
        comps = coverage.composition_list(7)
        facts = [coverage.division_facts(coverage.composition_prize(c), 7)[family] for c in comps]
        for fact, hits in index.items():
            assert all(fact in facts[i] for i in hits)
            assert sum(fact in f for f in facts) == len(hits)  # every composition that shows it
        assert {f for case in facts for f in case} == set(index)


def test_reachable_families_follow_the_format() -> None:
    ledger = coverage.reachable(1, 20, "ledger")
    assert len(ledger["flag"]) == 135 and len(ledger["match"]) == 13
    assert len(ledger["tally"]) == 5 * 20 and len(ledger["count"]) == 5 * 21
    assert {n for n, _, _ in ledger["division"]} == set(range(1, 21))
    assert {(n, r, d) for n, _, r, d in ledger["division_place"]} == ledger["division"]
    assert all(r < n and 0 <= d <= 9 for n, r, d in ledger["division"])
    assert not coverage.reachable(1, 20, "worksheet")["division"]
    assert not ledger["sum_column"] and not coverage.reachable(1, 20, "longdiv")["sum_column"]
    assert not coverage.reachable(1, 20, "longdiv")["tally"]
    assert set(coverage.reachable(1, 5, "direct")) == set(coverage.FAMILIES)


def test_the_top_up_lifts_every_fact_to_the_floor_and_keeps_the_sizes() -> None:
    splits, counts, composed = data.draw_corpus(SMALL)
    plain, _, none = data.draw_corpus(dataclasses.replace(SMALL, coverage_floor=0, division_floor=0, place_floor=0))
    assert {s: len(c) for s, c in splits.items()} == {s: data.split_size(SMALL, s) for s in data.SPLITS}
    assert splits["test"] == plain["test"] and splits["test_natural"] == plain["test_natural"]
    assert splits["val"] == plain["val"] and splits["train"] != plain["train"]
    assert none == 0 and 0 < composed == len(set(splits["train"]) - set(plain["train"]))
    possible = coverage.reachable(1, 3, "ledger")
    recount = coverage.train_coverage(splits["train"], "ledger")
    assert recount == counts  # what the top-up kept count of is what train holds
    summary = coverage.summary(recount, possible, FLOORS)["families"]
    assert all(f["unreachable_seen"] == 0 for f in summary.values()), summary
    # Flags and match counts are not composed for (a corpus of the default size shows each thousands of times).
    assert "sum_column" not in summary  # the ledger format writes no sum line
    assert all(summary[family]["below_floor"] == 0 for family in coverage._TARGETED if family != "sum_column")
    before = coverage.summary(coverage.train_coverage(plain["train"], "ledger"), possible, FLOORS)
    assert before["families"]["division"]["below_floor"] > 0  # the floor made a difference
    assert before["families"]["division_place"]["below_floor"] > 0
    every = [c for split in splits.values() for c in split]
    assert len(set(every)) == len(every)
    assert data.draw_corpus(SMALL)[0] == splits  # deterministic


def test_a_small_prize_share_covers_what_fits() -> None:
    tight = dataclasses.replace(SMALL, prize_share=0.05, coverage_floor=400, division_floor=400)
    floors = coverage.floors(tight)
    splits, counts, _ = data.draw_corpus(tight)
    assert len(splits["train"]) == tight.n_train
    assert coverage.train_coverage(splits["train"], "ledger") == counts
    summary = coverage.summary(counts, coverage.reachable(1, 3, "ledger"), floors)["families"]
    assert summary["division"]["below_floor"] > 0  # reported, not hidden


def test_composed_cases_realise_their_compositions() -> None:
    rng = np.random.default_rng(3)
    comps = [tuple(int(x) for x in row) for row in rng.integers(0, 4, (200, 6))]
    comps = [c for c in comps if sum(c)]
    cases = data.draw_composed(rng, comps, 0.3)
    repeated = 0
    for composition, case in zip(comps, cases, strict=True):
        counts = kata.score(case).counts
        assert tuple(counts[k] for k in kata.RANK_KEYS) == composition[:5]
        assert len(case.tickets) == sum(composition)
        assert kata.Case.create(case.tickets, case.winning, case.bonus) == case
        repeated += len(set(case.tickets)) < len(case.tickets)
    assert 40 < repeated < 160  # about half the cases buy each kind of ticket as one ticket, again and again


def test_corpus_facts_are_all_reachable() -> None:
    unfloored = dataclasses.replace(SMALL, coverage_floor=0, division_floor=0, place_floor=0, max_tickets=6)
    splits = data.generate_cases(unfloored)
    counts = coverage.train_coverage(splits["train"], "ledger")
    summary = coverage.summary(counts, coverage.reachable(1, 6, "ledger"), coverage.floors(SMALL))["families"]
    assert all(f["unreachable_seen"] == 0 for f in summary.values())
    assert Counter(counts["match"]).keys() <= set(coverage.MATCH_COUNTS)


def test_floors_follow_the_params() -> None:
    assert FLOORS["division"] == 50 and FLOORS["division_place"] == 10
    assert {FLOORS[f] for f in coverage.FAMILIES if f not in coverage.DIVISION_FAMILIES} == {40}


def test_sum_column_facts_of_the_official_example() -> None:
    """Each column of the addends line: place, the carry into it, the addends it writes, digit, carry on."""
    completion = formats.render_completion(kata.official_example(), "addends")
    facts = coverage.completion_facts(completion)["sum_column"]
    assert len(facts) == formats.ADDEND_PLACES
    assert facts[:4] == [(0, 0, "", 4, 0), (1, 0, "", 0, 0), (2, 0, "", 0, 0), (3, 0, "Ⅴ5", 5, 0)]
    assert all(digit < 10 for _, _, _, digit, _ in facts)


@pytest.mark.parametrize("answer_format", ["column", "addends"])
def test_sum_index_is_exact(answer_format: str) -> None:
    """Every composition's rendered sum line shows exactly the facts the index lists it under."""
    index = coverage.sum_index(1, 6, answer_format)
    every = coverage.compositions_between(1, 6)
    assert len(every) == sum(comb(n + 5, 5) for n in range(1, 7))
    shown: dict[tuple, list[int]] = {}
    for position, composition in enumerate(every):
        case = data.draw_composed(np.random.default_rng(position), [composition], 0.3)[0]
        for fact in coverage.completion_facts(formats.render_completion(case, answer_format))["sum_column"]:
            shown.setdefault(fact, []).append(position)
    assert {fact: list(hits) for fact, hits in index.items()} == shown
    assert set(coverage.reachable(1, 6, answer_format)["sum_column"]) == set(index)


def test_the_top_up_covers_the_sum_columns() -> None:
    """With a sum line, the rare columns are composed for up to the floor."""
    addends = dataclasses.replace(SMALL, max_tickets=6, answer_format="addends", n_train=4000, division_floor=0,
                                  place_floor=0)
    plain = data.draw_corpus(dataclasses.replace(addends, coverage_floor=0))[0]
    counts = data.draw_corpus(addends)[1]
    possible = coverage.reachable(1, 6, "addends")
    floors = coverage.floors(addends)
    before = coverage.summary(coverage.train_coverage(plain["train"], "addends"), possible, floors)["families"]
    after = coverage.summary(counts, possible, floors)["families"]
    assert before["sum_column"]["unseen"] > 0  # columns that a draw of this size never shows
    assert after["sum_column"]["below_floor"] == 0 and after["sum_column"]["unreachable_seen"] == 0
