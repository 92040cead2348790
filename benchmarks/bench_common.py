"""Helpers shared by the benchmark scripts: the machine description, percentiles, the JSON writer.

The scripts put ``benchmarks/`` first on ``sys.path`` (Python does that for ``python benchmarks/x.py``),
so this module is imported as ``bench_common``; it is not part of the ``lottogpt`` package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "results" / "bench"


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, so a container's or taskset's limit counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def git_commit() -> str | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def machine(device: str | None = None) -> dict[str, Any]:
    """What the figures were measured on. ``load_average`` at the start shows whether the machine was quiet."""
    import torch

    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": device,
        "gpu": None,
        "git_commit": git_commit(),
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if device is not None and device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        info["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                       "cuda": torch.version.cuda}
    return info


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between order statistics (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean/min/max in milliseconds of a list of durations in seconds."""
    ms = [s * 1000 for s in seconds]
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 3), "p95_ms": round(percentile(ms, 95), 3),
            "p99_ms": round(percentile(ms, 99), 3), "mean_ms": round(statistics.fmean(ms), 3),
            "min_ms": round(min(ms), 3), "max_ms": round(max(ms), 3)}


def set_threads(threads: int) -> None:
    """``threads`` > 0 sets torch's intra-op threads; 0 keeps torch's default."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)


def write_result(out_dir: str | Path, name: str, result: dict[str, Any]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def command_line() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])


def bench_case(seed: int, n_tickets: int):  # -> kata.Case
    """A reproducible case of ``n_tickets`` uniformly random tickets (as a real buyer's), seeded."""
    import random

    from lottogpt import kata

    rng = random.Random(seed)
    drawn = rng.sample(range(kata.NUMBER_MIN, kata.NUMBER_MAX + 1), kata.NUMBERS_PER_TICKET + 1)
    tickets = [kata.draw_ticket(rng) for _ in range(n_tickets)]
    return kata.Case.create(tickets, drawn[:kata.NUMBERS_PER_TICKET], drawn[kata.NUMBERS_PER_TICKET])


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint``, or ``--random-init`` with ``--params`` and ``--tokenizer``: where the model comes from."""
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "checkpoint"), help="checkpoint folder")
    parser.add_argument("--random-init", action="store_true",
                        help="no checkpoint: random weights of params.yaml's model block, tokenizer --tokenizer")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"), help="for --random-init")
    parser.add_argument("--tokenizer", default=str(ROOT / "models" / "tokenizer"), help="for --random-init")


def random_init_checkpoint(out_dir: str | Path, params_path: str | Path, tokenizer_dir: str | Path,
                           seed: int = 0) -> Path:
    """A checkpoint folder with the shape of ``params.yaml``'s model block and random weights.

    Timing it measures the same amount of arithmetic per token as the trained model, but an untrained
    model rarely says EOS, so it usually decodes until ``model.block_size`` (more tokens per case).
    """
    import dataclasses

    import torch

    from lottogpt import checkpoint, params
    from lottogpt.model import GPT, GPTConfig
    from lottogpt.tokenizer import Tokenizer

    loaded = params.load(params_path)
    tokenizer = Tokenizer.load(tokenizer_dir)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **dataclasses.asdict(loaded.model)))
    meta = {"answer_format": loaded.data.answer_format, "min_tickets": loaded.data.min_tickets,
            "max_tickets": loaded.data.max_tickets, "tokenizer_sha256": tokenizer.sha256, "step": 0,
            "random_init": True}
    checkpoint.save(out_dir, model, meta, tokenizer_dir)
    return Path(out_dir)


def reference_choices(model: Any, tokenizer: Any, answer_format: str, cases: list) -> Any:
    """``model`` (PyTorch or ``onnx_backend.OrtGPT``) with every greedy choice replaced by the reference answer's
    token: random weights that decode like a model that answers every case right (as the trained one nearly
    does). It does the same arithmetic per pass as ``model``, so it times the passes, guesses and steps of a
    trained model without one. Rows are told apart by their prompt; cached decoding only.
    """
    import weakref

    import torch

    from lottogpt import formats
    from lottogpt.inference import prompt_tokens
    from lottogpt.model import RowKVCache

    answers = {}
    for case in cases:
        prompt = prompt_tokens(tokenizer, case, answer_format)
        completion = tokenizer.encode(formats.render_completion(case, answer_format))
        answers[tuple(prompt)] = prompt + completion + [tokenizer.eos_id] * (model.config.block_size + 1 - len(prompt)
                                                                              - len(completion))

    class ReferenceChoices(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner, self.config = model, model.config
            self.rows: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

        def parameters(self, recurse: bool = True) -> Any:
            return model.parameters()

        def num_params(self) -> int:
            return sum(p.numel() for p in model.parameters())

        def forward(self, idx: Any, cache: Any = None) -> Any:
            if cache is None:
                raise ValueError("reference choices need the KV cache")
            if cache not in self.rows:
                self.rows[cache] = torch.tensor([answers[tuple(row)] for row in idx.tolist()])
            start = (cache.lengths.clone() if isinstance(cache, RowKVCache)
                     else torch.full((idx.shape[0],), cache.length))
            logits = self.inner(idx, cache)
            at = (start[:, None] + torch.arange(1, idx.shape[1] + 1)).clamp(max=self.config.block_size)
            return logits.scatter(2, self.rows[cache].gather(1, at)[:, :, None], 1e4)

    return ReferenceChoices()
