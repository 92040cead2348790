"""Shared fixtures: the kata's published example (its facts, kept in tests/data), and a tiny corpus."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from lottogpt import data, formats, tokenizer
from lottogpt.params import DataParams, Params

ROOT = Path(__file__).resolve().parents[1]
# A copy of ../shared/kata/official_example.json: the published inputs and output, never computed by this code.
OFFICIAL_EXAMPLE = ROOT / "tests" / "data" / "official_example.json"


@pytest.fixture(scope="session")
def official() -> dict:
    """The published example: inputs, the 8 tickets drawn, the expected six lines and the bad inputs."""
    return json.loads(OFFICIAL_EXAMPLE.read_text(encoding="utf-8"))


@contextlib.contextmanager
def benchmark_module(name: str) -> Iterator[ModuleType]:
    """A script of ``benchmarks/`` imported as a module, its folder on ``sys.path`` while in use (as there)."""
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(folder)


TINY = DataParams(seed=7, n_train=400, n_val=40, n_test=60, n_test_natural=60, min_tickets=1, max_tickets=8,
                  natural_share=0.0, prize_share=0.0, answer_format="scratchpad")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    data.write_corpus(TINY, out, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lottogpt import tokenizer
    from lottogpt.params import TokenizerParams

    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.train_from_corpus(TokenizerParams(sample_cases=400), tiny_corpus, out, TINY.answer_format,
                                TINY.max_tickets)
    return out


def tiny_params(**train_overrides: object) -> Params:
    """Params of a model small enough to train in seconds (not to be accurate)."""
    from lottogpt.params import ModelParams, TrainParams

    train = TrainParams(max_steps=6, batch_tokens=2048, warmup_steps=2, eval_interval=3, eval_cases=4,
                        checkpoint_interval=3, threads=1)
    for key, value in train_overrides.items():
        setattr(train, key, value)
    return Params(data=TINY, model=ModelParams(n_layer=1, n_head=2, n_embd=32, block_size=512), train=train)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_corpus: Path, tiny_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint folder (model.safetensors, config.json, tokenizer.model) of an untrained-ish model."""
    from lottogpt import train

    out = tmp_path_factory.mktemp("checkpoint")
    train.train(tiny_params(), tiny_corpus, tiny_tokenizer, out / "checkpoint", out / "results")
    return out / "checkpoint"


def train_format_tokenizer(out_dir: Path, answer_format: str, vocab_size: int, **flags: bool) -> tokenizer.Tokenizer:
    """A tokenizer with place digits, trained on a tiny 1-20-ticket corpus rendered in ``answer_format``."""
    cases = data.generate_cases(dataclasses.replace(TINY, answer_format=answer_format, max_tickets=20,
                                                    prize_share=0.5))["train"]
    texts = [formats.render_prompt(c, answer_format) + formats.render_completion(c, answer_format) for c in cases]
    return tokenizer.Tokenizer.load(tokenizer.train(texts, out_dir, vocab_size, place_digits=True, **flags))


class Oracle(torch.nn.Module):
    """A "model" whose greedy choice is the fed sequence's next token, except where told to be wrong."""

    def __init__(self, vocab_size: int, wrong_at: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.vocab_size, self.wrong_at = vocab_size, wrong_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        following = torch.cat([x[:, 1:], x[:, -1:]], dim=1)
        for position in self.wrong_at:
            following[:, position] = (following[:, position] + 1) % self.vocab_size
        return torch.nn.functional.one_hot(following, self.vocab_size).float()
