"""Training: the GPT learns to write the completion given the prompt (loss on completion tokens only).

Batches hold cases of one ticket count (so nearly no padding) and about ``train.batch_tokens``
tokens each; with ``train.curriculum_steps`` the largest ticket count grows from ``data.min_tickets``
to ``data.max_tickets``. AdamW or Muon (``train.optimizer``) with warmup and cosine decay, gradient
clipping, seeded sampling.
Runs on CUDA (bf16 autocast, TF32), MPS or CPU, and under ``torchrun`` with DDP (rank 0 logs and
writes). A checkpoint is written every ``train.checkpoint_interval`` steps; a killed run restarted
with the same command and the same inputs resumes from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F  # noqa: N812

from lottogpt import checkpoint, data, formats, kata
from lottogpt.common import file_sha256, pick_device, set_threads
from lottogpt.inference import complete, prediction_from_completion
from lottogpt.model import GPT, GPTConfig
from lottogpt.params import Params
from lottogpt.tokenizer import Tokenizer, longest_case_tokens

STATE_FILE = "train_state.pt"
IGNORE = -100


class TrainError(RuntimeError):
    """A configuration that cannot train, with the params to change."""


class Encoded:
    """A split whose cases are tokenized on first use (BOS + prompt + completion + EOS)."""

    def __init__(self, tokenizer: Tokenizer, frame: pl.DataFrame, block_size: int, answer_format: str = "") -> None:
        self.tokenizer = tokenizer
        # In fed formats the work lines' markers and numbers are input: they get no loss.
        self.fed_ids = tokenizer.fed_ids if answer_format in formats.FED_FORMATS else frozenset()
        self.fed_tensor = torch.tensor(sorted(self.fed_ids), dtype=torch.long)
        self.block_size = block_size
        self.prompts = frame["model_prompt"].to_list()
        self.completions = frame["model_completion"].to_list()
        self.n_tickets = frame["n_tickets"].to_numpy()
        self._tokens: dict[int, np.ndarray] = {}
        self._prompt_lengths: dict[int, int] = {}
        self.frame = frame

    def __len__(self) -> int:
        return len(self.prompts)

    def tokens(self, index: int) -> np.ndarray:
        if index not in self._tokens:
            prompt = [self.tokenizer.bos_id, *self.tokenizer.encode(self.prompts[index])]
            sequence = [*prompt, *self.tokenizer.encode(self.completions[index]), self.tokenizer.eos_id]
            if len(sequence) > self.block_size:
                raise TrainError(f"a case of {self.n_tickets[index]} tickets has {len(sequence)} tokens but "
                                 f"model.block_size is {self.block_size}: raise model.block_size or lower "
                                 "data.max_tickets")
            self._tokens[index] = np.array(sequence, dtype=np.int16)
            self._prompt_lengths[index] = len(prompt)
        return self._tokens[index]

    def prompt_length(self, index: int) -> int:
        self.tokens(index)
        return self._prompt_lengths[index]


def make_batch(encoded: Encoded, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for ``indices``; targets are IGNORE on prompt tokens and padding."""
    length = max(len(encoded.tokens(i)) for i in indices) - 1
    x = torch.zeros((len(indices), length), dtype=torch.long)
    y = torch.full((len(indices), length), IGNORE, dtype=torch.long)
    for row, i in enumerate(indices):
        seq = torch.from_numpy(encoded.tokens(i).astype(np.int64))
        x[row, : len(seq) - 1] = seq[:-1]
        start = encoded.prompt_length(i) - 1  # first target that is a completion token
        y[row, start : len(seq) - 1] = seq[start + 1 :]
    if encoded.fed_ids:
        y[torch.isin(y, encoded.fed_tensor)] = IGNORE
    return x, y


