"""Batched speculative decoding: rows at their own cache lengths, and the same answers as lockstep."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lottogpt import kata
from lottogpt.decode import NGramDrafter, greedy_decode, speculative_decode_rows
from lottogpt.model import GPT, GPTConfig, KVCache, RowKVCache

from .test_model import EveryThird


@pytest.fixture(params=[(True, True), (False, False)], ids=["rope-prev-token", "learned"])
def model(request: pytest.FixtureRequest) -> GPT:
    torch.manual_seed(0)
    rope, prev_token = request.param
    return GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32, rope=rope,
                         prev_token=prev_token)).eval()


PROMPTS = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [3, 3, 3, 3], [4, 8, 15, 16]]


@torch.no_grad()
def test_rows_at_their_own_lengths_match_each_row_alone(model: GPT) -> None:
    x = torch.randint(1, 50, (3, 20))
    cache = RowKVCache(model.config, 3, 30, torch.device("cpu"), torch.float32)
    model(x[:, :8], cache)
    cache.keep([8, 5, 2], [int(x[0, 7]), int(x[1, 4]), int(x[2, 1])])  # rows 1 and 2 drop positions
    feed = torch.stack([x[0, 8:12], x[1, 5:9], x[2, 2:6]])  # each row continues where it was kept
    rows = model(feed, cache)
    for row, start in enumerate([8, 5, 2]):
        alone = KVCache(model.config, 1, 30, torch.device("cpu"), torch.float32)
        expected = model(x[row:row + 1, :start + 4], alone)[0, start:]
        assert torch.allclose(rows[row], expected, atol=1e-5)


def test_batched_speculation_is_lockstep_greedy(model: GPT) -> None:
    plain = greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=24)
    knowing = NGramDrafter.count([p + out for p, out in zip(PROMPTS, plain, strict=True)])
    clueless = NGramDrafter.count([[t, (t * 7 + 3) % 50] for t in range(50)], order=1)
    for drafter in (knowing, clueless):
        for max_draft in (1, 4, 16):
            out, passes = speculative_decode_rows(model, PROMPTS, -1, drafter, max_new_tokens=24,
                                                  max_draft=max_draft, min_belief=0.0)
            assert out == plain
            assert passes <= 24
    # Guesses that have seen the answers: a handful of passes for the whole batch instead of 24.
    assert speculative_decode_rows(model, PROMPTS, -1, knowing, max_new_tokens=24)[1] <= 8
    assert greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=24, drafter=clueless, batch_draft=4) == plain


def test_batched_speculation_follows_feeders_and_stops_at_eos(model: GPT) -> None:
    fed = greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=24, feeders=[EveryThird() for _ in PROMPTS])
    eos = fed[0][4]  # a token the first row writes: its answer ends before that token's first occurrence
    expected = greedy_decode(model, PROMPTS, eos_id=eos, max_new_tokens=24, feeders=[EveryThird() for _ in PROMPTS])
    assert expected[0] == fed[0][:fed[0].index(eos)]
    drafter = NGramDrafter.count([p + out for p, out in zip(PROMPTS, fed, strict=True)])
    out, _ = speculative_decode_rows(model, PROMPTS, eos, drafter, [EveryThird() for _ in PROMPTS],
                                     max_new_tokens=24)
    assert out == expected


def test_unlikely_guesses_are_not_drafted(model: GPT) -> None:
    plain = greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=12)
    knowing = NGramDrafter.count([p + out for p, out in zip(PROMPTS, plain, strict=True)])
    doubtful = NGramDrafter(knowing.table, knowing.order, dict.fromkeys(knowing.table, 0.1))
    out, passes = speculative_decode_rows(model, PROMPTS, -1, doubtful, max_new_tokens=12, min_belief=0.5)
    assert out == plain
    assert passes == 12  # no guess drafted: one pass per token, the prefill included


def test_ngram_drafter_counts_shares() -> None:
    drafter = NGramDrafter.count([[1, 2, 3, 4], [9, 2, 3, 5], [7, 3, 5]], order=3)
    assert drafter.lookup([8, 8, 3]) == (5, pytest.approx(2 / 3))  # "3": followed by 4 once, by 5 twice
    assert drafter.lookup([1, 2, 3]) == (4, 1.0)
    assert drafter.lookup([8]) is None


@pytest.mark.slow
def test_engine_batches_speculatively_with_the_lockstep_answers(tiny_checkpoint: Path) -> None:
    from lottogpt.inference import ModelEngine

    lockstep = ModelEngine(tiny_checkpoint, device="cpu", batch_draft=0)
    batched = ModelEngine(tiny_checkpoint, device="cpu")
    assert (lockstep.drafter, batched.info()["batch_draft"]) == (None, 3)
    rng = random.Random(5)
    cases = []
    for n in (2, 2, 2, 5, 5, 5, 5, 8):  # groups of 3 and 4 prompts of one length, and one alone
        *winning, bonus = rng.sample(range(1, 46), 7)
        cases.append(kata.Case.create([kata.draw_ticket(rng) for _ in range(n)], winning, bonus))
    assert [p.output for p in batched.predict(cases)] == [p.output for p in lockstep.predict(cases)]
