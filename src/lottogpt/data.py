"""The synthetic corpus: stratified and natural lotto cases, rendered by the kata, written to Parquet.

Uniformly random tickets almost never win (3 matches ~2.2% of tickets, 5 + bonus ~7e-7), so a model
that always printed zeros would look good on them. The stratified splits (``train``, ``val``,
``test``) choose how many numbers each ticket shares with the winning numbers, and whether it holds
the bonus, from ``data.match_weights`` and ``data.bonus_prob``. ``test_natural`` holds uniformly
random tickets, as real buyers do; ``data.natural_share`` of the train and val cases are drawn that
way too (many-ticket stratified cases nearly always win big, natural ones nearly never do).

The rate's long division depends only on the ticket count and how many tickets won each prize, and
stratified cases leave many of those combinations (and so many steps of the division table) rare or
unseen: ``data.prize_share`` of the train and val cases draw that combination uniformly instead.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from lottogpt import coverage, formats, kata, progress
from lottogpt.params import DataParams

SPLITS = ("train", "val", "test", "test_natural")
# Held-out splits are drawn first so that train can avoid every case in them.
_DRAW_ORDER = ("test", "test_natural", "val", "train")


_SPLIT_STREAM = {split: index for index, split in enumerate(SPLITS)}


def split_size(params: DataParams, split: str) -> int:
    return {"train": params.n_train, "val": params.n_val, "test": params.n_test,
            "test_natural": params.n_test_natural}[split]


# The matches and the bonus of a ticket winning the 5th, 4th, 3rd, 2nd and 1st prize.
_PRIZE_TICKETS = np.array([(3, 0), (4, 0), (5, 0), (5, 1), (6, 0)])


def draw_prize_matches(rng: np.random.Generator, n_tickets: np.ndarray,
                       bonus_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-ticket matches and bonus flags for cases whose prize counts are drawn uniformly.

    ``n`` tickets can win the five prizes in C(n+5, 5) ways (the counts of the five statistics lines);
    stars and bars picks one uniformly, and the tickets in the case are shuffled.
    """
    kinds = []
    for n in n_tickets.tolist():
        bars = np.sort(rng.choice(n + 5, 5, replace=False))
        parts = np.diff(bars, prepend=-1, append=n + 5) - 1  # five prize counts, then the losers
        kinds.append(rng.permutation(np.repeat(np.arange(6), parts)))
    return kind_matches(rng, np.concatenate(kinds), bonus_prob)


