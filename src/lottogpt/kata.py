"""The lotto kata (woowacourse-precourse java-lotto): the one reference program of the project.

Everything the model is trained on and judged against is rendered here: the console transcript,
the six statistics lines and the return rate. The CLI, the server and the evaluation reuse it.

Input whitespace policy: spaces and tabs *around* each number are tolerated (``" 1, 2 ,3"`` reads
as 1,2,3), as a person typing at a console expects; anything else that is not a plain base-10
integer is rejected with an ``[ERROR]`` message.

Input order policy: a ticket, like the winning numbers, is a set of six numbers, so numbers typed in any
order are accepted and sorted (:meth:`Case.create`, which the CLI, the server and the evaluation all go
through); the answer is that of the sorted ticket, and tickets are printed ascending as the kata prints them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

TICKET_PRICE = 1_000
NUMBER_MIN = 1
NUMBER_MAX = 45
NUMBERS_PER_TICKET = 6

AMOUNT_PROMPT = "구입금액을 입력해 주세요."
WINNING_PROMPT = "당첨 번호를 입력해 주세요."
BONUS_PROMPT = "보너스 번호를 입력해 주세요."
STATS_HEADER = "당첨 통계"
STATS_RULE = "---"
PURCHASED_SUFFIX = "개를 구매했습니다."
RATE_PREFIX = "총 수익률은 "
RATE_SUFFIX = "%입니다."

_INTEGER = re.compile(r"[+-]?[0-9]+")


class LottoError(ValueError):
    """A bad input; ``str(error)`` is the kata's ``[ERROR] ...`` message."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"[ERROR] {reason}")


class Rank(Enum):
    """The winning ranks, lowest prize first (the order of the statistics lines)."""

    THREE = ("3", 3, False, 5_000)
    FOUR = ("4", 4, False, 50_000)
    FIVE = ("5", 5, False, 1_500_000)
    FIVE_BONUS = ("5+bonus", 5, True, 30_000_000)
    SIX = ("6", 6, False, 2_000_000_000)

    def __init__(self, key: str, matches: int, bonus: bool, prize: int) -> None:
        self.key = key
        self.matches = matches
        self.needs_bonus = bonus
        self.prize = prize

    @property
    def line_label(self) -> str:
        """``3개 일치 (5,000원)``: the statistics line up to its count."""
        bonus = ", 보너스 볼 일치" if self.needs_bonus else ""
        return f"{self.matches}개 일치{bonus} ({self.prize:,}원)"

    @classmethod
    def of(cls, matches: int, has_bonus: bool) -> Rank | None:
        """The rank of a ticket sharing ``matches`` numbers with the winning numbers."""
        if matches == 6:
            return cls.SIX
        if matches == 5:
            return cls.FIVE_BONUS if has_bonus else cls.FIVE
        if matches == 4:
            return cls.FOUR
        if matches == 3:
            return cls.THREE
        return None


RANK_KEYS: tuple[str, ...] = tuple(rank.key for rank in Rank)
_LINE_LABELS = tuple((rank.key, rank.line_label) for rank in Rank)
# The program's fixed texts: the tokenizer gives each one a piece of its own.
FIXED_TEXTS: tuple[str, ...] = (
    AMOUNT_PROMPT, PURCHASED_SUFFIX, WINNING_PROMPT, BONUS_PROMPT, STATS_HEADER,
    *(f"{label} - " for _, label in _LINE_LABELS), RATE_PREFIX, RATE_SUFFIX,
)


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------


def _parse_int(text: str, reason: str) -> int:
    text = text.strip(" \t")
    if not _INTEGER.fullmatch(text):
        raise LottoError(reason)
    return int(text)


def parse_amount(text: str) -> int:
    """Parse the purchase amount typed by the buyer."""
    amount = _parse_int(text, "구입 금액은 숫자여야 합니다.")
    if amount <= 0:
        raise LottoError("구입 금액은 0보다 커야 합니다.")
    if amount % TICKET_PRICE:
        raise LottoError(f"구입 금액은 {TICKET_PRICE:,}원 단위여야 합니다.")
    return amount


def _check_number(number: int) -> int:
    if not NUMBER_MIN <= number <= NUMBER_MAX:
        raise LottoError(f"로또 번호는 {NUMBER_MIN}부터 {NUMBER_MAX} 사이의 숫자여야 합니다.")
    return number


