"""The corpus: determinism, disjoint splits, stratification, schema, speed figure."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from math import comb
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from lottogpt import data, formats, kata, params
from lottogpt.params import DataParams, Params

from .conftest import TINY


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.glob("*.parquet"))}


def test_same_params_same_bytes(tmp_path: Path, tiny_corpus: Path) -> None:
    data.write_corpus(TINY, tmp_path / "again", workers=2)
    assert _digest(tmp_path / "again") == _digest(tiny_corpus)
    assert len(_digest(tiny_corpus)) == 4


class _CountedPool(data.ProcessPoolExecutor):
    started = 0

    def __init__(self, *args: object, **kwargs: object) -> None:
        _CountedPool.started += 1
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_the_process_pool_writes_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split above the pool's 20,000-case chunk is rendered in 2 processes: the bytes of 1 process."""
    big = dataclasses.replace(TINY, n_train=20_300, n_val=10, n_test=10, n_test_natural=10, max_tickets=4)
    monkeypatch.setattr(data, "ProcessPoolExecutor", _CountedPool)
    monkeypatch.setattr(_CountedPool, "started", 0)
    data.write_corpus(big, tmp_path / "serial", workers=1)
    assert _CountedPool.started == 0
    data.write_corpus(big, tmp_path / "parallel", workers=2)
    assert _CountedPool.started == 1  # the train split went through the pool, the small ones did not
    assert _digest(tmp_path / "parallel") == _digest(tmp_path / "serial")
    assert pl.read_parquet(tmp_path / "parallel" / "train.parquet").height == 20_300


def test_other_seed_other_bytes(tmp_path: Path, tiny_corpus: Path) -> None:
    other = DataParams(**{**TINY.__dict__, "seed": 8})
    data.write_corpus(other, tmp_path, workers=1)
    assert _digest(tmp_path)["train.parquet"] != _digest(tiny_corpus)["train.parquet"]


def test_splits_are_disjoint_and_sized(tiny_corpus: Path) -> None:
    keys: dict[str, set] = {}
    for split in data.SPLITS:
        frame = data.read_split(tiny_corpus, split)
        assert len(frame) == data.split_size(TINY, split)
        cases = data.frame_cases(frame)
        keys[split] = set(cases)
        assert len(keys[split]) == len(cases)
    for a in data.SPLITS:
        for b in data.SPLITS:
            if a < b:
                assert not keys[a] & keys[b], (a, b)


def test_duplicates_are_redrawn() -> None:
    # One ticket that always shares all six numbers: few distinct cases exist, so collisions happen.
    params = DataParams(seed=1, n_train=300, n_val=20, n_test=20, n_test_natural=5, min_tickets=1, max_tickets=1,
                        match_weights=[0, 0, 0, 0, 0, 0, 1])
    splits = data.generate_cases(params)
    all_cases = [c for cases in splits.values() for c in cases]
    assert len(set(all_cases)) == len(all_cases)


def test_schema_and_rendering(tiny_corpus: Path) -> None:
    frame = data.read_split(tiny_corpus, "test")
    for column in ("id", "n_tickets", "tickets", "winning", "bonus", "prompt", "completion", "count_3", "count_4",
                   "count_5", "count_5_bonus", "count_6", "return_rate", "model_prompt", "model_completion"):
        assert column in frame.columns
    row = frame.row(0, named=True)
    case = kata.Case(tuple(tuple(t) for t in row["tickets"]), tuple(row["winning"]), row["bonus"])
    assert row["prompt"] == kata.render_transcript(case)
    assert row["prompt"].endswith("---\n")
    assert row["completion"] == kata.score(case).output
    assert row["model_prompt"] == formats.render_prompt(case, TINY.answer_format)
    assert row["model_completion"] == formats.render_completion(case, TINY.answer_format)
    assert row["n_tickets"] == len(case.tickets)
    assert frame["n_tickets"].min() >= TINY.min_tickets and frame["n_tickets"].max() <= TINY.max_tickets


def test_every_ticket_is_valid(tiny_corpus: Path) -> None:
    for split in data.SPLITS:
        for case in data.frame_cases(data.read_split(tiny_corpus, split)):
            assert kata.Case.create(case.tickets, case.winning, case.bonus) == case


