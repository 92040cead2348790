"""The MLflow registration against a real ``mlflow server`` (SQLite store, proxied artifacts) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lottogpt import kata, registry

from .conftest import tiny_params

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
LOCK = """schema: '2.0'
stages:
  generate:
    outs:
    - path: data/corpus
      hash: md5
      md5: 11111111111111111111111111111111.dir
  tokenizer:
    outs:
    - path: models/tokenizer
      hash: md5
      md5: 22222222222222222222222222222222.dir
  train:
    outs:
    - path: models/checkpoint
      hash: md5
      md5: 33333333333333333333333333333333.dir
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(uri: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"mlflow server did not start in {seconds} s:\n{log.read_text()}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``mlflow server`` on a free port with a temporary SQLite store and artifacts folder; stopped after.

    It boots while the tiny checkpoint trains: ``registered`` calls ``wait()`` when it needs it.
    """
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"  # no job runner and its 7 huey consumers: 2 processes
    log = root / "server.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", str(root / "artifacts")],
            cwd=root, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        yield {"uri": uri, "artifacts": root / "artifacts", "wait": lambda: wait_until_up(uri, process, log)}
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the server and its workers: its own session
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def fake_metrics(path: Path, exact: float) -> Path:
    path.write_text(json.dumps({
        "test": {"cases": 60, "exact_match": exact, "format_valid": 1.0, "counts_exact": exact},
        "test_natural": {"cases": 60, "exact_match": exact / 2},
        "official_example": {"exact_match": 0.0, "exact_match_tool": 0.0},
        "throughput": {"cases_per_second": 12.5, "seconds": 4.8, "device": "cpu"},
    }))
    return path


@pytest.fixture(scope="module")
def registered(server: dict, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The tiny checkpoint registered three times: exact match 0.5, then 0.4 (challenger), then 0.6 (champion)."""
    import mlflow

    server["wait"]()
    tmp = tmp_path_factory.mktemp("register")
    (tmp / "dvc.lock").write_text(LOCK)
    curve = tmp / "curve.csv"
    curve.write_text("step,loss,lr,val_loss,val_exact_match\n1,5.9,0.001,,\n2,5.8,0.002,5.7,0.0\n3,5.6,0.001,,\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", server["uri"])
        patch.setenv("DVC_EXP_NAME", "tiny-exp")
        patch.delenv("DVC_ROOT", raising=False)
        records = []
        for i, exact in enumerate((0.5, 0.4, 0.6)):
            records.append(registry.register(tiny_params(), tiny_checkpoint, fake_metrics(tmp / f"m{i}.json", exact),
                                             curve, tmp / "dvc.lock", tmp / f"registration{i}.json"))
        rerun = registry.register(tiny_params(), tiny_checkpoint, tmp / "m2.json", curve, tmp / "dvc.lock", None)
        mlflow.set_tracking_uri(server["uri"])
        mlflow.set_registry_uri(server["uri"])
        client = mlflow.MlflowClient(server["uri"], server["uri"])
        yield {"records": records, "rerun": rerun, "tmp": tmp, "client": client}


def test_champion_moves_only_on_a_better_test_exact_match(registered: dict) -> None:
    first, second, third = registered["records"]
    assert (first["version"], first["alias"], first["previous_champion_version"]) == (1, "champion", None)
    assert (second["version"], second["alias"]) == (2, "challenger")
    assert (second["previous_champion_version"], second["previous_champion_exact_match"]) == (1, 0.5)
    assert (third["version"], third["alias"], third["previous_champion_version"]) == (3, "champion", 1)
    client = registered["client"]
    assert str(client.get_model_version_by_alias("lottogpt", "champion").version) == "3"
    assert str(client.get_model_version_by_alias("lottogpt", "challenger").version) == "2"
    assert json.loads((registered["tmp"] / "registration2.json").read_text())["alias"] == "champion"


def test_rerunning_the_stage_registers_nothing_new(registered: dict) -> None:
    rerun = registered["rerun"]
    assert (rerun["version"], rerun["reused"], rerun["alias"]) == (3, True, "champion")
    assert len(registered["client"].search_model_versions("name='lottogpt'")) == 3


def test_run_holds_params_metrics_curve_and_tags(registered: dict) -> None:
    client = registered["client"]
    run = client.get_run(registered["records"][2]["run_id"])
    assert run.data.params["train.max_steps"] == "6"
    assert run.data.params["model.n_embd"] == "32"
    assert json.loads(run.data.params["data.match_weights"]) == [1.0] * 7
    assert run.data.metrics["test/exact_match"] == 0.6
    assert run.data.metrics["test_natural/exact_match"] == 0.3
    assert run.data.metrics["throughput/cases_per_second"] == 12.5
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")] == [
        (1, 5.9), (2, 5.8), (3, 5.6)]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/val_loss")] == [2]
    tags = run.data.tags
    assert tags["dvc.corpus_md5"] == "11111111111111111111111111111111.dir"
    assert tags["dvc.tokenizer_md5"] == "22222222222222222222222222222222.dir"
    assert tags["dvc.checkpoint_md5"] == "33333333333333333333333333333333.dir"
    assert tags["dvc_exp_name"] == "tiny-exp"
    assert run.info.run_name == "tiny-exp"
    assert len(tags["mlflow.source.git.commit"]) == 40  # the tests run inside the project's git repo
    version = client.get_model_version("lottogpt", "3")
    assert version.tags["test_exact_match"] == "0.6"
    assert version.tags["dvc.checkpoint_md5"] == tags["dvc.checkpoint_md5"]


