"""The ``lottogpt`` command line: ``predict``, ``play``, ``eval``, ``info`` and ``serve``.

Every command reaches an engine through :func:`lottogpt.registry.open_engine` (``--engine reference``
is the kata itself, ``--engine model`` the GPT from ``--model``: a checkpoint folder or an MLflow URI
such as ``models:/lottogpt@champion``). Bad input gets the kata's ``[ERROR] ...`` message, never a
traceback.
"""

from __future__ import annotations

import json
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TextIO, TypeVar

import typer

from lottogpt import checkpoint, common, evaluate, kata, progress, registry
from lottogpt.cases import predict_lines, predict_tracked, read_cases
from lottogpt.inference import Engine, Prediction
from lottogpt.onnx_backend import BACKENDS

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="A tiny GPT that imitates the lotto kata, and the kata itself.")


QuietOption = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress on stderr (as LOTTOGPT_PROGRESS=0); errors still print.")]


@app.callback()
def main(quiet: QuietOption = False) -> None:
    """A tiny GPT that imitates the lotto kata, and the kata itself."""
    progress.set_enabled(False if quiet else None)  # None: follow LOTTOGPT_PROGRESS


EngineOption = Annotated[str, typer.Option(help="Who answers: 'reference' (the kata) or 'model' (the GPT).")]
ModelOption = Annotated[str, typer.Option(
    "--model", help="Checkpoint folder, or an MLflow model URI such as models:/lottogpt@champion.")]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
# The reference engine has no trained range; a console game still stops somewhere short of memory.
PLAY_MAX_TICKETS = 10_000


T = TypeVar("T")


class EndOfInputError(Exception):
    """stdin ended before the game did."""


def open_engine(engine: str, model: str, device: str = "auto") -> Engine:
    """Load an engine or exit 2 with an ``[ERROR]`` line (a missing checkpoint, an unknown engine...)."""
    try:
        return registry.open_engine(engine, model, device)
    except Exception as error:  # whatever went wrong, the user gets one line
        typer.echo(f"[ERROR] {error}", err=True)
        raise typer.Exit(2) from None


@app.command()
def predict(
    engine: EngineOption = "reference",
    model: ModelOption = "models/checkpoint",
    input: Annotated[Path | None, typer.Option("--input", help="JSON Lines file (default: stdin).")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="Where to write (default: stdout).")] = None,
    show_work: Annotated[bool, typer.Option("--show-work", help="Include the model's work lines.")] = False,
    quiet: QuietOption = False,
) -> None:
    """Answer JSON Lines cases, one JSON line each (progress goes to stderr); exit code 1 when any line failed."""
    if quiet:
        progress.set_enabled(False)
    answering = open_engine(engine, model)
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


# ---------------------------------------------------------------------------------------------
# play: the kata at the console
# ---------------------------------------------------------------------------------------------


def _read_line() -> str:
    try:
        return input()
    except EOFError:
        raise EndOfInputError from None


def _ask(prompt: str, parse: Callable[[str], T]) -> T:
    """Print the prompt, read a line, parse it; on a ``LottoError`` print it and ask the same again."""
    while True:
        typer.echo(prompt)
        text = _read_line()
        try:
            return parse(text)
        except kata.LottoError as error:
            typer.echo(str(error))


def _ticket_count(engine: Engine) -> Callable[[str], int]:
    """Parse an amount into a ticket count the engine can answer for."""

    def parse(text: str) -> int:
        n = kata.parse_amount(text) // kata.TICKET_PRICE
        if n > PLAY_MAX_TICKETS:
            raise kata.LottoError(f"한 번에 {PLAY_MAX_TICKETS:,}장까지 구매할 수 있습니다 "
                                  f"(at most {PLAY_MAX_TICKETS:,} tickets, got {n:,})")
        engine.check(kata.Case(((1, 2, 3, 4, 5, 6),) * n, (1, 2, 3, 4, 5, 6), 7))  # only the count matters
        return n

    return parse


def agreement(prediction: Prediction, expected: kata.Result) -> list[tuple[bool, str, str]]:
    """Line by line: (same?, the engine's line, the reference's line)."""
    got = prediction.output.split("\n")
    return [(i < len(got) and got[i] == want, got[i] if i < len(got) else "", want)
            for i, want in enumerate(expected.lines)]


