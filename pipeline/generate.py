"""Stage `generate`: the synthetic corpus -> data/corpus/{train,val,test,test_natural}.parquet.

Also results/data/coverage.json: for each family of the answer's facts, how many are reachable, how many
train never shows, how many it shows fewer than its floor (data.coverage_floor, data.division_floor,
data.place_floor) times, and the min and median counts.
"""

import json
from pathlib import Path

from lottogpt import data, params, progress

if __name__ == "__main__":
    stats = data.write_corpus(params.load().data, "data/corpus")
    covered = stats.pop("coverage")
    Path("results/data").mkdir(parents=True, exist_ok=True)
    Path("results/data/metrics.json").write_text(json.dumps(stats, indent=2) + "\n")
    Path("results/data/coverage.json").write_text(json.dumps(covered, indent=2) + "\n")
    short = sum(family["below_floor"] for family in covered["families"].values())
    progress.summary(f"generate: wrote {stats['cases']:,} cases to data/corpus/ in "
                     f"{progress.format_duration(stats['seconds'])} ({stats['cases_per_second']:,.0f} cases/s); "
                     f"{short} reachable facts below their floor")
