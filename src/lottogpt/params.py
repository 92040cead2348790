"""Typed access to ``params.yaml``: one dataclass per stage block, validated and cast.

The defaults below are those of ``params.yaml`` (a test holds them equal), so ``Params()`` in a notebook
trains what ``dvc repro`` trains.

``dvc exp run -S`` rewrites ``params.yaml`` as YAML 1.2 (``lr: 3e-4``), which PyYAML (YAML 1.1) reads
as a string; we read with ruamel.yaml (YAML 1.2) and cast every field to its declared type anyway,
so ``"3e-4"`` and ``3e-4`` both become ``0.0003`` and a wrong value fails with a clear message.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ruamel.yaml import YAML

from lottogpt.formats import ANSWER_FORMATS, MAX_TICKETS

T = TypeVar("T")


class ParamsError(ValueError):
    """A missing, unknown or badly typed parameter."""


@dataclass
class DataParams:
    seed: int = 1234
    n_train: int = 200_000
    n_val: int = 500
    n_test: int = 2_000
    n_test_natural: int = 2_000
    min_tickets: int = 1
    max_tickets: int = 20
    # Weights of how many numbers (0..6) a stratified ticket shares with the winning numbers.
    match_weights: list[float] = field(default_factory=lambda: [1.0] * 7)
    bonus_prob: float = 0.3
    # Share of train and val cases drawn like test_natural (uniform tickets) instead of stratified.
    natural_share: float = 0.2
    # Share of train and val cases whose prize counts are drawn uniformly (every division line alike).
    prize_share: float = 0.45
    # Every reachable fact of the answer (coverage.py) occurs at least this often in train: cases composed to
    # show the rare ones take the place of prize-drawn ones (0 = none).
    coverage_floor: int = 100
    # The same for each step of the rate's long division (coverage.py: division), the family whose last
    # errors sat at the common floor.
    division_floor: int = 125
    # The same for each division step at each place of its quotient digit (coverage.py: division_place; 0 =
    # counted and reported only). There are far more of these facts: a floor of 10 needs room, which a
    # data.prize_share of 0.3 leaves too little of.
    place_floor: int = 10
    answer_format: str = "addends"


@dataclass
class TokenizerParams:
    vocab_size: int = 768
    model_type: str = "bpe"
    sample_cases: int = 20_000
    value_pieces: bool = True  # one piece per count, tally, divisor and remainder value


@dataclass
class ModelParams:
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 576
    dropout: float = 0.0
    rope: bool = True
    prev_token: bool = True  # add an embedding of the previous token (sharp induction keys)


PRECISIONS = ("auto", "fp32", "bf16")
OPTIMIZERS = ("adamw", "muon")


@dataclass
class TrainParams:
    seed: int = 1337
    max_steps: int = 16000
    max_minutes: float = 0.0  # 0 = no wall-clock limit
    batch_tokens: int = 4096
    lr: float = 8e-3
    min_lr: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    curriculum_steps: int = 0  # steps over which the max number of tickets grows to data.max_tickets
    count_power: float = 1.0  # a batch's ticket count n is drawn with weight n ** count_power (0 = uniform)
    drill_share: float = 0.25  # share of batches that train only the lines after the count lines (drills)
    division_drill_share: float = 0.0  # share of batches that train the division table alone (random dividends)
    division_drill_source: str = "random"  # random dividends (the table alone), sums (cases' sum lines given), both
    optimizer: str = "muon"  # adamw, or muon (Muon for the blocks' matrices, AdamW for embeddings and norms)
    eval_interval: int = 500
    eval_cases: int = 64
    checkpoint_interval: int = 200
    device: str = "auto"
    compile: bool = False
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 elsewhere), fp32 or bf16 (autocast, fp32 weights)
    threads: int = 0  # 0 = torch default


@dataclass
class EvaluateParams:
    batch_size: int = 64
    max_cases: int = 0  # 0 = the whole split
    threads: int = 0  # CPU threads for decoding; 0 = torch default (one per core)
    # The verification suites (suites.py): compositions of up to this many tickets, all of them; of more
    # tickets, a uniform sample of this many; the seed of the tickets that realise them.
    exhaustive_tickets: int = 10
    sample_compositions: int = 20_000
    suite_seed: int = 2026


@dataclass
class Params:
    data: DataParams = field(default_factory=DataParams)
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)


def _cast(value: Any, kind: Any, name: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{name} must be a list, got {value!r}")
        return [_cast(v, item, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ParamsError(f"unsupported type for {name}")
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind is int:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        raise ParamsError(f"{name} must be a {kind.__name__}, got {value!r}") from None
    raise ParamsError(f"unsupported type for {name}")


def build(cls: type[T], raw: dict | None, prefix: str) -> T:
    """Build a params dataclass from a mapping, casting each field and rejecting unknown keys."""
    raw = dict(raw or {})
    hints = typing.get_type_hints(cls)
    unknown = set(raw) - set(hints)
    if unknown:
        raise ParamsError(f"unknown parameter(s) in {prefix}: {', '.join(sorted(unknown))}")
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in raw:
            kind = hints[f.name]
            if dataclasses.is_dataclass(kind):
                values[f.name] = build(kind, raw[f.name], f"{prefix}.{f.name}")
            else:
                values[f.name] = _cast(raw[f.name], kind, f"{prefix}.{f.name}")
    return cls(**values)


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    with open(path, encoding="utf-8") as handle:
        raw = YAML(typ="safe").load(handle) or {}
    params = build(Params, raw, "params")
    validate(params)
    return params


def validate(params: Params) -> None:
    """Cross-field checks that a cast alone cannot make."""
    data = params.data
    if not 1 <= data.min_tickets <= data.max_tickets <= MAX_TICKETS:
        raise ParamsError(f"need 1 <= data.min_tickets <= data.max_tickets <= {MAX_TICKETS}")
    if len(data.match_weights) != 7 or min(data.match_weights) < 0 or sum(data.match_weights) <= 0:
        raise ParamsError("data.match_weights needs 7 non-negative weights (0..6 matches), not all zero")
    if not 0 <= data.bonus_prob <= 1:
        raise ParamsError("data.bonus_prob must be within 0..1")
    if not 0 <= data.natural_share <= 1:
        raise ParamsError("data.natural_share must be within 0..1")
    if not 0 <= data.prize_share <= 1 - data.natural_share:
        raise ParamsError("data.prize_share must be within 0..1 - data.natural_share")
    if min(data.coverage_floor, data.division_floor, data.place_floor) < 0:
        raise ParamsError("data.coverage_floor, data.division_floor and data.place_floor must be >= 0")
    if data.answer_format not in ANSWER_FORMATS:
        raise ParamsError(f"data.answer_format must be one of {ANSWER_FORMATS}")
    if params.train.count_power < 0:
        raise ParamsError("train.count_power must be >= 0")
    if not 0 <= params.train.drill_share < 1:
        raise ParamsError("train.drill_share must be in [0, 1)")
    if not 0 <= params.train.division_drill_share < 1:
        raise ParamsError("train.division_drill_share must be in [0, 1)")
    if params.train.division_drill_source not in ("random", "sums", "both"):
        raise ParamsError("train.division_drill_source must be random, sums or both")
    if params.train.optimizer not in OPTIMIZERS:
        raise ParamsError(f"train.optimizer must be one of {OPTIMIZERS}")
    if params.train.precision not in PRECISIONS:
        raise ParamsError(f"train.precision must be one of {PRECISIONS}")
    if params.model.n_embd % params.model.n_head:
        raise ParamsError("model.n_embd must be a multiple of model.n_head")
