"""Stage `evaluate`: the checkpoint against the reference on test and test_natural -> results/eval/."""

import json

from lottogpt import evaluate, params
from lottogpt.inference import ModelEngine

if __name__ == "__main__":
    p = params.load()
    engine = ModelEngine("models/checkpoint", device=p.train.device, batch_size=p.evaluate.batch_size,
                         threads=p.evaluate.threads)
    metrics = evaluate.evaluate(engine, "data/corpus", "results/eval", max_cases=p.evaluate.max_cases,
                                device=str(engine.device))
    print(json.dumps(metrics, indent=2))
