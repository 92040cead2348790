"""Stage `tokenizer`: a number-aware SentencePiece model -> models/tokenizer/, token metrics."""

import json
from pathlib import Path

from lottogpt import params, tokenizer

if __name__ == "__main__":
    p = params.load()
    metrics = tokenizer.train_from_corpus(p.tokenizer, "data/corpus", "models/tokenizer",
                                          p.data.answer_format, p.data.max_tickets)
    Path("results/tokenizer").mkdir(parents=True, exist_ok=True)
    Path("results/tokenizer/metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
