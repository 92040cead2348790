"""Stage `register`: log the checkpoint to MLflow and register it -> results/register/registration.json.

Tracking URI: MLFLOW_TRACKING_URI, else sqlite:///<main repo>/mlflow.db (see lottogpt.registry).
"""

import json

from lottogpt import params, registry

if __name__ == "__main__":
    record = registry.register(params.load(), "models/checkpoint", "results/eval/metrics.json",
                               "results/train/curve.csv", "dvc.lock", "results/register/registration.json")
    print(json.dumps(record, indent=2))
