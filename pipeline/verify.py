"""Stage `verify`: the verification suites -> data/suites/{compositions,adversarial}.parquet, and the
checkpoint scored on them with the engine and decoding of the evaluate stage -> results/verify/."""

import json
import time

from lottogpt import evaluate, params, progress, suites
from lottogpt.inference import ModelEngine

if __name__ == "__main__":
    start = time.perf_counter()
    p = params.load()
    sizes = suites.write_suites(p.data, p.evaluate, "data/suites")
    progress.note(f"verify: wrote data/suites/ ({', '.join(f'{s} {n:,}' for s, n in sizes.items())} cases)")
    engine = ModelEngine("models/checkpoint", device=p.train.device, batch_size=p.evaluate.batch_size,
                         threads=p.evaluate.threads)
    # A case that one forward pass proves right is not decoded (checking.py): the same answers, faster.
    metrics = evaluate.evaluate(engine, "data/suites", "results/verify", splits=suites.SUITES,
                                device=str(engine.device), check_first=True)
    print(json.dumps(metrics, indent=2))
    exact = ", ".join(f"{split} {m['exact_match']:.2%} ({m['errors']} wrong of {m['cases']:,})"
                      for split, m in metrics.items() if "cases" in m)
    progress.summary(f"verify: wrote results/verify/ ({exact}) in "
                     f"{progress.format_duration(time.perf_counter() - start)}")
