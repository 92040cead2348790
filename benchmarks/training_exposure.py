"""Training exposure: how often the training loop's own batches show each local fact of the answer.

``results/data/coverage.json`` counts the facts in the whole ``train`` split, but the loop draws its
batches from that split (``lottogpt.train.Sampler``, seeded, with replacement) and sees only part of it in
``train.max_steps`` steps. This replays the same seeded draws without building a batch or touching a
model, and counts the facts of the drawn cases (once per draw) after each number of steps asked for, with
the corpus's floors beside them (``below_floor``: reachable facts seen fewer times than
``data.coverage_floor``, or its own floor for ``division`` and ``division_place``). A case drawn as a drill
(``train.drill_share``) counts for the sum line's and the division's facts only: the count lines are
given there. A division drill (``train.division_drill_share``) counts for its division's facts; random
dividends (``train.division_drill_source: random``) also show steps no lotto total reaches, so
``unreachable_seen`` is not 0 there.

    python benchmarks/training_exposure.py --steps 4000,8000

Reads ``params.yaml``, ``data/corpus`` and ``models/tokenizer``; writes ``results/bench/training_exposure.json``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "training_exposure"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--params", default=str(bc.ROOT / "params.yaml"), help="params.yaml (data, model, train)")
    parser.add_argument("--corpus", default=str(bc.ROOT / "data" / "corpus"), help="corpus folder")
    parser.add_argument("--tokenizer", default=str(bc.ROOT / "models" / "tokenizer"), help="tokenizer folder")
    parser.add_argument("--steps", type=step_counts, default=[],
                        help="comma-separated step counts, each at least 1 (default: train.max_steps)")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for the JSON result")
    return parser.parse_args(argv)


def step_counts(text: str) -> list[int]:
    try:
        marks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not comma-separated integers: {text!r}") from None
    if marks and marks[0] < 1:
        raise argparse.ArgumentTypeError("every step count must be at least 1")
    return marks


def drawn_cases(sampler: Any, marks: list[int]) -> dict[int, tuple[Counter, Counter, Counter, Counter]]:
    """For each mark, how many times the first ``mark`` steps draw each case, whole, as a drill and as a
    division drill from its sum (``Sampler.draw_batch``), and each ``(divisor, dividend)`` of the random
    division drills."""
    from lottogpt.train import DivisionDrills, SumDivisionDrills

    picked: Counter = Counter()
    drilled: Counter = Counter()
    summed: Counter = Counter()
    divided: Counter = Counter()
    found: dict[int, tuple[Counter, Counter, Counter, Counter]] = {}
    for step in range(max(marks)):
        rows, picks = sampler.draw_batch(step)
        if isinstance(rows, DivisionDrills):
            divided.update((int(n), int(dividend)) for n, dividend in picks)
        else:
            by_source = summed if isinstance(rows, SumDivisionDrills) else drilled if rows.drills else picked
            by_source.update(int(i) for i in picks)
        if step + 1 in marks:
            found[step + 1] = (picked.copy(), drilled.copy(), summed.copy(), divided.copy())
    return found


def exposure(params: Any, corpus: str, tokenizer_dir: str, marks: list[int]) -> dict[str, Any]:
    from lottogpt import coverage, data
    from lottogpt.tokenizer import Tokenizer
    from lottogpt.train import Encoded, Sampler

    frame = data.read_split(corpus, "train", ["model_prompt", "model_completion", "n_tickets"])
    encoded = Encoded(Tokenizer.load(tokenizer_dir), frame, params.model.block_size, params.data.answer_format)
    cfg = params.train
    sampler = Sampler(encoded, cfg.batch_tokens, cfg.seed, cfg.curriculum_steps, cfg.count_power, cfg.drill_share,
                      cfg.division_drill_share, cfg.division_drill_source)
    possible = coverage.reachable(params.data.min_tickets, params.data.max_tickets, params.data.answer_format)
    floor = coverage.floors(params.data)
    facts: dict[int, coverage.Facts] = {}
    result = {}
    for mark, (picked, drilled, summed, divided) in drawn_cases(sampler, marks).items():
        counts = coverage.empty()
        for index in picked.keys() | drilled.keys() | summed.keys():
            if index not in facts:
                facts[index] = coverage.completion_facts(encoded.completions[index])
            if picked[index]:  # once per draw
                coverage.add(counts, facts[index], picked[index])
            if drilled[index]:  # a drill trains only the lines after the count lines
                coverage.add(counts, {f: facts[index][f] for f in coverage.DRILLED_FAMILIES}, drilled[index])
            if summed[index]:  # a division drill from a sum trains the division line only
                coverage.add(counts, {f: facts[index][f] for f in coverage.DIVISION_FAMILIES}, summed[index])
        for (n, dividend), times in divided.items():  # a division drill trains its division steps only
            coverage.add(counts, coverage.division_facts(dividend - n // 2, n), times)
        result[str(mark)] = {"cases_drawn": sum(picked.values()), "distinct_cases": len(picked),
                             "drills_drawn": sum(drilled.values()),
                             "division_drills_drawn": sum(divided.values()) + sum(summed.values()),
                             **coverage.summary(counts, possible, floor)}
    return {"corpus_cases": len(encoded), "steps": result}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from lottogpt import params as params_module

    params = params_module.load(args.params)
    marks = args.steps or [params.train.max_steps]
    result = {"benchmark": NAME, "command": bc.command_line(), "machine": bc.machine("cpu"),
              "config": {"steps": marks, "seed": params.train.seed, "batch_tokens": params.train.batch_tokens,
                         "count_power": params.train.count_power,
                         "drill_share": params.train.drill_share,
                         "division_drill_share": params.train.division_drill_share,
                         "division_drill_source": params.train.division_drill_source, "corpus": str(Path(args.corpus))},
              **exposure(params, args.corpus, args.tokenizer, marks)}
    for mark, row in result["steps"].items():
        division = row["families"].get("division", {})
        print(f"{mark} steps: {row['cases_drawn']:,} cases drawn ({row['distinct_cases']:,} distinct of "
              f"{result['corpus_cases']:,}), {row['drills_drawn']:,} drills; division facts min "
              f"{division.get('min')}, median {division.get('median')}, below floor {division.get('below_floor')}")
    print(f"wrote {bc.write_result(args.out, NAME, result)}")


if __name__ == "__main__":
    main()
