"""Stage `tokenizer`: a number-aware SentencePiece model -> models/tokenizer/, token metrics."""

import json
import time
from pathlib import Path

from lottogpt import params, progress, tokenizer

if __name__ == "__main__":
    start = time.perf_counter()
    p = params.load()
    metrics = tokenizer.train_from_corpus(p.tokenizer, "data/corpus", "models/tokenizer",
                                          p.data.answer_format, p.data.max_tickets)
    Path("results/tokenizer").mkdir(parents=True, exist_ok=True)
    Path("results/tokenizer/metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    progress.summary(f"tokenizer: wrote models/tokenizer/ ({metrics['vocab_size']} pieces) and "
                     f"results/tokenizer/metrics.json in {progress.format_duration(time.perf_counter() - start)}")
