"""Progress on stderr: plain lines at the interval off a terminal, a bar on one, nothing with --quiet, and
stdout that carries only the data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lottogpt import kata, progress
from lottogpt.cases import decode_batches, predict_tracked
from lottogpt.cli import app
from lottogpt.inference import ModelEngine, ReferenceEngine

LINE = re.compile(r"^work: (\d+)/(\d+) cases \((\d+)%\) \| [\d,.]+ cases/s, [\d.:]+( s)? elapsed(, [\d.:]+( s)? left)?")


@pytest.fixture(autouse=True)
def _progress_follows_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with progress on and no --quiet left over from another."""
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    progress.set_enabled(None)
    yield
    progress.set_enabled(None)


def test_plain_lines_every_tenth(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.track("work", 100) as task:
        for _ in range(100):
            task.advance()
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert out == ""
    assert [int(LINE.match(line).group(1)) for line in lines] == list(range(10, 101, 10)), err
    assert "\x1b" not in err and "\r" not in err  # no terminal codes in a log
    assert all(" left" in line for line in lines[:-1]) and " left" not in lines[-1]


def test_plain_lines_every_interval(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    now = [0.0]
    monkeypatch.setattr(progress, "_clock", lambda: now[0])
    with progress.track("work", 1000, unit="tokens") as task:
        for seconds in (5, 5, 10, 20):  # lines at 20 s (15 s after the start) and at 40 s
            now[0] += seconds
            task.advance(1, loss=2.3125, step=7)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "work: 3/1,000 tokens (0%) | 0.1 tokens/s, 20.0 s elapsed, 1:50:47 left | loss=2.312 step=7"
    assert lines[1].startswith("work: 4/1,000 tokens (0%) | 0.1 tokens/s, 40.0 s elapsed, 2:46:00 left")
    assert len(lines) == 2  # the end adds no line: the last count was already printed


def test_a_terminal_gets_a_bar_then_one_plain_line(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: treat stderr as a terminal
    with progress.track("work", 5) as task:
        for _ in range(5):
            task.advance()
        progress.note("halfway there")
    out, err = capsys.readouterr()
    assert out == ""
    assert "\x1b[" in err  # drawn with terminal codes
    assert "halfway there" in err and "work: 5/5 cases (100%)" in err


def test_off_silences_bars_lines_and_notes_but_not_summaries(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    for off in (lambda: monkeypatch.setenv(progress.ENV_VAR, "0"), lambda: progress.set_enabled(False)):
        off()
        with progress.track("work", 10) as task:
            task.advance(10)
        progress.note("a note")
        progress.summary("stage: wrote x in 1.0 s")
        assert capsys.readouterr().err == "stage: wrote x in 1.0 s\n"
    progress.set_enabled(True)  # overrides LOTTOGPT_PROGRESS=0
    progress.note("back")
    assert capsys.readouterr().err == "back\n"


def _cases_file(tmp_path: Path, n: int) -> Path:
    cases = [kata.Case(((1, 2, 3, 4, 5, 6 + i % 30),), (1, 2, 3, 4, 5, 40), 41) for i in range(n)]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c.to_json()) + "\n" for c in cases), encoding="utf-8")
    return path


def test_predict_stdout_is_only_json_lines_with_progress_on(tmp_path: Path) -> None:
    path = _cases_file(tmp_path, 600)  # three reference batches
    result = CliRunner().invoke(app, ["predict", "--engine", "reference", "--input", str(path)])
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 600 and all("output" in a for a in answers)
    assert "predicting: 600/600 cases (100%)" in result.stderr


@pytest.mark.parametrize("how", ["--quiet", "-q before the command", "LOTTOGPT_PROGRESS=0"])
def test_quiet_and_env_silence_predict_and_eval(tmp_path: Path, how: str) -> None:
    path = _cases_file(tmp_path, 600)
    env = {progress.ENV_VAR: "0"} if how.startswith("LOTTOGPT") else {}
    for command in (["predict", "--engine", "reference", "--input", str(path)],
                    ["eval", str(path), "--engine", "reference", "--json"]):
        args = ["-q", *command] if how.startswith("-q") else [*command, "--quiet"] if how == "--quiet" else command
        result = CliRunner().invoke(app, args, env=env)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        assert result.stdout.strip()
    loud = CliRunner().invoke(app, ["eval", str(path), "--engine", "reference", "--json"])
    assert "scoring cases.jsonl: 600/600" in loud.stderr  # the flag did not outlive its command
    assert json.loads(loud.stdout)["metrics"]["cases"] == 600


def test_batch_by_batch_gives_the_same_answers(tiny_checkpoint: Path) -> None:
    """predict_tracked hands the engine the batches greedy_decode forms itself: same answers, same batches."""
    engine = ModelEngine(tiny_checkpoint, device="cpu", batch_size=3, threads=1)
    cases = [kata.Case(tuple((1, 2, 3, 4, 5, 6 + j) for j in range(n)), (1, 2, 3, 4, 5, 40), 41)
             for n in (1, 2, 1, 3, 1, 2, 1)]
    batches = decode_batches(engine, cases)
    assert sorted(i for b in batches for i in b) == list(range(len(cases)))
    assert all(len({len(cases[i].tickets) for i in b}) == 1 and len(b) <= 3 for b in batches)
    assert predict_tracked(engine, cases, "work") == engine.predict(cases)
    assert len(decode_batches(ReferenceEngine(), cases)) == 1