def cases() -> list[dict]:
    return [
        {"tickets": [[8, 21, 23, 41, 42, 43], [1, 3, 5, 14, 22, 45]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7},
        {"tickets": [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7},
        {"tickets": [[1, 2, 3, 4, 5, 5]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7},  # a duplicate: an error
    ]


def answers(engine: object) -> list[dict]:
    """``lottogpt predict``'s answers to ``cases()`` (all in one decode batch)."""
    from lottogpt.cases import predict_lines

    result, failed = predict_lines(engine, [json.dumps(c) for c in cases()])  # type: ignore[arg-type]
    assert failed == 1
    return result


@pytest.fixture(scope="module")
def expected(tiny_checkpoint: Path) -> list[dict]:
    from lottogpt.inference import ModelEngine

    return answers(ModelEngine(tiny_checkpoint))


def test_champion_pyfunc_answers_like_the_checkpoint(registered: dict, expected: list[dict]) -> None:
    import mlflow
    import pandas as pd

    model = mlflow.pyfunc.load_model("models:/lottogpt@champion")
    assert expected[2]["error"].startswith("[ERROR]")
    assert set(expected[0]) >= {"output", "counts", "return_rate"}
    assert model.predict(cases()) == expected
    assert model.predict(pd.DataFrame(cases()[:2])) == expected[:2]
    assert model.metadata.get_input_schema().input_names() == ["tickets", "winning", "bonus"]


def test_download_model_round_trip(registered: dict, server: dict, tiny_checkpoint: Path, expected: list[dict],
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``download_model`` uses the tracking URI it is given, whatever MLflow's global registry URI says."""
    import mlflow

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    mlflow.set_registry_uri(elsewhere)
    try:
        local = registry.download_model("models:/lottogpt@champion", tmp_path / "model", server["uri"])
        for name in registry.CHECKPOINT_FILES:
            assert (local / name).read_bytes() == (tiny_checkpoint / name).read_bytes()
        assert (registry.download_model("models:/lottogpt/2", tmp_path / "v2", server["uri"]) / "config.json").exists()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server["uri"])  # what open_engine's download follows
        assert answers(registry.open_engine("model", "models:/lottogpt@champion", "cpu")) == expected
    finally:
        mlflow.set_registry_uri(server["uri"])


def test_no_pickle_among_logged_artifacts(registered: dict, server: dict) -> None:
    files = [p for p in server["artifacts"].rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files)
    assert any(p.name == "mlflow_model.py" for p in files)  # the model is code, not a pickle
    assert not [p for p in files if p.suffix in (".pkl", ".pickle", ".pt", ".pth", ".joblib")]
    for mlmodel in (p for p in files if p.name == "MLmodel"):
        flavor = mlmodel.read_text()
        assert "model_code_path" in flavor
        assert "python_model:" not in flavor


def test_default_tracking_uri_is_the_main_repo_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert registry.tracking_uri() == f"sqlite:///{tmp_path}/mlflow.db"
    assert registry.artifact_location(registry.tracking_uri()) == (tmp_path / "mlruns").as_uri()
    monkeypatch.delenv("DVC_ROOT")
    queued = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    queued.mkdir(parents=True)
    assert registry.repo_root(queued) == tmp_path / "repo"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert registry.tracking_uri() == "http://127.0.0.1:5000"
    assert registry.artifact_location("http://127.0.0.1:5000") is None


def test_input_example_is_a_valid_case() -> None:
    """The input example the model is logged with is a valid kata case."""
    for example in registry.EXAMPLE_CASES:
        kata.Case.create(example["tickets"], example["winning"], example["bonus"])


@pytest.fixture(scope="module")
def client(server: dict) -> Any:
    """A client of the real server's model registry, for the promotion rules' edge cases."""
    import mlflow

    server["wait"]()
    return mlflow.MlflowClient(server["uri"], server["uri"])


def new_version(client: Any, name: str, tag: str | None = None, run_metric: float | None = None) -> str:
    """A version of ``name`` whose score lives in its tag, in its run's metric, or nowhere."""
    experiment = client.get_experiment_by_name("promotion-edges")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("promotion-edges")
    run = client.create_run(experiment_id)
    if run_metric is not None:
        client.log_metric(run.info.run_id, registry.SELECTION_METRIC, run_metric)
    client.set_terminated(run.info.run_id)
    registry._registered_model(client, name)
    tags = {} if tag is None else {"test_exact_match": tag}
    version = client.create_model_version(name, source=f"{run.info.artifact_uri}/model",
                                          run_id=run.info.run_id, tags=tags)
    return str(version.version)


def alias_of(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def test_a_tie_with_the_champion_is_a_challenger(client: Any) -> None:
    """'Strictly higher': an equal score does not move the champion, whether its score is a tag or a metric."""
    for name, champion_score in (("tie-tag", {"tag": "0.5"}), ("tie-metric", {"tag": "", "run_metric": 0.5})):
        first = new_version(client, name, **champion_score)
        assert registry.promote(client, first, 0.5, name)["alias"] == "champion"
        second = new_version(client, name, tag="0.5")
        record = registry.promote(client, second, 0.5, name)
        assert (record["alias"], record["previous_champion_exact_match"]) == ("challenger", 0.5), name
        assert (alias_of(client, name, "champion"), alias_of(client, name, "challenger")) == (first, second)


def test_a_champion_without_a_score_gives_way(client: Any) -> None:
    """A champion with no test exact match (no tag, no run metric) cannot be compared: the new version wins."""
    name = "no-score"
    first = new_version(client, name)
    client.set_registered_model_alias(name, "champion", first)
    assert registry.version_score(client, client.get_model_version(name, first)) is None
    second = new_version(client, name, tag="0.1")
    record = registry.promote(client, second, 0.1, name)
    assert record == {"alias": "champion", "previous_champion_version": int(first),
                      "previous_champion_exact_match": None}
    assert alias_of(client, name, "champion") == second


def test_a_promoted_challenger_loses_its_challenger_alias(client: Any) -> None:
    """One version never holds both aliases: promoting the challenger removes 'challenger'."""
    name = "promoted-challenger"
    first, second = new_version(client, name, tag="0.5"), new_version(client, name, tag="0.4")
    registry.promote(client, first, 0.5, name)
    assert registry.promote(client, second, 0.4, name)["alias"] == "challenger"
    client.delete_registered_model_alias(name, "champion")  # the champion retired by hand
    record = registry.promote(client, second, 0.4, name)  # then the challenger's stage is rerun
    assert (record["alias"], record["previous_champion_version"]) == ("champion", None)
    assert (alias_of(client, name, "champion"), alias_of(client, name, "challenger")) == (second, None)
    third = new_version(client, name, tag="0.3")  # the next weaker version becomes the challenger
    assert registry.promote(client, third, 0.3, name)["alias"] == "challenger"
    assert (alias_of(client, name, "champion"), alias_of(client, name, "challenger")) == (second, third)
