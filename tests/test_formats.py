"""The answer formats: work lines, the long division of the rate, splitting a completion."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from lottogpt import formats, kata


def test_official_example_division() -> None:
    case = kata.official_example()
    line = formats.division_line(kata.score(case).total_prize, len(case.tickets))
    assert line == "5004÷8=0⁵6²2⁴5⁴"  # 5,000 won over 8 tickets: 62.5%
    assert formats.division_rate(line) == "62.5"


def prize_totals(n_tickets: int) -> list[int]:
    """Total prizes of every mix of 0..2 tickets per rank that ``n_tickets`` tickets can hold."""
    prizes = [rank.prize for rank in kata.Rank]
    return [sum(c * p for c, p in zip(counts, prizes, strict=True))
            for counts in itertools.product(range(3), repeat=5) if sum(counts) <= n_tickets]


@pytest.mark.parametrize("n_tickets", range(1, formats.MAX_TICKETS + 1))
def test_division_rounds_half_up_like_the_kata(n_tickets: int) -> None:
    for total in prize_totals(n_tickets):
        line = formats.division_line(total, n_tickets)
        assert formats.is_division_line(line) and formats.is_work_line(line)
        assert formats.division_rate(line) == kata.format_rate(total, n_tickets * kata.TICKET_PRICE), line


def test_division_steps_are_local() -> None:
    # 31.25% must round to 31.3: 2,500 won per 8,000 is never a prize, so check the arithmetic directly.
    line = formats.division_line(2_500, 8)
    dividend, rest = line.split("÷")
    steps = formats.DIVISION_STEP.findall(rest.split("=")[1])
    assert len(steps) == len(dividend)  # one step per dividend digit
    remainder = 0
    for digit, (quotient, superscript) in zip(dividend, steps, strict=True):
        q, remainder = divmod(remainder * 10 + int(digit), 8)
        assert (quotient, superscript) == (str(q), formats.superscript(remainder))
    assert formats.division_rate(line) == "31.3"


def test_zero_prize_keeps_two_digits() -> None:
    assert formats.division_line(0, 1) == "00÷1=0⁰0⁰"
    assert formats.division_rate(formats.division_line(0, 10)) == "0.0"
    with pytest.raises(ValueError, match="ticket"):
        formats.division_line(5_000, 0)


def test_longdiv_completion_splits_into_work_and_the_six_lines() -> None:
    case = kata.official_example()
    completion = formats.render_completion(case, "longdiv")
    work, answer = formats.split_work(completion)
    assert work == formats.work_lines(case, "longdiv")
    assert work[-1] == "5004÷8=0⁵6²2⁴5⁴"
    assert "\n".join(answer) == kata.score(case).output
    assert formats.render_prompt(case, "longdiv") == formats.render_prompt(case, "worksheet")


def test_work_lines_per_format() -> None:
    case = kata.official_example()
    assert formats.work_lines(case, "direct") == []
    tickets = formats.work_lines(case, "worksheet")
    assert len(tickets) == len(case.tickets) and all(formats.is_ticket_work_line(w) for w in tickets)
    assert formats.work_lines(case, "longdiv")[:-1] == tickets


def test_malformed_division_lines_are_not_work() -> None:
    for line in ("5004÷8=", "5004÷8=0⁵6²2⁴5", "÷8=0⁵", "5004/8=0⁵6²2⁴5⁴"):
        assert not formats.is_division_line(line)
        assert formats.division_rate(line) is None


def test_tally_counts_each_rank_so_far() -> None:
    case = kata.Case(((1, 2, 3, 10, 11, 12), (1, 2, 3, 4, 5, 7), (1, 2, 3, 13, 14, 15), (1, 2, 3, 4, 5, 6),
                      (20, 21, 22, 23, 24, 25), (1, 2, 7, 30, 31, 32)), (1, 2, 3, 4, 5, 6), 7)
    work = formats.work_lines(case, "tally")
    assert [w.split("=")[1] for w in work[:-1]] == ["3 #1", "5b #1", "3 #2", "6 #1", "0", "2b"]
    assert all(formats.is_ticket_work_line(w) for w in work[:-1])
    assert [formats.strip_tally(w) for w in work[:-1]] == formats.work_lines(case, "worksheet")
    work_part, answer = formats.split_work(formats.render_completion(case, "tally"))
    assert work_part == work and "\n".join(answer) == kata.score(case).output


@pytest.mark.parametrize("n_tickets", [1, 3, 7, 8, 9, 10])
def test_stepwise_division_brings_down_its_own_digits(n_tickets: int) -> None:
    for total in prize_totals(n_tickets):
        line = formats.division_line(total, n_tickets, style="stepwise")
        assert formats.is_division_line(line)
        assert formats.division_rate(line) == kata.format_rate(total, n_tickets * kata.TICKET_PRICE), line
        steps = formats.STEPWISE_STEP.findall(line)
        plain = formats.division_line(total, n_tickets)
        assert "".join(d for _, d, _, _ in steps) == plain.split(formats.DIVISION_SIGN)[0]  # the dividend
    assert formats.division_line(5_000, 8, style="stepwise") == "÷8: 50⁵ 06² 02⁴ 45⁴"
    case = kata.official_example()
    assert formats.work_lines(case, "stepwise")[-1] == "÷8: 50⁵ 06² 02⁴ 45⁴"


def test_ledger_tally_names_the_prize_rank() -> None:
    case = kata.Case(((1, 2, 3, 10, 11, 12), (1, 2, 3, 4, 5, 7), (1, 2, 3, 13, 14, 15), (1, 2, 3, 4, 5, 6),
                      (20, 21, 22, 23, 24, 25), (1, 2, 7, 30, 31, 32), (1, 2, 3, 4, 16, 17)), (1, 2, 3, 4, 5, 6), 7)
    work = formats.work_lines(case, "ledger")
    assert [w.split("=")[1] for w in work[:-1]] == ["3 Ⅴ1", "5b Ⅱ1", "3 Ⅴ2", "6 Ⅰ1", "0", "2b", "4 Ⅳ1"]
    assert all(formats.is_ticket_work_line(w) for w in work[:-1])
    assert [formats.strip_tally(w) for w in work[:-1]] == formats.work_lines(case, "worksheet")
    assert [formats.strip_tally(w) for w in work[:-1]] == [formats.strip_tally(w)
                                                           for w in formats.work_lines(case, "stepwise")[:-1]]
    work_part, answer = formats.split_work(formats.render_completion(case, "ledger"))
    assert work_part == work and "\n".join(answer) == kata.score(case).output


@pytest.mark.parametrize("n_tickets", [1, 7, 9, 10, 14])
def test_ledger_division_is_stepwise_without_spaces(n_tickets: int) -> None:
    for total in prize_totals(n_tickets):
        line = formats.division_line(total, n_tickets, style="ledger")
        assert formats.is_division_line(line)
        assert formats.division_rate(line) == kata.format_rate(total, n_tickets * kata.TICKET_PRICE), line
        stepwise = formats.division_line(total, n_tickets, style="stepwise")
        assert line == stepwise.replace(" ", "").replace(":", ": ")
    assert formats.work_lines(kata.official_example(), "ledger")[-1] == "÷8: 50⁵06²02⁴45⁴"
    with pytest.raises(ValueError, match="style"):
        formats.division_line(5_000, 8, style="short")


def test_column_sum_line_adds_the_dividend_ones_first() -> None:
    counts = dict.fromkeys(kata.RANK_KEYS, 0) | {"5": 1}
    assert formats.sum_line(counts, 4) == "Σ2⁰0⁰0⁰0⁰0⁰5⁰1⁰"  # 1,500,000 + 4 // 2, backwards
    # 19 5th prizes and one 4th: 95,000 + 50,000 + 10 = 145,010, a carry out of the ten thousands.
    counts = dict.fromkeys(kata.RANK_KEYS, 0) | {"3": 19, "4": 1}
    assert formats.sum_steps(formats.sum_line(counts, 20)) == [(0, 0), (1, 0), (0, 0), (5, 0), (4, 1), (1, 0)]
    assert formats.sum_line(dict.fromkeys(kata.RANK_KEYS, 0), 1) == "Σ0⁰0⁰"  # at least two digits, like the division


def dividends(n_tickets: int) -> Iterator[tuple[dict[str, int], list[int]]]:
    """Every prize composition of ``n_tickets`` tickets: its counts and the digits of its division's dividend."""
    keys = list(kata.RANK_KEYS)
    for composition in itertools.combinations_with_replacement(range(len(keys) + 1), n_tickets):
        counts = {key: composition.count(i + 1) for i, key in enumerate(keys)}
        total = sum(rank.prize * counts[rank.key] for rank in kata.Rank)
        yield counts, [digit for digit, _, _ in formats.division_steps(formats.division_line(total, n_tickets))[1]]