def parse_winning(text: str) -> tuple[int, ...]:
    """Parse the winning numbers line, e.g. ``1,2,3,4,5,6``."""
    parts = text.split(",")
    numbers = [_parse_int(part, "당첨 번호는 쉼표(,)로 구분된 숫자여야 합니다.") for part in parts]
    return validate_numbers(numbers, "당첨 번호")


def parse_bonus(text: str, winning: Sequence[int]) -> int:
    """Parse the bonus number; it must not be one of the winning numbers."""
    return validate_bonus(_parse_int(text, "보너스 번호는 숫자여야 합니다."), winning)


def validate_numbers(numbers: Iterable[int], what: str = "로또 번호") -> tuple[int, ...]:
    """Check six unique numbers in 1..45 and return them ascending."""
    numbers = list(numbers)
    if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
        raise LottoError(f"{what}는 숫자여야 합니다.")
    if len(numbers) != NUMBERS_PER_TICKET:
        raise LottoError(f"{what}는 {NUMBERS_PER_TICKET}개여야 합니다.")
    for number in numbers:
        _check_number(number)
    if len(set(numbers)) != NUMBERS_PER_TICKET:
        raise LottoError(f"{what}는 중복될 수 없습니다.")
    return tuple(sorted(numbers))


def validate_bonus(bonus: int, winning: Sequence[int]) -> int:
    """Check the bonus number against the range and the winning numbers."""
    if isinstance(bonus, bool) or not isinstance(bonus, int):
        raise LottoError("보너스 번호는 숫자여야 합니다.")
    _check_number(bonus)
    if bonus in winning:
        raise LottoError("보너스 번호는 당첨 번호와 중복될 수 없습니다.")
    return bonus