def _print_check(prediction: Prediction, case: kata.Case) -> None:
    rows = agreement(prediction, kata.score(case))
    typer.echo("")
    typer.echo("검증 (check against the reference program):")
    for same, got, want in rows:
        if same:
            typer.echo(typer.style("  ✓ ", fg="green") + got)
        else:
            typer.echo(typer.style("  ✗ ", fg="red") + (got or "(없음 / missing)"))
            typer.echo(f"      정답 (reference): {want}")
    right = sum(same for same, _, _ in rows)
    extra = len(prediction.output.split("\n")) - len(rows)
    note = f", plus {extra} extra line(s)" if extra > 0 else ""
    typer.echo(f"{len(rows)}줄 중 {right}줄 일치 (the engine agrees on {right} of {len(rows)} lines{note}).")


def _play(answering: Engine, rng: random.Random, check: bool, show_work: bool) -> None:
    n = _ask(kata.AMOUNT_PROMPT, _ticket_count(answering))
    tickets = [kata.draw_ticket(rng) for _ in range(n)]
    typer.echo("")
    typer.echo(f"{n}{kata.PURCHASED_SUFFIX}")
    for ticket in tickets:
        typer.echo(kata.format_ticket(ticket))
    typer.echo("")
    winning = _ask(kata.WINNING_PROMPT, kata.parse_winning)
    typer.echo("")
    bonus = _ask(kata.BONUS_PROMPT, lambda text: kata.parse_bonus(text, winning))
    case = kata.Case.create(tickets, winning, bonus)
    prediction = answering.predict([case])[0]
    typer.echo("")
    typer.echo(kata.STATS_HEADER)
    typer.echo(kata.STATS_RULE)
    typer.echo(prediction.output)
    if show_work:
        typer.echo("")
        typer.echo("작업 (the engine's work lines):")
        for line in prediction.work or ["(없음 / none)"]:
            typer.echo(f"  {line}")
    if check:
        _print_check(prediction, case)


