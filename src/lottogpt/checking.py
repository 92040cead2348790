"""Right answers proved in one forward pass; every other case decoded as usual.

Greedy decoding writes the reference program's completion exactly when, fed the reference's tokens, the
model's most likely next token is the reference's at every position the model writes (the runtime feeds
the others, as ``inference.WorksheetFeeder`` does): by induction each decoding step then sees the
reference's prefix. One teacher-forced forward pass over the whole sequence checks every position at once,
where decoding needs one pass per token. The pass and the decoder's KV cache sum in other orders, so their
logits differ by float rounding: a position counts as proved only when the right token leads the best
other one by at least ``MARGIN``. A case that is not proved (a wrong position, a narrower lead, a sequence
longer than the model's context) is decoded, so the predictions are the decoder's, case for case.

The proof holds for fp32 weights on a CPU; anywhere else every case is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lottogpt import formats, kata, progress
from lottogpt.cases import predict_tracked
from lottogpt.inference import Engine, ModelEngine, Prediction, feeders_for, prediction_from_completion, prompt_tokens

# Logits of a right token must lead by this much to count; float rounding between the forward pass and the
# KV cache moves them by far less (tests/test_checking.py measures it).
MARGIN = 0.01
PASS_TOKENS = 2048  # rows x length of one forward pass: small passes stay in the CPU's caches


@dataclass
class Checked:
    """The predictions, and how many cases the forward pass proved right and how many were decoded."""

    predictions: list[Prediction]
    proved: int
    decoded: int


@dataclass
class Reference:
    """A case as greedy decoding writes it when it is right: the tokens (BOS, prompt, completion, EOS), the
    index of the first completion token, and the positions whose token the model writes (not fed)."""

    tokens: list[int]
    start: int
    written: list[int]


def written_offsets(engine: ModelEngine, case: kata.Case, completion: list[int]) -> list[int] | None:
    """The offsets in ``completion`` of the tokens the model writes (the runtime feeds the others, as when
    decoding); None when a token the runtime would feed differs from ``completion``'s."""
    feeders = feeders_for(engine.tokenizer, [case], engine.answer_format)
    if feeders is None:
        return list(range(len(completion)))
    written = []
    for offset, token in enumerate(completion):
        forced = feeders[0].forced()
        if forced is None:
            written.append(offset)
        elif forced != token:
            return None
        feeders[0].observe(token)
    return written


def reference(engine: ModelEngine, case: kata.Case) -> Reference | None:
    """The reference's tokens for ``case``; None when decoding could not write them (too long for the
    model's context, or a fed token that differs from the reference's)."""
    tokenizer = engine.tokenizer
    prompt = prompt_tokens(tokenizer, case, engine.answer_format)
    completion = [*tokenizer.encode(formats.render_completion(case, engine.answer_format)), tokenizer.eos_id]
    if len(prompt) + len(completion) > engine.model.config.block_size:
        return None
    written = written_offsets(engine, case, completion)
    if written is None:
        return None
    return Reference(prompt + completion, len(prompt), [len(prompt) + offset for offset in written])


@torch.no_grad()
def token_margins(model: torch.nn.Module, rows: list[list[int]], device: torch.device
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over ``rows`` (padded to the longest). Per row and position ``p``: the lead of the
    token at ``p`` over the best other one after ``p - 1`` (below 0 where greedy decoding writes another),
    and greedy's choice. Position 0 holds 0; positions past a row's end mean nothing."""
    width = max(len(row) for row in rows)
    x = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        x[index, : len(row)] = torch.tensor(row)
    logits = model(x.to(device)).float().cpu()[:, :-1]
    want = x[:, 1:, None]
    lead = logits.gather(2, want)[..., 0] - logits.scatter(2, want, float("-inf")).max(dim=2).values
    first = torch.zeros((len(rows), 1))
    return torch.cat([first, lead], 1), torch.cat([first.long(), logits.argmax(dim=2)], 1)


def leads(model: torch.nn.Module, rows: list[Reference], device: torch.device) -> list[float]:
    """Per row, the smallest lead of the reference's token over the best other one at its written positions
    (negative where the model would write another token)."""
    lead, _ = token_margins(model, [row.tokens for row in rows], device)
    return [float(lead[index, row.written].min()) for index, row in enumerate(rows)]


def provable(engine: Engine) -> bool:
    """Whether a forward pass can stand in for decoding: a model engine with fp32 weights on a CPU."""
    if not isinstance(engine, ModelEngine):
        return False
    weights = next(engine.model.parameters())
    return weights.device.type == "cpu" and weights.dtype == torch.float32


def proved(engine: ModelEngine, cases: list[kata.Case], margin: float = MARGIN,
           description: str = "checking") -> dict[int, Reference]:
    """The cases (by index) whose completion greedy decoding provably writes as the reference does."""
    refs = {i: r for i, case in enumerate(cases) if (r := reference(engine, case)) is not None}
    order = sorted(refs, key=lambda i: len(refs[i].tokens))  # rows of about one length: little padding
    found: dict[int, Reference] = {}
    with progress.track(description, len(cases)) as task:
        task.advance(len(cases) - len(order))
        start = 0
        while start < len(order):
            batch = order[start:start + max(1, PASS_TOKENS // len(refs[order[start]].tokens))]
            for index, lead in zip(batch, leads(engine.model, [refs[i] for i in batch], engine.device), strict=True):
                if lead >= margin:
                    found[index] = refs[index]
            task.advance(len(batch))
            start += len(batch)
    return found


def predict_checked(engine: Engine, cases: list[kata.Case], description: str = "predicting", check: bool = True,
                    margin: float = MARGIN) -> Checked:
    """``engine.predict(cases)``: a case the forward pass proves right gets the reference's completion, read as
    decoding reads its tokens; the rest are decoded (every case without ``check`` or where :func:`provable`
    says no)."""
    if not check or not provable(engine) or not cases:
        return Checked(predict_tracked(engine, cases, description), 0, len(cases))
    assert isinstance(engine, ModelEngine)
    for case in cases:
        engine.check(case)
    right = proved(engine, cases, margin, f"{description}: checking")
    predictions: dict[int, Prediction] = {
        i: prediction_from_completion(engine.tokenizer.decode(ref.tokens[ref.start:-1]), len(cases[i].tickets))
        for i, ref in right.items()}
    rest = [i for i in range(len(cases)) if i not in right]
    decoded = predict_tracked(engine, [cases[i] for i in rest], f"{description}: decoding")
    predictions.update(zip(rest, decoded, strict=True))
    return Checked([predictions[i] for i in range(len(cases))], len(right), len(rest))
