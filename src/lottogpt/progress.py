"""Progress of long steps on stderr: what is done, done/total, rate, elapsed and time left.

stdout stays the data (JSON Lines from ``predict``, JSON from ``--json``), so everything here goes to
stderr. On a terminal a ``rich.progress`` bar redraws in place and leaves one plain line when done;
anywhere else (DVC stage output, CI, ``nohup``, a pipe) a plain line is printed every
``LOG_EVERY_FRACTION`` of the total or every ``LOG_EVERY_SECONDS``, whichever comes first, and once
at the end, so logs stay readable.

``set_enabled(False)`` (the CLI's ``--quiet``) or ``LOTTOGPT_PROGRESS=0`` turns bars, progress lines
and notes off; :func:`summary` lines, each stage's one-line result, always print. This module
imports no other lottogpt module, so any module may use it.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Task as RichTask
from rich.text import Text

ENV_VAR = "LOTTOGPT_PROGRESS"
LOG_EVERY_FRACTION = 0.1
LOG_EVERY_SECONDS = 15.0

_enabled: bool | None = None  # None: follow LOTTOGPT_PROGRESS
_live: Progress | None = None  # the bar display shared by nested tracks
_live_users = 0
_live_lock = threading.Lock()  # tracks may start and end in several threads (a server's workers)
_clock = time.perf_counter  # the plain lines' clock (a test replaces it)


def set_enabled(on: bool | None) -> None:
    """Turn progress on or off for this process; ``None`` follows ``LOTTOGPT_PROGRESS`` again."""
    global _enabled
    _enabled = on


def enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def format_duration(seconds: float) -> str:
    """``42.1 s`` under a minute, else ``h:mm:ss``: short enough for a summary line."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _format_fields(fields: dict[str, object]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


def _write(line: str) -> None:
    """One line on stderr, above the live bar when one is drawn."""
    if _live is not None:
        _live.console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        print(line, file=sys.stderr, flush=True)


def note(message: str) -> None:
    """A line of progress news (``training the tokenizer ...``) that does not break a live bar."""
    if enabled():
        _write(message)


def summary(message: str) -> None:
    """The end-of-stage line (what was written, how long it took); printed even when progress is off."""
    _write(message)


class _RateColumn(ProgressColumn):
    """Done per second in the task's own unit (cases/s, tokens/s)."""

    def render(self, task: RichTask) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} {task.fields['unit']}/s" if speed else f"- {task.fields['unit']}/s")


class Task:
    """What :func:`track` yields: ``advance(n, **fields)`` counts work and sets the figures shown."""

    def __init__(self, description: str, total: int, unit: str, mode: str) -> None:
        self.description, self.total, self.unit, self.mode = description, total, unit, mode
        self.done = 0
        self.fields: dict[str, object] = {}
        self.start = _clock()
        self._logged_steps = 0  # LOG_EVERY_FRACTION steps of the total already printed
        self._last_line = self.start
        self._logged_done = -1
        self._id: TaskID | None = None
        if mode == "bar" and _live is not None:
            self._id = _live.add_task(description, total=total or None, unit=unit, extra="")

    @property
    def elapsed(self) -> float:
        return _clock() - self.start

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields.update(fields)
        if self.mode == "bar" and _live is not None and self._id is not None:
            _live.update(self._id, advance=n, extra=_format_fields(self.fields))
        elif self.mode == "log":
            now = _clock()
            if self._steps() > self._logged_steps or now - self._last_line >= LOG_EVERY_SECONDS:
                self._log_line(now)

    def _log_line(self, now: float) -> None:
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.description}: {self.done:,}"]
        if self.total:
            parts[0] += f"/{self.total:,} {self.unit} ({100 * self.done / self.total:.0f}%)"
            left = (self.total - self.done) / rate if rate else float("nan")
            tail = f", {format_duration(left)} left" if rate and self.done < self.total else ""
        else:
            parts[0] += f" {self.unit}"
            tail = ""
        parts.append(f"{rate:,.1f} {self.unit}/s, {format_duration(elapsed)} elapsed{tail}")
        if self.fields:
            parts.append(_format_fields(self.fields))
        _write(" | ".join(parts))
        self._last_line, self._logged_done, self._logged_steps = now, self.done, self._steps()

    def _steps(self) -> int:
        """How many ``LOG_EVERY_FRACTION`` steps of the total are done (0.1 * 3 is not 0.3 in floats)."""
        return math.floor(self.done / self.total / LOG_EVERY_FRACTION + 1e-9) if self.total else 0

    def _finish(self) -> None:
        """The last plain line; on a terminal it replaces the bar, so scrollback reads like a log."""
        if self.mode == "bar" and _live is not None and self._id is not None:
            _live.remove_task(self._id)
            self._log_line(_clock())
        elif self.mode == "log" and self.done != self._logged_done:
            self._log_line(_clock())


def _bar_display() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
        console=Console(stderr=True), redirect_stdout=False, redirect_stderr=True, transient=True,
    )


def _mode() -> str:
    if not enabled():
        return "off"
    console = Console(stderr=True)
    return "bar" if console.is_terminal and not console.is_dumb_terminal else "log"


@contextmanager
def track(description: str, total: int, unit: str = "cases") -> Iterator[Task]:
    """Show the progress of ``total`` units of work while the block runs; nested tracks share one display."""
    global _live, _live_users
    mode = _mode()
    if mode == "bar":
        with _live_lock:
            if _live is None:
                _live = _bar_display()
                _live.start()
            _live_users += 1
    task = Task(description, total, unit, mode)
    try:
        yield task
    finally:
        task._finish()
        if mode == "bar":
            with _live_lock:
                _live_users -= 1
                if _live_users == 0 and _live is not None:
                    _live.stop()
                    _live = None
