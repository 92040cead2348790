"""Greedy decoding with a KV cache: batched in lockstep, or speculative for one prompt at a time.

Prompts of one case shape (same number of tickets) have the same number of tokens, because every
lotto number is one token; decoding groups prompts by length, so a batch never needs padding and
all its rows advance in lockstep. A group of one prompt can instead be decoded speculatively
(:func:`speculative_decode`): same answer, fewer forward passes.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol

import torch

from lottogpt.model import GPT, KVCache, RowKVCache


class Feeder(Protocol):
    """Writes input tokens into a row's completion: ``forced()`` is the token that must come next, if any.

    Speculative decoding walks ahead on a ``copy.copy`` of a feeder, so its position must be plain values.
    """

    def forced(self) -> int | None: ...

    def observe(self, token: int) -> None: ...


@torch.no_grad()
def greedy_decode(model: GPT, prompts: Sequence[Sequence[int]], eos_id: int, batch_size: int = 64,
                  max_new_tokens: int | None = None, use_cache: bool = True,
                  feeders: Sequence[Feeder] | None = None,
                  drafter: NGramDrafter | None = None, batch_draft: int = 0,
                  lone_draft: int = 16) -> list[list[int]]:
    """Greedy completions of ``prompts`` (token ids), each cut at its first EOS (excluded).

    With ``feeders`` (one per prompt), a row takes its feeder's forced token instead of the model's
    choice wherever the feeder has one; every row still advances one token a step. With a ``drafter``
    (and the cache), a prompt alone in its group is decoded by :func:`speculative_decode` with up to
    ``lone_draft`` guesses a pass (0: not), and with ``batch_draft`` > 0 a larger group by
    :func:`speculative_decode_rows` with up to ``batch_draft`` guesses a row: the same answers in fewer
    passes, but wider ones (see benchmarks/README.md).
    """
    model.eval()
    groups: dict[int, list[int]] = defaultdict(list)
    for index, prompt in enumerate(prompts):
        groups[len(prompt)].append(index)
    results: list[list[int]] = [[] for _ in prompts]
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            rows = [feeders[i] for i in chunk] if feeders is not None else None
            if drafter is not None and use_cache and len(chunk) == 1 and lone_draft > 0:
                results[chunk[0]], _ = speculative_decode(model, prompts[chunk[0]], eos_id, drafter,
                                                          rows[0] if rows else None, max_new_tokens, lone_draft)
                continue
            if drafter is not None and use_cache and batch_draft > 0:
                outputs, _ = speculative_decode_rows(model, [prompts[i] for i in chunk], eos_id, drafter, rows,
                                                     max_new_tokens, batch_draft)
            else:
                batch = torch.tensor([list(prompts[i]) for i in chunk], dtype=torch.long)
                outputs = _decode_batch(model, batch, eos_id, max_new_tokens, use_cache, rows)
            for i, tokens in zip(chunk, outputs, strict=True):
                results[i] = tokens
    return results


def _budget(model: GPT, prompt_length: int, max_new_tokens: int | None) -> int:
    """How many tokens a completion of a ``prompt_length``-token prompt may have (EOS included)."""
    budget = model.config.block_size - prompt_length
    if max_new_tokens is not None:
        budget = min(budget, max_new_tokens)
    if budget <= 0:
        raise ValueError(f"a prompt of {prompt_length} tokens leaves no room in model.block_size "
                         f"{model.config.block_size}")
    return budget


def _cut_at_eos(tokens: list[int], eos_id: int) -> list[int]:
    return tokens[:tokens.index(eos_id)] if eos_id in tokens else tokens


def _decode_batch(model: GPT, prompt: torch.Tensor, eos_id: int, max_new_tokens: int | None,
                  use_cache: bool, feeders: Sequence[Feeder] | None) -> list[list[int]]:
    device = next(model.parameters()).device
    prompt = prompt.to(device)
    rows, length = prompt.shape
    budget = _budget(model, length, max_new_tokens)
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
    return [_cut_at_eos(row, eos_id) for row in torch.stack(generated, dim=1).tolist()]


class NGramDrafter:
    """Guesses the next token from the last 1..``order`` tokens: the most frequent follower in counted text.

    ``shares`` holds how often that follower did follow its context (1.0 where not given): how likely a
    guess is confirmed, so that batched decoding can stop guessing where a wrong guess is likely.
    """

    def __init__(self, table: dict[tuple[int, ...], int], order: int,
                 shares: dict[tuple[int, ...], float] | None = None) -> None:
        self.table = table
        self.order = order
        self.shares = shares or {}

    @classmethod
    def count(cls, sequences: Iterable[Sequence[int]], order: int = 4) -> NGramDrafter:
        followers: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
        for sequence in sequences:
            tokens = list(sequence)
            for end in range(1, len(tokens)):
                for n in range(1, min(order, end) + 1):
                    followers[tuple(tokens[end - n:end])][tokens[end]] += 1
        top = {context: counts.most_common(1)[0] for context, counts in followers.items()}
        return cls({context: token for context, (token, _) in top.items()}, order,
                   {context: n / followers[context].total() for context, (_, n) in top.items()})

    def guess(self, history: Sequence[int]) -> int | None:
        """The follower of the longest context seen in counting, or None when not even the last token was."""
        found = self.lookup(history)
        return found[0] if found is not None else None

    def lookup(self, history: Sequence[int]) -> tuple[int, float] | None:
        """:meth:`guess` and its share."""
        for n in range(min(self.order, len(history)), 0, -1):
            context = tuple(history[-n:])
            token = self.table.get(context)
            if token is not None:
                return token, self.shares.get(context, 1.0)
        return None


@torch.no_grad()
def speculative_decode(model: GPT, prompt: Sequence[int], eos_id: int, drafter: NGramDrafter,
                       feeder: Feeder | None = None, max_new_tokens: int | None = None,
                       max_draft: int = 16) -> tuple[list[int], int]:
    """The greedy completion of one prompt, and the forward passes it took.

    At batch 1 a forward pass costs not much more for a dozen tokens than for one (per-operation overhead
    dominates), so each pass feeds the last token plus up to ``max_draft`` guessed ones (the feeder's
    forced tokens where it has them, else ``drafter``'s guesses) and keeps the longest prefix of guesses
    that the model's own choices confirm, plus the model's choice after it. The result is the greedy
    completion (up to floating-point ties between the logits of a one-token and a many-token pass); only
    the number of passes changes.
    """
    model.eval()
    device = next(model.parameters()).device
    budget = _budget(model, len(prompt), max_new_tokens)
    cache = KVCache(model.config, 1, len(prompt) + budget, device, next(model.parameters()).dtype)
    logits = model(torch.tensor([list(prompt)], dtype=torch.long, device=device), cache)[0, -1:]
    history = list(prompt)
    draft: list[int] = []
    forced = [feeder.forced() if feeder is not None else None]
    out: list[int] = []
    passes = 1
    while True:
        choices = logits.argmax(dim=-1).tolist()
        new: list[int] = []
        for position, guess in enumerate([*draft, None]):
            choice = forced[position] if forced[position] is not None else choices[position]
            new.append(choice)
            if choice != guess or choice == eos_id:
                break
        new = new[:budget - len(out)]
        if feeder is not None:
            for token in new:
                feeder.observe(token)
        out += new
        history += new
        if out[-1] == eos_id or len(out) >= budget:
            break
        # The cache holds the last input and the confirmed guesses; the rest of the pass is dropped.
        cache.rewind(cache.length - (len(draft) - (len(new) - 1)), history[-2])
        draft, forced = _draft(history, drafter, feeder, eos_id, min(max_draft, budget - len(out) - 1))
        logits = model(torch.tensor([[out[-1], *draft]], dtype=torch.long, device=device), cache)[0]
        passes += 1
    return _cut_at_eos(out, eos_id), passes


class _Row:
    """One row of a batched speculative decoding: its tokens so far, its guesses and its feeder."""

    def __init__(self, prompt: Sequence[int], feeder: Feeder | None) -> None:
        self.history, self.out, self.feeder = list(prompt), [], feeder
        self.draft: list[int] = []
        self.forced = [feeder.forced() if feeder is not None else None]
        self.done = False

    def accept(self, choices: list[int], eos_id: int, budget: int) -> int:
        """Take the confirmed guesses and the model's next choice; return how many tokens were taken."""
        new: list[int] = []
        for position, guess in enumerate([*self.draft, None]):
            choice = self.forced[position] if self.forced[position] is not None else choices[position]
            new.append(choice)
            if choice != guess or choice == eos_id:
                break
        new = new[:budget - len(self.out)]
        if self.feeder is not None:
            for token in new:
                self.feeder.observe(token)
        self.out += new
        self.history += new
        self.done = self.out[-1] == eos_id or len(self.out) >= budget
        return len(new)


@torch.no_grad()
def speculative_decode_rows(model: GPT, prompts: Sequence[Sequence[int]], eos_id: int, drafter: NGramDrafter,
                            feeders: Sequence[Feeder | None] | None = None, max_new_tokens: int | None = None,
                            max_draft: int = 3, min_belief: float = 0.0) -> tuple[list[list[int]], int]:
    """:func:`speculative_decode` of a batch of prompts of one length, every row at its own position.

    In lockstep a batch re-reads the whole KV cache at every token; here a pass feeds each row its last
    token plus its own guesses (padded to the longest), so a batch takes as many passes as its slowest
    row needs with speculation, several times fewer than tokens. Rows keep their own cache lengths
    (:class:`~lottogpt.model.RowKVCache`). At batch 64 on a CPU a pass costs about in proportion to its
    width, so a few guesses (``max_draft`` 3-4) are best; ``min_belief`` (see :func:`_draft`) did not help
    there. Returns the completions and the passes (prefill included).
    """
    if len({len(p) for p in prompts}) != 1:
        raise ValueError("speculative_decode_rows decodes prompts of one length")
    model.eval()
    device = next(model.parameters()).device
    budget = _budget(model, len(prompts[0]), max_new_tokens)
    cache = RowKVCache(model.config, len(prompts), len(prompts[0]) + budget + max_draft + 1, device,
                       next(model.parameters()).dtype)
    rows = [_Row(p, feeders[i] if feeders is not None else None) for i, p in enumerate(prompts)]
    logits = model(torch.tensor([list(p) for p in prompts], dtype=torch.long, device=device), cache)[:, -1:]
    # A row's cache length counts up to its last input; the prefill's last input is the prompt's last token.
    lengths = [len(prompts[0]) - 1] * len(rows)
    passes = 1
    while True:
        choices = logits.argmax(dim=-1).tolist()
        for index, row in enumerate(rows):
            if not row.done:
                # The cache keeps the last input and the confirmed guesses; the rest of the pass is dropped.
                lengths[index] += row.accept(choices[index], eos_id, budget)
        if all(row.done for row in rows):
            break
        for row in rows:
            if not row.done:
                row.draft, row.forced = _draft(row.history, drafter, row.feeder, eos_id,
                                               min(max_draft, budget - len(row.out) - 1), min_belief)
        width = 1 + max(len(row.draft) for row in rows if not row.done)
        feed = [[row.out[-1], *row.draft] if not row.done else [] for row in rows]
        feed = [tokens + [0] * (width - len(tokens)) for tokens in feed]
        cache.keep(lengths, [row.history[-2] for row in rows])
        logits = model(torch.tensor(feed, dtype=torch.long, device=device), cache)
        passes += 1
    return [_cut_at_eos(row.out, eos_id) for row in rows], passes


def _draft(history: list[int], drafter: NGramDrafter, feeder: Feeder | None, eos_id: int,
           size: int, min_belief: float = 0.0) -> tuple[list[int], list[int | None]]:
    """Up to ``size`` guessed tokens after ``history``, and the feeder's forced token at each of them + 1.

    Guessing stops where the product of the drafter's shares of the guesses so far (the chance that all
    are confirmed) would fall below ``min_belief``; forced tokens are certain.
    """
    trial = copy.copy(feeder)  # a feeder's state is its position; the copy walks the guesses ahead
    draft: list[int] = []
    forced = [trial.forced() if trial is not None else None]
    belief = 1.0
    while len(draft) < size:
        token = forced[-1]
        if token is None:
            found = drafter.lookup(history[-drafter.order:] + draft)
            if found is None or belief * found[1] < min_belief:
                break
            token, belief = found[0], belief * found[1]
        draft.append(token)
        if trial is not None:
            trial.observe(token)
        forced.append(trial.forced() if trial is not None else None)
        if token == eos_id:
            break
    return draft, forced
