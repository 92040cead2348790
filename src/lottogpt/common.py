"""The bottom of the import graph: device choice, CPU threads and file hashing.

Every other lottogpt module may import this one; it imports no lottogpt module, so training,
serving and the registry share these helpers without importing each other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA, then MPS, then CPU) or a named device that this torch can use; else a ValueError."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r}, but this torch ({torch.__version__}) sees no CUDA GPU: "
                             "use auto or cpu")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {name!r}, but MPS is not available here: use auto or cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch's kernels; 0 keeps torch's default."""
    if threads > 0:
        torch.set_num_threads(threads)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
