"""Stage `train`: the GPT -> models/checkpoint/, results/train/{metrics.json,curve.csv}.

Also runs under torchrun: `torchrun --nproc_per_node=N pipeline/train.py`. Killed, it resumes when run
again with the same command (and the same world size) from models/checkpoint/train_state.pt.
"""

from lottogpt import params, train

if __name__ == "__main__":
    train.train(params.load(), "data/corpus", "models/tokenizer", "models/checkpoint", "results/train")
