"""The reference program: the published example, rounding, separators, ranks and every [ERROR]."""

from __future__ import annotations

import json

import pytest

from lottogpt import kata

from .conftest import OFFICIAL_EXAMPLE, ROOT

SHARED_EXAMPLE = ROOT.parent / "shared" / "kata" / "official_example.json"


@pytest.mark.skipif(not SHARED_EXAMPLE.exists(), reason="no ../shared/kata checkout next to the repo")
def test_the_kept_example_is_the_published_one() -> None:
    """tests/data keeps a copy of the published example; it must not drift from ../shared's."""
    assert json.loads(OFFICIAL_EXAMPLE.read_text(encoding="utf-8")) == json.loads(
        SHARED_EXAMPLE.read_text(encoding="utf-8"))


def test_official_example(official: dict) -> None:
    amount = kata.parse_amount(official["inputs"][0])
    winning = kata.parse_winning(official["inputs"][1])
    bonus = kata.parse_bonus(official["inputs"][2], winning)
    case = kata.Case.create(official["tickets"], winning, bonus)
    assert case.amount == amount == 8000
    result = kata.score(case)
    assert result.lines == official["expected_output"]
    assert result.counts == {"3": 1, "4": 0, "5": 0, "5+bonus": 0, "6": 0}
    assert result.return_rate == "62.5"
    assert case == kata.official_example()


def test_transcript_lines(official: dict) -> None:
    case = kata.official_example()
    text = kata.run(case)
    lines = text.split("\n")
    assert lines[:4] == ["구입금액을 입력해 주세요.", "8000", "", "8개를 구매했습니다."]
    assert lines[4] == "[8, 21, 23, 41, 42, 43]"
    assert lines[12:20] == ["", "당첨 번호를 입력해 주세요.", "1,2,3,4,5,6", "",
                            "보너스 번호를 입력해 주세요.", "7", "", "당첨 통계"]
    assert lines[20] == "---"
    assert lines[21:27] == official["expected_output"]
    assert kata.render_transcript(case).endswith("당첨 통계\n---\n")


@pytest.mark.parametrize(("prize", "amount", "expected"), [
    (5_000, 16_000, "31.3"),  # 31.25: HALF-UP, where Python's round-half-even float format gives 31.2
    (5_000, 8_000, "62.5"),
    (0, 1_000, "0.0"),
    (5_000, 3_000, "166.7"),
    (5_000, 7_000, "71.4"),
    (5_000, 1_000, "500.0"),
    (50_000, 1_000, "5,000.0"),
    (1_500_000, 1_500, "100,000.0"),
    (2_000_000_000, 1_000, "200,000,000.0"),
    (2_000_000_000, 2_000, "100,000,000.0"),
    (10_000_000, 1_000, "1,000,000.0"),
    (5_000, 80_000, "6.3"),  # 6.25 -> 6.3
    (5_000, 400_000, "1.3"),  # 1.25 -> 1.3
    (5_000, 64_000, "7.8"),  # 7.8125 -> 7.8
])
def test_rate_half_up_and_separators(prize: int, amount: int, expected: str) -> None:
    assert kata.format_rate(prize, amount) == expected


def test_python_format_differs_on_the_tie() -> None:
    assert f"{31.25:.1f}" == "31.2"  # why the kata needs its own rounding


def test_five_versus_five_plus_bonus_and_six() -> None:
    winning, bonus = (1, 2, 3, 4, 5, 6), 7
    case = kata.Case.create([[1, 2, 3, 4, 5, 7], [1, 2, 3, 4, 5, 8], [1, 2, 3, 4, 5, 6], [1, 2, 3, 7, 8, 9]],
                            winning, bonus)
    result = kata.score(case)
    assert result.counts == {"3": 1, "4": 0, "5": 1, "5+bonus": 1, "6": 1}
    assert result.total_prize == 5_000 + 1_500_000 + 30_000_000 + 2_000_000_000
    assert result.lines[3] == "5개 일치, 보너스 볼 일치 (30,000,000원) - 1개"
    assert result.lines[4] == "6개 일치 (2,000,000,000원) - 1개"
    assert kata.Rank.of(6, True) is kata.Rank.SIX
    assert kata.Rank.of(4, True) is kata.Rank.FOUR
    assert kata.Rank.of(2, True) is None


