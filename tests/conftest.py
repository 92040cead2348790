"""Shared fixtures: the kata's published example from ../shared, and a tiny corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lottogpt import data
from lottogpt.params import DataParams

ROOT = Path(__file__).resolve().parents[1]
SHARED_EXAMPLE = ROOT.parent / "shared" / "kata" / "official_example.json"


@pytest.fixture(scope="session")
def official() -> dict:
    """The published example: from ../shared when present, else the same facts kept in the kata."""
    if SHARED_EXAMPLE.exists():
        return json.loads(SHARED_EXAMPLE.read_text(encoding="utf-8"))
    from lottogpt import kata

    case = kata.official_example()
    return {"inputs": ["8000", "1,2,3,4,5,6", "7"], "tickets": [list(t) for t in case.tickets],
            "winning": list(case.winning), "bonus": case.bonus, "expected_output": kata.score(case).lines,
            "error_examples": {"1000j": "[ERROR]", "1200": "[ERROR]"}}


TINY = DataParams(seed=7, n_train=400, n_val=40, n_test=60, n_test_natural=60, min_tickets=1, max_tickets=4)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    data.write_corpus(TINY, out, workers=1)
    return out
