"""Failure kinds: where each wrong answer of an evaluation first leaves the reference program's work.

The evaluate and verify stages write every wrong case to ``failures.jsonl`` with the model's work lines.
This re-renders the reference work lines of each case (``formats.work_lines``) and finds the first line
the model got wrong, in the order it writes them, then says what kind of step it is:

- ``ticket_line``: a ticket's work line (a flag, the match count or the tally);
- ``sum_line``: a column of the sum line, with its place, the carry that came into it, and by how much
  the written digit is off;
- ``division``: a step of the long division, with the partial dividend, the divisor, and whether the
  partial dividend is an exact multiple of the divisor (``14 ÷ 7``); or, before any step, a line that
  divides by another number than the ticket count (``divisor_written``) or is not a division line at all
  (``unreadable``);
- ``count_line``: the ticket lines are right but a count line is not;
- ``rate_line``: everything before it is right but the rate line is not.

    python benchmarks/failure_kinds.py results/verify/failures.jsonl results/eval/failures.jsonl \
        --corpus data/corpus/train.parquet

With ``--corpus data/corpus/train.parquet`` each wrong sum column and division step also says how often the
training split shows it (``train_count``), to tell a step the model failed to learn from one it hardly saw.
Reads ``params.yaml`` for the answer format (or ``--format``); writes ``results/bench/failure_kinds.json``.
No model is run: it reads what the stages wrote.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "failure_kinds"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("failures", nargs="*", default=[str(bc.ROOT / "results" / "verify" / "failures.jsonl")],
                        help="failures.jsonl files written by the evaluate or verify stage")
    parser.add_argument("--format", default="", help="answer format (default: params.yaml's data.answer_format)")
    parser.add_argument("--params", default=str(bc.ROOT / "params.yaml"), help="params.yaml")
    parser.add_argument("--corpus", default="",
                        help="a corpus split (data/corpus/train.parquet): add how often it shows each wrong step")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for the JSON result")
    return parser.parse_args(argv)


def sum_column(expected: str, generated: str) -> dict[str, Any]:
    """The first wrong column of a sum line: place, carry in, addends, how far the digit is off."""
    from lottogpt import formats

    want, got = formats.addend_steps(expected) or [], formats.addend_steps(generated) or []
    carry_in = 0
    for place, (addends, digit, carry) in enumerate(want):
        if place >= len(got) or got[place] != (addends, digit, carry):
            detail: dict[str, Any] = {"place": place, "carry_in": carry_in, "addends": addends}
            if place < len(got) and got[place][0] == addends:
                detail["digit_off_by"] = got[place][1] - digit
            elif place < len(got):
                detail["addend_wrong"] = True
            return detail
        carry_in = carry
    return {"place": len(want), "carry_in": carry_in}


def division_step(expected: str, generated: str) -> dict[str, Any]:
    """The first wrong step of a division line: the partial dividend, the divisor, exact multiple or not."""
    from lottogpt import formats

    divisor, want = formats.division_steps(expected)
    parsed = formats.division_steps(generated)
    if parsed is None:
        return {"step": 0, "divisor": divisor, "unreadable": True}
    if parsed[0] != divisor:
        return {"step": 0, "divisor": divisor, "divisor_written": parsed[0]}
    got, remainder = parsed[1], 0
    for index, (digit, quotient, next_remainder) in enumerate(want):
        partial = remainder * 10 + digit
        if index >= len(got) or got[index] != (digit, quotient, next_remainder):
            detail = {"step": index, "place": len(want) - 1 - index, "partial": partial, "divisor": divisor,
                      "exact_multiple": partial >= divisor and partial % divisor == 0}
            if index < len(got) and got[index][0] == digit:
                detail["quotient_off_by"] = got[index][1] - quotient
            return detail
        remainder = next_remainder
    return {"step": len(want), "divisor": divisor}


def corpus_counts(path: str | Path) -> dict[str, Counter]:
    """How often a corpus split shows each sum column (by place, carry in and addends) and each division step
    (``coverage``'s facts)."""
    import polars as pl

    from lottogpt import coverage

    completions = pl.read_parquet(path, columns=["model_completion"])["model_completion"].to_list()
    counted = coverage.count(completions)
    sums: Counter = Counter()
    for (place, carry_in, addends, _, _), seen in counted["sum_column"].items():
        sums[(place, carry_in, addends)] += seen
    return {"sum": sums, "division": counted["division"], "division_place": counted["division_place"]}


def seen_in_corpus(kind: dict[str, Any], counts: dict[str, Counter]) -> dict[str, Any]:
    """``kind`` with how often the corpus shows the step it got wrong (``train_count``)."""
    if kind["kind"] == "sum_line" and "carry_in" in kind:
        return {**kind, "train_count": counts["sum"][(kind["place"], kind["carry_in"], kind["addends"])]}
    if kind["kind"] == "division" and "partial" in kind:
        remainder, digit = divmod(kind["partial"], 10)
        return {**kind, "train_count": counts["division"][(kind["divisor"], remainder, digit)],
                "train_count_at_place": counts["division_place"][(kind["divisor"], kind["place"], remainder, digit)]}
    return kind


def classify(record: dict[str, Any], answer_format: str) -> dict[str, Any]:
    """What kind of step the model first got wrong in one failure record, in the order it writes them:
    the ticket lines, the count lines, the sum line, the division, the rate line."""
    from lottogpt import formats, kata

    given = record["input"]
    case = kata.Case.create(given["tickets"], given["winning"], given["bonus"])
    want, got = formats.work_lines(case, answer_format), list(record.get("work") or [])
    got += [""] * (len(want) - len(got))
    expected, generated = record["expected"].splitlines(), record["generated"].splitlines()
    generated += [""] * (len(expected) - len(generated))
    kind: dict[str, Any] = {"split": record["split"], "n_tickets": len(case.tickets)}
    tickets = len(case.tickets)
    for index in range(tickets):
        if got[index] != want[index]:
            return {**kind, "kind": "ticket_line", "ticket": index + 1}
    if generated[:-1] != expected[:-1]:
        return {**kind, "kind": "count_line"}
    for line, written in zip(want[tickets:], got[tickets:], strict=True):
        if written == line:
            continue
        if formats.is_sum_line(line):
            return {**kind, "kind": "sum_line", **sum_column(line, written)}
        return {**kind, "kind": "division", **division_step(line, written)}
    return {**kind, "kind": "rate_line" if generated[-1] != expected[-1] else "none"}


def seen_summary(counts: list[int]) -> dict[str, Any]:
    """How many wrong steps have a corpus count, and the least, median and most of those counts."""
    ordered = sorted(counts)
    if not ordered:
        return {"steps": 0}
    return {"steps": len(ordered), "min": ordered[0], "median": ordered[len(ordered) // 2], "max": ordered[-1]}


def summarize(kinds: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by kind and split, and the detail of the arithmetic kinds."""
    sums = [k for k in kinds if k["kind"] == "sum_line"]
    divisions = [k for k in kinds if k["kind"] == "division"]
    return {
        "failures": len(kinds),
        "by_kind": dict(Counter(k["kind"] for k in kinds).most_common()),
        "by_split": dict(Counter(k["split"] for k in kinds).most_common()),
        "by_tickets": {str(n): c for n, c in sorted(Counter(k["n_tickets"] for k in kinds).items())},
        "sum_line": {"by_place": {str(p): c for p, c in sorted(Counter(k["place"] for k in sums).items())},
                     "carry_in_1": sum(1 for k in sums if k.get("carry_in") == 1),
                     "addend_wrong": sum(1 for k in sums if k.get("addend_wrong")),
                     "digit_off_by": {str(d): c for d, c in sorted(Counter(k.get("digit_off_by") for k in sums
                                                                            if "digit_off_by" in k).items())}},
        "train_count_of_wrong_steps": {kind: seen_summary([k["train_count"] for k in kinds
                                                           if k["kind"] == kind and "train_count" in k])
                                       for kind in ("sum_line", "division")},
        "division": {"exact_multiple": sum(1 for k in divisions if k.get("exact_multiple")),
                     "divisor_wrong": Counter(f"{k['divisor']}->{k['divisor_written']}" for k in divisions
                                              if "divisor_written" in k).most_common(),
                     "unreadable": sum(1 for k in divisions if k.get("unreadable")),
                     "quotient_off_by": {str(d): c for d, c in sorted(
                         Counter(k.get("quotient_off_by") for k in divisions if "quotient_off_by" in k).items())}},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lottogpt import params as params_module

    answer_format = args.format or params_module.load(args.params).data.answer_format
    kinds: list[dict[str, Any]] = []
    for path in args.failures:
        with open(path, encoding="utf-8") as handle:
            kinds += [classify(json.loads(line), answer_format) for line in handle if line.strip()]
    if args.corpus:
        counts = corpus_counts(args.corpus)
        kinds = [seen_in_corpus(kind, counts) for kind in kinds]
    result = {"benchmark": NAME, "command": bc.command_line(), "machine": bc.machine(),
              "config": {"format": answer_format, "files": args.failures, "corpus": args.corpus or None},
              "summary": summarize(kinds), "failures": kinds}
    path = bc.write_result(args.out, NAME, result)
    print(json.dumps(result["summary"], ensure_ascii=False))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
