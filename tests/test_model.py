"""The GPT: shapes, causality, KV cache, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lottogpt import checkpoint
from lottogpt.decode import NGramDrafter, greedy_decode, speculative_decode
from lottogpt.model import GPT, GPTConfig, KVCache


@pytest.fixture(params=[(True, False), (False, False), (True, True)], ids=["rope", "learned", "rope-prev-token"])
def model(request: pytest.FixtureRequest) -> GPT:
    torch.manual_seed(0)
    rope, prev_token = request.param
    return GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32, rope=rope,
                         prev_token=prev_token)).eval()


def test_forward_shapes(model: GPT) -> None:
    logits = model(torch.randint(0, 50, (3, 17)))
    assert logits.shape == (3, 17, 50)


def test_causal_masking(model: GPT) -> None:
    x = torch.randint(0, 50, (2, 20))
    changed = x.clone()
    changed[:, 12:] = (changed[:, 12:] + 1) % 50
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_block_size_is_enforced(model: GPT) -> None:
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros((1, 65), dtype=torch.long))


def test_kv_cache_matches_full_forward(model: GPT) -> None:
    x = torch.randint(0, 50, (2, 30))
    with torch.no_grad():
        full = model(x)
        cache = KVCache(model.config, 2, 30, torch.device("cpu"), torch.float32)
        first = model(x[:, :20], cache)
        rest = [model(x[:, i:i + 1], cache) for i in range(20, 30)]
    stepped = torch.cat([first, *rest], dim=1)
    assert torch.allclose(full, stepped, atol=1e-5)


def test_greedy_decode_with_and_without_cache_agree(model: GPT) -> None:
    prompts = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11], [1, 1, 1]]
    with_cache = greedy_decode(model, prompts, eos_id=0, max_new_tokens=12)
    without = greedy_decode(model, prompts, eos_id=0, max_new_tokens=12, use_cache=False)
    assert with_cache == without
    assert all(len(t) <= 12 for t in with_cache)


class EveryThird:
    """A feeder that forces token 7 at every third generated position (copyable, as drafting needs)."""

    def __init__(self) -> None:
        self.position = 0

    def forced(self) -> int | None:
        return 7 if self.position % 3 == 2 else None

    def observe(self, token: int) -> None:
        self.position += 1


PROMPTS = [[1, 2, 3, 4], [5, 6, 7, 8, 9], [9, 10, 11], [3, 3, 3]]


def test_speculative_decode_is_greedy_decode(model: GPT) -> None:
    plain = greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=24)
    knowing = NGramDrafter.count([p + out for p, out in zip(PROMPTS, plain, strict=True)])
    clueless = NGramDrafter.count([[t, (t * 7 + 3) % 50] for t in range(50)], order=1)
    for prompt, expected in zip(PROMPTS, plain, strict=True):
        for drafter in (knowing, clueless):
            out, passes = speculative_decode(model, prompt, -1, drafter, max_new_tokens=24)
            assert out == expected
            assert passes <= len(expected)
        # A drafter that has seen the answer guesses most of it: a handful of passes instead of 24.
        assert speculative_decode(model, prompt, -1, knowing, max_new_tokens=24)[1] <= 6
    assert speculative_decode(model, PROMPTS[0], -1, knowing, max_new_tokens=24, max_draft=1)[1] >= 12


def test_speculative_decode_stops_at_eos_and_follows_feeders(model: GPT) -> None:
    first = greedy_decode(model, PROMPTS[:1], eos_id=-1, max_new_tokens=24)[0]
    eos = first[5]  # a token the model writes: the answer ends before its first occurrence
    drafter = NGramDrafter.count([PROMPTS[0] + first])
    out, _ = speculative_decode(model, PROMPTS[0], eos, drafter, max_new_tokens=24)
    assert out == first[:first.index(eos)]
    fed = greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=24, feeders=[EveryThird() for _ in PROMPTS])
    assert all(row[2::3] == [7] * len(row[2::3]) for row in fed)
    for prompt, expected in zip(PROMPTS, fed, strict=True):
        assert speculative_decode(model, prompt, -1, drafter, EveryThird(), max_new_tokens=24)[0] == expected


def test_greedy_decode_speculates_lone_prompts_only(model: GPT) -> None:
    prompts = [*PROMPTS, [12, 13, 14, 15]]  # two prompts of 4 tokens share a batch, the others are alone
    plain = greedy_decode(model, prompts, eos_id=0, max_new_tokens=16)
    drafter = NGramDrafter.count([p + out for p, out in zip(prompts, plain, strict=True)])
    assert greedy_decode(model, prompts, eos_id=0, max_new_tokens=16, drafter=drafter) == plain
    assert greedy_decode(model, prompts, eos_id=0, max_new_tokens=16, batch_size=1, drafter=drafter) == plain


def test_ngram_drafter_backs_off_to_shorter_contexts() -> None:
    drafter = NGramDrafter.count([[1, 2, 3, 4], [9, 2, 3, 5], [7, 3, 5]], order=3)
    assert drafter.guess([1, 2, 3]) == 4  # the longest context seen decides
    assert drafter.guess([9, 2, 3]) == 5
    assert drafter.guess([8, 8, 3]) == 5  # "3" alone: followed by 4 once, by 5 twice
    assert drafter.guess([8, 8, 8]) is None
    assert drafter.guess([]) is None


def test_weight_tying(model: GPT) -> None:
    assert model.lm_head.weight is model.wte.weight


def test_safetensors_round_trip(model: GPT, tmp_path: Path, tiny_tokenizer: Path) -> None:
    from lottogpt.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(tiny_tokenizer)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32)
    torch.manual_seed(1)
    original = GPT(config).eval()
    checkpoint.save(tmp_path, original, {"step": 7, "tokenizer_sha256": tokenizer.sha256}, tiny_tokenizer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "tokenizer.model"]
    loaded, loaded_tokenizer, config_json = checkpoint.load(tmp_path)
    x = torch.randint(0, tokenizer.vocab_size, (2, 40))
    with torch.no_grad():
        assert torch.equal(original(x), loaded(x))
    assert config_json["step"] == 7
    assert loaded_tokenizer.sha256 == tokenizer.sha256


def test_mismatched_tokenizer_is_refused(tmp_path: Path, tiny_tokenizer: Path) -> None:
    from lottogpt.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(tiny_tokenizer)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    checkpoint.save(tmp_path, model, {"tokenizer_sha256": "0" * 64}, tiny_tokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        checkpoint.load(tmp_path)
