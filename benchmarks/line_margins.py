"""Line margins: every line the model writes, scored under teacher forcing, by kind of line.

``count_lookup.py`` does this for the five count lines; this does it for each line of the completion that
the model writes: the ticket work lines (flags, match count, tally; the marker and the numbers are fed, as
``inference.WorksheetFeeder`` feeds them when decoding), the count lines, the sum line, the division line
and the rate line. Each case is fed as the reference program writes it, in one forward pass, and a line is
right when the model's most likely next token is the reference's at every token it writes, the token that
ends the line (newline, or EOS after the rate) included. Its margin is the smallest gap, over those
tokens, between the right token's logit and the best other one; a right line below ``--near`` is a near
miss. Lines after a wrong one are still scored with the right text before them, so each line's figure is
what the model does given a right start, the same for every kind.

Decoding the suites takes about 20 minutes and finds a handful of errors; this takes a few minutes for the
same number of cases and shows, per kind of line, how close the model comes to the next error, so two
checkpoints can be told apart where both decode every suite case right.

Cases are prize compositions drawn uniformly over ``--min-tickets``..``--max-tickets`` tickets, realised by
random tickets in random order (``teacher_forcing.draw_cases``).

    python benchmarks/line_margins.py --cases 20000

Reads ``models/checkpoint`` (or ``--model``); writes ``results/bench/line_margins.json``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import teacher_forcing as tf

NAME = "line_margins"
KINDS = ("ticket", "count", "sum", "division", "rate")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tf.add_args(parser, min_tickets=1, seed=11)
    return parser.parse_args(argv)


def line_kind(line: str, count_lines: list[str]) -> str:
    """Which kind of step a completion line is (``KINDS``)."""
    from lottogpt import formats

    if formats.is_ticket_work_line(line):
        return "ticket"
    if line in count_lines:
        return "count"
    if formats.is_sum_line(line):
        return "sum"
    if formats.is_division_line(line):
        return "division"
    return "rate"


def encode_case(engine: Any, case: Any) -> tuple[list[int], list[dict[str, Any]]] | None:
    """The case's tokens as trained (BOS, prompt, completion, EOS) and, per completion line, its kind and the
    positions of the tokens the model writes (its terminator included); None when lines do not tokenize apart
    or a token the runtime feeds differs."""
    from lottogpt.checking import written_offsets

    found = tf.encode_reference(engine, case)
    if found is None:
        return None
    result, texts, prompt, tokens, spans = found
    tokens = [*tokens, engine.tokenizer.eos_id]
    written = written_offsets(engine, case, tokens)
    if written is None:
        return None
    mask = set(written)
    lines = []
    for index, (text, (a, b)) in enumerate(zip(texts, spans, strict=True)):
        at = [len(prompt) + i for i in range(a, b + 1) if i in mask]  # b: the line's newline (or the EOS)
        lines.append({"kind": line_kind(text, result.lines[:5]), "line": index, "text": text, "at": at})
    return prompt + tokens, lines


def score_batch(engine: Any, cases: list[Any], encoded: list[tuple[list[int], list[dict[str, Any]]]]) -> list[dict]:
    """One row per written line of every case: kind, ticket count, right or not, margin, and where wrong,
    the first wrong token's reference and greedy choice (text and id)."""
    right, margin, choice = tf.token_scores(engine.model, [tokens for tokens, _ in encoded], engine.device)
    decode = engine.tokenizer.decode
    rows = []
    for row, (case, (tokens, lines)) in enumerate(zip(cases, encoded, strict=True)):
        for line in lines:
            ok, line_margin = tf.line_score(right[row], margin[row], line["at"])
            entry = {"kind": line["kind"], "n_tickets": len(case.tickets), "right": ok, "margin": line_margin}
            if not ok:
                at = next(p for p in line["at"] if not right[row][p])
                # Ids too: two pieces can read the same (a digit at two places, a value and a remainder).
                entry.update(line=line["line"], text=line["text"], want=decode([tokens[at]]),
                             chose=decode([int(choice[row][at])]), want_id=tokens[at], chose_id=int(choice[row][at]))
            rows.append(entry)
    return rows


def tabulate(rows: list[dict[str, Any]], near: float) -> dict[str, Any]:
    """Lines, errors and near misses by kind, and by ticket count within each kind; the wrong lines listed."""
    from lottogpt.evaluate import wilson_lower

    def counts(of: list[dict[str, Any]]) -> dict[str, Any]:
        errors = sum(not r["right"] for r in of)
        return {"lines": len(of), "errors": errors, "near_misses": sum(r["right"] and r["margin"] < near for r in of),
                "right_wilson_lower": wilson_lower(len(of) - errors, len(of))}

    by_kind = {}
    for kind in KINDS:
        of = [r for r in rows if r["kind"] == kind]
        if of:
            tickets = Counter(r["n_tickets"] for r in of)
            by_kind[kind] = {**counts(of), "by_tickets": {
                str(n): counts([r for r in of if r["n_tickets"] == n]) for n in sorted(tickets)}}
    wrong = [{k: v for k, v in r.items() if k != "right"} for r in rows if not r["right"]]
    return {**counts(rows), "by_kind": by_kind, "wrong": wrong[:200]}


def batch_rows(engine: Any, kept: list[tuple[Any, Any]]) -> list[dict]:
    """The rows of ``score_batch`` for the batch's (case, encoded) pairs."""
    return score_batch(engine, [case for case, _ in kept], [encoded for _, encoded in kept])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    engine, rows, counts, config = tf.score_cases(args, "lines", encode_case, batch_rows)
    summary = {**counts, **tabulate(rows, args.near)}
    result, path = tf.write(args, NAME, engine, config, summary)
    for kind, row in summary["by_kind"].items():
        print(f"{kind:>8}: {row['errors']} wrong, {row['near_misses']} near of {row['lines']:,} lines")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