@app.command()
def play(
    engine: EngineOption = "model",
    model: ModelOption = "models/checkpoint",
    seed: Annotated[int | None, typer.Option(help="Seed of the ticket draw (the same seed, the same tickets).")]
    = None,
    check: Annotated[bool, typer.Option("--check", help="Also run the reference program, line by line.")] = False,
    show_work: Annotated[bool, typer.Option("--show-work", help="Print the model's work lines.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Play the kata at the console: amount, random tickets, winning numbers, bonus, statistics."""
    answering = open_engine(engine, model, device)
    rng = random.Random(seed)
    try:
        _play(answering, rng, check, show_work)
    except EndOfInputError:
        typer.echo("[ERROR] 입력이 끝났습니다 (end of input before the game finished).", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("\n중단했습니다 (interrupted).", err=True)
        raise typer.Exit(130) from None
    except Exception as error:  # no traceback reaches the player
        typer.echo(f"[ERROR] {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None


# ---------------------------------------------------------------------------------------------
# eval, info
# ---------------------------------------------------------------------------------------------


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


@app.command("eval")
def eval_(
    file: Annotated[Path, typer.Argument(help="JSON Lines cases, or a corpus split such as data/corpus/test.parquet.",
                                         exists=True, dir_okay=False)],
    engine: EngineOption = "model",
    model: ModelOption = "models/checkpoint",
    max_cases: Annotated[int, typer.Option(help="Score only the first N cases (0: all).", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON instead of tables.")] = False,
    device: DeviceOption = "auto",
    quiet: QuietOption = False,
) -> None:
    """Score an engine against the reference program on a file of cases (exact match, per line, by tickets)."""
    from rich.console import Console
    from rich.table import Table

    if quiet:
        progress.set_enabled(False)
    answering = open_engine(engine, model, device)
    try:
        cases, errors = read_cases(file, max_cases)
    except Exception as error:  # an unreadable file: one line, not a traceback
        typer.echo(f"[ERROR] {file}: {error}", err=True)
        raise typer.Exit(2) from None
    usable, skipped = [], 0
    for case in cases:
        try:
            answering.check(case)
            usable.append(case)
        except kata.LottoError:
            skipped += 1
    for line in errors:
        typer.echo(f"[ERROR] {line}", err=True)
    if not usable:
        typer.echo(f"[ERROR] {file}: no case to score ({skipped} outside the engine's range, "
                   f"{len(errors)} bad lines)", err=True)
        raise typer.Exit(1)
    scored = evaluate.score(usable, predict_tracked(answering, usable, f"scoring {file.name}"))
    metrics = {**evaluate.summarize(scored), "skipped_out_of_range": skipped, "bad_lines": len(errors)}
    details = evaluate.breakdown(scored)
    if as_json:
        typer.echo(json.dumps({"metrics": metrics, **details}, indent=2))
    else:
        console = Console()
        table = Table(title=f"{answering.name} on {file.name}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key, value in metrics.items():
            table.add_row(key, _percent(value) if isinstance(value, float) else f"{value:,}")
        console.print(table)
        by_tickets = Table(title="exact match by number of tickets")
        by_tickets.add_column("tickets", justify="right")
        by_tickets.add_column("cases", justify="right")
        by_tickets.add_column("exact match", justify="right")
        for n, row in details["by_tickets"].items():
            by_tickets.add_row(n, f"{row['cases']:,}", _percent(row["exact_match"]))
        console.print(by_tickets)
    if errors:
        raise typer.Exit(1)


def engine_info(answering: Engine) -> dict:
    """``engine.info()`` with the model version and the number of parameters."""
    info = {"model_version": answering.version(), **answering.info()}
    network = getattr(answering, "model", None)
    if network is not None:
        info["n_parameters"] = sum(p.numel() for p in network.parameters())
    return info


@app.command()
def info(
    engine: EngineOption = "model",
    model: ModelOption = "models/checkpoint",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """What answers: model version, shape and params, data and tokenizer hashes, trained ticket range."""
    details = engine_info(open_engine(engine, model, device))
    if as_json:
        typer.echo(json.dumps(details, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    low, high = details.get("min_tickets"), details.get("max_tickets")
    details["trained_tickets"] = f"{low}..{high if high is not None else 'any'}"
    table = Table(title="lottogpt engine", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in details.items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
        table.add_row(key, text)
    Console().print(table)


# ---------------------------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------------------------


def _log_like_uvicorn(level: str) -> None:
    """The server's own log lines (model loaded, shutting down...) next to uvicorn's, in its format."""
    import logging

    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("lottogpt")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 exposes it; the image does).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).", min=0, max=65535)] = 8000,
    engine: EngineOption = "model",
    model: Annotated[str, typer.Option("--model", envvar="LOTTOGPT_MODEL", help=(
        "Checkpoint folder, or an MLflow model URI such as models:/lottogpt@champion."))] = "models/checkpoint",
    device: DeviceOption = "auto",
    max_batch_size: Annotated[int, typer.Option(help="Cases in one forward pass.", min=1)] = 64,
    max_wait_ms: Annotated[float, typer.Option(help=(
        "How long the first queued case waits for company (0: its batch starts at once; cases that arrive "
        "during a decode share the next one)."), min=0)] = 0.0,
    speculative: Annotated[bool, typer.Option(help=(
        "Decode a case alone in its batch speculatively: the same answer in fewer forward passes."))] = True,
    threads: Annotated[int, typer.Option(help=(
        "torch CPU threads (0: torch's default, one per core). 1 because decoding is many small products: on a "
        "2-core machine one thread is as fast alone and does not collapse when other work takes a core."),
        min=0)] = 1,
    backend: Annotated[str, typer.Option(help=(
        "What runs a lone case's forward passes: onnx (ONNX Runtime), torch, or auto (onnx on CPU, torch on "
        "CUDA). The same answers; batches of several cases stay on torch."))] = "auto",
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the playground page at / and the HTTP API (POST /v1/predict, /v1/play, /v1/console; GET /healthz,
    /readyz, /info) with uvicorn."""
    import uvicorn

    from lottogpt.serving import Settings, create_app  # lazy: only `serve` needs FastAPI

    if engine not in ("model", "reference"):
        typer.echo(f"[ERROR] unknown engine {engine!r}: use 'reference' or 'model'", err=True)
        raise typer.Exit(2)
    if backend not in BACKENDS:
        typer.echo(f"[ERROR] unknown backend {backend!r}: use {', '.join(BACKENDS)}", err=True)
        raise typer.Exit(2)
    if log_level.lower() not in ("critical", "error", "warning", "info", "debug", "trace"):
        typer.echo(f"[ERROR] unknown log level {log_level!r}: critical, error, warning, info, debug or trace",
                   err=True)
        raise typer.Exit(2)
    if engine == "model" and not model.startswith("models:/"):
        try:
            checkpoint.read_config(model)
        except FileNotFoundError as error:
            typer.echo(f"[ERROR] {error}, or mount a models/ folder", err=True)
            raise typer.Exit(2) from None
    _log_like_uvicorn(log_level.lower())
    common.set_threads(threads)  # process-wide, so the inference thread (started later) has it too
    settings = Settings(engine=engine, model=model, device=device, max_batch_size=max_batch_size,
                        max_wait_ms=max_wait_ms, speculative=speculative, backend=backend)
    config = uvicorn.Config(create_app(settings=settings), host=host, port=port, log_level=log_level.lower(),
                            lifespan="on", timeout_graceful_shutdown=20)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the handler that was
    # there before it; a no-op one makes a graceful stop exit 0 instead of dying by the signal.
    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, lambda *_: None)
    uvicorn.Server(config).run()


if __name__ == "__main__":
    app()