@pytest.mark.parametrize("n_tickets", [1, 8, 13, 20])
def test_column_sum_is_the_division_dividend_for_every_composition(n_tickets: int) -> None:
    for counts, dividend in dividends(n_tickets):
        steps = formats.sum_steps(formats.sum_line(counts, n_tickets))
        assert [digit for digit, _ in reversed(steps)] == dividend
        assert steps[-1][1] == 0  # nothing is carried past the top digit


def test_column_completion_puts_the_sum_before_the_division() -> None:
    case = kata.official_example()
    work = formats.work_lines(case, "column")
    assert work[-2:] == ["Σ4⁰0⁰0⁰5⁰", "÷8: 50⁵06²02⁴45⁴"]
    assert work[:-2] == formats.work_lines(case, "ledger")[:-1]
    lines = formats.render_completion(case, "column").split("\n")
    assert lines[-3:] == [*work[-2:], kata.score(case).lines[-1]]
    work_part, answer = formats.split_work("\n".join(lines))
    assert work_part == work and "\n".join(answer) == kata.score(case).output
    assert not formats.is_sum_line("Σ4⁰0") and not formats.is_sum_line("Σ")


def test_addends_line_writes_every_addend_of_every_column() -> None:
    counts = dict.fromkeys(kata.RANK_KEYS, 0) | {"3": 1}
    line = formats.addend_line(counts, 8)  # the official example: 5,000 + 8 // 2
    assert line.startswith("Σ4⁰0⁰0⁰Ⅴ55⁰Ⅴ0Ⅳ00⁰Ⅴ0Ⅳ0Ⅲ00⁰")
    steps = formats.addend_steps(line)
    assert len(steps) == formats.ADDEND_PLACES
    # The template is the same for every case: which ranks' digits each column adds.
    assert [addends[::2] for addends, _, _ in steps] == [
        "".join(formats.TALLY_LABELS[rank] for rank in column) for column in formats.addend_columns()]
    # 19 5th prizes and one 4th: 95 + 50 thousands carry out of the ten thousands (145,010).
    counts = dict.fromkeys(kata.RANK_KEYS, 0) | {"3": 19, "4": 1}
    steps = formats.addend_steps(formats.addend_line(counts, 20))
    assert [(digit, carry) for _, digit, carry in steps[:6]] == [(0, 0), (1, 0), (0, 0), (5, 0), (4, 1), (1, 0)]
    assert steps[4][0] == "Ⅴ9Ⅳ5" and formats.addend_steps("Σ4⁰0") is None


