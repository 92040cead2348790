"""The playground's typed fields, read as the console reads them: the kata's parsers and ``[ERROR]`` messages.

Every field is checked and every error is named with its field (``loc``), so the page can show each
message next to its input; a bonus is checked against the winning numbers once those are valid, as
the console asks for it only then.
"""

import random
import re
import secrets
from dataclasses import dataclass

from lottogpt import kata
from lottogpt.serving.schemas import ConsoleIn, ticket_count_error

_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass
class Purchase:
    """A case read from the page, and the seed of its tickets when the server drew them."""

    case: kata.Case
    seed: int | None


def draw(n: int, seed: int | None) -> tuple[list[tuple[int, ...]], int]:
    """``n`` tickets drawn as the kata draws them, from ``seed`` (a fresh one if None), and that seed."""
    seed = seed if seed is not None else secrets.randbits(63)
    rng = random.Random(seed)
    return [kata.draw_ticket(rng) for _ in range(n)], seed


def _ticket(line: str) -> tuple[int, ...]:
    """One typed ticket, ``1, 2, 3, 4, 5, 6``: the console's whitespace policy, the kata's checks."""
    parts = [part.strip(" \t") for part in line.split(",")]
    return kata.validate_numbers([int(p) if _INTEGER.fullmatch(p) else p for p in parts])


def _error(field: str, message: str, kind: str = "lotto") -> dict:
    return {"type": kind, "loc": ["body", field], "msg": message}


def _tickets(body: ConsoleIn, max_tickets: int) -> tuple[list[tuple[int, ...]] | int, dict | None]:
    """The typed tickets, or the number to draw for the amount; or the error of the field at fault."""
    if (body.amount is None) == (body.tickets is None):
        return 0, _error("amount", "[ERROR] 구입금액 또는 수동 번호 중 하나를 입력해 주세요. "
                                   "(give the amount or the tickets, one of them)", "amount_or_tickets")
    if body.amount is not None:
        try:
            n = kata.parse_amount(body.amount) // kata.TICKET_PRICE
        except kata.LottoError as error:
            return 0, _error("amount", str(error))
        field, value = "amount", n
    else:
        value = []
        for number, line in enumerate((line for line in body.tickets.splitlines() if line.strip()), start=1):
            try:
                value.append(_ticket(line))
            except kata.LottoError as error:
                return 0, _error("tickets", f"{error} ({number}번째 줄: {line.strip()})")
        field, n = "tickets", len(value)
    count = ticket_count_error(n, max_tickets)
    if count is not None:
        kind, message, context = count
        return 0, _error(field, message.format(**context), kind)
    return value, None


def read_console(body: ConsoleIn, max_tickets: int) -> tuple[Purchase | None, list[dict]]:
    """The purchase the fields describe, or every field's ``[ERROR]`` (as 422 details)."""
    errors = []
    tickets, error = _tickets(body, max_tickets)
    if error is not None:
        errors.append(error)
    if body.tickets is not None and body.seed is not None:
        errors.append(_error("seed", "[ERROR] 수동 번호에는 시드를 쓸 수 없습니다. "
                                     "(a seed draws tickets again: give it with the amount)", "seed_without_draw"))
    winning = None
    try:
        winning = kata.parse_winning(body.winning)
    except kata.LottoError as failure:
        errors.append(_error("winning", str(failure)))
    try:
        bonus = kata.parse_bonus(body.bonus, winning or ())
    except kata.LottoError as failure:
        errors.append(_error("bonus", str(failure)))
    if errors:
        return None, errors
    seed = None
    if isinstance(tickets, int):
        tickets, seed = draw(tickets, body.seed)
    return Purchase(kata.Case.create(tickets, winning, bonus), seed), []
