"""Coverage of the answer's local facts: which can occur, and how often the corpus shows each.

An answer in a work-line format is decided by a finite set of local facts, each a small table the model
must learn entry by entry:

- ``flag``: a number's membership flag, ``(number, flag)`` (``+`` winning, ``b`` bonus, ``.`` neither);
- ``match``: a ticket's match count as written (``5b``);
- ``tally``: a running tally step, ``(rank, k)``: the k-th ticket of that rank so far;
- ``count``: a statistics line's value, ``(rank, v)``;
- ``sum_column``: a column of the sum line, ``(place, carry in, addends, digit, carry on)``: the column's
  digit is the sum of the addends it writes (and, in the two lowest columns, of ``n // 2``) and the carry;
- ``division``: a step of the rate's long division, ``(n, remainder before, digit brought down)``;
- ``division_place``: the same step with the place of its quotient digit, ``(n, place, remainder, digit)``:
  the tokenizer writes each quotient digit as a digit-and-place piece, so each place is a table of its own.

The facts of a case are read back from its *rendered* completion (:func:`completion_facts`), so the
counting cannot drift from the rendering. The reachable facts are enumerated exactly: every number and
flag, every match count, ``k`` and ``v`` up to the ticket range, and for the sum and the division every
prize composition of every ticket count (those lines depend on nothing else).
"""

from __future__ import annotations

import statistics
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np

from lottogpt import formats, kata, progress
from lottogpt.params import DataParams

FAMILIES = ("flag", "match", "tally", "count", "sum_column", "division", "division_place")
DIVISION_FAMILIES = ("division", "division_place")
# What an arithmetic drill (formats.drill_texts) writes: the lines after the count lines.
DRILLED_FAMILIES = ("sum_column", *DIVISION_FAMILIES)
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
        columns = formats.addend_steps(line)  # a sum line, with or without its addends
        if columns is not None:
            facts["sum_column"] += sum_column_facts(columns)
            continue
        division = formats.division_steps(line)
        if division is not None:
            n, steps = division
            remainder = 0
            for place, (digit, _, after) in zip(range(len(steps) - 1, -1, -1), steps, strict=True):
                facts["division"].append((n, remainder, digit))
                facts["division_place"].append((n, place, remainder, digit))
                remainder = after
    parsed = formats.parse_statistics([*answer[:5], _NO_RATE]) if len(answer) >= 5 else None
    if parsed is not None:
        facts["count"] = list(parsed[0].items())
    return facts


def sum_column_facts(columns: list[tuple[str, int, int]]) -> list[tuple]:
    """The facts of a sum line's columns ``(addends, digit, carry on)``, ones first: each with its place and
    the carry that came into it."""
    facts, carry_in = [], 0
    for place, (addends, digit, carry) in enumerate(columns):
        facts.append((place, carry_in, addends, digit, carry))
        carry_in = carry
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


def division_facts(prize: int, n: int) -> Facts:
    """The division facts of a prize over ``n`` tickets, as ``formats.division_line`` writes its steps.

    Arithmetic, for enumerating every composition fast; a test holds it equal to the rendered lines.
    """
    facts: Facts = {family: [] for family in DIVISION_FAMILIES}
    dividend, remainder = f"{prize + n // 2:02d}", 0
    for place, digit in zip(range(len(dividend) - 1, -1, -1), map(int, dividend), strict=True):
        facts["division"].append((n, remainder, digit))
        facts["division_place"].append((n, place, remainder, digit))
        remainder = (remainder * 10 + digit) % n
    return facts


@lru_cache(maxsize=64)
def division_index(n: int, family: str = "division") -> dict[tuple[int, ...], tuple[int, ...]]:
    """Each fact of a division family for ``n`` tickets, and the compositions (indices in
    ``composition_list(n)``) whose division shows it."""
    found: dict[tuple[int, ...], list[int]] = {}
    for index, composition in enumerate(composition_list(n)):
        for fact in division_facts(composition_prize(composition), n)[family]:
            hits = found.setdefault(fact, [])
            if not hits or hits[-1] != index:
                hits.append(index)
    return {fact: tuple(hits) for fact, hits in sorted(found.items())}


