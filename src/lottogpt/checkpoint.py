"""Checkpoints: ``model.safetensors`` + ``config.json`` + ``tokenizer.model`` in one folder.

Weights are safetensors (nothing executable is ever unpickled); the JSON config records the model
shape and what the weights are tied to: the tokenizer hash, the corpus hash, the answer format, the
trained ticket range and the step.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from lottogpt.model import GPT, GPTConfig
from lottogpt.tokenizer import MODEL_FILE, Tokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save(directory: str | Path, model: GPT, meta: dict, tokenizer_dir: str | Path | None = None) -> None:
    """Write weights and config (and a copy of the tokenizer) atomically enough for resuming."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    raw = model.module if hasattr(model, "module") else model
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_model(raw, str(tmp))
    tmp.replace(directory / WEIGHTS_FILE)
    config = {"model": raw.config.to_dict(), **meta}
    (directory / (CONFIG_FILE + ".tmp")).write_text(json.dumps(config, indent=2) + "\n")
    (directory / (CONFIG_FILE + ".tmp")).replace(directory / CONFIG_FILE)
    if tokenizer_dir is not None and Path(tokenizer_dir).resolve() != directory.resolve():
        shutil.copyfile(Path(tokenizer_dir) / MODEL_FILE, directory / MODEL_FILE)


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