@pytest.mark.parametrize("n_tickets", [1, 8, 13, 20])
def test_addends_line_is_the_division_dividend_for_every_composition(n_tickets: int) -> None:
    labels = {label: rank for rank, label in formats.TALLY_LABELS.items()}
    for counts, dividend in dividends(n_tickets):
        steps = formats.addend_steps(formats.addend_line(counts, n_tickets))
        assert steps[-1][2] == 0  # nothing is carried past the top column
        digits = "".join(str(digit) for _, digit, _ in reversed(steps)).lstrip("0").rjust(2, "0")
        assert digits == "".join(map(str, dividend))
        terms = dict.fromkeys(kata.Rank, 0)  # each rank's addends, read back as a number, are its term
        for place, (addends, _, _) in enumerate(steps):
            for label, digit in zip(addends[::2], addends[1::2], strict=True):
                terms[labels[label]] += int(digit) * 10 ** place
        assert all(terms[rank] == rank.prize * counts[rank.key] for rank in kata.Rank)


def test_drill_gives_the_count_lines_and_trains_the_lines_after_them() -> None:
    case = kata.official_example()
    prompt = formats.render_prompt(case, "addends")
    completion = formats.render_completion(case, "addends")
    drill_prompt, drill_completion = formats.drill_texts(prompt, completion)
    lines = kata.score(case).lines
    assert drill_prompt == prompt + "\n".join(lines[:5]) + "\n"
    assert drill_completion == "\n".join([*formats.work_lines(case, "addends")[-2:], lines[5]])
    with pytest.raises(ValueError, match="count lines"):
        formats.drill_texts(prompt, "\n".join(lines[:5]))