@lru_cache(maxsize=4)
def sum_index(min_tickets: int, max_tickets: int, answer_format: str) -> dict[tuple, array]:
    """Each sum column fact, and the compositions whose sum line shows it (indices in
    :func:`compositions_between`): every composition's line is rendered, so nothing can drift."""
    render = formats.addend_line if answer_format == "addends" else formats.sum_line
    found: dict[tuple, array] = {}
    for index, composition in enumerate(compositions_between(min_tickets, max_tickets)):
        counts = dict(zip(kata.RANK_KEYS, composition, strict=False))
        n = sum(composition)
        for fact in sum_column_facts(formats.addend_steps(render(counts, n)) or []):
            found.setdefault(fact, array("i")).append(index)
    return dict(sorted(found.items()))


@lru_cache(maxsize=4)
def compositions_between(min_tickets: int, max_tickets: int) -> tuple[tuple[int, ...], ...]:
    return tuple(c for n in range(min_tickets, max_tickets + 1) for c in composition_list(n))


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
    if answer_format in formats.SUM_FORMATS:
        found["sum_column"] = set(sum_index(min_tickets, max_tickets, answer_format))
    if answer_format in formats.DIVISION_FORMATS:
        for n in range(min_tickets, max_tickets + 1):
            for family in DIVISION_FAMILIES:
                found[family] |= set(division_index(n, family))
    return found


def floors(params: DataParams) -> dict[str, int]:
    """The floor of each family: ``data.coverage_floor``, but ``data.division_floor`` for the division steps
    and ``data.place_floor`` for the steps by place (a table per place, far more facts)."""
    own = {"division": params.division_floor, "division_place": params.place_floor}
    return {family: own.get(family, params.coverage_floor) for family in FAMILIES}


def below(coverage: Coverage, possible: dict[str, set], floor: dict[str, int]) -> list[tuple[str, object]]:
    """The reachable facts seen fewer than their family's floor, as ``(family, fact)``, in a fixed order."""
    return [(family, fact) for family in FAMILIES
            for fact in sorted(possible[family]) if coverage[family][fact] < floor[family]]


def summary(coverage: Coverage, possible: dict[str, set], floor: dict[str, int]) -> dict:
    """Per family: its floor, reachable facts, those never seen, below the floor, min and median occurrences.

    ``unreachable_seen`` counts facts seen that the enumeration says cannot occur (it must be 0).
    """
    families = {}
    for family in FAMILIES:
        if not possible[family]:
            continue
        seen = [coverage[family][fact] for fact in possible[family]]
        families[family] = {
            "floor": floor[family],
            "reachable": len(possible[family]),
            "unseen": sum(1 for c in seen if c == 0),
            "below_floor": sum(1 for c in seen if c < floor[family]),
            "min": min(seen),
            "median": statistics.median(seen),
            "unreachable_seen": sum(1 for fact, c in coverage[family].items() if c and fact not in possible[family]),
        }
    return {"families": families}


# ---------------------------------------------------------------------------------------------
# Counting a corpus, and the top-up that lifts every fact to its floor
# ---------------------------------------------------------------------------------------------

# Composes one case per prize composition: ``data.draw_composed`` (data imports this module, not back).
Compose = Callable[[np.random.Generator, list[tuple[int, ...]], float], list[kata.Case]]


def _chunk_coverage(job: tuple[list[kata.Case], str]) -> Coverage:
    cases, answer_format = job
    return count(formats.render_completion(case, answer_format) for case in cases)


