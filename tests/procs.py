"""Child processes that leave nothing running: started in a session of their own, killed with all descendants.

``torchrun`` starts each rank in a new session, so killing torchrun's process group misses the ranks;
:func:`kill_tree` finds them through ``/proc`` and kills each by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def descendants(pid: int) -> list[int]:
    """The PIDs of every living descendant of ``pid`` (children first)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the field after "(comm) state"
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped by its new parent, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL ``process``, its process group and every descendant at once, reap it, and wait (10 s at most)
    until the descendants are gone.

    Nothing is sent once ``process`` has been reaped: its PID may then belong to someone else.
    """
    if process.returncode is not None:
        return
    pids = [process.pid, *descendants(process.pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # SIGKILL lands asynchronously: on a busy machine a rank can still run for a moment after kill().
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)


@contextlib.contextmanager
def started(args: Sequence[str], **popen: object) -> Iterator[subprocess.Popen]:
    """``Popen(args)`` in a new session; whatever is still running of it is killed when the block ends."""
    process = subprocess.Popen(list(args), start_new_session=True, **popen)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        kill_tree(process)


def run(args: Sequence[str], timeout: float, **popen: object) -> subprocess.CompletedProcess:
    """Like ``subprocess.run(capture_output=True, text=True)``, but on timeout (or any error) it kills the tree."""
    with started(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen) as process:
        out, err = process.communicate(timeout=timeout)
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)
