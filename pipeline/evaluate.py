"""Stage `evaluate`: the checkpoint against the reference on test and test_natural -> results/eval/."""

import json
import time

from lottogpt import evaluate, params, progress
from lottogpt.inference import ModelEngine

if __name__ == "__main__":
    start = time.perf_counter()
    p = params.load()
    engine = ModelEngine("models/checkpoint", device=p.train.device, batch_size=p.evaluate.batch_size,
                         threads=p.evaluate.threads)
    metrics = evaluate.evaluate(engine, "data/corpus", "results/eval", max_cases=p.evaluate.max_cases,
                                device=str(engine.device))
    print(json.dumps(metrics, indent=2))
    exact = ", ".join(f"{split} {m['exact_match']:.2%} ({m['errors']} wrong of {m['cases']:,})"
                      for split, m in metrics.items() if "cases" in m)
    progress.summary(f"evaluate: wrote results/eval/ ({exact}) in "
                     f"{progress.format_duration(time.perf_counter() - start)}")
