"""`lottogpt predict --engine reference`: JSON Lines in, one JSON line out per case, errors per line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lottogpt.cli import app

GOOD = {"tickets": [[8, 21, 23, 41, 42, 43], [3, 5, 11, 16, 32, 38], [7, 11, 16, 35, 36, 44],
                    [1, 8, 11, 31, 41, 42], [13, 14, 16, 38, 42, 45], [7, 11, 30, 40, 42, 43],
                    [2, 13, 22, 32, 38, 45], [1, 3, 5, 14, 22, 45]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7}


def test_good_lines(official: dict) -> None:
    second = {"tickets": [[1, 2, 3, 4, 5, 7]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7}
    text = json.dumps(GOOD) + "\n\n" + json.dumps(second) + "\n"
    result = CliRunner().invoke(app, ["predict", "--engine", "reference"], input=text)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2
    assert lines[0]["output"].split("\n") == official["expected_output"]
    assert lines[0]["counts"] == {"3": 1, "4": 0, "5": 0, "5+bonus": 0, "6": 0}
    assert lines[0]["return_rate"] == "62.5"
    assert lines[1]["counts"]["5+bonus"] == 1
    assert lines[1]["return_rate"] == "3,000,000.0"


def test_bad_lines_fail_alone(tmp_path: Path) -> None:
    bad = [
        "not json",
        "[1, 2]",
        json.dumps({"tickets": [[1, 2, 3, 4, 5, 6]], "winning": [1, 2, 3, 4, 5, 6]}),
        json.dumps({**GOOD, "bonus": 6}),
        json.dumps({**GOOD, "winning": [1, 2, 3, 4, 5, 99]}),
        json.dumps({**GOOD, "tickets": [[1, 1, 2, 3, 4, 5]]}),
        json.dumps({**GOOD, "tickets": "1,2,3"}),
        json.dumps({**GOOD, "tickets": []}),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join([json.dumps(GOOD), *bad, json.dumps(GOOD)]) + "\n", encoding="utf-8")
    target = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["predict", "--input", str(source), "--output", str(target)])
    assert result.exit_code == 1
    answers = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert len(answers) == len(bad) + 2
    assert answers[0]["return_rate"] == answers[-1]["return_rate"] == "62.5"
    for answer in answers[1:-1]:
        assert set(answer) == {"error"} and answer["error"].startswith("[ERROR] "), answer
    assert "bonus" in answers[3]["error"]
    assert "당첨 번호와 중복" in answers[4]["error"]


@pytest.mark.slow
def test_console_script_runs_as_installed() -> None:
    process = subprocess.run([sys.executable, "-m", "lottogpt.cli", "predict"], input=json.dumps(GOOD) + "\n",
                             capture_output=True, text=True, timeout=60, check=False)
    assert process.returncode == 0, process.stderr
    assert json.loads(process.stdout)["return_rate"] == "62.5"


def test_show_work_and_unknown_engine() -> None:
    result = CliRunner().invoke(app, ["predict", "--show-work"], input=json.dumps(GOOD) + "\n")
    work = json.loads(result.stdout)["work"]
    assert work[7] == "⑧1+ 3+ 5+ 14. 22. 45. =3"
    result = CliRunner().invoke(app, ["predict", "--engine", "oracle"], input=json.dumps(GOOD) + "\n")
    assert result.exit_code == 2
    assert "unknown engine" in result.output
