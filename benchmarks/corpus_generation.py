"""Corpus generation: cases/s of ``data.write_corpus`` for ``--cases`` cases (200,000 by default).

The ``data`` block of ``params.yaml`` (seed, ticket range, match weights, answer format) with all
``--cases`` cases in the ``train`` split (the held-out splits empty, unless ``--held-out``), written
to a temporary folder that is removed afterwards. Each repeat reports the whole ``write_corpus`` call
(draw distinct cases, render prompts and completions with the kata, write zstd Parquet) and, timed
on its own before it, the drawing alone (``data.generate_cases``).

    python benchmarks/corpus_generation.py                    # 200k cases, 2 worker processes
    python benchmarks/corpus_generation.py --workers 1 --repeats 3

Writes ``results/bench/corpus_generation.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "corpus_generation"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--params", default=str(bc.ROOT / "params.yaml"), help="params.yaml (its data block)")
    parser.add_argument("--cases", type=int, default=200_000, help="cases in the train split")
    parser.add_argument("--held-out", action="store_true",
                        help="also generate params' val/test/test_natural splits (counted in cases/s)")
    parser.add_argument("--workers", type=int, default=2, help="render processes (write_corpus's default is 2)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs, each into a fresh folder")
    parser.add_argument("--tmp", default=None, help="parent folder of the temporary corpus (default: system temp)")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for corpus_generation.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from lottogpt import data, params

    base = params.load(args.params).data
    held = {"n_val": base.n_val, "n_test": base.n_test, "n_test_natural": base.n_test_natural} if args.held_out \
        else {"n_val": 0, "n_test": 0, "n_test_natural": 0}
    data_params = dataclasses.replace(base, n_train=args.cases, **held)
    runs = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        splits = data.generate_cases(data_params)
        draw_seconds = time.perf_counter() - started
        drawn = sum(len(cases) for cases in splits.values())
        del splits
        with tempfile.TemporaryDirectory(prefix="lottogpt-bench-corpus-", dir=args.tmp) as tmp:
            started = time.perf_counter()
            stats = data.write_corpus(data_params, tmp, workers=args.workers)
            seconds = time.perf_counter() - started
            size = sum(f.stat().st_size for f in Path(tmp).glob("*.parquet"))
        runs.append({"cases": stats["cases"], "seconds": round(seconds, 3),
                     "cases_per_second": round(stats["cases"] / seconds, 1),
                     "draw_seconds": round(draw_seconds, 3), "draw_cases_per_second": round(drawn / draw_seconds, 1),
                     "parquet_bytes": size})
    result = {
        "benchmark": NAME,
        "machine": {**bc.machine("cpu"), "note": "data generation runs on CPU only (numpy + the kata in Python)"},
        "command": bc.command_line(),
        "config": {"cases": data_params.n_train + sum(held.values()), "train": data_params.n_train, **held,
                   "workers": args.workers, "repeats": args.repeats, "answer_format": data_params.answer_format,
                   "min_tickets": data_params.min_tickets, "max_tickets": data_params.max_tickets,
                   "natural_share": data_params.natural_share, "prize_share": data_params.prize_share,
                   "seed": data_params.seed},
        "cases_per_second": round(statistics.median(r["cases_per_second"] for r in runs), 1),
        "seconds": round(statistics.median(r["seconds"] for r in runs), 3),
        "draw_cases_per_second": round(statistics.median(r["draw_cases_per_second"] for r in runs), 1),
        "runs": runs,
    }
    path = bc.write_result(args.out, NAME, result)
    print(f"corpus generation, {result['config']['cases']:,} cases, {args.workers} workers, "
          f"on {result['machine']['cpu_model']} ({result['machine']['usable_cores']} cores):")
    print(f"  write_corpus {result['cases_per_second']:,.0f} cases/s ({result['seconds']:.2f} s); "
          f"drawing alone {result['draw_cases_per_second']:,.0f} cases/s")
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
