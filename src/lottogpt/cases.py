"""Cases in and answers out, as files and lines: what ``lottogpt predict`` / ``eval`` and the MLflow model share.

A case line is JSON ``{"tickets": [[...], ...], "winning": [...], "bonus": n}``; a bad line gets the
kata's error message and the other lines still run.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import polars as pl

from lottogpt import data, kata, progress
from lottogpt.inference import Engine, ModelEngine, Prediction, prompt_tokens

# Cases per call for engines that do not batch (the reference): often enough for a steady progress line.
UNBATCHED_CHUNK = 256


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


def decode_batches(engine: Engine, cases: list[kata.Case]) -> list[list[int]]:
    """The indices of ``cases`` in the batches a model engine decodes together, in its order.

    ``decode.greedy_decode`` batches prompts of one token length, ``batch_size`` at a time; handing the
    engine one such batch per call shows progress and leaves every batch, and so every answer, as it was.
    """
    if not isinstance(engine, ModelEngine):
        return [list(range(i, min(i + UNBATCHED_CHUNK, len(cases)))) for i in range(0, len(cases), UNBATCHED_CHUNK)]
    groups: dict[int, list[int]] = defaultdict(list)
    for index, case in enumerate(cases):
        groups[len(prompt_tokens(engine.tokenizer, case, engine.answer_format))].append(index)
    size = engine.batch_size
    return [indices[i:i + size] for indices in groups.values() for i in range(0, len(indices), size)]


def predict_tracked(engine: Engine, cases: list[kata.Case], description: str) -> list[Prediction]:
    """``engine.predict(cases)``, batch by batch, with progress on stderr when there is more than one batch.

    One batch (a request to a server, a game of ``play``) has nothing to show until it is done.
    """
    batches = decode_batches(engine, cases)
    if len(batches) <= 1:
        return engine.predict(cases) if cases else []
    found: dict[int, Prediction] = {}
    with progress.track(description, len(cases)) as task:
        for batch in batches:
            found.update(zip(batch, engine.predict([cases[i] for i in batch]), strict=True))
            task.advance(len(batch))
    return [found[index] for index in range(len(cases))]


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
    predictions = predict_tracked(engine, [case for _, case in cases], "predicting")
    for (index, _), prediction in zip(cases, predictions, strict=True):
        answers[index] = prediction.to_json(show_work)
    failed = sum(1 for a in answers if a is not None and "error" in a)
    return [a for a in answers if a is not None], failed


def read_cases(path: Path, max_cases: int = 0) -> tuple[list[kata.Case], list[str]]:
    """Cases from a corpus Parquet split or a JSON Lines file; and an ``[ERROR]`` line per bad line."""
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path, columns=["tickets", "winning", "bonus"])
        if max_cases:
            frame = frame.head(max_cases)
        return data.frame_cases(frame), []
    cases, errors = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if max_cases and len(cases) >= max_cases:
                break
            try:
                cases.append(parse_case_line(line))
            except kata.LottoError as error:
                errors.append(f"line {number}: {error}")
    return cases, errors
