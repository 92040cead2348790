"""Evaluation: what fraction of answers is exactly the reference program's, and where the rest fail.

Per case: ``exact`` (all six lines right), each line, ``format_valid`` (the six lines parse in the
kata's form), ``counts_exact`` (all five counts), ``rate_exact`` and ``rate_consistent`` (the rate is
right for the model's *own* counts: did it compute, or copy?). For the ``tool`` answer format the
rate comes from a calculator; ``exact_match`` then counts only what the model wrote itself and
``exact_match_tool`` counts the answer after the calculator. ``work_exact`` (formats with work lines):
every work line right, that is every flag and every per-ticket match count.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from lottogpt import checking, data, formats, kata
from lottogpt.inference import Engine, Prediction

LINE_NAMES = ("line_3", "line_4", "line_5", "line_5_bonus", "line_6", "line_rate")


@dataclass
class Scored:
    case: kata.Case
    prediction: Prediction
    expected: kata.Result

    @property
    def lines_right(self) -> list[bool]:
        got = self.prediction.output.split("\n")
        want = self.expected.lines
        return [i < len(got) and got[i] == line for i, line in enumerate(want)]

    @property
    def exact_with_tool(self) -> bool:
        return self.prediction.output == self.expected.output

    @property
    def exact(self) -> bool:
        return self.exact_with_tool and not self.prediction.tool_used

    @property
    def work_exact(self) -> bool:
        """All ticket work lines (flags and per-ticket counts; tallies aside) right; False without work lines."""
        want = [formats.work_line(self.case, i) for i in range(1, len(self.case.tickets) + 1)]
        got = [formats.strip_tally(line) for line in self.prediction.work if formats.is_ticket_work_line(line)]
        return got == want

    @property
    def counts_exact(self) -> bool:
        return self.prediction.counts == self.expected.counts

    @property
    def rate_exact(self) -> bool:
        return self.prediction.return_rate == self.expected.return_rate

    @property
    def rate_consistent(self) -> bool:
        counts = self.prediction.counts
        if counts is None:
            return False
        return self.prediction.return_rate == kata.rate_for_counts(counts, len(self.case.tickets))

    @property
    def category(self) -> str:
        """``ok``, ``format``, ``counts`` (with the wrong count lines) or ``rate``."""
        if self.exact_with_tool:
            return "ok"
        if not self.prediction.format_valid:
            return "format"
        wrong = [name for name, right in zip(LINE_NAMES[:5], self.lines_right[:5], strict=True) if not right]
        if wrong:
            return "counts:" + ",".join(wrong)
        return "rate"


def score(cases: list[kata.Case], predictions: list[Prediction]) -> list[Scored]:
    return [Scored(c, p, kata.score(c)) for c, p in zip(cases, predictions, strict=True)]


def _share(values: list[bool]) -> float:
    return round(sum(values) / len(values), 4) if values else 0.0


def wilson_lower(right: int, cases: int, z: float = 1.96) -> float:
    """The Wilson score lower bound (95 % for z = 1.96) of a proportion, rounded down (never overstated)."""
    if cases == 0:
        return 0.0
    p, n = right / cases, cases
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return math.floor((centre - spread) / (1 + z * z / n) * 1e5) / 1e5


def summarize(scored: list[Scored]) -> dict:
    """The headline metrics of one split; ``errors`` counts the wrong answers, unrounded."""
    right = sum(s.exact for s in scored)
    metrics: dict = {
        "cases": len(scored),
        "errors": len(scored) - right,
        "exact_match": _share([s.exact for s in scored]),
        "exact_match_wilson_lower": wilson_lower(right, len(scored)),
        "format_valid": _share([s.prediction.format_valid for s in scored]),
        "counts_exact": _share([s.counts_exact for s in scored]),
        "rate_exact": _share([s.rate_exact for s in scored]),
        "rate_consistent": _share([s.rate_consistent for s in scored]),
    }
    if any(s.prediction.tool_used for s in scored):
        metrics["exact_match_tool"] = _share([s.exact_with_tool for s in scored])
    if any(s.prediction.work for s in scored):
        metrics["work_exact"] = _share([s.work_exact for s in scored])
    for i, name in enumerate(LINE_NAMES):
        metrics[name] = _share([s.lines_right[i] for s in scored])
    return metrics


def breakdown(scored: list[Scored]) -> dict:
    """Exact match by number of tickets and by the highest rank present."""
    by_tickets: dict[int, list[bool]] = defaultdict(list)
    by_rank: dict[str, list[bool]] = defaultdict(list)
    for s in scored:
        by_tickets[len(s.case.tickets)].append(s.exact_with_tool)
        by_rank[data.top_rank(s.expected.counts)].append(s.exact_with_tool)
    return {
        "by_tickets": {str(n): {"cases": len(v), "errors": v.count(False), "exact_match": _share(v)}
                       for n, v in sorted(by_tickets.items())},
        "by_top_rank": {k: {"cases": len(v), "exact_match": _share(v)} for k, v in sorted(by_rank.items())},
    }


def failure_record(split: str, s: Scored) -> dict:
    return {"split": split, "category": s.category, "input": s.case.to_json(), "expected": s.expected.output,
            "generated": s.prediction.output, "work": s.prediction.work}


def evaluate(engine: Engine, corpus_dir: str | Path, out_dir: str | Path, splits: tuple[str, ...] = (
        "test", "test_natural"), max_cases: int = 0, device: str = "cpu", check_first: bool = False) -> dict:
    """Score ``engine`` on the splits and the official example; write metrics, breakdown, failures, plot.

    A split is ``corpus_dir/{split}.parquet``: a corpus split or a verification suite (``suites.py``). With
    ``check_first`` a case that one forward pass proves right is not decoded (``checking.py``: the same
    answers, faster); otherwise every case is decoded, as users' requests are.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict = {}
    details: dict = {}
    plot_rows: list[dict] = []
    failures: list[dict] = []
    total, proved, decoded, seconds = 0, 0, 0, 0.0
    for split in splits:
        frame = data.read_split(corpus_dir, split, ["tickets", "winning", "bonus"])
        if max_cases:
            frame = frame.head(max_cases)
        cases = data.frame_cases(frame)
        started = time.perf_counter()
        checked = checking.predict_checked(engine, cases, f"evaluating {split}", check=check_first)
        seconds += time.perf_counter() - started
        total, proved, decoded = total + len(cases), proved + checked.proved, decoded + checked.decoded
        scored = score(cases, checked.predictions)
        metrics[split] = summarize(scored)
        details[split] = breakdown(scored)
        plot_rows += [{"split": split, "n_tickets": int(n), "exact_match": v["exact_match"]}
                      for n, v in details[split]["by_tickets"].items()]
        failures += [failure_record(split, s) for s in scored if not s.exact]
    official = kata.official_example()
    try:
        engine.check(official)
    except kata.LottoError:  # a model trained on fewer tickets than the example's 8
        metrics["official_example"] = {"skipped": True}
    else:
        official_scored = score([official], engine.predict([official]))[0]
        metrics["official_example"] = {"exact_match": float(official_scored.exact),
                                       "exact_match_tool": float(official_scored.exact_with_tool)}
        if not official_scored.exact:
            failures.append(failure_record("official_example", official_scored))
    metrics["throughput"] = {"cases_per_second": round(total / max(seconds, 1e-9), 1), "seconds": round(seconds, 1),
                             "device": device, "proved_in_one_pass": proved, "decoded": decoded}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out_dir / "breakdown.json").write_text(json.dumps(details, indent=2) + "\n")
    pl.DataFrame(plot_rows, schema={"split": pl.String, "n_tickets": pl.Int64, "exact_match": pl.Float64}).write_csv(
        out_dir / "by_tickets.csv")
    with open(out_dir / "failures.jsonl", "w", encoding="utf-8") as handle:
        for record in failures:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return metrics
