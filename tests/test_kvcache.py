"""KVCache.rewind: dropping rejected guesses leaves the cache as if they had never been fed."""

from __future__ import annotations

import pytest
import torch

from lottogpt.model import GPT, GPTConfig, KVCache


@pytest.mark.parametrize("prev_token", [False, True], ids=["plain", "prev-token"])
def test_rewind_forgets_the_dropped_positions(prev_token: bool) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32,
                          prev_token=prev_token)).eval()
    prompt, guesses, follow = torch.randint(0, 50, (1, 12)), torch.randint(0, 50, (1, 5)), torch.randint(0, 50, (1, 3))
    with torch.no_grad():
        clean = KVCache(model.config, 1, 64, torch.device("cpu"), torch.float32)
        model(prompt, clean)
        expected = model(follow, clean)
        cache = KVCache(model.config, 1, 64, torch.device("cpu"), torch.float32)
        model(prompt, cache)
        model(guesses, cache)  # a pass of guesses, all rejected
        cache.rewind(12, int(prompt[0, -1]))
        got = model(follow, cache)
    assert cache.length == clean.length == 15
    assert torch.allclose(got, expected, atol=1e-5)


def test_rewind_refuses_positions_it_never_had() -> None:
    cache = KVCache(GPTConfig(vocab_size=10, n_layer=1, n_head=1, n_embd=4), 1, 8, torch.device("cpu"), torch.float32)
    with pytest.raises(ValueError, match="rewind"):
        cache.rewind(3, 0)
