"""Verification suites: the kata's input domain checked beyond the corpus's distribution.

- ``compositions``: every prize composition (how many tickets win nothing, the 5th, ..., the 1st prize) of
  ``n`` tickets for ``n`` up to ``evaluate.exhaustive_tickets``, each realised by random tickets in random
  order, and a seeded uniform sample (``evaluate.sample_compositions``) over the compositions of the larger
  ticket counts. The count lines and the rate depend on nothing but the composition, so a model right on
  every one of them is right on those lines for every case of those ticket counts.
- ``adversarial``: valid but unusual inputs: one ticket bought again and again, every ticket of one rank,
  the largest totals, every rank at once, bonus-only tickets, numbers typed in any order, the kata's
  published examples.

Both are written as Parquet files with the corpus's columns, so the evaluation reads them like a split. The
cases typed in any order keep that order in the ``tickets`` and ``winning`` columns: reading them back sorts
them (``kata.Case.create``), as the CLI and the server do.
"""

from __future__ import annotations

import random
from math import comb
from pathlib import Path

import numpy as np
import polars as pl

from lottogpt import coverage, data, kata
from lottogpt.params import DataParams, EvaluateParams

SUITES = ("compositions", "adversarial")
_LOSING = 5  # the kind of a losing ticket in a composition (after the five ranks)


def exhaustive_compositions(min_tickets: int, max_tickets: int) -> list[tuple[int, ...]]:
    """Every composition of every ticket count in ``min_tickets..max_tickets``."""
    return [c for n in range(min_tickets, max_tickets + 1) for c in coverage.composition_list(n)]


def sampled_compositions(rng: np.random.Generator, min_tickets: int, max_tickets: int,
                         size: int) -> list[tuple[int, ...]]:
    """``size`` distinct compositions drawn uniformly over all those of ``min_tickets..max_tickets`` tickets
    (all of them when there are no more), in ticket-count order."""
    sizes = [comb(n + 5, 5) for n in range(min_tickets, max_tickets + 1)]
    total = sum(sizes)
    if total == 0 or size <= 0:
        return []
    chosen = np.sort(rng.choice(total, min(size, total), replace=False)).tolist()
    found, start, n = [], 0, min_tickets
    for index in chosen:
        while index >= start + sizes[n - min_tickets]:
            start += sizes[n - min_tickets]
            n += 1
        found.append(coverage.composition_list(n)[index - start])
    return found


def composition_cases(data_params: DataParams, params: EvaluateParams) -> list[kata.Case]:
    """The ``compositions`` suite: exhaustive up to ``exhaustive_tickets``, then the uniform sample."""
    rng = np.random.default_rng([params.suite_seed, 0])
    low, high = data_params.min_tickets, data_params.max_tickets
    top = min(params.exhaustive_tickets, high)
    comps = exhaustive_compositions(low, top)
    comps += sampled_compositions(rng, max(top + 1, low), high, params.sample_compositions)
    return data.draw_composed(rng, comps, data_params.bonus_prob, repeat_share=0.0)


def _one(rng: np.random.Generator, composition: list[int], bonus_prob: float = 0.3,
         repeat: float = 0.0) -> kata.Case:
    return data.draw_composed(rng, [tuple(composition)], bonus_prob, repeat_share=repeat)[0]


def _repeat_rank(case: kata.Case, kind: int) -> kata.Case:
    """``case`` with every ticket of ``kind`` replaced by the first of them (the others stay distinct)."""
    kinds = [_kind(case, t) for t in case.tickets]
    first = case.tickets[kinds.index(kind)]
    tickets = tuple(first if k == kind else t for k, t in zip(kinds, case.tickets, strict=True))
    return kata.Case(tickets, case.winning, case.bonus)


def _kind(case: kata.Case, ticket: tuple[int, ...]) -> int:
    rank = case.rank(ticket)
    return _LOSING if rank is None else list(kata.Rank).index(rank)


def adversarial_cases(data_params: DataParams, params: EvaluateParams) -> tuple[list[kata.Case], list[dict]]:
    """The ``adversarial`` suite, and for each case the input as typed (``tickets``, ``winning``)."""
    rng = np.random.default_rng([params.suite_seed, 1])
    low, high = data_params.min_tickets, data_params.max_tickets
    counts = range(low, high + 1)
    cases: list[kata.Case] = []
    for kind in range(6):  # one ticket of each kind bought n times
        cases += [_one(rng, [n if k == kind else 0 for k in range(6)], repeat=1.0) for n in counts]
    for kind in range(5):  # n distinct tickets of one rank; k identical ones of a rank among distinct losers
        cases += [_one(rng, [n if k == kind else 0 for k in range(6)]) for n in counts]
        cases += [_repeat_rank(_one(rng, [n if k == kind else 0 for k in range(5)] + [high - n]), kind)
                  for n in counts if n < high]
    for n in counts:
        if n >= 5:  # every rank at once: one of each, and at least one of each with the rest drawn
            cases.append(_one(rng, [1, 1, 1, 1, 1, n - 5]))
            spread = np.bincount(rng.integers(0, 6, n - 5), minlength=6) + np.array([1, 1, 1, 1, 1, 0])
            cases.append(_one(rng, spread.tolist()))
        cases.append(_one(rng, [0, 0, 0, 0, 0, n], bonus_prob=1.0))  # bonus-only losing tickets
        third = n // 3
        cases.append(_one(rng, [third, third, 0, 0, 0, n - 2 * third], bonus_prob=1.0))  # 3 and 4 with the bonus
    cases += [c for c in (kata.official_example(), kata.classic_example()) if low <= len(c.tickets) <= high]
    typed = [{"tickets": [list(t) for t in c.tickets], "winning": list(c.winning)} for c in cases]
    shuffler = random.Random(params.suite_seed)
    for _ in range(40):  # random cases typed in any order: each ticket and the winning numbers shuffled
        n = int(rng.integers(low, high + 1))
        case = _one(rng, (np.bincount(rng.integers(0, 6, n), minlength=6)).tolist())
        tickets = [shuffler.sample(list(t), 6) for t in case.tickets]
        winning = shuffler.sample(list(case.winning), 6)
        cases.append(kata.Case.create(tickets, winning, case.bonus))
        typed.append({"tickets": tickets, "winning": winning})
    return cases, typed


def write_suites(data_params: DataParams, params: EvaluateParams, out_dir: str | Path, workers: int = 2) -> dict:
    """Write ``out_dir/{compositions,adversarial}.parquet``; returns their sizes."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    adversarial, typed = adversarial_cases(data_params, params)
    built = {"compositions": (composition_cases(data_params, params), None), "adversarial": (adversarial, typed)}
    sizes = {}
    for suite, (cases, raw) in built.items():
        frame = data.to_frame(suite, cases, data_params.answer_format, workers)
        if raw is not None:
            frame = frame.with_columns(
                pl.Series("tickets", [r["tickets"] for r in raw], dtype=data.SCHEMA["tickets"]),
                pl.Series("winning", [r["winning"] for r in raw], dtype=data.SCHEMA["winning"]))
        frame.write_parquet(out_dir / f"{suite}.parquet", compression="zstd", compression_level=9,
                            statistics=False, row_group_size=max(len(frame), 1))
        sizes[suite] = len(frame)
    return sizes