def train_coverage(cases: list[kata.Case], answer_format: str, workers: int = 1) -> Coverage:
    """The fact coverage of ``cases``, counted on their rendered completions (in ``workers`` processes)."""
    chunk = 20_000
    jobs = [(cases[start:start + chunk], answer_format) for start in range(0, len(cases), chunk)]
    with progress.track("counting facts", len(cases)) as task:
        parts = []
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for job, part in zip(jobs, pool.map(_chunk_coverage, jobs), strict=True):
                    parts.append(part)
                    task.advance(len(job[0]))
        else:
            for job in jobs:
                parts.append(_chunk_coverage(job))
                task.advance(len(job[0]))
    return merge(parts)


def cover(rng: np.random.Generator, params: DataParams, counts: Coverage, seen: set[kata.Case],
          replaceable: list[kata.Case], compose: Compose) -> list[kata.Case]:
    """``replaceable`` with cases that lift every reachable fact to its floor (:func:`floors`) in their place.

    For each fact below its floor (by family in :data:`_TARGETED` order, then in a fixed order), cases are
    composed to show it until it reaches the floor: a composition whose sum or division line shows the
    step, or ``k`` tickets of the rank for a tally step or a count value. As many cases of ``replaceable``
    (from its end) then make room, skipping any whose removal would take a fact below its floor. The size
    stays that of ``replaceable``: if too few can go, the last ones go anyway (``coverage.json`` then shows
    facts below the floor). ``counts`` is kept up to date.
    """
    fmt, floor = params.answer_format, floors(params)
    possible = reachable(params.min_tickets, params.max_tickets, fmt)
    added: list[kata.Case] = []
    targets = [target for target in below(counts, possible, floor) if target[0] in _TARGETED]
    for family, fact in sorted(targets, key=lambda target: _TARGETED.index(target[0])):
        for _ in range(100):
            need = min(floor[family] - counts[family][fact], len(replaceable) - len(added))
            if need <= 0:
                break
            for case in compose(rng, _compositions_for(rng, params, family, fact, need), params.bonus_prob):
                if case not in seen:
                    seen.add(case)
                    added.append(case)
                    add(counts, _facts(case, fmt))
    removed: set[int] = set()
    for strict in (True, False):
        for index in range(len(replaceable) - 1, -1, -1):
            if len(removed) >= len(added):
                break
            if index in removed:
                continue
            facts = _facts(replaceable[index], fmt)
            add(counts, facts, -1)
            if strict and any(counts[family][fact] < floor[family] for family, keys in facts.items() for fact in keys):
                add(counts, facts)
            else:
                removed.add(index)
    return [case for index, case in enumerate(replaceable) if index not in removed] + added


def _facts(case: kata.Case, answer_format: str) -> Facts:
    return completion_facts(formats.render_completion(case, answer_format))


# The families the top-up composes cases for, in the order it does; flags and match counts are common in
# every draw. The steps come before the steps by place: a floor on the places takes far more room.
_TARGETED = ("tally", "count", "sum_column", "division", "division_place")


def _compositions_for(rng: np.random.Generator, params: DataParams, family: str, fact: tuple,
                      size: int) -> list[tuple[int, ...]]:
    """``size`` prize compositions whose cases show ``fact``, drawn uniformly among those that do."""
    if family in DIVISION_FAMILIES:
        n = fact[0]
        hits = division_index(n, family)[fact]
        return [composition_list(n)[hits[i]] for i in rng.integers(0, len(hits), size)]
    if family == "sum_column":
        every = compositions_between(params.min_tickets, params.max_tickets)
        hits = sum_index(params.min_tickets, params.max_tickets, params.answer_format)[fact]
        return [every[hits[i]] for i in rng.integers(0, len(hits), size)]
    rank, k = fact  # k tickets of the rank (a tally step k or a count value k), the rest spread uniformly
    column = kata.RANK_KEYS.index(rank)
    found = []
    for n in rng.integers(max(k, params.min_tickets), params.max_tickets + 1, size).tolist():
        rest = n - k
        bars = np.sort(rng.choice(rest + 4, 4, replace=False))
        parts = (np.diff(bars, prepend=-1, append=rest + 4) - 1).tolist()
        found.append(tuple([*parts[:column], k, *parts[column:]]))
    return found
