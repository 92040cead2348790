"""Count lookup: how often the model writes a count line wrong when everything before it is right.

A count line (``5개 일치 ... - 11개``) copies the last running tally of its rank from the ticket lines
(``Ⅱ11``), which can be many lines back with many tallies of that rank in between. Decoding the suites
finds such errors a few times in tens of thousands of cases, too rarely to tell what makes them. This
scores the count lines under teacher forcing instead: each case is fed as the reference program writes it
(prompt, ticket lines, then the count lines) in one forward pass, and a count line is right when the
model's most likely next token is the reference's at every one of its tokens. No decoding, so many more
cases fit in the same minutes, and every error is a count-line error with its context known:

- ``value``: the count the line should say (the tickets of that rank);
- ``distance``: ticket lines after the last ticket of that rank (0: the last ticket is of that rank).

Errors are rare, so each line also gets a margin: the smallest gap, over its tokens, between the logit of
the right token and the best other one. A right line with a small margin (``--near``) is a near miss;
where near misses gather is where the next errors will be.

Cases are prize compositions drawn uniformly over ``--min-tickets``..``--max-tickets`` tickets
(``teacher_forcing.draw_cases``; a seed other than the suites'), each realised by random tickets in random
order, as the ``compositions`` suite does.

    python benchmarks/count_lookup.py --cases 20000

Reads ``models/checkpoint`` (or ``--model``); writes ``results/bench/count_lookup.json``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import teacher_forcing as tf

NAME = "count_lookup"
COUNT_KEYS = ("count_3", "count_4", "count_5", "count_5_bonus", "count_6")  # the order of the count lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    tf.add_args(parser, min_tickets=11, seed=7)
    return parser.parse_args(argv)


def lookup_context(case: Any, key_index: int) -> dict[str, int]:
    """What the count line of ``COUNT_KEYS[key_index]`` has to find: its value and how far back."""
    from lottogpt import kata

    rank = list(kata.Rank)[key_index]
    of_rank = [i for i, ticket in enumerate(case.tickets) if case.rank(ticket) == rank]
    distance = len(case.tickets) - 1 - of_rank[-1] if of_rank else -1
    return {"value": len(of_rank), "distance": distance, "n_tickets": len(case.tickets)}


def encode_case(engine: Any, case: Any) -> tuple[list[int], list[tuple[int, int]]] | None:
    """The case's tokens as trained (BOS, prompt, completion) and the spans of its five count lines."""
    found = tf.encode_reference(engine, case)
    if found is None:
        return None
    result, lines, prompt, tokens, spans = found
    count_spans = [spans[lines.index(line)] for line in result.lines[:5]]
    return prompt + tokens, [(len(prompt) + a, len(prompt) + b) for a, b in count_spans]


def score_batch(engine: Any, encoded: list[tuple[list[int], list[tuple[int, int]]]]) -> list[list[tuple[bool, float]]]:
    """For each case and count line: is the line the model's greedy choice at every one of its tokens, and
    its margin, the smallest gap over its tokens between the right token's logit and the best other one
    (below 0 where it is wrong; a small positive margin is a near miss)."""
    right, margin, _ = tf.token_scores(engine.model, [tokens for tokens, _ in encoded], engine.device)
    return [[tf.line_score(right[row], margin[row], slice(a, b)) for a, b in spans]
            for row, (_, spans) in enumerate(encoded)]


def tabulate(rows: list[dict[str, Any]], near: float) -> dict[str, Any]:
    """Errors, near misses (right with a margin below ``near``) and lines by count line, value, distance and
    ticket count; the wrong lines and the nearest misses listed."""
    from lottogpt.evaluate import wilson_lower

    def table(key: str) -> dict[str, dict[str, int]]:
        lines = Counter(r[key] for r in rows)
        wrong = Counter(r[key] for r in rows if not r["right"])
        close = Counter(r[key] for r in rows if r["right"] and r["margin"] < near)
        return {str(k): {"lines": lines[k], "errors": wrong[k], "near_misses": close[k]} for k in sorted(lines)}

    errors = sum(not r["right"] for r in rows)
    closest = sorted((r for r in rows if r["right"]), key=lambda r: r["margin"])[:20]
    return {"lines": len(rows), "errors": errors,
            "right_wilson_lower": wilson_lower(len(rows) - errors, len(rows)),
            "near_misses": sum(r["right"] and r["margin"] < near for r in rows),
            "by_line": table("line"), "by_value": table("value"), "by_distance": table("distance"),
            "by_tickets": table("n_tickets"),
            "wrong": [{k: v for k, v in r.items() if k != "right"} for r in rows if not r["right"]][:200],
            "closest_right": [{k: v for k, v in r.items() if k != "right"} for r in closest]}


def batch_rows(engine: Any, kept: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """One row per count line of the batch's cases: its lookup context, right or not, and its margin."""
    scored = score_batch(engine, [encoded for _, encoded in kept])
    return [{**lookup_context(case, i), "line": COUNT_KEYS[i], "right": ok, "margin": margin}
            for (case, _), right in zip(kept, scored, strict=True) for i, (ok, margin) in enumerate(right)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    engine, rows, counts, config = tf.score_cases(args, "count lines", encode_case, batch_rows)
    summary = {**counts, **tabulate(rows, args.near)}
    result, path = tf.write(args, NAME, engine, config, summary)
    print(f"count lookup: {summary['errors']} wrong of {summary['lines']:,} count lines "
          f"({summary['cases']:,} cases, lower bound {summary['right_wilson_lower']:.3%} right)")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
