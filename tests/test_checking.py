"""checking.py: a case proved right in one forward pass gets the answer decoding gives, and only such a case."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from lottogpt import checking, checkpoint, evaluate, kata
from lottogpt.inference import ModelEngine, ReferenceEngine
from lottogpt.model import GPT, GPTConfig, KVCache

from .conftest import train_format_tokenizer

WINNING, BONUS = [1, 2, 3, 4, 5, 6], 7
LEARNED = [  # the cases the model below learns by heart: a 2nd and a 4th prize, a loser, a 1st prize
    kata.Case.create([[1, 2, 3, 4, 5, 7], [1, 2, 3, 4, 30, 40]], WINNING, BONUS),
    kata.Case.create([[20, 21, 22, 23, 24, 25]], WINNING, BONUS),
    kata.Case.create([[1, 2, 3, 4, 5, 6], [8, 9, 10, 11, 12, 13], [2, 3, 4, 40, 41, 42]], WINNING, BONUS),
]
UNSEEN = [kata.Case.create([[10, 11, 12, 13, 14, 15], [1, 2, 3, 33, 34, 35]], [10, 20, 30, 33, 40, 45], 11),
          kata.Case.create([[5, 6, 7, 8, 9, 10]], WINNING, BONUS)]


def learn_by_heart(engine: ModelEngine, cases: list[kata.Case], steps: int = 600) -> int:
    """Train the engine's model on ``cases``' reference sequences until every one is proved; the steps taken."""
    refs = [checking.reference(engine, case) for case in cases]
    width = max(len(r.tokens) for r in refs)
    x = torch.zeros((len(refs), width - 1), dtype=torch.long)
    y = torch.full((len(refs), width - 1), -100, dtype=torch.long)
    for row, ref in enumerate(refs):
        x[row, : len(ref.tokens) - 1] = torch.tensor(ref.tokens[:-1])
        y[row, ref.start - 1 : len(ref.tokens) - 1] = torch.tensor(ref.tokens[ref.start:])
    optimizer = torch.optim.AdamW(engine.model.parameters(), lr=3e-3)
    for step in range(steps):
        engine.model.eval()
        if len(checking.proved(engine, cases, margin=1.0)) == len(cases):
            return step
        engine.model.train()
        logits = engine.model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    raise AssertionError(f"the model did not learn its {len(cases)} cases in {steps} steps")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> ModelEngine:
    """A real checkpoint in the default ``addends`` format (fed ticket numbers) that knows ``LEARNED`` only."""
    torch.manual_seed(0)
    tokenizer_dir = tmp_path_factory.mktemp("addends_tok")
    tok = train_format_tokenizer(tokenizer_dir, "addends", 768, value_pieces=True)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=64, block_size=512))
    out = tmp_path_factory.mktemp("memorised") / "checkpoint"
    checkpoint.save(out, model, {"answer_format": "addends", "min_tickets": 1, "max_tickets": 20,
                                 "tokenizer_sha256": tok.sha256, "step": 0}, tokenizer_dir)
    found = ModelEngine(out, device="cpu", batch_size=8)
    learn_by_heart(found, LEARNED)
    found.model.eval()
    return found


def same(a: list, b: list) -> bool:
    return [(p.output, p.work, p.counts, p.return_rate) for p in a] == [(p.output, p.work, p.counts, p.return_rate)
                                                                        for p in b]


def test_proved_cases_get_the_decoders_answers(engine: ModelEngine) -> None:
    cases = [UNSEEN[0], *LEARNED, UNSEEN[1]]
    checked = checking.predict_checked(engine, cases)
    decoded = engine.predict(cases)
    assert same(checked.predictions, decoded)
    assert (checked.proved, checked.decoded) == (3, 2)
    assert [p.output for p in decoded[1:4]] == [kata.score(c).output for c in LEARNED]
    assert all(p.output != kata.score(c).output for p, c in zip(decoded[::4], UNSEEN, strict=True))


def test_without_the_margin_or_the_check_every_case_is_decoded(engine: ModelEngine) -> None:
    for checked in (checking.predict_checked(engine, LEARNED, margin=float("inf")),
                    checking.predict_checked(engine, LEARNED, check=False)):
        assert (checked.proved, checked.decoded) == (0, 3)
        assert same(checked.predictions, engine.predict(LEARNED))


def test_only_the_tokens_the_model_writes_are_checked(engine: ModelEngine) -> None:
    case = LEARNED[0]
    ref = checking.reference(engine, case)
    fed = 2 * (1 + 6)  # per ticket its marker and six numbers
    assert len(ref.written) == len(ref.tokens) - ref.start - fed
    assert ref.written[-1] == len(ref.tokens) - 1 and ref.tokens[-1] == engine.tokenizer.eos_id
    assert engine.tokenizer.marker_id(1) == ref.tokens[ref.start] and ref.start not in ref.written


def test_a_case_longer_than_the_context_is_not_proved(engine: ModelEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine.model.config, "block_size", len(checking.reference(engine, LEARNED[1]).tokens) - 1)
    assert checking.reference(engine, LEARNED[1]) is None
    assert checking.proved(engine, LEARNED[1:2]) == {}


def test_the_forward_pass_and_the_kv_cache_differ_by_far_less_than_the_margin(engine: ModelEngine) -> None:
    """What makes the margin safe: the logits decoding computes token by token equal the forward pass's."""
    for case in LEARNED:
        ref = checking.reference(engine, case)
        with torch.no_grad():
            whole = engine.model(torch.tensor([ref.tokens[:-1]]))[0]
            cache = KVCache(engine.model.config, 1, len(ref.tokens), torch.device("cpu"), torch.float32)
            steps = [engine.model(torch.tensor([ref.tokens[:ref.start]]), cache)[0]]
            steps += [engine.model(torch.tensor([[token]]), cache)[0] for token in ref.tokens[ref.start:-1]]
        gap = (torch.cat(steps) - whole).abs().max().item()
        assert gap < checking.MARGIN / 10


def test_the_verify_metrics_count_what_was_proved(engine: ModelEngine, tmp_path: Path, monkeypatch) -> None:
    cases = [*LEARNED, *UNSEEN]
    monkeypatch.setattr(evaluate.data, "read_split", lambda *_args, **_kw: None)
    monkeypatch.setattr(evaluate.data, "frame_cases", lambda _frame: cases)
    checked = evaluate.evaluate(engine, tmp_path, tmp_path / "fast", splits=("suite",), check_first=True)
    decoded = evaluate.evaluate(engine, tmp_path, tmp_path / "slow", splits=("suite",))
    assert checked["suite"] == decoded["suite"] and checked["suite"]["errors"] == len(UNSEEN)
    assert (tmp_path / "fast" / "failures.jsonl").read_text() == (tmp_path / "slow" / "failures.jsonl").read_text()
    assert checked["throughput"]["proved_in_one_pass"] == len(LEARNED)
    assert checked["throughput"]["decoded"] == len(UNSEEN)  # the official example is scored apart
    assert decoded["throughput"]["proved_in_one_pass"] == 0
    reference = evaluate.evaluate(ReferenceEngine(), tmp_path, tmp_path / "ref", splits=("suite",), check_first=True)
    assert reference["throughput"]["proved_in_one_pass"] == 0 and reference["suite"]["errors"] == 0
