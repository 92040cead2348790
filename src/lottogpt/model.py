"""A small decoder-only GPT in plain PyTorch (after karpathy/nanoGPT), with rotary positions and a
KV cache for decoding.

No biases anywhere (as in current small LMs). Two options, measured in the README: rotary
position embeddings (``rope``) versus learned absolute positions, and ``prev_token``: every position
also adds an embedding of the token before it (the "smear" of modded-nanogpt). The lotto work is
lookups of the form "the flag after this number's earlier occurrence" (induction); with the previous
token in the residual stream from the start, the key for such a lookup is exact in one layer, where
a learned previous-token head blurs neighbours (it mixed up the last winning number and the bonus).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from lottogpt.params import ModelParams


@dataclass(kw_only=True)
class GPTConfig(ModelParams):
    """The ``model`` params plus the tokenizer's vocabulary size: everything that shapes the network."""

    vocab_size: int

    def to_dict(self) -> dict:
        return asdict(self)


class KVCache:
    """Keys and values of every layer for a batch of sequences decoded in lockstep."""

    def __init__(self, config: GPTConfig, batch: int, length: int, device: torch.device, dtype: torch.dtype):
        head_dim = config.n_embd // config.n_head
        shape = (batch, config.n_head, length, head_dim)
        # Not zeroed (that cost a tenth of a batch-64 decoding): a position is read only once written.
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # positions filled so far
        self.last_tokens = torch.zeros((batch, 1), dtype=torch.long, device=device)  # for prev_token
        self.mask: torch.Tensor | None = None  # of the pass under way (begin)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store a block of new keys and values after the filled positions; all of them, to attend over."""
        start, steps = self.length, k.shape[2]
        self.keys[layer][:, :, start:start + steps] = k
        self.values[layer][:, :, start:start + steps] = v
        return self.keys[layer][:, :, :start + steps], self.values[layer][:, :, :start + steps]

    def advance(self, idx: torch.Tensor) -> None:
        """Count the block ``idx`` (B, T) as filled, once every layer has appended it."""
        self.length += idx.shape[1]
        self.last_tokens = idx[:, -1:]

    def rewind(self, length: int, last_token: int) -> None:
        """Drop every position from ``length`` on (rejected guesses); ``last_token`` is the token before it."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot rewind a cache of {self.length} positions to {length}")
        self.length = length
        self.last_tokens = torch.full_like(self.last_tokens, last_token)

    def begin(self, steps: int, device: torch.device) -> None:
        """Before a pass of ``steps`` tokens: its attention mask, built once for every layer.

        A new block of queries sees every cached position and the causal part of itself.
        """
        start = self.length
        self.mask = torch.ones(steps, start + steps, dtype=torch.bool, device=device).tril(diagonal=start)

    def rotary(self, cos: torch.Tensor, sin: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        return cos[self.length:self.length + steps], sin[self.length:self.length + steps]


class RowKVCache(KVCache):
    """A KV cache whose rows are filled to lengths of their own (batched speculative decoding).

    Each pass writes a row's ``steps`` new positions after its own length and attends with a per-row mask,
    so positions past a row's length (rejected guesses, padding) are never seen and are overwritten later.
    Allocate ``length`` with room for a pass's padding past the longest row.
    """

    def __init__(self, config: GPTConfig, batch: int, length: int, device: torch.device, dtype: torch.dtype):
        super().__init__(config, batch, length, device, dtype)
        for tensor in (*self.keys, *self.values):
            tensor.zero_()  # masked positions are read too: garbage there could be NaN, and NaN * 0 is NaN
        self.lengths = torch.zeros(batch, dtype=torch.long, device=device)

    def begin(self, steps: int, device: torch.device) -> None:
        self.positions = self.lengths[:, None] + torch.arange(steps, device=device)  # (B, T)
        self.span = int(self.lengths.max()) + steps
        keys = torch.arange(self.span, device=device)
        seen = (keys[None, None, :] <= self.positions[:, :, None])[:, None]  # (B, 1, T, span)
        # Additive, so that attention does not convert a boolean mask in every layer.
        self.mask = torch.zeros(seen.shape, dtype=self.keys[0].dtype, device=device).masked_fill_(~seen, -torch.inf)
        self.length = self.span - steps  # what forward's length check and wpe see: the longest row

    def rotary(self, cos: torch.Tensor, sin: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        at = self.positions.clamp(max=cos.shape[0] - 1)  # padding past the table is never attended to
        return cos[at][:, None], sin[at][:, None]

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.arange(k.shape[0], device=k.device)[:, None]
        self.keys[layer][rows, :, self.positions] = k.transpose(1, 2)
        self.values[layer][rows, :, self.positions] = v.transpose(1, 2)
        return self.keys[layer][:, :, :self.span], self.values[layer][:, :, :self.span]

    def advance(self, idx: torch.Tensor) -> None:
        self.lengths += idx.shape[1]
        self.length = int(self.lengths.max())
        self.last_tokens = idx[:, -1:]

    def keep(self, lengths: list[int], last_tokens: list[int]) -> None:
        """After a pass: each row's confirmed length and the token at its last confirmed position."""
        self.lengths = torch.tensor(lengths, dtype=torch.long, device=self.lengths.device)
        self.length = max(lengths)
        self.last_tokens = torch.tensor(last_tokens, dtype=torch.long, device=self.lengths.device)[:, None]


def rotary_tables(config: GPTConfig, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    head_dim = config.n_embd // config.n_head
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of ``x`` (B, H, T, D) by position-dependent angles."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rotated = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        batch, steps, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, steps, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        if rotary is not None:
            q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               dropout_p=self.dropout if self.training else 0.0)
        else:
            k, v = cache.append(layer, k, v)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=cache.mask)
        return self.proj(y.transpose(1, 2).reshape(batch, steps, width))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=False)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=False)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None,
                cache: KVCache | None, layer: int) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rotary, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = None if config.rope else nn.Embedding(config.block_size, config.n_embd)
        self.prev_wte = nn.Embedding(config.vocab_size, config.n_embd) if config.prev_token else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=False)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        if config.rope:
            cos, sin = rotary_tables(config)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):  # scaled init of residual projections (GPT-2)
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits for every position of ``idx`` (B, T); with a cache, ``idx`` continues it."""
        _, steps = idx.shape
        if cache is not None:
            cache.begin(steps, idx.device)
        start = cache.length if cache is not None else 0
        if start + steps > self.config.block_size and not isinstance(cache, RowKVCache):
            raise ValueError(f"sequence of {start + steps} tokens exceeds model.block_size "
                             f"{self.config.block_size}")
        x = self.wte(idx)
        if self.prev_wte is not None:
            # Token 0 (<pad>) stands for "nothing before" at the first position.
            before = cache.last_tokens if cache is not None else torch.zeros_like(idx[:, :1])
            x = x + self.prev_wte(torch.cat([before, idx[:, :-1]], dim=1))
        rotary = None
        if self.wpe is not None:
            at = cache.positions if isinstance(cache, RowKVCache) else torch.arange(start, start + steps,
                                                                                        device=idx.device)
            x = x + self.wpe(at.clamp(max=self.config.block_size - 1))
        elif cache is not None:
            rotary = cache.rotary(self.rope_cos, self.rope_sin, steps)
        else:
            rotary = (self.rope_cos[:steps], self.rope_sin[:steps])
        x = self.drop(x)
        for layer, block in enumerate(self.blocks):
            x = block(x, rotary, cache, layer)
        if cache is not None:
            cache.advance(idx)
        return self.lm_head(self.ln_f(x))
