"""ONNX Runtime for the decoding passes of small batches (a lone case, speculatively): the fast path.

At batch 1 a forward pass of this model is per-operation overhead, not arithmetic; ONNX Runtime runs the
same graph with far less of it. :class:`OrtGPT` stands in for the PyTorch model inside
``decode.greedy_decode`` / ``decode.speculative_decode`` (they call ``model(idx, cache)``), so drafting,
feeders, the cut at EOS and every answer rule stay the PyTorch code's. Batches of more than ``max_batch``
rows, per-row caches and the no-cache path stay on PyTorch (there a pass is arithmetic). PyTorch eager
stays the reference and the training path; this module is imported by nobody below the engine users.

    engine = ModelEngine("models/checkpoint", speculative=True)
    onnx_backend.accelerate(engine)            # exports the decoding graph to a temporary file

or export once next to the checkpoint and load that file (``accelerate(engine, "models/onnx/decode.onnx")``):

    python -m lottogpt.onnx_backend models/checkpoint models/onnx/decode.onnx
"""

from __future__ import annotations

import argparse
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import nn

from lottogpt import checkpoint
from lottogpt.inference import Engine, ModelEngine
from lottogpt.model import GPT, KVCache, RowKVCache

OPSET = 18


def exportable(model: GPT) -> bool:
    """Whether :class:`DecodeStep` can export ``model``: rotary positions and the previous-token embedding."""
    return model.wpe is None and model.prev_wte is not None