def test_whitespace_around_numbers_is_tolerated() -> None:
    assert kata.parse_amount(" 8000 ") == 8000
    assert kata.parse_winning(" 6, 5 ,4,3,2 , 1") == (1, 2, 3, 4, 5, 6)
    assert kata.parse_bonus("\t7 ", (1, 2, 3, 4, 5, 6)) == 7


@pytest.mark.parametrize(("text", "reason"), [
    ("1000j", "숫자여야"), ("", "숫자여야"), ("8 000", "숫자여야"), ("1e3", "숫자여야"), ("8000.0", "숫자여야"),
    ("0", "0보다 커야"), ("-1000", "0보다 커야"), ("1200", "1,000원 단위"), ("999", "1,000원 단위"),
])
def test_amount_errors(text: str, reason: str) -> None:
    with pytest.raises(kata.LottoError) as error:
        kata.parse_amount(text)
    assert str(error.value).startswith("[ERROR] ")
    assert reason in str(error.value)


def test_published_bad_inputs(official: dict) -> None:
    for text, prefix in official["error_examples"].items():
        with pytest.raises(kata.LottoError, match=r"^\[ERROR\]"):
            kata.parse_amount(text)
        assert prefix == "[ERROR]"


@pytest.mark.parametrize(("text", "reason"), [
    ("1,2,3,4,5", "6개여야"), ("1,2,3,4,5,6,7", "6개여야"), ("1 2 3 4 5 6", "쉼표"), ("1,2,3,4,5,a", "쉼표"),
    ("1,2,3,4,5,", "쉼표"), ("1;2;3;4;5;6", "쉼표"), ("0,2,3,4,5,6", "1부터 45"), ("1,2,3,4,5,46", "1부터 45"),
    ("1,2,3,4,5,5", "중복"),
])
def test_winning_errors(text: str, reason: str) -> None:
    with pytest.raises(kata.LottoError) as error:
        kata.parse_winning(text)
    assert str(error.value).startswith("[ERROR] ") and reason in str(error.value)


@pytest.mark.parametrize(("text", "reason"), [
    ("x", "숫자여야"), ("7.0", "숫자여야"), ("", "숫자여야"),
    ("0", "1부터 45"), ("46", "1부터 45"), ("6", "당첨 번호와 중복"),
])
def test_bonus_errors(text: str, reason: str) -> None:
    with pytest.raises(kata.LottoError) as error:
        kata.parse_bonus(text, (1, 2, 3, 4, 5, 6))
    assert str(error.value).startswith("[ERROR] ") and reason in str(error.value)


@pytest.mark.parametrize(("tickets", "reason"), [
    ([], "한 장 이상"), ([[1, 2, 3]], "6개여야"), ([[1, 2, 3, 4, 5, 5]], "중복"), ([[0, 1, 2, 3, 4, 5]], "1부터 45"),
    ([[1, 2, 3, 4, 5, "6"]], "숫자여야"), ([[1, 2, 3, 4, 5, True]], "숫자여야"),
])
def test_ticket_errors(tickets: list, reason: str) -> None:
    with pytest.raises(kata.LottoError) as error:
        kata.Case.create(tickets, [1, 2, 3, 4, 5, 6], 7)
    assert reason in str(error.value)


def test_tickets_are_printed_ascending() -> None:
    case = kata.Case.create([[43, 8, 21, 42, 23, 41]], [6, 5, 4, 3, 2, 1], 7)
    assert case.tickets == ((8, 21, 23, 41, 42, 43),)
    assert case.winning == (1, 2, 3, 4, 5, 6)
    assert "[8, 21, 23, 41, 42, 43]" in kata.render_transcript(case)
