"""The DVC remote: a tiny pipeline run, ``dvc push``, a fresh clone, ``dvc pull``, the same answers.

Also: git holds no checkpoint, no Parquet and no file over 1 MB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import procs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The project's params.yaml with these values where it has the key: a pipeline that runs in seconds.
TINY = {
    "data": {"seed": 11, "n_train": 300, "n_val": 10, "n_test": 10, "n_test_natural": 10, "min_tickets": 1,
             "max_tickets": 8},  # 8: the evaluate stage also answers the kata's official example (8 tickets)
    "tokenizer": {"sample_cases": 300},
    "model": {"n_layer": 1, "n_head": 2, "n_embd": 32},
    "train": {"seed": 5, "max_steps": 5, "max_minutes": 0, "batch_tokens": 1024, "warmup_steps": 1,
              "eval_interval": 5, "eval_cases": 2, "checkpoint_interval": 100, "curriculum_steps": 0,
              "device": "cpu", "compile": False, "threads": 1},
    # The verify stage's suites cut to the compositions of 1-2 tickets and 10 sampled: all 3,002 of 1-8 tickets
    # took this fixture 2.5 minutes.
    "evaluate": {"batch_size": 8, "max_cases": 1, "threads": 1, "exhaustive_tickets": 2, "sample_compositions": 10},
}
CASES = [  # one ticket count: one decode batch
    {"tickets": [[8, 21, 23, 41, 42, 43], [1, 3, 5, 14, 22, 45]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7},
    {"tickets": [[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 7]], "winning": [1, 2, 3, 4, 5, 6], "bonus": 7},
]
BIG_FILE = 1_000_000
FORBIDDEN_SUFFIXES = (".safetensors", ".parquet", ".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".onnx")


def environment(tmp: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "GIT_"))}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "DVC_NO_ANALYTICS": "1",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}", "OMP_NUM_THREADS": "1",
            "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "HOME": str(tmp)}


def write_tiny_params(path: Path) -> None:
    from ruamel.yaml import YAML

    yaml = YAML()
    params = yaml.load((ROOT / "params.yaml").read_text())
    for block, values in TINY.items():
        for key, value in values.items():
            if key in (params.get(block) or {}):
                params[block][key] = value
    with open(path, "w") as handle:
        yaml.dump(params, handle)


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a dvc or git command; on a hang (or a failing test) it and the stages it started are killed."""
    done = procs.run(args, timeout=600, cwd=cwd, env=env)
    if done.returncode:
        pytest.fail(f"{' '.join(args)} failed ({done.returncode}) in {cwd}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def default_remote(repo: Path, env: dict[str, str]) -> Path | None:
    """The default remote as a local folder, when it is one (``dvc remote list`` prints it resolved)."""
    name = run(["dvc", "remote", "default"], repo, env).strip()
    for line in run(["dvc", "remote", "list"], repo, env).splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == name and "://" not in fields[1]:
            path = Path(fields[1])
            return path if path.is_absolute() else (repo / ".dvc" / path).resolve()
    return None


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A git + DVC copy of the project's pipeline on a tiny config, reproduced, pushed, cloned and pulled."""
    base = tmp_path_factory.mktemp("dvc-remote")
    repo, clone = base / "repo", base / "clone"
    env = environment(base)
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    # The stages depend on these sources; the code that runs is the installed package.
    shutil.copytree(ROOT / "src" / "lottogpt", repo / "src" / "lottogpt", ignore=shutil.ignore_patterns("__pycache__"))
    write_tiny_params(repo / "params.yaml")
    shutil.copy(ROOT / ".gitignore", repo)
    run(["git", "init", "-q", "-b", "main"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")  # the project's remote, out of the box
    store = default_remote(repo, env)
    if store is None or base not in store.parents:  # not a local folder beside the repo: use a temporary one
        store = base / "store"
        run(["dvc", "remote", "add", "-f", "-d", "tmpstore", str(store)], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "tiny pipeline"], repo, env)
    run(["dvc", "repro", "-q"], repo, env)
    run(["dvc", "push", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "results"], repo, env)
    run(["git", "clone", "-q", str(repo), str(clone)], base, env)
    assert not (clone / "models" / "checkpoint").exists()
    run(["dvc", "pull", "-q"], clone, env)
    return {"repo": repo, "clone": clone, "store": store, "env": env}


def answers(checkpoint: Path) -> list[dict]:
    from lottogpt.cases import predict_lines
    from lottogpt.inference import ModelEngine

    result, failed = predict_lines(ModelEngine(checkpoint, device="cpu"), [json.dumps(c) for c in CASES])
    assert failed == 0
    return result


def test_pulled_checkpoint_answers_like_the_original(pipeline: dict) -> None:
    repo, clone = pipeline["repo"], pipeline["clone"]
    assert any(pipeline["store"].rglob("*")), "dvc push wrote nothing to the remote"
    for name in ("model.safetensors", "config.json", "tokenizer.model"):
        pulled, original = clone / "models" / "checkpoint" / name, repo / "models" / "checkpoint" / name
        assert pulled.read_bytes() == original.read_bytes()
    for split in ("train", "val", "test", "test_natural"):
        assert (clone / "data" / "corpus" / f"{split}.parquet").exists()
    assert answers(clone / "models" / "checkpoint") == answers(repo / "models" / "checkpoint")
    status = run(["dvc", "status"], clone, pipeline["env"])
    assert "changed" not in status and "modified" not in status, status


def test_register_stage_ran_with_the_fresh_lock(pipeline: dict) -> None:
    """The register stage ran last and tagged the hashes of this very run's outputs."""
    from ruamel.yaml import YAML

    repo = pipeline["repo"]
    record = json.loads((repo / "results" / "register" / "registration.json").read_text())
    assert (record["version"], record["alias"]) == (1, "champion")
    lock = YAML(typ="safe").load((repo / "dvc.lock").read_text())
    outs = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    assert record["checkpoint_md5"] == outs["models/checkpoint"]
    assert record["corpus_md5"] == outs["data/corpus"]
    assert record["tracking_uri"] == pipeline["env"]["MLFLOW_TRACKING_URI"]
    assert "register" in lock["stages"]


def test_git_holds_no_checkpoint_parquet_or_big_file() -> None:
    listed = subprocess.run(["git", "ls-files", "-s", "-z"], cwd=ROOT, capture_output=True, text=True, check=True)
    entries = [line.split("\t", 1) for line in listed.stdout.split("\0") if line]
    assert entries, "git ls-files listed nothing"
    paths = [path for _, path in entries]
    assert not [p for p in paths if p.lower().endswith(FORBIDDEN_SUFFIXES)]
    assert not [p for p in paths if p.startswith(("models/", "data/"))]
    blobs = "\n".join(meta.split()[1] for meta, _ in entries) + "\n"
    sizes = subprocess.run(["git", "cat-file", "--batch-check=%(objectsize)"], cwd=ROOT, input=blobs,
                           capture_output=True, text=True, check=True).stdout.split()
    big = [(path, int(size)) for path, size in zip(paths, sizes, strict=True) if int(size) > BIG_FILE]
    assert not big, f"files over 1 MB in git: {big}"
    on_disk = [(p, (ROOT / p).stat().st_size) for p in paths if (ROOT / p).is_file()]
    assert not [(p, size) for p, size in on_disk if size > BIG_FILE], "a tracked file grew over 1 MB"
