"""`lottogpt play` (and `eval`, `info`, `serve`'s refusals): the kata at the console, driven by CliRunner."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lottogpt import kata
from lottogpt.cli import app

OFFICIAL_INPUT = "8000\n1,2,3,4,5,6\n7\n"


def play(*args: str, input: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["play", *args], input=input)
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def drawn(seed: int, n: int) -> list[tuple[int, ...]]:
    rng = random.Random(seed)
    return [kata.draw_ticket(rng) for _ in range(n)]


def after_rule(output: str) -> list[str]:
    lines = output.split("\n")
    return lines[lines.index(kata.STATS_RULE) + 1:]


def test_reference_game_is_the_kata() -> None:
    code, output = play("--engine", "reference", "--seed", "42", input=OFFICIAL_INPUT)
    assert code == 0, output
    tickets = drawn(42, 8)
    case = kata.Case.create(tickets, (1, 2, 3, 4, 5, 6), 7)
    expected = [kata.AMOUNT_PROMPT, "", "8개를 구매했습니다.", *map(kata.format_ticket, tickets), "",
                kata.WINNING_PROMPT, "", kata.BONUS_PROMPT, "", kata.STATS_HEADER, kata.STATS_RULE,
                *kata.score(case).lines]
    assert output.rstrip("\n").split("\n") == expected
    for ticket in tickets:
        assert list(ticket) == sorted(ticket)


def test_seed_reproducible() -> None:
    first = play("--engine", "reference", "--seed", "7", input=OFFICIAL_INPUT)
    second = play("--engine", "reference", "--seed", "7", input=OFFICIAL_INPUT)
    other = play("--engine", "reference", "--seed", "8", input=OFFICIAL_INPUT)
    assert first == second
    assert first[1] != other[1]


def test_bad_inputs_get_the_kata_error_and_the_same_question(official: dict) -> None:
    bad_amounts = list(official["error_examples"])  # the kata's published bad inputs: 1000j, 1200
    typed = [*bad_amounts, "0", "8000", "1,2,3", "1,2,3,4,5,46", "1,1,2,3,4,5", "a,b,c,d,e,f", "1,2,3,4,5,6",
             "6", "x", "46", "7"]
    code, output = play("--engine", "reference", "--seed", "1", input="\n".join(typed) + "\n")
    assert code == 0, output
    lines = output.split("\n")
    assert lines.count(kata.AMOUNT_PROMPT) == len(bad_amounts) + 2
    assert lines.count(kata.WINNING_PROMPT) == 5
    assert lines.count(kata.BONUS_PROMPT) == 4
    errors = [line for line in lines if line.startswith("[ERROR]")]
    assert errors == [
        "[ERROR] 구입 금액은 숫자여야 합니다.", "[ERROR] 구입 금액은 1,000원 단위여야 합니다.",
        "[ERROR] 구입 금액은 0보다 커야 합니다.", "[ERROR] 당첨 번호는 6개여야 합니다.",
        "[ERROR] 로또 번호는 1부터 45 사이의 숫자여야 합니다.", "[ERROR] 당첨 번호는 중복될 수 없습니다.",
        "[ERROR] 당첨 번호는 쉼표(,)로 구분된 숫자여야 합니다.",
        "[ERROR] 보너스 번호는 당첨 번호와 중복될 수 없습니다.",
        "[ERROR] 보너스 번호는 숫자여야 합니다.", "[ERROR] 로또 번호는 1부터 45 사이의 숫자여야 합니다.",
    ]
    # every error is followed by the same question again
    for index, line in enumerate(lines):
        if line.startswith("[ERROR]"):
            assert lines[index + 1] in (kata.AMOUNT_PROMPT, kata.WINNING_PROMPT, kata.BONUS_PROMPT)
    case = kata.Case.create(drawn(1, 8), (1, 2, 3, 4, 5, 6), 7)
    assert after_rule(output)[:6] == kata.score(case).lines


@pytest.mark.parametrize("typed", ["", "8000\n", "8000\n1,2,3,4,5,6\n", "1000j\n"])
def test_end_of_input_ends_cleanly(typed: str) -> None:
    code, output = play("--engine", "reference", input=typed)
    assert code == 1
    assert "[ERROR] 입력이 끝났습니다" in output


def test_check_and_show_work_with_reference() -> None:
    code, output = play("--engine", "reference", "--seed", "5", "--check", "--show-work", input=OFFICIAL_INPUT)
    assert code == 0, output
    assert "6줄 중 6줄 일치" in output
    assert output.count("  ✓ ") == 6 and "✗" not in output
    work = [line.strip() for line in output.split("\n") if line.startswith("  ") and "=" in line]
    assert len(work) == 8 and work[0].startswith("①")


def test_huge_amount_is_refused_not_allocated() -> None:
    code, output = play("--engine", "reference", "--seed", "5", input="1" + "0" * 30 + "\n" + OFFICIAL_INPUT)
    assert code == 0, output
    assert "[ERROR] 한 번에 10,000장까지" in output


@pytest.mark.slow
def test_model_engine_on_tiny_checkpoint(tiny_checkpoint: Path) -> None:
    # 9 tickets are outside the tiny model's trained range (1..8): the error names the range, then the same question
    typed = "9000\n8000\n1,2,3,4,5,6\n7\n"
    args = ("--engine", "model", "--model", str(tiny_checkpoint), "--seed", "3", "--check", "--show-work",
            "--device", "cpu")
    code, output = play(*args, input=typed)
    assert code == 0, output
    lines = output.split("\n")
    refusal = [line for line in lines if line.startswith("[ERROR]")]
    assert len(refusal) == 1 and "1~8" in refusal[0] and "1..8" in refusal[0]
    assert lines[lines.index(refusal[0]) + 1] == kata.AMOUNT_PROMPT
    assert "8개를 구매했습니다." in lines
    assert kata.STATS_HEADER in lines and kata.STATS_RULE in lines
    assert "작업 (the engine's work lines):" in lines
    # the tiny model answers garbage: only the shape of the check is asserted
    assert "검증 (check against the reference program):" in lines
    assert sum(line.startswith(("  ✓ ", "  ✗ ")) for line in lines) == 6
    assert any(line.startswith("6줄 중 ") for line in lines)
    assert play(*args, input=typed) == (code, output)  # greedy decoding: the same game, the same answer


def test_missing_model_and_unknown_engine(tmp_path: Path) -> None:
    code, output = play("--model", str(tmp_path / "nothing"), input=OFFICIAL_INPUT)
    assert code == 2 and "[ERROR] no checkpoint" in output
    code, output = play("--engine", "oracle", input=OFFICIAL_INPUT)
    assert code == 2 and "unknown engine" in output


@pytest.mark.slow
def test_a_device_this_torch_cannot_use_is_one_error_line(tiny_checkpoint: Path) -> None:
    code, output = play("--model", str(tiny_checkpoint), "--device", "tpu", input=OFFICIAL_INPUT)
    assert code == 2 and "[ERROR] unknown device 'tpu': use auto, cpu, cuda, cuda:N or mps" in output
    assert "Traceback" not in output


# --- eval, info, serve (refusals only; the server itself is tested in test_server.py / test_docker.py) ---


def test_eval_reference_on_jsonl(tmp_path: Path) -> None:
    rng = random.Random(0)
    cases = [kata.Case.create([kata.draw_ticket(rng) for _ in range(n)], (1, 2, 3, 4, 5, 6), 7) for n in (1, 3, 3)]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c.to_json()) + "\n" for c in cases), encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(path), "--engine", "reference", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metrics"]["cases"] == 3 and report["metrics"]["exact_match"] == 1.0
    assert report["by_tickets"]["3"]["cases"] == 2
    table = CliRunner().invoke(app, ["eval", str(path), "--engine", "reference"])
    assert table.exit_code == 0 and "exact_match" in table.stdout and "100.0%" in table.stdout
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"tickets": [[1, 2, 3]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7}\n')
    bad = CliRunner().invoke(app, ["eval", str(path), "--engine", "reference", "--json"])
    assert bad.exit_code == 1 and "[ERROR] line 4: [ERROR] 로또 번호는 6개여야 합니다." in bad.output
    assert json.loads(bad.stdout)["metrics"]["bad_lines"] == 1


@pytest.mark.slow
def test_eval_model_on_corpus_split(tiny_checkpoint: Path, tiny_corpus: Path) -> None:
    split = tiny_corpus / "test.parquet"
    result = CliRunner().invoke(app, ["eval", str(split), "--model", str(tiny_checkpoint), "--max-cases", "6",
                                      "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["cases"] == 6 and 0.0 <= metrics["exact_match"] <= 1.0
    assert {"format_valid", "counts_exact", "line_rate"} <= set(metrics)


@pytest.mark.slow
def test_info_of_the_tiny_model(tiny_checkpoint: Path) -> None:
    result = CliRunner().invoke(app, ["info", "--model", str(tiny_checkpoint), "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["engine"] == "model" and info["min_tickets"] == 1 and info["max_tickets"] == 8
    assert info["model_version"].startswith(f"step{info['step']}-")
    assert len(info["tokenizer_sha256"]) == 64 and len(info["data_sha256"]) == 64
    assert info["n_parameters"] > 0 and info["params"]["model"]["n_layer"] == 1
    table = CliRunner().invoke(app, ["info", "--model", str(tiny_checkpoint), "--device", "cpu"])
    assert table.exit_code == 0 and "trained_tickets" in table.stdout and "1..8" in table.stdout


def test_serve_refuses_without_a_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "none"), "--port", "0"])
    assert result.exit_code == 2 and "[ERROR] no checkpoint" in result.output
    result = CliRunner().invoke(app, ["serve", "--engine", "oracle"])
    assert result.exit_code == 2 and "unknown engine" in result.output
    result = CliRunner().invoke(app, ["serve", "--backend", "tvm"])
    assert result.exit_code == 2 and "[ERROR] unknown backend 'tvm'" in result.output


@pytest.mark.slow
def test_speculative_engine_answers_as_the_plain_one(tiny_checkpoint: Path) -> None:
    from lottogpt.inference import ModelEngine, ngram_drafter

    plain = ModelEngine(tiny_checkpoint, device="cpu")
    speculative = ModelEngine(tiny_checkpoint, device="cpu", speculative=True)
    assert (plain.info()["speculative"], speculative.info()["speculative"]) == (False, True)
    rng = random.Random(4)
    cases = [kata.Case.create([kata.draw_ticket(rng) for _ in range(n)], (1, 2, 3, 4, 5, 6), 7) for n in (1, 4, 8)]
    alone = [speculative.predict([case])[0].output for case in cases]  # each case alone: speculative
    assert alone == [p.output for p in plain.predict(cases)]
    again = ngram_drafter(speculative.tokenizer, speculative.answer_format, 1, 8)
    assert again.table == speculative.drafter.table  # counted on the same seeded draws
