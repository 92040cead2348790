"""The ONNX Runtime decoding path: the same logits and the same greedy answers as PyTorch."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
import torch

from lottogpt import onnx_backend
from lottogpt.decode import NGramDrafter, greedy_decode, speculative_decode
from lottogpt.inference import ModelEngine, ReferenceEngine
from lottogpt.model import GPT, GPTConfig, KVCache

PROMPTS = [[1, 2, 3, 4], [5, 6, 7, 8, 9], [9, 10, 11], [3, 3, 3]]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[GPT, onnx_backend.OrtGPT]:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=2, n_head=2, n_embd=32)).eval()
    path = onnx_backend.export(model, tmp_path_factory.mktemp("onnx") / "decode.onnx")
    return model, onnx_backend.OrtGPT(model, path)


@torch.no_grad()
def test_cached_passes_match_pytorch(models: tuple[GPT, onnx_backend.OrtGPT]) -> None:
    model, fast = models
    x = torch.randint(1, 50, (1, 30))
    caches = [KVCache(model.config, 1, 30, torch.device("cpu"), torch.float32) for _ in range(2)]
    for start, stop in ((0, 12), (12, 13), (13, 20)):  # a prefill, one token, a block of guesses
        expected, got = model(x[:, start:stop], caches[0]), fast(x[:, start:stop], caches[1])
        assert torch.allclose(expected, got, atol=1e-4)
    caches[1].rewind(15, int(x[0, 14]))  # drop positions 15.. (rejected guesses), then go on from there
    assert torch.allclose(fast(x[:, 15:20], caches[1]), model(x[:, :20])[:, 15:], atol=1e-4)


def test_greedy_answers_are_pytorch_answers(models: tuple[GPT, onnx_backend.OrtGPT]) -> None:
    model, fast = models
    plain = greedy_decode(model, PROMPTS, eos_id=-1, max_new_tokens=24)
    assert greedy_decode(fast, PROMPTS, eos_id=-1, max_new_tokens=24, batch_size=1) == plain
    knowing = NGramDrafter.count([p + out for p, out in zip(PROMPTS, plain, strict=True)])
    for prompt, expected in zip(PROMPTS, plain, strict=True):
        out, passes = speculative_decode(fast, prompt, -1, knowing, max_new_tokens=24)
        assert out == expected and passes <= 6
    # Larger batches stay on PyTorch: the same answers.
    assert greedy_decode(fast, [[1, 2, 3], [4, 5, 6]], eos_id=-1, max_new_tokens=8) == greedy_decode(
        model, [[1, 2, 3], [4, 5, 6]], eos_id=-1, max_new_tokens=8)


def test_export_refuses_learned_positions(tmp_path: Path) -> None:
    model = GPT(GPTConfig(vocab_size=50, block_size=64, n_layer=1, n_head=2, n_embd=32, rope=False))
    with pytest.raises(ValueError, match="rotary"):
        onnx_backend.export(model, tmp_path / "x.onnx")


@pytest.mark.slow
@torch.no_grad()
def test_exported_checkpoint_file_decodes_like_the_checkpoint(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from lottogpt import checkpoint

    onnx_backend.main([str(tiny_checkpoint), str(tmp_path / "onnx" / "decode.onnx")])
    model, _, _ = checkpoint.load(tiny_checkpoint)
    fast = onnx_backend.OrtGPT(model, tmp_path / "onnx" / "decode.onnx")
    x = torch.randint(1, model.config.vocab_size, (1, 20))
    cache = KVCache(model.config, 1, 20, torch.device("cpu"), torch.float32)
    assert torch.allclose(fast(x, cache), model(x), atol=1e-4)


def test_with_backend_picks_the_runtime(tiny_checkpoint: Path) -> None:
    engine = ModelEngine(tiny_checkpoint, device="cpu")
    assert onnx_backend.with_backend(engine, "torch") is engine and onnx_backend.backend_of(engine) == "torch"
    reference = ReferenceEngine()
    assert onnx_backend.with_backend(reference, "onnx") is reference
    assert onnx_backend.backend_of(reference) == "none"
    with pytest.raises(ValueError, match="unknown backend 'tvm'"):
        onnx_backend.with_backend(engine, "tvm")
    exported = set(Path(tempfile.gettempdir()).glob("lottogpt-onnx-*"))
    fast = onnx_backend.with_backend(ModelEngine(tiny_checkpoint, device="cpu"), "auto")
    assert onnx_backend.backend_of(fast) == "onnx"
    assert set(Path(tempfile.gettempdir()).glob("lottogpt-onnx-*")) == exported  # the graph is not left behind


def test_auto_keeps_pytorch_for_a_model_the_graph_does_not_cover(tiny_checkpoint: Path) -> None:
    engine = ModelEngine(tiny_checkpoint, device="cpu")
    engine.model = GPT(dataclasses.replace(engine.model.config, prev_token=False)).eval()
    assert onnx_backend.backend_of(onnx_backend.with_backend(engine, "auto")) == "torch"
    with pytest.raises(ValueError, match="needs rotary positions and prev_token: use the torch backend"):
        onnx_backend.with_backend(engine, "onnx")
