"""params.yaml is the one source of defaults: the dataclasses' defaults equal it, field by field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lottogpt import params
from lottogpt.model import GPTConfig

ROOT = Path(__file__).resolve().parents[1]


def test_code_defaults_equal_params_yaml() -> None:
    from_file, from_code = params.load(ROOT / "params.yaml"), params.Params()
    differing = [f"{block.name}.{f.name}: code {getattr(getattr(from_code, block.name), f.name)!r}, "
                 f"file {getattr(getattr(from_file, block.name), f.name)!r}"
                 for block in dataclasses.fields(params.Params)
                 for f in dataclasses.fields(getattr(from_code, block.name))
                 if getattr(getattr(from_code, block.name), f.name) != getattr(getattr(from_file, block.name), f.name)]
    assert not differing, differing


def test_gpt_config_is_the_model_params_plus_vocab() -> None:
    model = params.Params().model
    config = GPTConfig(vocab_size=640, **dataclasses.asdict(model))
    names = {f.name for f in dataclasses.fields(model)}
    assert {f.name for f in dataclasses.fields(GPTConfig)} == names | {"vocab_size"}
    assert config.to_dict() == {**dataclasses.asdict(model), "vocab_size": 640}
