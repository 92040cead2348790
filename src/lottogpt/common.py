"""The bottom of the import graph: device choice, CPU threads, file hashing and the torchrun job.

Every other lottogpt module may import this one; it imports no lottogpt module, so training,
serving and the registry share these helpers without importing each other.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist


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


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job; its collectives are no-ops for a single process.

    Every rank must call each collective in the same order, or the job hangs: callers make the calls
    unconditionally and let rank 0 alone write files.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if self.world_size == 1:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (what the others pass is ignored)."""
        if self.world_size == 1:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank (a decision all ranks follow together)."""
        return bool(flag) if self.world_size == 1 else any(self.gather(bool(flag)))

    def close(self) -> None:
        if self.world_size > 1:
            dist.barrier()
            dist.destroy_process_group()


def setup_distributed(device: torch.device) -> Distributed:
    """Join the ``torchrun`` job named by ``WORLD_SIZE``/``RANK`` (NCCL on CUDA, gloo otherwise), if any."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Distributed()
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
