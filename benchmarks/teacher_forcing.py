"""What the teacher-forced benchmarks share (``count_lookup.py``, ``line_margins.py``): the cases they draw,
a completion's tokens line by line, and the model's greedy choice and margin at every position of a batch.

Teacher forcing feeds each case as the reference program writes it, in one forward pass, and reads at each
position whether the model's most likely next token is the reference's: no decoding, so many more cases
fit in a few minutes than the suites decode, and every wrong token has its context known.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import bench_common as bc


def add_args(parser: argparse.ArgumentParser, min_tickets: int, seed: int) -> None:
    """The options both scripts take: the checkpoint, the cases drawn, the near-miss margin, batching, output."""
    parser.add_argument("--model", default=str(bc.ROOT / "models" / "checkpoint"), help="checkpoint folder")
    parser.add_argument("--cases", type=int, default=20000, help="cases to score")
    parser.add_argument("--min-tickets", type=int, default=min_tickets, help="fewest tickets in a case")
    parser.add_argument("--max-tickets", type=int, default=0, help="most tickets (0: the model's range)")
    parser.add_argument("--seed", type=int, default=seed, help="seed of the compositions and their tickets")
    parser.add_argument("--near", type=float, default=5.0,
                        help="a right line whose margin (logit gap to the runner-up) is below this is a near miss")
    parser.add_argument("--batch-size", type=int, default=64, help="cases in one forward pass")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for the JSON result")


def draw_cases(count: int, low: int, high: int, seed: int) -> list[Any]:
    """``count`` cases of ``low..high`` tickets, their prize compositions uniform over that range, each
    realised by random tickets in random order (as the ``compositions`` suite does), in mixed order."""
    import numpy as np

    from lottogpt import data, suites
    from lottogpt.params import DataParams

    rng = np.random.default_rng([seed, 2])
    compositions = suites.sampled_compositions(rng, low, high, count)
    cases = data.draw_composed(rng, compositions, DataParams().bonus_prob, repeat_share=0.0)
    order = rng.permutation(len(cases))  # mixed ticket counts in every batch
    return [cases[i] for i in order]


def line_spans(tokenizer: Any, text: str) -> tuple[list[int], list[tuple[int, int]]] | None:
    """The tokens of ``text`` and each line's token span, or None when lines do not tokenize apart."""
    tokens: list[int] = []
    spans = []
    for index, line in enumerate(text.split("\n")):
        if index:
            tokens.append(tokenizer.newline_id)
        piece = tokenizer.encode(line)
        spans.append((len(tokens), len(tokens) + len(piece)))
        tokens += piece
    return (tokens, spans) if tokens == tokenizer.encode(text) else None


Reference = tuple[Any, list[str], list[int], list[int], list[tuple[int, int]]]


def encode_reference(engine: Any, case: Any) -> Reference | None:
    """A case as the reference writes it, in ``engine``'s format: its result, completion lines, prompt tokens
    (BOS first), completion tokens and each line's token span; None when lines do not tokenize apart."""
    from lottogpt import formats, kata
    from lottogpt.inference import prompt_tokens

    result = kata.score(case)
    completion = formats.render_completion(case, engine.answer_format, result)
    found = line_spans(engine.tokenizer, completion)
    if found is None:
        return None
    tokens, spans = found
    return result, completion.split("\n"), prompt_tokens(engine.tokenizer, case, engine.answer_format), tokens, spans


def token_scores(model: Any, rows: list[list[int]], device: Any) -> tuple[Any, Any, Any]:
    """Per row and position ``p`` (numpy arrays; 0 at ``p`` = 0): is the greedy choice after ``p - 1`` the
    token at ``p``, its margin (``checking.token_margins``: below 0 where it is wrong), and the greedy choice
    itself. Rows are padded to the longest; positions past a row's end mean nothing."""
    import torch

    from lottogpt.checking import token_margins

    lead, choice = token_margins(model, rows, device)
    want = torch.zeros_like(choice)
    for index, row in enumerate(rows):
        want[index, : len(row)] = torch.tensor(row)
    right = choice == want
    right[:, 0] = False
    return right.numpy(), lead.numpy(), choice.numpy()


def line_score(right: Any, margin: Any, positions: Any) -> tuple[bool, float]:
    """A line's verdict from one row of :func:`token_scores`: right at every one of ``positions``, and the
    smallest margin over them (rounded to 3 places)."""
    return bool(right[positions].all()), round(float(margin[positions].min()), 3)


def score_cases(args: argparse.Namespace, label: str, encode: Callable[[Any, Any], Any],
                score: Callable[[Any, list[tuple[Any, Any]]], list[dict[str, Any]]]) -> tuple[Any, list, dict, dict]:
    """Load the checkpoint, draw the cases and score them batch by batch: ``encode(engine, case)`` gives a
    case's teacher-forced input (None to skip it), ``score(engine, [(case, encoded), ...])`` its rows.
    Returns the engine, the rows, the case counts with the time taken, and the run's config."""
    from lottogpt import progress
    from lottogpt.inference import ModelEngine

    bc.set_threads(args.threads)
    engine = ModelEngine(args.model, device="cpu")  # the checkpoint loads in eval mode
    tickets = [max(args.min_tickets, engine.min_tickets), args.max_tickets or engine.max_tickets]
    cases = draw_cases(args.cases, *tickets, args.seed)
    rows: list[dict[str, Any]] = []
    skipped, started = 0, time.perf_counter()
    with progress.track(label, len(cases)) as task:
        for start in range(0, len(cases), args.batch_size):
            batch = cases[start : start + args.batch_size]
            kept = [(case, e) for case in batch if (e := encode(engine, case)) is not None]
            skipped += len(batch) - len(kept)
            if kept:
                rows += score(engine, kept)
            task.advance(len(batch))
    counts = {"cases": len(cases) - skipped, "skipped_cases": skipped,
              "seconds": round(time.perf_counter() - started, 1)}
    config = {"model": args.model, "weights_sha256": engine.weights_sha256, "cases": args.cases,
              "tickets": tickets, "seed": args.seed, "batch_size": args.batch_size, "threads": args.threads,
              "near": args.near, "answer_format": engine.answer_format}
    return engine, rows, counts, config


def write(args: argparse.Namespace, name: str, engine: Any, config: dict, summary: dict) -> tuple[dict, Any]:
    """The result JSON (command, machine, config, summary) in ``args.out``; returns it and its path."""
    result = {"benchmark": name, "command": bc.command_line(), "machine": bc.machine(str(engine.device)),
              "config": config, "summary": summary}
    return result, bc.write_result(args.out, name, result)
