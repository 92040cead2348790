"""MLflow registration: every checkpoint logged with its params, metrics, curve and DVC hashes.

:func:`register` (the ``register`` stage) logs one MLflow run: all of ``params.yaml`` (flattened,
``train.lr``), the numeric evaluation metrics (``test/exact_match``), the training curve as stepped
metrics (``train/loss``), tags with the git commit, the DVC md5 hashes of ``data/corpus``,
``models/tokenizer`` and ``models/checkpoint`` from ``dvc.lock`` and ``DVC_EXP_NAME`` when set. The
model is a pyfunc logged *from code* (``lottogpt/mlflow_model.py``; no pickle anywhere) with the
checkpoint's three files as its ``checkpoint`` artifact, a signature and an input example. It is
registered as ``lottogpt``; the alias ``champion`` moves to the new version only when its test exact
match is strictly higher than the current champion's, else the new version becomes ``challenger``.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store ``mlflow.db`` at the root of the main
repository (found through ``DVC_ROOT``, which ``dvc exp run --queue`` points at the main repository
while the stage runs in a temporary copy), with artifacts in ``mlruns/`` beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from lottogpt.common import file_sha256
from lottogpt.inference import Engine, load_engine

MODEL_NAME = "lottogpt"
EXPERIMENT_NAME = "lottogpt"
CHAMPION = "champion"
CHALLENGER = "challenger"
SELECTION_METRIC = "test/exact_match"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
CHECKPOINT_FILES = ("model.safetensors", "config.json", "tokenizer.model")
DVC_OUTS = {"corpus": "data/corpus", "tokenizer": "models/tokenizer", "checkpoint": "models/checkpoint"}
MODEL_CODE = Path(__file__).with_name("mlflow_model.py")
EXAMPLE_CASES = [
    {"tickets": [[8, 21, 23, 41, 42, 43], [1, 3, 5, 14, 22, 45]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7},
]


class RegistryError(RuntimeError):
    """Registration cannot go on (a missing metric, a checkpoint folder without its files)."""


# --- where things are -------------------------------------------------------------------------------


def _git(args: list[str], cwd: str | Path = ".") -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def repo_root(start: str | Path = ".") -> Path:
    """The main repository's root, also from a ``dvc exp`` temporary copy or a git worktree.

    ``DVC_ROOT`` first (DVC sets it for every stage; queued experiments get the *parent* repository),
    then a path under ``<repo>/.dvc/tmp/exps/`` (DVC's temporary copies), then the parent of git's
    common directory (a worktree's main repository), then ``start`` itself.
    """
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path(start).resolve()
    for parent in (here, *here.parents):
        if parent.name == "exps" and parent.parent.name == "tmp" and parent.parent.parent.name == ".dvc":
            return parent.parent.parent.parent
    common = _git(["rev-parse", "--path-format=absolute", "--git-common-dir"], here)
    if common:
        return Path(common).parent
    return here


def tracking_uri(root: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI``, else ``sqlite:///<main repo>/mlflow.db`` (an absolute path)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(root) if root else repo_root()}/{DB_FILE}"


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: ``mlruns/`` beside a SQLite file; a server decides."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / ARTIFACTS_DIR).as_uri()
    return None


# --- what is logged ---------------------------------------------------------------------------------


def flatten(data: dict, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name, sep))
        else:
            flat[name] = value
    return flat


def params_to_log(params: Any) -> dict[str, str]:
    """A ``Params`` dataclass (or a plain mapping) as flat MLflow params: ``train.lr`` -> ``"0.002"``."""
    raw = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else dict(params)
    return {key: json.dumps(value) if isinstance(value, list) else str(value) for key, value in flatten(raw).items()}


def numeric_metrics(metrics: dict) -> dict[str, float]:
    """The finite numbers of ``results/eval/metrics.json`` as ``split/name`` (booleans as 0/1)."""
    out = {}
    for key, value in flatten(metrics, sep="/").items():
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, int | float) and math.isfinite(value):
            out[key] = float(value)
    return out


def read_curve(path: str | Path) -> list[tuple[int, dict[str, float]]]:
    """``results/train/curve.csv`` -> ``[(step, {"loss": ..., "lr": ..., "val_loss": ...}), ...]``."""
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            step = int(float(record.pop("step")))
            values = {}
            for key, text in record.items():
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    continue  # empty cell: no evaluation at this step
                if math.isfinite(value):
                    values[key] = value
            rows.append((step, values))
    return rows


def dvc_hashes(lock_path: str | Path = "dvc.lock") -> dict[str, str]:
    """The md5 of each output in ``DVC_OUTS`` as ``dvc.lock`` records it (missing ones left out)."""
    path = Path(lock_path)
    if not path.exists():
        return {}
    from ruamel.yaml import YAML

    lock = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    by_path = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                by_path[str(out["path"]).rstrip("/")] = str(out["md5"])
    return {name: by_path[out] for name, out in DVC_OUTS.items() if out in by_path}


def git_info(cwd: str | Path = ".") -> dict[str, str]:
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return {}
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"mlflow.source.git.commit": commit, "git_commit": commit, "git_dirty": str(bool(dirty)).lower()}


def signature() -> Any:
    """Input: the ``predict`` JSON form; output: ``lottogpt predict``'s answer (or its ``error``)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Object, Property, Schema

    inputs = Schema([ColSpec(Array(Array(DataType.long)), "tickets"), ColSpec(Array(DataType.long), "winning"),
                     ColSpec(DataType.long, "bonus")])
    counts = Object([Property(key, DataType.long) for key in ("3", "4", "5", "5+bonus", "6")])
    outputs = Schema([ColSpec(DataType.string, "output", required=False), ColSpec(counts, "counts", required=False),
                      ColSpec(DataType.string, "return_rate", required=False),
                      ColSpec(DataType.boolean, "format_valid", required=False),
                      ColSpec(DataType.boolean, "tool_used", required=False),
                      ColSpec(DataType.string, "error", required=False)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in ("lottogpt", "mlflow", "torch", "safetensors", "sentencepiece", "pandas", "typer"):
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def _stage_checkpoint(checkpoint_dir: Path, into: Path) -> Path:
    """Copy exactly the checkpoint's three files (never a resume state or anything else)."""
    missing = [name for name in CHECKPOINT_FILES if not (checkpoint_dir / name).is_file()]
    if missing:
        raise RegistryError(f"{checkpoint_dir} is not a checkpoint folder: {', '.join(missing)} missing "
                            "(run `dvc repro train` or `dvc pull`)")
    into.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        shutil.copyfile(checkpoint_dir / name, into / name)
    return into


# --- the registry -----------------------------------------------------------------------------------


def _client(uri: str) -> Any:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: Any, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(uri))


def _alias_version(client: Any, alias: str, name: str = MODEL_NAME) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def version_score(client: Any, version: Any) -> float | None:
    """A version's test exact match: its ``test_exact_match`` tag, else its run's metric."""
    if version.tags.get("test_exact_match") not in (None, ""):
        return float(version.tags["test_exact_match"])
    if version.run_id:
        value = client.get_run(version.run_id).data.metrics.get(SELECTION_METRIC)
        return None if value is None else float(value)
    return None


def _existing_version(client: Any, weights_sha: str, eval_sha: str, name: str = MODEL_NAME) -> Any | None:
    """A version already registered from these very weights and metrics (a rerun of the stage)."""
    for version in client.search_model_versions(f"name='{name}'"):
        if version.tags.get("weights_sha256") == weights_sha and version.tags.get("eval_sha256") == eval_sha:
            return version
    return None


def _registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="A tiny GPT imitating the lotto kata (lottogpt).")


def promote(client: Any, version: str, score: float, name: str = MODEL_NAME) -> dict:
    """``champion`` when ``score`` beats the champion's test exact match (or there is none), else ``challenger``."""
    champion = _alias_version(client, CHAMPION, name)
    previous = {"champion_version": None, "champion_exact_match": None}
    if champion is not None:
        previous = {"champion_version": int(champion.version),
                    "champion_exact_match": version_score(client, champion)}
    if champion is not None and str(champion.version) == str(version):
        alias = CHAMPION  # a rerun of the stage for the champion itself: nothing moves
    elif champion is None or previous["champion_exact_match"] is None or score > previous["champion_exact_match"]:
        alias = CHAMPION
        client.set_registered_model_alias(name, CHAMPION, version)
        challenger = _alias_version(client, CHALLENGER, name)
        if challenger is not None and str(challenger.version) == str(version):
            client.delete_registered_model_alias(name, CHALLENGER)
    else:
        alias = CHALLENGER
        client.set_registered_model_alias(name, CHALLENGER, version)
    return {"alias": alias, "previous_champion_version": previous["champion_version"],
            "previous_champion_exact_match": previous["champion_exact_match"]}


def register(params: Any, checkpoint_dir: str | Path = "models/checkpoint",
             eval_metrics: str | Path = "results/eval/metrics.json",
             curve: str | Path | None = "results/train/curve.csv",
             lock: str | Path = "dvc.lock", out: str | Path | None = "results/register/registration.json",
             uri: str | None = None, name: str = MODEL_NAME, experiment: str = EXPERIMENT_NAME) -> dict:
    """Log a run and the pyfunc, register a version of ``name`` and move its aliases; returns the record."""
    import mlflow
    from mlflow.entities import Metric

    uri = uri or tracking_uri()
    checkpoint_dir = Path(checkpoint_dir)
    metrics = json.loads(Path(eval_metrics).read_text(encoding="utf-8"))
    flat_metrics = numeric_metrics(metrics)
    if SELECTION_METRIC not in flat_metrics:
        raise RegistryError(f"{eval_metrics} has no {SELECTION_METRIC}: run `dvc repro evaluate`")
    score = flat_metrics[SELECTION_METRIC]
    weights_sha = file_sha256(checkpoint_dir / CHECKPOINT_FILES[0])
    scores = {key: value for key, value in flat_metrics.items() if not key.startswith("throughput/")}
    eval_sha = hashlib.sha256(json.dumps(scores, sort_keys=True).encode()).hexdigest()  # timings vary per run
    hashes = dvc_hashes(lock)
    exp_name = os.environ.get("DVC_EXP_NAME")
    tags = {**git_info(), **{f"dvc.{key}_md5": value for key, value in hashes.items()},
            "weights_sha256": weights_sha, "eval_sha256": eval_sha, "test_exact_match": str(score)}
    if exp_name:
        tags["dvc_exp_name"] = exp_name
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc_exp_baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    if isinstance(metrics.get("throughput"), dict) and "device" in metrics["throughput"]:
        tags["eval_device"] = str(metrics["throughput"]["device"])

    client = _client(uri)
    _registered_model(client, name)
    version = _existing_version(client, weights_sha, eval_sha, name)
    reused = version is not None
    if version is None:
        experiment_id = _experiment_id(client, uri, experiment)
        with mlflow.start_run(experiment_id=experiment_id, run_name=exp_name) as run, \
                tempfile.TemporaryDirectory(prefix="lottogpt-register-") as tmp:
            mlflow.set_tags(tags)
            mlflow.log_params(params_to_log(params))
            mlflow.log_metrics(flat_metrics)
            if curve is not None and Path(curve).exists():
                now = int(time.time() * 1000)
                stepped = [Metric(f"train/{key}", value, now, step)
                           for step, values in read_curve(curve) for key, value in values.items()]
                for start in range(0, len(stepped), 1000):
                    client.log_batch(run.info.run_id, metrics=stepped[start:start + 1000])
                mlflow.log_artifact(str(curve), "train")
            mlflow.log_artifact(str(eval_metrics), "eval")
            if Path(lock).exists():
                mlflow.log_artifact(str(lock))
            staged = _stage_checkpoint(checkpoint_dir, Path(tmp) / "checkpoint")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(MODEL_CODE), artifacts={"checkpoint": str(staged)},
                signature=signature(), input_example=EXAMPLE_CASES, pip_requirements=pip_requirements(),
                tags={"weights_sha256": weights_sha})
        version_tags = {key: value for key, value in tags.items() if not key.startswith("mlflow.")}
        version = mlflow.register_model(info.model_uri, name, tags=version_tags)
    version_id = str(version.version)
    record = {"name": name, "version": int(version_id), "run_id": version.run_id, "reused": reused,
              "test_exact_match": score, **promote(client, version_id, score, name),
              "model_uri": f"models:/{name}/{version_id}", "tracking_uri": uri, "dvc_exp_name": exp_name,
              **{f"{key}_md5": value for key, value in hashes.items()}}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def model_download_uri(uri: str, tracking: str) -> str:
    """Where a ``models:/name@alias`` or ``models:/name/version`` URI's files are (other URIs pass through).

    Resolved with an explicit client: MLflow's own ``models:/`` artifact repository reads the *global*
    registry URI, which need not be ``tracking``.
    """
    if not uri.startswith("models:/"):
        return uri.rstrip("/")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    head, _, rest = uri[len("models:/"):].strip("/").partition("/")
    if "@" in head:
        name, alias = head.split("@", 1)
        version = str(client.get_model_version_by_alias(name, alias).version)
    elif rest.split("/")[0].isdigit():
        name, version = head, rest.split("/")[0]
    else:
        raise RegistryError(f"{uri}: use models:/<name>@<alias> or models:/<name>/<version>")
    return client.get_model_version_download_uri(name, version).rstrip("/")


def download_model(uri: str, dst: str | Path | None = None, tracking: str | None = None) -> Path:
    """Download a registered model's checkpoint (``models:/lottogpt@champion``) to a folder ModelEngine loads.

    ``dst`` defaults to a new temporary folder; the tracking (and registry) URI to :func:`tracking_uri`.
    """
    import mlflow.artifacts
    from ruamel.yaml import YAML

    tracking = tracking or tracking_uri()
    base = model_download_uri(uri, tracking)
    target = Path(dst) if dst is not None else Path(tempfile.mkdtemp(prefix="lottogpt-model-"))
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lottogpt-mlmodel-") as tmp:
        mlmodel = mlflow.artifacts.download_artifacts(f"{base}/MLmodel", dst_path=tmp, tracking_uri=tracking,
                                                      registry_uri=tracking)
        flavors = (YAML(typ="safe").load(Path(mlmodel).read_text(encoding="utf-8")) or {}).get("flavors", {})
    artifacts = (flavors.get("python_function") or {}).get("artifacts") or {}
    if "checkpoint" not in artifacts:
        raise RegistryError(f"{uri} is not a lottogpt model (no 'checkpoint' artifact in its MLmodel)")
    subpath = str(artifacts["checkpoint"]["path"]).strip("/")
    local = Path(mlflow.artifacts.download_artifacts(f"{base}/{subpath}", dst_path=str(target),
                                                     tracking_uri=tracking, registry_uri=tracking))
    missing = [name for name in CHECKPOINT_FILES if not (local / name).is_file()]
    if missing:
        raise RegistryError(f"{uri}: the downloaded checkpoint lacks {', '.join(missing)}")
    return local


def local_model(model: str | Path) -> Path:
    """A checkpoint folder to load: ``models:/name@alias`` or ``models:/name/N`` downloaded, a path as is."""
    text = str(model)
    return download_model(text) if text.startswith("models:/") else Path(model)


def open_engine(name: str, model: str | Path = "models/checkpoint", device: str = "auto",
                speculative: bool = False) -> Engine:
    """``inference.load_engine`` for a checkpoint folder or a registered ``models:/`` URI."""
    return load_engine(name, local_model(model) if name == "model" else model, device, speculative)
