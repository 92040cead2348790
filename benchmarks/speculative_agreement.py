"""Speculative decoding on held-out cases: the same answers as the evaluated (lockstep) decoding, in how
many forward passes, at what time per case.

For every case of ``--splits`` (``data/corpus``): the lockstep answer (``inference.complete`` in lockstep,
batches of ``--batch-size``), the batched speculative answer as the evaluate stage now computes it (the
same batches through ``decode.speculative_decode_rows``, ``--batch-draft`` guesses a row), then the case
alone through ``decode.speculative_decode`` with the engine's n-gram drafter, as the server answers a lone
request. Both batched decodings are timed (cases/s).
Reports per split: cases whose texts agree (must be all), exact match of the speculative answers against
the kata, and per ticket count the mean lockstep steps (tokens + EOS), speculative forward passes and
milliseconds per case.

    python benchmarks/speculative_agreement.py                       # models/checkpoint, test + test_natural
    python benchmarks/speculative_agreement.py --max-cases 200 --threads 2

Writes ``results/bench/speculative_agreement.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "speculative_agreement"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", default=str(bc.ROOT / "models" / "checkpoint"), help="checkpoint folder")
    parser.add_argument("--corpus", default=str(bc.ROOT / "data" / "corpus"), help="corpus folder (Parquet splits)")
    parser.add_argument("--splits", default="test,test_natural", help="comma list of splits")
    parser.add_argument("--max-cases", type=int, default=0, help="first N cases of each split (0: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="lockstep batch size (the evaluate stage's)")
    parser.add_argument("--batch-draft", type=int, default=3,
                        help="guesses a row of the batched speculative decoding (ModelEngine's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for speculative_agreement.json")
    return parser.parse_args(argv)


def batch_tokens(engine: Any, cases: list, prompts: list, label: str,
                 batch_draft: int = 0) -> tuple[list[list[int]], float]:
    """The batched decoding of inference.complete (the evaluate stage's), keeping the tokens to count the
    steps, and its seconds; batch by batch (the batches greedy_decode forms itself) to show progress.

    ``batch_draft`` 0: lockstep, one token a row and step (the reference); > 0: every batch of two or more
    decoded speculatively row by row (``decode.speculative_decode_rows``, the engine's default); cases alone
    in their batch are decoded in lockstep either way.
    """
    from lottogpt import progress
    from lottogpt.cases import decode_batches
    from lottogpt.decode import greedy_decode
    from lottogpt.inference import feeders_for

    feeders = feeders_for(engine.tokenizer, cases, engine.answer_format) or [None] * len(cases)  # used up here
    decoded: list[list[int]] = [[] for _ in cases]
    seconds = 0.0
    with progress.track(f"{label}", len(cases)) as task:
        for batch in decode_batches(engine, cases):
            fed = [feeders[i] for i in batch] if feeders[0] is not None else None
            start = time.perf_counter()
            outputs = greedy_decode(engine.model, [prompts[i] for i in batch], engine.tokenizer.eos_id,
                                    engine.batch_size, feeders=fed, drafter=engine.drafter if batch_draft else None,
                                    batch_draft=batch_draft, lone_draft=0)
            seconds += time.perf_counter() - start
            for index, tokens in zip(batch, outputs, strict=True):
                decoded[index] = tokens
            task.advance(len(batch))
    return decoded, seconds


def measure_split(engine: Any, cases: list, split: str = "", batch_draft: int = 3) -> dict[str, Any]:
    from lottogpt import evaluate, progress
    from lottogpt.decode import speculative_decode
    from lottogpt.inference import feeders_for, prediction_from_completion, prompt_tokens

    tok, answer_format = engine.tokenizer, engine.answer_format
    prompts = [prompt_tokens(tok, case, answer_format) for case in cases]
    lockstep, lockstep_seconds = batch_tokens(engine, cases, prompts, f"lockstep {split}")
    batched, batched_seconds = batch_tokens(engine, cases, prompts, f"batched speculative {split}", batch_draft)
    batched_differ = [{"index": i, "batched": tok.decode(b), "lockstep": tok.decode(a)}
                      for i, (a, b) in enumerate(zip(lockstep, batched, strict=True)) if a != b]
    feeders = feeders_for(tok, cases, answer_format) or [None] * len(cases)  # fresh: a feeder follows one decoding
    by_tickets: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    disagreements, predictions = [], []
    with progress.track(f"speculative {split}", len(cases)) as task:
        for index, case in enumerate(cases):
            start = time.perf_counter()
            tokens, passes = speculative_decode(engine.model, prompts[index], tok.eos_id, engine.drafter,
                                                feeders[index])
            seconds = time.perf_counter() - start
            text, expected = tok.decode(tokens), tok.decode(lockstep[index])
            if text != expected:
                disagreements.append({"index": index, "speculative": text, "lockstep": expected})
            predictions.append(prediction_from_completion(text, len(case.tickets)))
            row = by_tickets[len(case.tickets)]
            row["steps"].append(len(lockstep[index]) + 1)
            row["passes"].append(passes)
            row["ms"].append(seconds * 1000)
            task.advance(1, disagree=len(disagreements))
    table = {str(n): {"cases": len(row["passes"]), "lockstep_steps": round(statistics.fmean(row["steps"]), 1),
                      "speculative_passes": round(statistics.fmean(row["passes"]), 1),
                      "speculative_ms_mean": round(statistics.fmean(row["ms"]), 1),
                      "speculative_ms_p50": round(bc.percentile(row["ms"], 50), 1)}
             for n, row in sorted(by_tickets.items())}
    every = list(by_tickets.values())
    return {"cases": len(cases), "agree": len(cases) - len(disagreements), "disagreements": disagreements[:5],
            "batched_agree": len(cases) - len(batched_differ), "batched_disagreements": batched_differ[:5],
            "lockstep_cases_per_second": round(len(cases) / lockstep_seconds, 2) if lockstep_seconds else None,
            "batched_cases_per_second": round(len(cases) / batched_seconds, 2) if batched_seconds else None,
            "batched_speedup": round(lockstep_seconds / batched_seconds, 3) if batched_seconds else None,
            "speculative_exact_match": evaluate.summarize(evaluate.score(cases, predictions))["exact_match"],
            "lockstep_steps_mean": round(statistics.fmean(s for r in every for s in r["steps"]), 1),
            "speculative_passes_mean": round(statistics.fmean(p for r in every for p in r["passes"]), 1),
            "by_tickets": table}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not (Path(args.checkpoint) / "config.json").exists():
        raise SystemExit(f"no checkpoint at {args.checkpoint} (config.json missing): train one (dvc repro train)")
    from lottogpt import data
    from lottogpt.inference import ModelEngine

    bc.set_threads(args.threads)
    engine = ModelEngine(args.checkpoint, device=args.device, batch_size=args.batch_size, speculative=True)
    splits = {}
    for split in [s.strip() for s in args.splits.split(",") if s.strip()]:
        cases = data.frame_cases(data.read_split(args.corpus, split))
        splits[split] = measure_split(engine, cases[:args.max_cases] if args.max_cases else cases, split,
                                      args.batch_draft)
    result = {
        "benchmark": NAME,
        "machine": bc.machine(str(engine.device)),
        "command": bc.command_line(),
        "config": {"checkpoint": args.checkpoint, "corpus": args.corpus, "step": engine.config.get("step"),
                   "answer_format": engine.answer_format, "max_cases": args.max_cases or None,
                   "batch_size": args.batch_size, "batch_draft": args.batch_draft,
                   "drafter_contexts": len(engine.drafter.table),
                   "drafter_order": engine.drafter.order},
        "splits": splits,
        "all_agree": all(s["agree"] == s["cases"] for s in splits.values()),
        "all_batched_agree": all(s["batched_agree"] == s["cases"] for s in splits.values()),
    }
    path = bc.write_result(args.out, NAME, result)
    for split, s in splits.items():
        print(f"{split}: {s['agree']}/{s['cases']} speculative answers equal the lockstep ones, exact match "
              f"{s['speculative_exact_match']:.2%}, {s['speculative_passes_mean']} forward passes per case "
              f"instead of {s['lockstep_steps_mean']} steps; batched: {s['batched_agree']}/{s['cases']} equal, "
              f"{s['batched_cases_per_second']} cases/s against lockstep's {s['lockstep_cases_per_second']}")
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