def kind_matches(rng: np.random.Generator, kind: np.ndarray, bonus_prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Matches and bonus flags of tickets of a given kind (0..4: the 5th..1st prize, 5: losing).

    Losing tickets share 0..2 numbers; the bonus goes to a ticket of 0..4 matches with probability
    ``bonus_prob``.
    """
    prize = np.minimum(kind, 4)
    losing = kind == 5
    matches = np.where(losing, rng.integers(0, 3, len(kind)), _PRIZE_TICKETS[prize, 0])
    may_hold_bonus = losing | (kind <= 1)
    has_bonus = np.where(may_hold_bonus, rng.random(len(kind)) < bonus_prob, _PRIZE_TICKETS[prize, 1])
    return matches[:, None], has_bonus.astype(int)[:, None]


# How a case's tickets are drawn: see draw_cases.
DRAWS = ("stratified", "natural", "prizes")


def draw_cases(rng: np.random.Generator, params: DataParams, size: int, draw: str) -> list[kata.Case]:
    """``size`` random cases, vectorised over all their tickets.

    ``natural`` tickets are uniformly random. ``stratified`` tickets take ``k`` numbers of the winning six
    (``k`` drawn from ``match_weights``), the bonus with probability ``bonus_prob`` when ``k < 6``, and the
    rest from the other 38 numbers; ``prizes`` tickets likewise, with ``k`` and the bonus from
    :func:`draw_prize_matches`.
    """
    if draw not in DRAWS:
        raise ValueError(f"unknown draw {draw!r}; choose one of {DRAWS}")
    n_tickets = rng.integers(params.min_tickets, params.max_tickets + 1, size)
    winning, bonus, others = _draw_winning(rng, size)
    owner = np.repeat(np.arange(size), n_tickets)
    count = len(owner)
    if draw == "natural":
        tickets = rng.random((count, kata.NUMBER_MAX)).argsort(axis=1)[:, :6] + 1
    else:
        if draw == "prizes":
            matches, has_bonus = draw_prize_matches(rng, n_tickets, params.bonus_prob)
        else:
            weights = np.asarray(params.match_weights, dtype=float)
            matches = rng.choice(7, size=count, p=weights / weights.sum())[:, None]
            has_bonus = ((matches < 6) & (rng.random((count, 1)) < params.bonus_prob)).astype(int)
        tickets = _build_tickets(rng, winning, bonus, others, owner, matches, has_bonus)
    return _assemble(np.sort(tickets, axis=1).tolist(), n_tickets.tolist(), winning, bonus)


def _draw_winning(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Winning numbers (sorted), the bonus and the 38 other numbers of ``size`` cases."""
    order = rng.random((size, kata.NUMBER_MAX)).argsort(axis=1) + 1
    return np.sort(order[:, :6], axis=1), order[:, 6], order[:, 7:]


def _build_tickets(rng: np.random.Generator, winning: np.ndarray, bonus: np.ndarray, others: np.ndarray,
                   owner: np.ndarray, matches: np.ndarray, has_bonus: np.ndarray) -> np.ndarray:
    """Tickets taking ``matches`` of their case's winning numbers, the bonus if ``has_bonus``, the rest others."""
    count = len(owner)
    from_winning = np.take_along_axis(winning[owner], rng.random((count, 6)).argsort(axis=1), axis=1)
    from_others = np.take_along_axis(others[owner], rng.random((count, 38)).argsort(axis=1), axis=1)
    slot = np.arange(6)[None, :]
    other_slot = np.clip(slot - matches - has_bonus, 0, 37)
    tickets = np.where(slot < matches, from_winning, np.take_along_axis(from_others, other_slot, axis=1))
    return np.where((slot == matches) & (has_bonus == 1), bonus[owner][:, None], tickets)


def _assemble(tickets: list[list[int]], n_tickets: list[int], winning: np.ndarray,
              bonus: np.ndarray) -> list[kata.Case]:
    cases, start = [], 0
    for index, n in enumerate(n_tickets):
        case_tickets = tuple(tuple(t) for t in tickets[start:start + n])
        cases.append(kata.Case(case_tickets, tuple(winning[index].tolist()), int(bonus[index])))
        start += n
    return cases


# Share of the coverage cases whose tickets of one kind are all one ticket, bought again and again (people
# who pick their numbers by hand do): a case the other draws almost never make.
REPEAT_SHARE = 0.5


def draw_composed(rng: np.random.Generator, compositions: list[tuple[int, ...]], bonus_prob: float,
                  repeat_share: float = REPEAT_SHARE) -> list[kata.Case]:
    """One case per prize composition (counts of the five ranks, then of losing tickets), tickets shuffled.

    In ``repeat_share`` of the cases every ticket of a kind is a copy of the first ticket of that kind.
    """
    n_tickets = [sum(c) for c in compositions]
    size = len(compositions)
    winning, bonus, others = _draw_winning(rng, size)
    owner = np.repeat(np.arange(size), n_tickets)
    kind = np.concatenate([rng.permutation(np.repeat(np.arange(6), c)) for c in compositions] or [np.zeros(0, int)])
    matches, has_bonus = kind_matches(rng, kind, bonus_prob)
    tickets = np.sort(_build_tickets(rng, winning, bonus, others, owner, matches, has_bonus), axis=1)
    repeat = rng.random(size) < repeat_share
    first: dict[tuple[int, int], int] = {}
    rows = []
    for row, (case, k) in enumerate(zip(owner.tolist(), kind.tolist(), strict=True)):
        rows.append(first.setdefault((case, k), row) if repeat[case] else row)
    return _assemble(tickets[rows].tolist(), n_tickets, winning, bonus)


def generate_cases(params: DataParams, workers: int = 1) -> dict[str, list[kata.Case]]:
    """All splits, deterministic for the params, with no case in two splits."""
    return draw_corpus(params, workers)[0]


class Drawn(NamedTuple):
    splits: dict[str, list[kata.Case]]
    coverage: coverage.Coverage | None  # of train, when the top-up counted it
    composed: int  # train cases composed by the top-up


def draw_corpus(params: DataParams, workers: int = 1) -> Drawn:
    """All splits, with the fact coverage of ``train`` when the coverage top-up counted it."""
    with progress.track("drawing cases", sum(split_size(params, s) for s in SPLITS)) as task:
        return _generate_cases(params, task, workers)


def _generate_cases(params: DataParams, task: progress.Task, workers: int) -> Drawn:
    seen: set[kata.Case] = set()
    splits: dict[str, list[kata.Case]] = {}
    counts, composed = None, 0
    for split in _DRAW_ORDER:
        rng = np.random.default_rng([params.seed, _SPLIT_STREAM[split]])
        target = split_size(params, split)
        if split == "test_natural":
            splits[split] = _draw_distinct(rng, params, target, "natural", seen, split, task)
            continue
        # Train and val mix in natural and prize-uniform cases, each from a random stream of its own, so
        # that a share of 0 leaves the corpus of earlier versions as it was.
        mixed_in = [("natural", 1, params.natural_share), ("prizes", 2, params.prize_share)]
        if split not in ("train", "val"):
            mixed_in = []
        sizes, left = [], target
        for _, _, share in mixed_in:
            sizes.append(min(round(target * share), left))
            left -= sizes[-1]
        cases = _draw_distinct(rng, params, left, "stratified", seen, split, task)
        for (draw, stream, _), size in zip(mixed_in, sizes, strict=True):
            if size:
                extra_rng = np.random.default_rng([params.seed, _SPLIT_STREAM[split], stream])
                extra = _draw_distinct(extra_rng, params, size, draw, seen, split, task)
                floored = params.coverage_floor or params.division_floor or params.place_floor
                if draw == "prizes" and split == "train" and floored:
                    counts = coverage.train_coverage(cases + extra, params.answer_format, workers)
                    cover_rng = np.random.default_rng([params.seed, _SPLIT_STREAM[split], 3])
                    drawn = set(extra)
                    extra = coverage.cover(cover_rng, params, counts, seen, extra, draw_composed)
                    composed = sum(1 for case in extra if case not in drawn)
                cases += extra
                cases = [cases[i] for i in extra_rng.permutation(len(cases))]
        splits[split] = cases
    return Drawn({split: splits[split] for split in SPLITS}, counts, composed)


def _draw_distinct(rng: np.random.Generator, params: DataParams, target: int, draw: str,
                   seen: set[kata.Case], split: str, task: progress.Task) -> list[kata.Case]:
    """``target`` cases not in ``seen`` (which they join)."""
    cases: list[kata.Case] = []
    for _ in range(100):
        if len(cases) >= target:
            break
        before = len(cases)
        for case in draw_cases(rng, params, target - len(cases), draw):
            if case not in seen:
                seen.add(case)
                cases.append(case)
        task.advance(len(cases) - before)
    if len(cases) < target:
        raise RuntimeError(f"could not draw {target} distinct {split} cases; widen the ticket range")
    return cases


def top_rank(counts: dict[str, int]) -> str:
    """The highest rank any ticket reached, or ``none``."""
    for rank in reversed(kata.Rank):
        if counts[rank.key]:
            return rank.key
    return "none"


def case_columns(split: str, cases: list[kata.Case], answer_format: str, offset: int = 0) -> dict[str, list]:
    """The corpus columns of a split, rendered by the kata."""
    columns: dict[str, list] = {name: [] for name in SCHEMA}
    for index, case in enumerate(cases, start=offset):
        result = kata.score(case)
        counts = result.counts
        row = (
            f"{split}-{index:07d}", len(case.tickets), case.tickets, case.winning, case.bonus,
            kata.render_transcript(case), result.output, formats.render_prompt(case, answer_format),
            formats.render_completion(case, answer_format, result), counts["3"], counts["4"],
            counts["5"], counts["5+bonus"], counts["6"], result.total_prize, result.return_rate,
            top_rank(counts),
        )
        for column, value in zip(columns.values(), row, strict=True):
            column.append(value)
    return columns


SCHEMA = {
    "id": pl.String, "n_tickets": pl.Int16, "tickets": pl.List(pl.List(pl.Int8)),
    "winning": pl.List(pl.Int8), "bonus": pl.Int8, "prompt": pl.String, "completion": pl.String,
    "model_prompt": pl.String, "model_completion": pl.String, "count_3": pl.Int16, "count_4": pl.Int16,
    "count_5": pl.Int16, "count_5_bonus": pl.Int16, "count_6": pl.Int16, "total_prize": pl.Int64,
    "return_rate": pl.String, "top_rank": pl.String,
}
_ARROW = {pl.String: pa.string(), pl.Int8: pa.int8(), pl.Int16: pa.int16(), pl.Int64: pa.int64()}
ARROW_TYPES = {name: _ARROW.get(kind) for name, kind in SCHEMA.items()} | {
    "tickets": pa.list_(pa.list_(pa.int8())), "winning": pa.list_(pa.int8())}


def _render_chunk(job: tuple[str, int, list[kata.Case], str]) -> pa.Table:
    split, offset, cases, answer_format = job
    columns = case_columns(split, cases, answer_format, offset)
    # pyarrow converts the nested ticket lists far faster than polars' Python path.
    return pa.table({name: pa.array(values, type=ARROW_TYPES[name]) for name, values in columns.items()})


def to_frame(split: str, cases: list[kata.Case], answer_format: str, workers: int = 1) -> pl.DataFrame:
    """Render a split to a frame, in ``workers`` processes for large splits (order is kept)."""
    chunk = 20_000
    jobs = [(split, start, cases[start:start + chunk], answer_format) for start in range(0, len(cases), chunk)]
    tables: list[pa.Table] = []
    with progress.track(f"rendering {split}", len(cases)) as task:
        if workers > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(workers) as pool:
                for table in pool.map(_render_chunk, jobs):  # in job order, whichever process ends first
                    tables.append(table)
                    task.advance(len(table))
        else:
            for job in jobs:
                tables.append(_render_chunk(job))
                task.advance(len(job[2]))
    tables = tables or [_render_chunk((split, 0, [], answer_format))]
    return pl.from_arrow(pa.concat_tables(tables)).cast(SCHEMA)  # type: ignore[return-value]


def write_corpus(params: DataParams, out_dir: str | Path, workers: int = 2) -> dict:
    """Generate every split to ``out_dir/{split}.parquet``; returns statistics for the metrics file.

    ``stats["coverage"]`` is the fact coverage of ``train`` (:func:`coverage.summary`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    splits, counts, composed = draw_corpus(params, workers)
    stats: dict = {"splits": {}}
    for split, cases in splits.items():
        frame = to_frame(split, cases, params.answer_format, workers)
        # Fixed settings (no statistics, one row group) keep the bytes identical for identical params.
        frame.write_parquet(out_dir / f"{split}.parquet", compression="zstd", compression_level=9,
                            statistics=False, row_group_size=max(len(frame), 1))
        stats["splits"][split] = split_stats(frame)
        if split == "train" and counts is None:  # the top-up did not count them: read the rendered text
            counts = coverage.count(frame["model_completion"])
    possible = coverage.reachable(params.min_tickets, params.max_tickets, params.answer_format)
    stats["coverage"] = coverage.summary(counts, possible, coverage.floors(params))
    stats["coverage"]["composed_cases"] = composed
    elapsed = time.perf_counter() - start
    total = sum(len(c) for c in splits.values())
    stats["cases"] = total
    stats["seconds"] = round(elapsed, 2)
    stats["cases_per_second"] = round(total / elapsed, 1)
    return stats


def split_stats(frame: pl.DataFrame) -> dict:
    """Share of cases in which each rank appears at least once, and the ticket range."""
    cases = max(len(frame), 1)
    columns = {"3": "count_3", "4": "count_4", "5": "count_5", "5+bonus": "count_5_bonus", "6": "count_6"}
    return {
        "cases": len(frame),
        "min_tickets": int(frame["n_tickets"].min() or 0),
        "max_tickets": int(frame["n_tickets"].max() or 0),
        "rank_share": {k: round(int((frame[c] > 0).sum()) / cases, 4) for k, c in columns.items()},
    }


def read_split(corpus_dir: str | Path, split: str, columns: list[str] | None = None) -> pl.DataFrame:
    path = Path(corpus_dir) / f"{split}.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `dvc repro generate` first")
    return pl.read_parquet(path, columns=columns)


def frame_cases(frame: pl.DataFrame) -> list[kata.Case]:
    """Rebuild kata cases from a corpus frame, validated and sorted like every other input (``Case.create``)."""
    return [
        kata.Case.create(tickets, winning, bonus)
        for tickets, winning, bonus in zip(frame["tickets"], frame["winning"], frame["bonus"], strict=True)
    ]