class DecodeStep(nn.Module):
    """One cached pass of ``GPT.forward`` with the cache as explicit inputs and outputs, for export.

    The past keys and values are laid out ``(positions, batch, heads, head_dim)`` so that the first
    ``P`` positions of a preallocated buffer are one contiguous block: no copy at each pass.
    """

    def __init__(self, model: GPT) -> None:
        super().__init__()
        if not exportable(model):
            raise ValueError("the ONNX decoding graph supports rotary positions with prev_token models")
        self.model = model
        head_dim = model.config.n_embd // model.config.n_head
        # Rotary as x * cos + (x @ turn) * sin: ``turn`` maps each channel pair (a, b) to (-b, a) exactly,
        # a few graph operations instead of the slices, stack and flatten of ``model.apply_rotary``.
        turn = torch.zeros(head_dim, head_dim)
        turn[torch.arange(1, head_dim, 2), torch.arange(0, head_dim, 2)] = -1.0
        turn[torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)] = 1.0
        self.register_buffer("turn", turn, persistent=False)
        self.scale = head_dim ** -0.5

    def forward(self, idx: torch.Tensor, before: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                mask: torch.Tensor, *past: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``cos``/``sin``: (T, head_dim), each angle twice; ``mask``: (T, P + T), 0 or -inf, added to scores."""
        m = self.model
        batch, steps = idx.shape
        x = m.wte(idx) + m.prev_wte(torch.cat([before, idx[:, :-1]], dim=1))
        new: list[torch.Tensor] = []
        for layer, block in enumerate(m.blocks):
            attn = block.attn
            h = block.ln_1(x)
            width = h.shape[-1]
            qkv = attn.qkv(h)
            qk = qkv[..., :2 * width].reshape(batch, steps, 2 * attn.n_head, -1).transpose(1, 2)
            qk = qk * cos + (qk @ self.turn) * sin
            q, k = qk[:, :attn.n_head], qk[:, attn.n_head:]
            v = qkv[..., 2 * width:].reshape(batch, steps, attn.n_head, -1).transpose(1, 2)
            new += [k.permute(2, 0, 1, 3), v.permute(2, 0, 1, 3)]
            keys = torch.cat([past[2 * layer].permute(1, 2, 3, 0), k.transpose(-1, -2)], dim=3)
            values = torch.cat([past[2 * layer + 1].permute(1, 2, 0, 3), v], dim=2)
            y = torch.softmax((q * self.scale) @ keys + mask, dim=-1) @ values
            x = x + attn.proj(y.transpose(1, 2).reshape(batch, steps, -1))
            x = x + block.mlp(block.ln_2(x))
        return (m.lm_head(m.ln_f(x)), *new)


def tables(model: GPT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph's per-position inputs for every position: cos and sin, each angle twice, and the additive
    causal mask (a pass of T tokens after P cached ones takes rows P..P+T and columns ..P+T)."""
    cos, sin = (np.repeat(t.numpy(), 2, axis=1) for t in (model.rope_cos, model.rope_sin))
    block = model.config.block_size
    mask = np.where(np.tril(np.ones((block, block), dtype=bool)), 0.0, -np.inf).astype(np.float32)
    return cos, sin, mask


def export(model: GPT, path: str | Path) -> Path:
    """Write the decoding graph of ``model`` to ``path`` (ONNX, dynamic batch, new and past lengths)."""
    step = DecodeStep(model.eval())
    config = model.config
    head_dim = config.n_embd // config.n_head
    batch, steps, past = 1, 3, 5
    pasts = [torch.zeros(past, batch, config.n_head, head_dim) for _ in range(2 * config.n_layer)]
    cos, sin, mask = tables(model)
    inputs = (torch.zeros(batch, steps, dtype=torch.long), torch.zeros(batch, 1, dtype=torch.long),
              *(torch.from_numpy(t[past:past + steps]) for t in (cos, sin)),
              torch.from_numpy(mask[past:past + steps, :past + steps].copy()), *pasts)
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
        import onnxruntime as ort  # lazy: a heavy import, needed only on this path

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # EXTENDED: the fusions; ALL adds layout transforms that were no faster for these tiny shapes.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.model, self.config, self.max_batch = model.eval(), model.config, max_batch
        self.cos, self.sin, self.mask = tables(model)
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
        mask = np.ascontiguousarray(self.mask[start:start + steps, :start + steps])
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


# Guesses a pass for a lone case on ONNX Runtime: its passes cost more per token than PyTorch's relative to
# their fixed part, so fewer guesses are best (10-ticket case, 1 thread: 19.5 ms at 8, 25.8 ms at 16).
LONE_DRAFT = 8


def accelerate(engine: ModelEngine, onnx_path: str | Path | None = None, threads: int = 1) -> ModelEngine:
    """Put ``engine``'s small-batch decoding on ONNX Runtime; exports the graph when ``onnx_path`` is None.

    An exported graph lives in a temporary folder only until ONNX Runtime has read it into its session.
    """
    if onnx_path is None:
        with tempfile.TemporaryDirectory(prefix="lottogpt-onnx-") as folder:
            engine.model = OrtGPT(engine.model, export(engine.model, Path(folder) / "decode.onnx"), threads)
    else:
        engine.model = OrtGPT(engine.model, onnx_path, threads)
    engine.lone_draft = LONE_DRAFT
    return engine


Backend = Literal["auto", "onnx", "torch"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def with_backend(engine: Engine, backend: str = "auto", threads: int = 1) -> Engine:
    """``engine`` with its lone cases decoded on ``backend``: ``onnx``, ``torch`` or ``auto`` (ONNX on CPU).

    ONNX Runtime here is a CPU path for the models :func:`exportable` accepts; elsewhere ``auto`` keeps
    PyTorch and ``onnx`` is refused. Engines without a model (the reference) are returned as they are.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if not isinstance(engine, ModelEngine) or backend == "torch":
        return engine
    if engine.device.type != "cpu":
        why_not = f"the onnx backend decodes on the CPU, not on {engine.device}"
    elif not exportable(engine.model):
        why_not = "the onnx backend needs rotary positions and prev_token"
    else:
        return accelerate(engine, threads=threads)
    if backend == "onnx":
        raise ValueError(f"{why_not}: use the torch backend")
    return engine


def backend_of(engine: Engine) -> str:
    """Which backend decodes ``engine``'s lone cases: ``onnx``, ``torch``, or ``none`` (no model)."""
    if not isinstance(engine, ModelEngine):
        return "none"
    return "onnx" if isinstance(engine.model, OrtGPT) else "torch"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export a checkpoint's decoding graph for ONNX Runtime.")
    parser.add_argument("checkpoint", help="checkpoint folder")
    parser.add_argument("out", help="the .onnx file to write")
    args = parser.parse_args(argv)
    model, _, _ = checkpoint.load(args.checkpoint)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    print(f"wrote {export(model, args.out)}")


if __name__ == "__main__":
    main()
