"""Checkpoints: ``model.safetensors`` + ``config.json`` + ``tokenizer.model`` in one folder.

Weights are safetensors (nothing executable is ever unpickled); the JSON config records the model
shape and what the weights are tied to: the tokenizer hash, the corpus hash, the answer format, the
trained ticket range and the step.

While a run trains, the folder also holds ``train_state.pt``: the resume state (weights, optimizer
state, every rank's RNG states, step) as one file that a single rename replaces, so a run killed at
any instant resumes from one step's weights with that same step's optimizer state.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from lottogpt.model import GPT, GPTConfig
from lottogpt.tokenizer import MODEL_FILE, Tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "train_state.pt"
STATE_VERSION = 2  # 2: the weights are inside the state, and the RNG states are per rank
KILL_ENV = "LOTTOGPT_KILL_AT"


def save(directory: str | Path, model: GPT, meta: dict, tokenizer_dir: str | Path | None = None) -> None:
    """Write weights and config (and a copy of the tokenizer) atomically enough for resuming."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    raw = model.module if hasattr(model, "module") else model
    step = meta.get("step")
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_model(raw, str(tmp))
    save_point("weights-written", step)
    tmp.replace(directory / WEIGHTS_FILE)
    save_point("weights-replaced", step)
    config = {"model": raw.config.to_dict(), **meta}
    (directory / (CONFIG_FILE + ".tmp")).write_text(json.dumps(config, indent=2) + "\n")
    (directory / (CONFIG_FILE + ".tmp")).replace(directory / CONFIG_FILE)
    save_point("config-replaced", step)
    if tokenizer_dir is not None and Path(tokenizer_dir).resolve() != directory.resolve():
        shutil.copyfile(Path(tokenizer_dir) / MODEL_FILE, directory / MODEL_FILE)


def save_state(directory: str | Path, state: dict) -> None:
    """Write the resume state to a temporary file, flush it to disk, then rename it over the old one."""
    path = Path(directory) / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(STATE_FILE + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save({**state, "version": STATE_VERSION}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    save_point("state-written", state["step"])
    tmp.replace(path)
    save_point("state-replaced", state["step"])


def load_state(directory: str | Path) -> dict | None:
    """The resume state in ``directory``: None when there is none, {} when it is of an older format."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("version") == STATE_VERSION else {}


def remove_state(directory: str | Path, step: int) -> None:
    """A finished run keeps no resume state (the folder is then only the model, as DVC caches it)."""
    for name in (STATE_FILE, STATE_FILE + ".tmp"):
        (Path(directory) / name).unlink(missing_ok=True)
    save_point("state-removed", step)


def save_point(point: str, step: int | None) -> None:
    """Test-only fault injection: ``LOTTOGPT_KILL_AT=point@step`` SIGKILLs this process right here.

    Only rank 0 writes, so under ``torchrun`` this kills the writer mid-save (torchrun then stops the others).
    """
    if os.environ.get(KILL_ENV) == f"{point}@{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def read_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {directory} ({CONFIG_FILE} missing): run `dvc repro train`"
                                " or `dvc pull`")
    return json.loads(path.read_text())


def load(directory: str | Path, device: str | torch.device = "cpu") -> tuple[GPT, Tokenizer, dict]:
    """Load a checkpoint folder: the model (in eval mode), its tokenizer and its config."""
    directory = Path(directory)
    config = read_config(directory)
    model = GPT(GPTConfig(**config["model"]))
    load_model(model, str(directory / WEIGHTS_FILE), device=str(device))
    model.to(device).eval()
    tokenizer = Tokenizer.load(directory)
    if config.get("tokenizer_sha256") not in (None, tokenizer.sha256):
        raise ValueError(f"{directory}: the tokenizer does not match the one the model was trained with")
    return model, tokenizer, config