# ---------------------------------------------------------------------------------------------
# The game
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One play of the kata: the bought tickets, the winning numbers and the bonus number.

    Tickets and winning numbers are stored ascending (the program prints them so), which makes
    a ``Case`` its own canonical form.
    """

    tickets: tuple[tuple[int, ...], ...]
    winning: tuple[int, ...]
    bonus: int

    @classmethod
    def create(cls, tickets: Iterable[Iterable[int]], winning: Iterable[int], bonus: int) -> Case:
        """Validate raw numbers (as JSON gives them) and build a case, or raise ``LottoError``."""
        tickets = list(tickets)
        if not tickets:
            raise LottoError("로또를 한 장 이상 구매해야 합니다.")
        checked = tuple(validate_numbers(ticket) for ticket in tickets)
        win = validate_numbers(winning, "당첨 번호")
        return cls(checked, win, validate_bonus(bonus, win))

    @property
    def amount(self) -> int:
        return TICKET_PRICE * len(self.tickets)

    def matches(self, ticket: Sequence[int]) -> int:
        return len(set(ticket) & set(self.winning))

    def rank(self, ticket: Sequence[int]) -> Rank | None:
        return Rank.of(self.matches(ticket), self.bonus in ticket)

    def to_json(self) -> dict:
        tickets = [list(t) for t in self.tickets]
        return {"tickets": tickets, "winning": list(self.winning), "bonus": self.bonus}


@dataclass(frozen=True)
class Result:
    """What the program computes for a case."""

    counts: dict[str, int] = field(default_factory=dict)
    total_prize: int = 0
    amount: int = 0

    @cached_property
    def return_rate(self) -> str:
        return format_rate(self.total_prize, self.amount)

    @property
    def lines(self) -> list[str]:
        return render_statistics(self.counts, self.return_rate)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def to_json(self) -> dict:
        return {"output": self.output, "counts": dict(self.counts), "return_rate": self.return_rate}


def score(case: Case) -> Result:
    """Count the ranks of every ticket and the total prize."""
    counts = dict.fromkeys(RANK_KEYS, 0)
    for ticket in case.tickets:
        rank = case.rank(ticket)
        if rank is not None:
            counts[rank.key] += 1
    total = sum(rank.prize * counts[rank.key] for rank in Rank)
    return Result(counts=counts, total_prize=total, amount=case.amount)


def rate_for_counts(counts: dict[str, int], n_tickets: int) -> str:
    """The return rate string for given rank counts and number of tickets."""
    total = sum(rank.prize * counts[rank.key] for rank in Rank)
    return format_rate(total, TICKET_PRICE * n_tickets)


def format_rate(total_prize: int, amount: int) -> str:
    """Return rate in percent as Java's ``String.format("%,.1f")``: HALF-UP, thousands separators.

    Computed in exact integer arithmetic (31.25 -> 31.3, where Python's float formatting gives 31.2).
    """
    tenths, remainder = divmod(total_prize * 1000, amount)
    if 2 * remainder >= amount:
        tenths += 1
    return format_tenths(tenths)


def format_tenths(tenths: int) -> str:
    """A rate given in tenths of a percent, spelled as the kata prints it: 6255 -> ``625.5``, 12345 -> ``1,234.5``."""
    return f"{tenths // 10:,}.{tenths % 10}"


def render_statistics(counts: dict[str, int], rate: str) -> list[str]:
    """The six lines printed after ``---``."""
    lines = [f"{label} - {counts[key]}개" for key, label in _LINE_LABELS]
    lines.append(f"{RATE_PREFIX}{rate}{RATE_SUFFIX}")
    return lines


def format_ticket(ticket: Sequence[int]) -> str:
    return "[" + ", ".join(str(n) for n in ticket) + "]"


def render_transcript(case: Case, ticket_prefixes: Sequence[str] | None = None, ticket_lines: bool = True) -> str:
    """The console transcript up to and including ``---\\n``: the prompt of every case.

    ``ticket_prefixes`` (one per ticket) is put before each ticket line; ``ticket_lines=False`` leaves
    the ticket lines out. The model prompts use them.
    """
    lines = [AMOUNT_PROMPT, str(case.amount), "", f"{len(case.tickets)}{PURCHASED_SUFFIX}"]
    if not ticket_lines:
        pass
    elif ticket_prefixes is None:
        lines += [format_ticket(t) for t in case.tickets]
    else:
        lines += [p + format_ticket(t) for p, t in zip(ticket_prefixes, case.tickets, strict=True)]
    lines += ["", WINNING_PROMPT, ",".join(str(n) for n in case.winning), ""]
    lines += [BONUS_PROMPT, str(case.bonus), "", STATS_HEADER, STATS_RULE]
    return "\n".join(lines) + "\n"


def draw_ticket(rng: random.Random) -> tuple[int, ...]:
    """A uniformly random ticket, as the kata's ``Randoms.pickUniqueNumbersInRange``."""
    return tuple(sorted(rng.sample(range(NUMBER_MIN, NUMBER_MAX + 1), NUMBERS_PER_TICKET)))


def run(case: Case) -> str:
    """The whole console session for a case: transcript plus the six lines."""
    return render_transcript(case) + score(case).output + "\n"


# The kata's published example (woowacourse-precourse java-lotto ApplicationTest): 8,000 won, eight
# tickets, winning numbers 1..6, bonus 7 -> one 3-match ticket, 62.5%.
OFFICIAL_TICKETS = (
    (8, 21, 23, 41, 42, 43), (3, 5, 11, 16, 32, 38), (7, 11, 16, 35, 36, 44), (1, 8, 11, 31, 41, 42),
    (13, 14, 16, 38, 42, 45), (7, 11, 30, 40, 42, 43), (2, 13, 22, 32, 38, 45), (1, 3, 5, 14, 22, 45),
)


def official_example() -> Case:
    return Case(OFFICIAL_TICKETS, (1, 2, 3, 4, 5, 6), 7)


# The 14,000-won example of the classic lotto mission (next-step and woowacourse java-lotto READMEs): fourteen
# tickets, winning numbers 1..6, bonus 7 -> one 3-match ticket, 35.7% in this version's percentage format.
CLASSIC_14_TICKETS = (
    *OFFICIAL_TICKETS[:7], (23, 25, 33, 36, 39, 41), (1, 3, 5, 14, 22, 45), (5, 9, 38, 41, 43, 44),
    (2, 8, 9, 18, 19, 21), (13, 14, 18, 21, 23, 35), (17, 21, 29, 37, 42, 45), (3, 8, 27, 30, 35, 44),
)


def classic_example() -> Case:
    return Case(CLASSIC_14_TICKETS, (1, 2, 3, 4, 5, 6), 7)
