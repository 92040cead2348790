"""Stage `register`: log the checkpoint to MLflow and register it -> results/register/registration.json.

Tracking URI: MLFLOW_TRACKING_URI, else sqlite:///<main repo>/mlflow.db (see lottogpt.registry).
"""

import json
import time

from lottogpt import params, progress, registry

if __name__ == "__main__":
    start = time.perf_counter()
    progress.note(f"logging models/checkpoint to MLflow at {registry.tracking_uri()} ...")
    record = registry.register(params.load(), "models/checkpoint", "results/eval/metrics.json",
                               "results/train/curve.csv", "dvc.lock", "results/register/registration.json")
    print(json.dumps(record, indent=2))
    progress.summary(f"register: wrote results/register/registration.json ({record['name']} version "
                     f"{record['version']}) in {progress.format_duration(time.perf_counter() - start)}")
