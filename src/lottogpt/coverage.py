"""Coverage of the answer's local facts: which can occur, and how often the corpus shows each.

An answer in a work-line format is decided by a finite set of local facts, each a small table the model
must learn entry by entry:

- ``flag``: a number's membership flag, ``(number, flag)`` (``+`` winning, ``b`` bonus, ``.`` neither);
- ``match``: a ticket's match count as written (``5b``);
- ``tally``: a running tally step, ``(rank, k)``: the k-th ticket of that rank so far;
- ``count``: a statistics line's value, ``(rank, v)``;
- ``division``: a step of the rate's long division, ``(n, remainder before, digit brought down)``.

The facts of a case are read back from its *rendered* completion (:func:`completion_facts`), so the
counting cannot drift from the rendering. The reachable facts are enumerated exactly: every number and
flag, every match count, ``k`` and ``v`` up to the ticket range, and for the division every prize
composition of every ticket count (the division line depends on nothing else).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from functools import lru_cache

from lottogpt import formats, kata

FAMILIES = ("flag", "match", "tally", "count", "division")
_NO_RATE = f"{kata.RATE_PREFIX}0.0{kata.RATE_SUFFIX}"
# The match counts a ticket can show: 0..6 matches, and 0..5 with the bonus (six matches leave no room).
MATCH_COUNTS = tuple(str(m) for m in range(7)) + tuple(f"{m}b" for m in range(6))

Facts = dict[str, list]
Coverage = dict[str, Counter]


def completion_facts(completion: str) -> Facts:
    """The facts of one rendered completion, by family (a fact occurs once per time it is written)."""
    facts: Facts = {family: [] for family in FAMILIES}
    work, answer = formats.split_work(completion)
    for line in work:
        if formats.is_ticket_work_line(line):
            cells = line[1:].split(" ")
            facts["flag"] += [(int(cell[:-1]), cell[-1]) for cell in cells[:6]]
            count = cells[6][1:]
            facts["match"].append(count)
            if len(cells) > 7:
                rank = kata.Rank.of(int(count[0]), count.endswith("b"))
                facts["tally"].append((rank.key, int(cells[7][1:])))  # type: ignore[union-attr]
            continue
        division = formats.division_steps(line)
        if division is not None:
            n, steps = division
            remainder = 0
            for digit, _, after in steps:
                facts["division"].append((n, remainder, digit))
                remainder = after
    parsed = formats.parse_statistics([*answer[:5], _NO_RATE]) if len(answer) >= 5 else None
    if parsed is not None:
        facts["count"] = list(parsed[0].items())
    return facts


def empty() -> Coverage:
    return {family: Counter() for family in FAMILIES}


def add(coverage: Coverage, facts: Facts, sign: int = 1) -> None:
    """Count ``facts`` into ``coverage`` (``sign=-1`` takes them out)."""
    for family, keys in facts.items():
        counter = coverage[family]
        for key in keys:
            counter[key] += sign


def count(completions: Iterable[str]) -> Coverage:
    """How often each fact occurs in ``completions``."""
    coverage = empty()
    for completion in completions:
        add(coverage, completion_facts(completion))
    return coverage


def merge(parts: Iterable[Coverage]) -> Coverage:
    coverage = empty()
    for part in parts:
        for family in FAMILIES:
            coverage[family].update(part[family])
    return coverage


# ---------------------------------------------------------------------------------------------
# What can occur
# ---------------------------------------------------------------------------------------------


def compositions(n: int) -> Iterator[tuple[int, ...]]:
    """Every way ``n`` tickets can win: counts of the five ranks (kata order), then the losing tickets.

    There are C(n+5, 5) of them (stars and bars).
    """
    for c3 in range(n + 1):
        for c4 in range(n - c3 + 1):
            for c5 in range(n - c3 - c4 + 1):
                for c5b in range(n - c3 - c4 - c5 + 1):
                    for c6 in range(n - c3 - c4 - c5 - c5b + 1):
                        yield c3, c4, c5, c5b, c6, n - c3 - c4 - c5 - c5b - c6


def composition_prize(composition: tuple[int, ...]) -> int:
    return sum(rank.prize * c for rank, c in zip(kata.Rank, composition, strict=False))


@lru_cache(maxsize=64)
def composition_list(n: int) -> tuple[tuple[int, ...], ...]:
    return tuple(compositions(n))


def division_facts(prize: int, n: int) -> list[tuple[int, int, int]]:
    """The division facts of a prize over ``n`` tickets, as ``formats.division_line`` writes its steps.

    Arithmetic, for enumerating every composition fast; a test holds it equal to the rendered lines.
    """
    facts, remainder = [], 0
    for digit in f"{prize + n // 2:02d}":
        facts.append((n, remainder, int(digit)))
        remainder = (remainder * 10 + int(digit)) % n
    return facts


@lru_cache(maxsize=64)
def division_index(n: int) -> dict[tuple[int, int, int], tuple[int, ...]]:
    """Each division fact of ``n`` tickets and the compositions (indices in ``composition_list(n)``) showing it."""
    found: dict[tuple[int, int, int], list[int]] = {}
    for index, composition in enumerate(composition_list(n)):
        for fact in division_facts(composition_prize(composition), n):
            hits = found.setdefault(fact, [])
            if not hits or hits[-1] != index:
                hits.append(index)
    return {fact: tuple(hits) for fact, hits in sorted(found.items())}


def reachable(min_tickets: int, max_tickets: int, answer_format: str) -> dict[str, set]:
    """Every fact some case of ``min_tickets..max_tickets`` tickets shows in ``answer_format``, by family."""
    ranks = kata.RANK_KEYS
    found: dict[str, set] = {family: set() for family in FAMILIES}
    found["count"] = {(rank, v) for rank in ranks for v in range(max_tickets + 1)}
    if answer_format == "direct":
        return found
    flags = (formats.FLAG_WINNING, formats.FLAG_BONUS, formats.FLAG_MISS)
    found["flag"] = {(number, flag) for number in range(kata.NUMBER_MIN, kata.NUMBER_MAX + 1) for flag in flags}
    found["match"] = set(MATCH_COUNTS)
    if answer_format in formats.TALLY_FORMATS:
        found["tally"] = {(rank, k) for rank in ranks for k in range(1, max_tickets + 1)}
    if answer_format in formats.DIVISION_FORMATS:
        for n in range(min_tickets, max_tickets + 1):
            found["division"] |= set(division_index(n))
    return found


def below(coverage: Coverage, possible: dict[str, set], floor: int) -> list[tuple[str, object]]:
    """The reachable facts seen fewer than ``floor`` times, as ``(family, fact)``, in a fixed order."""
    return [(family, fact) for family in FAMILIES
            for fact in sorted(possible[family]) if coverage[family][fact] < floor]


def summary(coverage: Coverage, possible: dict[str, set], floor: int) -> dict:
    """Per family: reachable facts, those never seen, below the floor, min and median occurrences.

    ``unreachable_seen`` counts facts seen that the enumeration says cannot occur (it must be 0).
    """
    families = {}
    for family in FAMILIES:
        if not possible[family]:
            continue
        seen = [coverage[family][fact] for fact in possible[family]]
        families[family] = {
            "reachable": len(possible[family]),
            "unseen": sum(1 for c in seen if c == 0),
            "below_floor": sum(1 for c in seen if c < floor),
            "min": min(seen),
            "median": statistics.median(seen),
            "unreachable_seen": sum(1 for fact, c in coverage[family].items() if c and fact not in possible[family]),
        }
    return {"floor": floor, "families": families}
