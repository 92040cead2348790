"""Stage `generate`: the synthetic corpus -> data/corpus/{train,val,test,test_natural}.parquet."""

import json
from pathlib import Path

from lottogpt import data, params, progress

if __name__ == "__main__":
    stats = data.write_corpus(params.load().data, "data/corpus")
    Path("results/data").mkdir(parents=True, exist_ok=True)
    Path("results/data/metrics.json").write_text(json.dumps(stats, indent=2) + "\n")
    progress.summary(f"generate: wrote {stats['cases']:,} cases to data/corpus/ in "
                     f"{progress.format_duration(stats['seconds'])} ({stats['cases_per_second']:,.0f} cases/s)")
