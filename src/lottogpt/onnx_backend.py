"""ONNX Runtime for the decoding passes of small batches (a lone case, speculatively): the fast path.

At batch 1 a forward pass of this model is per-operation overhead, not arithmetic; ONNX Runtime runs the
same graph with far less of it. :class:`OrtGPT` stands in for the PyTorch model inside
``decode.greedy_decode`` / ``decode.speculative_decode`` (they call ``model(idx, cache)``), so drafting,
feeders, the cut at EOS and every answer rule stay the PyTorch code's. Batches of more than ``max_batch``
rows, per-row caches and the no-cache path stay on PyTorch (there a pass is arithmetic). PyTorch eager
stays the reference and the training path; this module is imported by nobody below the engine users.

    engine = ModelEngine("models/checkpoint", speculative=True)
    onnx_backend.accelerate(engine)            # exports the decoding graph to a temporary file
"""

from __future__ import annotations

import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from lottogpt.inference import ModelEngine
from lottogpt.model import GPT, KVCache, RowKVCache, apply_rotary

OPSET = 18


class DecodeStep(nn.Module):
    """One cached pass of ``GPT.forward`` with the cache as explicit inputs and outputs, for export.

    The past keys and values are laid out ``(positions, batch, heads, head_dim)`` so that the first
    ``P`` positions of a preallocated buffer are one contiguous block: no copy at each pass.
    """

    def __init__(self, model: GPT) -> None:
        super().__init__()
        if model.wpe is not None or model.prev_wte is None:
            raise ValueError("the ONNX decoding graph supports rotary positions with prev_token models")
        self.model = model

    def forward(self, idx: torch.Tensor, before: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        batch, steps = idx.shape
        x = m.wte(idx) + m.prev_wte(torch.cat([before, idx[:, :-1]], dim=1))
        new: list[torch.Tensor] = []
        for layer, block in enumerate(m.blocks):
            attn = block.attn
            h = block.ln_1(x)
            q, k, v = attn.qkv(h).split(h.shape[-1], dim=2)
            q, k, v = (t.view(batch, steps, attn.n_head, -1).transpose(1, 2) for t in (q, k, v))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            new += [k.permute(2, 0, 1, 3), v.permute(2, 0, 1, 3)]
            keys = torch.cat([past[2 * layer].permute(1, 2, 0, 3), k], dim=2)
            values = torch.cat([past[2 * layer + 1].permute(1, 2, 0, 3), v], dim=2)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
            x = x + attn.proj(y.transpose(1, 2).reshape(batch, steps, -1))
            x = x + block.mlp(block.ln_2(x))
        return (m.lm_head(m.ln_f(x)), *new)


def export(model: GPT, path: str | Path) -> Path:
    """Write the decoding graph of ``model`` to ``path`` (ONNX, dynamic batch, new and past lengths)."""
    step = DecodeStep(model.eval())
    config = model.config
    head_dim = config.n_embd // config.n_head
    batch, steps, past = 1, 3, 5
    pasts = [torch.zeros(past, batch, config.n_head, head_dim) for _ in range(2 * config.n_layer)]
    inputs = (torch.zeros(batch, steps, dtype=torch.long), torch.zeros(batch, 1, dtype=torch.long),
              model.rope_cos[past:past + steps], model.rope_sin[past:past + steps],
              torch.ones(steps, past + steps, dtype=torch.bool).tril(diagonal=past), *pasts)
    past_names = [f"past_{kind}{i}" for i in range(config.n_layer) for kind in ("k", "v")]
    new_names = [f"new_{kind}{i}" for i in range(config.n_layer) for kind in ("k", "v")]
    dynamic = {"idx": {0: "batch", 1: "steps"}, "before": {0: "batch"}, "cos": {0: "steps"}, "sin": {0: "steps"},
               "mask": {0: "steps", 1: "total"}, "logits": {0: "batch", 1: "steps"},
               **{n: {0: "past", 1: "batch"} for n in past_names}, **{n: {0: "steps", 1: "batch"} for n in new_names}}
    with torch.no_grad():
        torch.onnx.export(step, inputs, str(path), opset_version=OPSET, dynamo=False,
                          input_names=["idx", "before", "cos", "sin", "mask", *past_names],
                          output_names=["logits", *new_names], dynamic_axes=dynamic)
    return Path(path)


class _Buffers:
    """A cache's keys and values as ONNX Runtime reads them: ``(positions, batch, heads, head_dim)``."""

    def __init__(self, cache: KVCache) -> None:
        batch, heads, length, head_dim = cache.keys[0].shape
        self.arrays = [np.zeros((length, batch, heads, head_dim), dtype=np.float32)
                       for _ in range(2 * len(cache.keys))]


class OrtGPT:
    """A drop-in for ``GPT`` in decoding: cached passes of up to ``max_batch`` rows run in ONNX Runtime."""

    def __init__(self, model: GPT, onnx_path: str | Path, threads: int = 1, max_batch: int = 1) -> None:
        import onnxruntime as ort  # lazy: a heavy optional dependency, needed only on this path

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # EXTENDED: the fusions; ALL adds layout transforms that were no faster for these tiny shapes.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.model, self.config, self.max_batch = model.eval(), model.config, max_batch
        self.cos, self.sin = model.rope_cos.numpy(), model.rope_sin.numpy()
        block = self.config.block_size
        self.causal = np.tril(np.ones((block, block), dtype=bool))  # a pass's mask is a block of it
        self.buffers: weakref.WeakKeyDictionary[KVCache, _Buffers] = weakref.WeakKeyDictionary()

    def eval(self) -> OrtGPT:
        return self

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.model.parameters()

    def __call__(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        if cache is None or isinstance(cache, RowKVCache) or idx.shape[0] > self.max_batch:
            return self.model(idx, cache)
        start, steps = cache.length, idx.shape[1]
        if start + steps > self.config.block_size:
            raise ValueError(f"sequence of {start + steps} tokens exceeds model.block_size {self.config.block_size}")
        buffers = self.buffers.get(cache)
        if buffers is None:
            buffers = self.buffers[cache] = _Buffers(cache)
        mask = np.ascontiguousarray(self.causal[start:start + steps, :start + steps])
        feed: dict[str, Any] = {"idx": idx.numpy(), "before": cache.last_tokens.numpy(),
                                "cos": self.cos[start:start + steps], "sin": self.sin[start:start + steps],
                                "mask": mask}
        for i, array in enumerate(buffers.arrays):
            feed[f"past_{'kv'[i % 2]}{i // 2}"] = array[:start]
        logits, *new = self.session.run(None, feed)
        for array, block in zip(buffers.arrays, new, strict=True):
            array[start:start + steps] = block
        cache.advance(idx)
        return torch.from_numpy(logits)


def accelerate(engine: ModelEngine, onnx_path: str | Path | None = None, threads: int = 1) -> ModelEngine:
    """Put ``engine``'s small-batch decoding on ONNX Runtime; exports the graph when ``onnx_path`` is None."""
    if onnx_path is None:
        onnx_path = export(engine.model, Path(tempfile.mkdtemp(prefix="lottogpt-onnx-")) / "decode.onnx")
    engine.model = OrtGPT(engine.model, onnx_path, threads)
    return engine