def test_stratification_reaches_every_rank() -> None:
    params = DataParams(seed=3, n_train=3000, n_val=10, n_test=10, n_test_natural=300, natural_share=0.0,
                        prize_share=0.0)
    frame = data.to_frame("train", data.generate_cases(params)["train"], "direct")
    stats = data.split_stats(frame)
    # With uniform match weights and up to 10 tickets, each rank shows up in a large share of cases.
    for rank in ("3", "4", "5", "6"):
        assert stats["rank_share"][rank] > 0.3, stats
    assert stats["rank_share"]["5+bonus"] > 0.1, stats
    counts = pl.concat([frame[c] for c in ("count_3", "count_4", "count_5", "count_5_bonus", "count_6")])
    assert counts.n_unique() >= 5  # count values 0..4+ are all frequent


def test_natural_split_is_uniform() -> None:
    params = DataParams(seed=3, n_train=10, n_val=10, n_test=10, n_test_natural=2000)
    frame = data.to_frame("test_natural", data.generate_cases(params)["test_natural"], "direct")
    tickets = int(frame["n_tickets"].sum())
    share_three = int(frame["count_3"].sum()) / tickets
    assert 0.01 < share_three < 0.04  # P(3 matches) of a uniform ticket is about 2.2%
    assert int(frame["count_6"].sum()) == 0


def test_natural_share_mixes_uniform_cases_into_train_and_val_only() -> None:
    base = DataParams(seed=5, n_train=2000, n_val=200, n_test=200, n_test_natural=200, natural_share=0.0,
                      prize_share=0.0)
    mixed = dataclasses.replace(base, natural_share=0.5)
    plain, mix = data.generate_cases(base), data.generate_cases(mixed)
    assert mix == data.generate_cases(mixed)  # deterministic
    assert mix["test"] == plain["test"] and mix["test_natural"] == plain["test_natural"]
    assert len(mix["train"]) == 2000 and len(mix["val"]) == 200

    def losing_share(cases: list[kata.Case]) -> float:
        return sum(kata.score(c).total_prize == 0 for c in cases) / len(cases)

    # Stratified cases rarely win nothing; uniform tickets nearly always do.
    assert losing_share(plain["train"]) < 0.15
    assert 0.35 < losing_share(mix["train"]) < 0.6
    every = [c for split in mix.values() for c in split]
    assert len(set(every)) == len(every)  # still disjoint


def test_prize_share_draws_every_prize_combination_alike() -> None:
    two = DataParams(seed=1, n_train=6300, n_val=0, n_test=0, n_test_natural=0, min_tickets=2, max_tickets=2,
                     natural_share=0.0, prize_share=1.0)
    vectors = Counter(tuple(kata.score(case).counts.values()) for case in data.generate_cases(two)["train"])
    assert len(vectors) == comb(2 + 5, 5)  # every way two tickets can win the five prizes (21) ...
    assert min(vectors.values()) > 200 and max(vectors.values()) < 400  # ... about 300 times each


# The cases of PRIZELESS as drawn before data.prize_share existed (sha256 of their repr, from commit ae1ed8a).
PRIZELESS = DataParams(seed=5, n_train=2000, n_val=200, n_test=200, n_test_natural=200, max_tickets=10,
                       natural_share=0.2, prize_share=0.0)
PRIZELESS_SHA256 = "8119c3b44fe26bfe6dedd60646c127ecd16cf584c7c06e00f202f966a1f1e308"


def test_prize_share_mixes_into_train_and_val_only_and_zero_changes_nothing() -> None:
    base = PRIZELESS
    mixed = dataclasses.replace(base, prize_share=0.5)
    plain, mix = data.generate_cases(base), data.generate_cases(mixed)
    assert hashlib.sha256(repr(plain).encode()).hexdigest() == PRIZELESS_SHA256
    assert mix == data.generate_cases(mixed)  # deterministic
    assert mix["test"] == plain["test"] and mix["test_natural"] == plain["test_natural"]
    assert len(mix["train"]) == 2000 and len(mix["val"]) == 200
    assert mix["train"] != plain["train"]
    every = [c for split in mix.values() for c in split]
    assert len(set(every)) == len(every)  # still disjoint


def test_prize_and_natural_shares_cannot_exceed_the_split() -> None:
    with pytest.raises(params.ParamsError, match=r"data\.prize_share"):
        params.validate(Params(data=DataParams(natural_share=0.5, prize_share=0.6)))


def test_unknown_draw_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown draw"):
        data.draw_cases(np.random.default_rng(0), PRIZELESS, 3, "uniform")
