"""Batched greedy decoding with a KV cache.

Prompts of one case shape (same number of tickets) have the same number of tokens, because every
lotto number is one token; decoding groups prompts by length, so a batch never needs padding and
all its rows advance in lockstep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import torch

from lottogpt.model import GPT, KVCache


class Feeder(Protocol):
    """Writes input tokens into a row's completion: ``forced()`` is the token that must come next, if any."""

    def forced(self) -> int | None: ...

    def observe(self, token: int) -> None: ...


@torch.no_grad()
def greedy_decode(model: GPT, prompts: Sequence[Sequence[int]], eos_id: int, batch_size: int = 64,
                  max_new_tokens: int | None = None, use_cache: bool = True,
                  feeders: Sequence[Feeder] | None = None) -> list[list[int]]:
    """Greedy completions of ``prompts`` (token ids), each cut at its first EOS (excluded).

    With ``feeders`` (one per prompt), a row takes its feeder's forced token instead of the model's
    choice wherever the feeder has one; every row still advances one token a step.
    """
    model.eval()
    groups: dict[int, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        groups[len(prompt)].append(index)
    results: list[list[int]] = [[] for _ in prompts]
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            batch = torch.tensor([list(prompts[i]) for i in chunk], dtype=torch.long)
            rows = [feeders[i] for i in chunk] if feeders is not None else None
            for i, tokens in zip(chunk, _decode_batch(model, batch, eos_id, max_new_tokens, use_cache, rows),
                                 strict=True):
                results[i] = tokens
    return results


def _decode_batch(model: GPT, prompt: torch.Tensor, eos_id: int, max_new_tokens: int | None,
                  use_cache: bool, feeders: Sequence[Feeder] | None) -> list[list[int]]:
    device = next(model.parameters()).device
    prompt = prompt.to(device)
    rows, length = prompt.shape
    budget = model.config.block_size - length
    if max_new_tokens is not None:
        budget = min(budget, max_new_tokens)
    if budget <= 0:
        raise ValueError(f"a prompt of {length} tokens leaves no room in model.block_size "
                         f"{model.config.block_size}")
    dtype = next(model.parameters()).dtype
    cache = KVCache(model.config, rows, length + budget, device, dtype) if use_cache else None
    sequence = prompt
    logits = model(prompt, cache)[:, -1]
    generated = []
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    for step in range(budget):
        token = logits.argmax(dim=-1)
        if feeders is not None:
            chosen = token.tolist()
            for row, feeder in enumerate(feeders):
                forced = feeder.forced()
                if forced is not None:
                    chosen[row] = forced
                feeder.observe(chosen[row])
            token = torch.tensor(chosen, dtype=torch.long, device=device)
        generated.append(token)
        done |= token == eos_id
        if bool(done.all()) or step == budget - 1:
            break
        if use_cache:
            logits = model(token[:, None], cache)[:, -1]
        else:
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            logits = model(sequence)[:, -1]
    out = torch.stack(generated, dim=1).tolist()
    return [row[:row.index(eos_id)] if eos_id in row else row for row in out]
