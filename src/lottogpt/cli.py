"""The ``lottogpt`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, TextIO

import typer

from lottogpt import kata
from lottogpt.inference import Engine, load_engine

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="A tiny GPT that imitates the lotto kata, and the kata itself.")



@app.callback()
def main() -> None:
    """A tiny GPT that imitates the lotto kata, and the kata itself."""


EngineOption = Annotated[str, typer.Option(help="Who answers: 'reference' (the kata) or 'model' (the GPT).")]
ModelOption = Annotated[str, typer.Option(
    "--model", help="Checkpoint folder, or an MLflow model URI such as models:/lottogpt@champion.")]


def parse_case_line(line: str) -> kata.Case:
    """One JSON Lines case ``{"tickets": [[...], ...], "winning": [...], "bonus": n}``, validated."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise kata.LottoError(f"입력 줄이 올바른 JSON이 아닙니다 (invalid JSON: {error.msg}).") from None
    if not isinstance(record, dict):
        raise kata.LottoError("입력 줄은 JSON 객체여야 합니다 (expected an object).")
    missing = [key for key in ("tickets", "winning", "bonus") if key not in record]
    if missing:
        raise kata.LottoError(f"입력에 {', '.join(missing)} 항목이 없습니다 (missing keys).")
    tickets, winning = record["tickets"], record["winning"]
    if not isinstance(tickets, list) or not all(isinstance(t, list) for t in tickets):
        raise kata.LottoError("tickets는 번호 목록의 목록이어야 합니다 (tickets must be a list of lists).")
    if not isinstance(winning, list):
        raise kata.LottoError("당첨 번호는 목록이어야 합니다 (winning must be a list).")
    return kata.Case.create(tickets, winning, record["bonus"])


def predict_lines(engine: Engine, lines: list[str], show_work: bool = False) -> tuple[list[dict], int]:
    """Answer every non-blank line; a bad line gets ``{"error": ...}`` and the others still run."""
    answers: list[dict | None] = []
    cases: list[tuple[int, kata.Case]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            case = parse_case_line(line)
            engine.check(case)
        except kata.LottoError as error:
            answers.append({"error": str(error)})
            continue
        cases.append((len(answers), case))
        answers.append(None)
    predictions = engine.predict([case for _, case in cases]) if cases else []
    for (index, _), prediction in zip(cases, predictions, strict=True):
        answers[index] = prediction.to_json(show_work)
    failed = sum(1 for a in answers if a is not None and "error" in a)
    return [a for a in answers if a is not None], failed


@app.command()
def predict(
    engine: EngineOption = "reference",
    model: ModelOption = "models/checkpoint",
    input: Annotated[Path | None, typer.Option("--input", help="JSON Lines file (default: stdin).")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write (default: stdout).")] = None,
    show_work: Annotated[bool, typer.Option("--show-work", help="Include the model's work lines.")] = False,
) -> None:
    """Answer JSON Lines cases, one JSON line each; exit code 1 when any line failed."""
    try:
        answering = load_engine(engine, model)
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"[ERROR] {error}", err=True)
        raise typer.Exit(2) from None
    source: TextIO = open(input, encoding="utf-8") if input else sys.stdin  # noqa: SIM115
    with source:
        lines = source.read().splitlines()
    answers, failed = predict_lines(answering, lines, show_work)
    text = "".join(json.dumps(a, ensure_ascii=False) + "\n" for a in answers)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    if failed:
        typer.echo(f"[ERROR] {failed} of {len(answers)} lines failed", err=True)
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