class Sampler:
    """Seeded batches of one ticket count each, about ``batch_tokens`` tokens, with a curriculum.

    A batch's ticket count ``n`` is drawn with weight ``n ** count_power``. With 0 (uniform) the work line
    of ticket 10 is trained in a tenth of the batches only, that of ticket 1 in all of them; with 1 the
    last tickets of long cases, where the tally has the most to count, get about twice the training.
    """

    def __init__(self, encoded: Encoded, batch_tokens: int, seed: int, curriculum_steps: int,
                 count_power: float = 0.0) -> None:
        self.encoded = encoded
        self.batch_tokens = batch_tokens
        self.curriculum_steps = curriculum_steps
        self.count_power = count_power
        self.rng = np.random.default_rng(seed)
        self.by_count = {int(n): np.flatnonzero(encoded.n_tickets == n) for n in np.unique(encoded.n_tickets)}
        # Cases of one ticket count differ in length by a few tokens only; the longest of a sample will do.
        self.count_length = {n: max(len(encoded.tokens(int(i))) for i in idx[:32])
                             for n, idx in self.by_count.items()}
        self.counts = sorted(self.by_count)

    def allowed_counts(self, step: int) -> list[int]:
        if self.curriculum_steps <= 0:
            return self.counts
        progress = min(1.0, (step + 1) / self.curriculum_steps)
        top = self.counts[0] + math.ceil(progress * (self.counts[-1] - self.counts[0]))
        return [n for n in self.counts if n <= top]

    def draw_count(self, step: int) -> int:
        """The ticket count of the batch of ``step``."""
        counts = self.allowed_counts(step)
        if self.count_power:
            weights = np.array(counts, dtype=float) ** self.count_power
            return int(self.rng.choice(counts, p=weights / weights.sum()))
        return int(self.rng.choice(counts))  # the uniform draw of earlier runs: their batches stay the same

    def sample(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.draw_count(step)
        size = max(1, self.batch_tokens // self.count_length[n])
        return make_batch(self.encoded, self.rng.choice(self.by_count[n], size=size))


def lr_at(step: int, params: Params) -> float:
    train = params.train
    if step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    progress = min(1.0, (step - train.warmup_steps) / max(1, train.max_steps - train.warmup_steps))
    return train.min_lr + 0.5 * (train.lr - train.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizers(model: torch.nn.Module, params: Params, device: torch.device) -> list[torch.optim.Optimizer]:
    """AdamW for every parameter, or (``train.optimizer`` muon) Muon for the blocks' weight matrices.

    Muon orthogonalises each matrix's update; embeddings and norm gains are not such matrices and stay
    with AdamW. Muon's "match_rms_adamw" scaling lets both share ``train.lr`` and ``train.weight_decay``.
    """
    cfg = params.train
    matrices = [p for name, p in model.named_parameters()
                if cfg.optimizer == "muon" and p.dim() == 2 and name.startswith("blocks.")]
    on_muon = {id(p) for p in matrices}
    rest = [p for p in model.parameters() if id(p) not in on_muon]
    adamw = torch.optim.AdamW(
        [{"params": [p for p in rest if p.dim() >= 2], "weight_decay": cfg.weight_decay},
         {"params": [p for p in rest if p.dim() < 2], "weight_decay": 0.0}],
        lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda",
    )
    if not matrices:
        return [adamw]
    return [adamw, torch.optim.Muon(matrices, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                    adjust_lr_fn="match_rms_adamw")]


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast (weights and optimizer stay fp32) for ``precision`` bf16, and for auto on CUDA.

    On the 2-core development CPU (AVX-512 BF16) bf16 made one 8 x 512-token benchmark step 1.3x faster,
    but on the corpus's own batches (many short rows) it was about as fast as fp32, so auto keeps fp32 there.
    """
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def completion_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=IGNORE)


@torch.no_grad()
def evaluate_loss(model: GPT, encoded: Encoded, device: torch.device, batch_tokens: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for n in np.unique(encoded.n_tickets):
        indices = np.flatnonzero(encoded.n_tickets == n)
        size = max(1, batch_tokens // max(len(encoded.tokens(int(i))) for i in indices))
        for start in range(0, len(indices), size):
            x, y = make_batch(encoded, indices[start:start + size])
            logits = model(x.to(device))
            mask = y != IGNORE
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.to(device).view(-1),
                                   ignore_index=IGNORE, reduction="sum")
            total += float(loss)
            count += int(mask.sum())
    model.train()
    return total / max(count, 1)


def exact_match(model: GPT, tokenizer: Tokenizer, encoded: Encoded, limit: int, answer_format: str) -> float:
    """Share of the first ``limit`` cases whose decoded six lines equal the reference's."""
    cases = data.frame_cases(encoded.frame.head(limit))
    texts = complete(model, tokenizer, cases, answer_format)
    right = sum(prediction_from_completion(t, len(c.tickets)).output == kata.score(c).output
                for t, c in zip(texts, cases, strict=True))
    model.train()
    return right / max(len(cases), 1)


def fingerprint(params: Params, data_sha: str, tokenizer_sha: str) -> str:
    """What a checkpoint must match to be resumed: the params that shape training and its inputs."""
    keys = {"data": asdict(params.data), "model": asdict(params.model),
            "train": {k: v for k, v in asdict(params.train).items()
                      if k not in ("max_minutes", "eval_interval", "checkpoint_interval", "device", "threads")},
            "data_sha256": data_sha, "tokenizer_sha256": tokenizer_sha}
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as dist

    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def log(message: str) -> None:
    print(message, flush=True)


def train(params: Params, corpus_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
          results_dir: str | Path) -> dict:
    """Train (or resume) and write the checkpoint, ``metrics.json`` and ``curve.csv``."""
    cfg = params.train
    torch.manual_seed(cfg.seed)
    set_threads(cfg.threads)
    try:
        device = pick_device(cfg.device)
    except ValueError as error:
        raise TrainError(f"train.device: {error}") from None
    dist_info = setup_distributed(device)
    if device.type == "cuda" and dist_info.world_size > 1:
        device = torch.device("cuda", dist_info.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    out_dir, results_dir = Path(out_dir), Path(results_dir)

    tokenizer = Tokenizer.load(tokenizer_dir)
    train_path = Path(corpus_dir) / "train.parquet"
    columns = ["model_prompt", "model_completion", "n_tickets", "tickets", "winning", "bonus"]
    fmt = params.data.answer_format
    train_set = Encoded(tokenizer, data.read_split(corpus_dir, "train", columns), params.model.block_size, fmt)
    val_set = Encoded(tokenizer, data.read_split(corpus_dir, "val", columns), params.model.block_size, fmt)
    longest = longest_case_tokens(tokenizer, params.data.max_tickets, params.data.answer_format)
    if longest > params.model.block_size:
        raise TrainError(f"a case of data.max_tickets={params.data.max_tickets} tickets can take {longest} tokens "
                         f"but model.block_size is {params.model.block_size}: raise model.block_size to at least "
                         f"{longest} or lower data.max_tickets")
    data_sha = file_sha256(train_path)
    print_fingerprint = fingerprint(params, data_sha, tokenizer.sha256)

    config = GPTConfig(vocab_size=tokenizer.vocab_size, **asdict(params.model))
    model = GPT(config).to(device)
    optimizers = make_optimizers(model, params, device)
    sampler = Sampler(train_set, cfg.batch_tokens, cfg.seed + dist_info.rank, cfg.curriculum_steps,
                      cfg.count_power)
    step, elapsed_before, curve = 0, 0.0, []

    state_path = out_dir / STATE_FILE
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == print_fingerprint and state.get("world_size", 1) == dist_info.world_size:
            from safetensors.torch import load_model

            load_model(model, str(out_dir / checkpoint.WEIGHTS_FILE), device=str(device))
            for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
                optimizer.load_state_dict(saved)
            step, elapsed_before, curve = int(state["step"]), float(state["elapsed"]), list(state["curve"])
            sampler.rng.bit_generator.state = json.loads(state["sampler_rng"][dist_info.rank])
            torch.set_rng_state(state["torch_rng"])
            if dist_info.main:
                log(f"resuming from step {step} ({state_path})")
        elif dist_info.main:
            log(f"ignoring {state_path}: it belongs to other params or inputs; starting over")

    raw_model = model
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    if dist_info.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = autocast_context(device, cfg.precision)

    meta = {"answer_format": params.data.answer_format, "min_tickets": params.data.min_tickets,
            "max_tickets": params.data.max_tickets, "tokenizer_sha256": tokenizer.sha256,
            "data_sha256": data_sha, "params": {"model": asdict(params.model), "train": asdict(cfg)},
            "torch": torch.__version__}

    def save_checkpoint(final: bool) -> None:
        if not dist_info.main:
            return
        checkpoint.save(out_dir, raw_model, {**meta, "step": step}, tokenizer_dir)
        if final:
            state_path.unlink(missing_ok=True)
            return
        rng_states = [json.dumps(sampler.rng.bit_generator.state)]
        if dist_info.world_size > 1:
            import torch.distributed as dist

            gathered: list = [None] * dist_info.world_size
            dist.all_gather_object(gathered, rng_states[0])
            rng_states = gathered
        tmp = state_path.with_suffix(".tmp")
        torch.save({"optimizers": [o.state_dict() for o in optimizers], "step": step,
                    "elapsed": elapsed_before + clock(), "curve": curve, "sampler_rng": rng_states,
                    "torch_rng": torch.get_rng_state(),
                    "fingerprint": print_fingerprint, "world_size": dist_info.world_size}, tmp)
        tmp.replace(state_path)

    started = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - started

    if dist_info.main:
        log(f"training {raw_model.num_params():,} parameters on {device} "
            f"(world size {dist_info.world_size}), {len(train_set):,} cases, steps {step}->{cfg.max_steps}")
    tokens_seen, smooth_loss, stopped_early = 0, None, False
    model.train()
    progress = _progress(dist_info.main)
    for step in range(step, cfg.max_steps):  # noqa: B020
        lr = lr_at(step, params)
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = lr
        x, y = sampler.sample(step)
        x, y = x.to(device), y.to(device)
        with autocast:
            loss = completion_loss(model, x, y)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        for optimizer in optimizers:
            optimizer.step()
        tokens_seen += x.numel()
        value = loss.item()
        smooth_loss = value if smooth_loss is None else 0.95 * smooth_loss + 0.05 * value
        done = step + 1
        row = {"step": done, "loss": round(value, 5), "lr": round(lr, 6)}
        if dist_info.main and (done % cfg.eval_interval == 0 or done == cfg.max_steps):
            row["val_loss"] = round(evaluate_loss(raw_model, val_set, device, cfg.batch_tokens), 5)
            row["val_exact_match"] = round(exact_match(raw_model, tokenizer, val_set, cfg.eval_cases,
                                                       params.data.answer_format), 4)
        curve.append(row)
        if dist_info.main:
            rate = tokens_seen * dist_info.world_size / max(clock(), 1e-9)
            progress(done, cfg.max_steps, smooth_loss, rate, clock(), row)
        step = done
        if done % cfg.checkpoint_interval == 0 and done < cfg.max_steps:
            save_checkpoint(final=False)
        if cfg.max_minutes > 0 and elapsed_before + clock() > cfg.max_minutes * 60:
            stopped_early = True
            if dist_info.main:
                log(f"stopping at step {done}: train.max_minutes={cfg.max_minutes} reached")
            break

    wall = elapsed_before + clock()
    save_checkpoint(final=True)
    metrics = {
        "steps": step, "final_loss": round(smooth_loss or float("nan"), 5),
        "val_loss": next((r["val_loss"] for r in reversed(curve) if "val_loss" in r), None),
        "val_exact_match": next((r["val_exact_match"] for r in reversed(curve) if "val_exact_match" in r), None),
        "tokens_per_second": round(tokens_seen * dist_info.world_size / max(clock(), 1e-9), 1),
        "wall_seconds": round(wall, 1), "params": raw_model.num_params(), "device": str(device),
        "world_size": dist_info.world_size, "stopped_early": stopped_early,
    }
    if dist_info.main:
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        pl.DataFrame(curve, infer_schema_length=None).write_csv(results_dir / "curve.csv")
    if dist_info.world_size > 1:
        import torch.distributed as dist

        # DDP keeps replicas identical; printing each rank's digest makes that checkable.
        log(f"rank {dist_info.rank} weights sha256 {weights_sha256(raw_model)}")
        dist.barrier()
        dist.destroy_process_group()
    return metrics


def weights_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _progress(enabled: bool) -> Callable[[int, int, float, float, float, dict], None]:
    """A one-line progress report: step, loss, tokens/s and ETA (redrawn on a terminal)."""
    interactive = sys.stdout.isatty()
    last = [0.0]

    def report(done: int, total: int, loss: float, rate: float, seconds: float, row: dict) -> None:
        if not enabled:
            return
        now = time.perf_counter()
        evaluated = "val_loss" in row
        if not (evaluated or done == total or now - last[0] > (1 if interactive else 15)):
            return
        last[0] = now
        eta = seconds / done * (total - done) if done else 0.0
        line = (f"step {done}/{total} | loss {loss:.4f} | {rate / 1000:.1f}k tok/s | "
                f"{_minutes(seconds)} elapsed | eta {_minutes(eta)}")
        if evaluated:
            line += f" | val loss {row['val_loss']:.4f} | val exact {row['val_exact_match']:.3f}"
        if interactive and not evaluated:
            print("\r" + line, end="", flush=True)
        else:
            print(("\r" if interactive else "") + line, flush=True)

    return report


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"

