"""Training: the GPT learns to write the completion given the prompt (loss on completion tokens only).

Batches hold cases of one ticket count (so nearly no padding) and about ``train.batch_tokens``
tokens each; with ``train.curriculum_steps`` the largest ticket count grows from ``data.min_tickets``
to ``data.max_tickets``. AdamW or Muon (``train.optimizer``) with warmup and cosine decay, gradient
clipping, seeded sampling.
Runs on CUDA (bf16 autocast, TF32), MPS or CPU, and under ``torchrun`` with DDP (every rank takes
part in each collective; rank 0 reports and writes). Every ``train.checkpoint_interval`` steps the
resume state (weights, optimizers, every rank's RNG states) is written as one file; a run killed at
any instant and restarted with the same command, inputs and world size resumes from it and ends
with the same weights as a run never interrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F  # noqa: N812
from torch.nn.parallel import DistributedDataParallel

from lottogpt import checkpoint, data, formats, kata, progress
from lottogpt.common import Distributed, file_sha256, pick_device, set_threads, setup_distributed
from lottogpt.inference import complete, prediction_from_completion
from lottogpt.model import GPT, GPTConfig
from lottogpt.params import Params, TrainParams
from lottogpt.tokenizer import Tokenizer, longest_case_tokens

STATE_FILE = checkpoint.STATE_FILE
IGNORE = -100


class TrainError(RuntimeError):
    """A configuration that cannot train, with the params to change."""


class Encoded:
    """A split whose cases are tokenized on first use (BOS + prompt + completion + EOS).

    With ``drills`` each case is its arithmetic drill instead (``formats.drill_texts``): the count lines
    are given and only the lines after them are trained.
    """

    def __init__(self, tokenizer: Tokenizer, frame: pl.DataFrame, block_size: int, answer_format: str = "",
                 drills: bool = False) -> None:
        self.drills = drills
        self.answer_format = answer_format
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
            prompt_text, completion_text = self.prompts[index], self.completions[index]
            if self.drills:
                prompt_text, completion_text = formats.drill_texts(prompt_text, completion_text)
            prompt = [self.tokenizer.bos_id, *self.tokenizer.encode(prompt_text)]
            sequence = [*prompt, *self.tokenizer.encode(completion_text), self.tokenizer.eos_id]
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

    def as_drills(self) -> Encoded:
        """The same cases as arithmetic drills."""
        return Encoded(self.tokenizer, self.frame, self.block_size, self.answer_format, drills=True)

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return make_batch(self, indices)


class DivisionDrills:
    """Division lines of random dividends: the division table drilled on its own.

    A step of the ledger's division line reads only the divisor, the remainder before it and the digit
    brought down, so a line of random digits trains the same table as the rate, in a few dozen tokens where
    a case takes hundreds. The digits brought down are given (in a case they are copied from the sum line);
    the quotient digits and remainders are trained. Divisor ``n`` has ``10 n`` steps, so divisors are drawn
    in proportion to their size and every step of the table comes up about equally often.
    """

    def __init__(self, tokenizer: Tokenizer, answer_format: str, max_divisor: int) -> None:
        if formats.DIVISION_STYLES.get(answer_format) != "ledger":
            raise TrainError(f"division drills need a format with the ledger's division line, not "
                             f"{answer_format!r}: set train.division_drill_share to 0")
        self.tokenizer = tokenizer
        self.divisors = np.arange(1, max_divisor + 1)
        self.weights = self.divisors / self.divisors.sum()
        # The longest dividend: every ticket a first prize, plus the rounding half.
        self.max_digits = len(str(max_divisor * kata.Rank.SIX.prize + max_divisor // 2))
        self.row_tokens = 3 * self.max_digits + 6

    def draw(self, rng: np.random.Generator, batch_tokens: int) -> np.ndarray:
        """Rows of ``(divisor, dividend)``: a dividend of 2 to ``max_digits`` digits, its length uniform."""
        rows = max(1, batch_tokens // self.row_tokens)
        divisors = rng.choice(self.divisors, size=rows, p=self.weights)
        digits = rng.integers(2, self.max_digits + 1, size=rows)
        lowest = np.where(digits == 2, divisors // 2, 10 ** (digits - 1))  # "05" is a dividend of 5 tickets' half
        return np.stack([divisors, rng.integers(lowest, 10 ** digits)], axis=1)

    def tokens(self, divisor: int, dividend: int) -> tuple[np.ndarray, np.ndarray]:
        """BOS and the division line, and the positions of its quotient digits and remainders."""
        line = formats.division_line(dividend - divisor // 2, divisor, "ledger")
        sequence = np.array([self.tokenizer.bos_id, *self.tokenizer.encode("\n" + line)], dtype=np.int64)
        trained = division_step_positions(self.tokenizer, sequence, line)
        return sequence, trained[(trained - trained[0]) % 3 != 0]

    def batch(self, picks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets; the targets are IGNORE but for the quotient digits and remainders."""
        return rows_batch([self.tokens(int(divisor), int(dividend)) for divisor, dividend in picks])


class SumDivisionDrills:
    """Each case's sum line given and its division line written, the digits brought down included.

    :class:`DivisionDrills` give the digits brought down, so they train the table but not the copying of
    each digit from the sum line, a lookup by place; these rows train both, on the totals that cases reach,
    in about a hundred tokens where a whole case takes hundreds. Rows are cases of the corpus, by index.
    """

    def __init__(self, encoded: Encoded) -> None:
        if (encoded.answer_format not in formats.SUM_FORMATS
                or formats.DIVISION_STYLES.get(encoded.answer_format) != "ledger"):
            raise TrainError(f"division drills from sums need a sum line and the ledger's division line, not "
                             f"{encoded.answer_format!r}: set train.division_drill_source to random")
        self.encoded = encoded
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def tokens(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """BOS, the sum line and the division line of case ``index``, and the positions of the division's
        steps (each: the digit brought down, the quotient digit, the remainder)."""
        if index not in self._rows:
            lines = self.encoded.completions[index].split("\n")
            at = next(i for i, line in enumerate(lines) if formats.is_sum_line(line))
            tokenizer = self.encoded.tokenizer
            sequence = np.array([tokenizer.bos_id, *tokenizer.encode("\n".join(["", *lines[at:at + 2]]))],
                                dtype=np.int64)
            self._rows[index] = (sequence, division_step_positions(tokenizer, sequence, lines[at + 1]))
        return self._rows[index]

    def batch(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return rows_batch([self.tokens(int(i)) for i in indices])


DIVISION_SOURCES = {"random": ("random",), "sums": ("sums",), "both": ("random", "sums")}


def division_drills(encoded: Encoded, source: str) -> DivisionDrills | SumDivisionDrills:
    """The division drills of one source: ``random`` dividends, or the corpus's ``sums``."""
    if source == "sums":
        return SumDivisionDrills(encoded)
    return DivisionDrills(encoded.tokenizer, encoded.answer_format, int(encoded.n_tickets.max()))


def division_step_positions(tokenizer: Tokenizer, sequence: np.ndarray, line: str) -> np.ndarray:
    """The positions of a division line's steps at the end of ``sequence``: three tokens a step."""
    steps = formats.division_steps(line)
    first = len(sequence) - 3 * len(steps[1]) if steps else 0
    if first < 1 or tokenizer.decode(sequence[first:].tolist()) != line.split(" ", 1)[1]:
        raise TrainError("division drills need one token per digit and remainder: set "
                         "tokenizer.value_pieces to true, or train.division_drill_share to 0")
    return np.arange(first, len(sequence))


def rows_batch(rows: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of ``(sequence, trained positions)`` rows; IGNORE but at the trained positions."""
    length = max(len(sequence) for sequence, _ in rows) - 1
    x = torch.zeros((len(rows), length), dtype=torch.long)
    y = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    for row, (sequence, trained) in enumerate(rows):
        x[row, : len(sequence) - 1] = torch.from_numpy(sequence[:-1])
        y[row, trained - 1] = torch.from_numpy(sequence[trained])
    return x, y


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
    A ``drill_share`` of the batches are arithmetic drills (:meth:`Encoded.as_drills`) of such cases: a
    drill leaves out the ticket work lines that make up most of a long case, so the arithmetic after the
    count lines is trained on many more cases for the same tokens. A ``division_share`` of the batches are
    division drills: :class:`DivisionDrills` (the division table alone) with ``division_source`` ``random``,
    :class:`SumDivisionDrills` (cases' sum and division lines, ticket counts drawn as for cases) with ``sums``,
    either of them, drawn evenly, with ``both``.
    """

    def __init__(self, encoded: Encoded, batch_tokens: int, seed: int, curriculum_steps: int,
                 count_power: float = 0.0, drill_share: float = 0.0, division_share: float = 0.0,
                 division_source: str = "random") -> None:
        self.encoded = encoded
        self.drill_share = drill_share
        self.drills = encoded.as_drills() if drill_share > 0 else None
        self.division_share = division_share
        self.division = ([division_drills(encoded, source) for source in DIVISION_SOURCES[division_source]]
                         if division_share > 0 else [])
        self.batch_tokens = batch_tokens
        self.curriculum_steps = curriculum_steps
        self.count_power = count_power
        self.rng = np.random.default_rng(seed)
        self.by_count = {int(n): np.flatnonzero(encoded.n_tickets == n) for n in np.unique(encoded.n_tickets)}
        # Cases of one ticket count differ in length by a few tokens only; the longest of a sample will do.
        self.count_length = {n: max(len(encoded.tokens(int(i))) for i in idx[:32])
                             for n, idx in self.by_count.items()}
        self.counts = sorted(self.by_count)
        self.drill_length = {n: max(len(self.drills.tokens(int(i))) for i in idx[:32])
                             for n, idx in self.by_count.items()} if self.drills is not None else {}
        sums = [rows for rows in self.division if isinstance(rows, SumDivisionDrills)]
        self.division_length = {n: max(len(sums[0].tokens(int(i))[0]) for i in idx[:32])
                                for n, idx in self.by_count.items()} if sums else {}

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

    def draw_cases(self, step: int) -> np.ndarray:
        """The indices of the cases in the batch of ``step`` (with replacement)."""
        return self.draw_rows(step, self.count_length)

    def draw_batch(self, step: int) -> tuple[Encoded | DivisionDrills | SumDivisionDrills, np.ndarray]:
        """The rows of the batch of ``step``: with probability ``division_share`` division drills, else with
        probability ``drill_share`` drills of cases, else cases."""
        if self.division and self.rng.random() < self.division_share:
            # One source draws nothing more, so its batches stay those of runs before ``both`` existed.
            rows = self.division[int(self.rng.integers(2))] if len(self.division) > 1 else self.division[0]
            if isinstance(rows, SumDivisionDrills):
                return rows, self.draw_rows(step, self.division_length)
            return rows, rows.draw(self.rng, self.batch_tokens)
        if self.drills is not None and self.rng.random() < self.drill_share:
            return self.drills, self.draw_rows(step, self.drill_length)
        return self.encoded, self.draw_cases(step)

    def draw_rows(self, step: int, row_length: dict[int, int]) -> np.ndarray:
        """Cases of one drawn ticket count, as many as fit the batch at ``row_length`` tokens per row."""
        n = self.draw_count(step)
        return self.rng.choice(self.by_count[n], size=max(1, self.batch_tokens // row_length[n]))

    def sample(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, picks = self.draw_batch(step)
        return rows.batch(picks)


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
class Runtime:
    """Where this process trains: its device, its place in the torchrun job and its autocast."""

    device: torch.device
    dist: Distributed
    autocast: contextlib.AbstractContextManager


def setup_runtime(cfg: TrainParams) -> Runtime:
    """Seed, threads, device, the torchrun job (one CUDA device per local rank) and TF32 on CUDA."""
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
    if not dist_info.main:
        progress.set_enabled(False)  # rank 0 reports for the job
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return Runtime(device, dist_info, autocast_context(device, cfg.precision))


def wrap_model(model: GPT, cfg: TrainParams, rt: Runtime) -> torch.nn.Module:
    """The module the loop calls: compiled when asked, in DDP under torchrun (which syncs the gradients)."""
    wrapped: torch.nn.Module = model
    if cfg.compile:
        wrapped = torch.compile(model)  # type: ignore[assignment]
    if rt.dist.world_size > 1:
        wrapped = DistributedDataParallel(wrapped, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return wrapped


@dataclass
class Inputs:
    tokenizer: Tokenizer
    train_set: Encoded
    val_set: Encoded
    data_sha: str
    fingerprint: str


def load_inputs(params: Params, corpus_dir: str | Path, tokenizer_dir: str | Path) -> Inputs:
    tokenizer = Tokenizer.load(tokenizer_dir)
    columns = ["model_prompt", "model_completion", "n_tickets", "tickets", "winning", "bonus"]
    fmt, block_size = params.data.answer_format, params.model.block_size
    train_set = Encoded(tokenizer, data.read_split(corpus_dir, "train", columns), block_size, fmt)
    val_set = Encoded(tokenizer, data.read_split(corpus_dir, "val", columns), block_size, fmt)
    longest = longest_case_tokens(tokenizer, params.data.max_tickets, fmt)
    if longest > block_size:
        raise TrainError(f"a case of data.max_tickets={params.data.max_tickets} tickets can take {longest} tokens "
                         f"but model.block_size is {block_size}: raise model.block_size to at least "
                         f"{longest} or lower data.max_tickets")
    data_sha = file_sha256(Path(corpus_dir) / "train.parquet")
    return Inputs(tokenizer, train_set, val_set, data_sha, fingerprint(params, data_sha, tokenizer.sha256))


@dataclass
class RunState:
    """What the loop carries across a resume besides weights, optimizers and RNGs."""

    step: int = 0
    elapsed: float = 0.0  # seconds trained by the runs this one resumes
    curve: list[dict] = field(default_factory=list)
    smooth_loss: float | None = None  # the loss's moving average: metrics.json's final_loss


def resume(out_dir: Path, model: GPT, optimizers: list[torch.optim.Optimizer], sampler: Sampler, rt: Runtime,
           expected: str) -> RunState:
    """Load the resume state, if it matches these params and inputs, into every rank.

    Rank 0 reads it and broadcasts it, so all ranks resume from the same step or none does, and ranks on
    other machines need no copy of the folder.
    """
    state = checkpoint.load_state(out_dir) if rt.dist.main else None
    if rt.dist.main and state is not None:
        if state.get("fingerprint") != expected or state.get("world_size") != rt.dist.world_size:
            progress.note(f"ignoring {out_dir / checkpoint.STATE_FILE}: it belongs to other params, inputs, "
                          "world size or an older version; starting over")
            state = None
        else:
            progress.note(f"resuming from step {state['step']} ({out_dir / checkpoint.STATE_FILE})")
    state = rt.dist.broadcast(state)
    if state is None:
        return RunState()
    model.load_state_dict(state["model"])
    for optimizer, saved in zip(optimizers, state["optimizers"], strict=True):
        optimizer.load_state_dict(saved)
    rng = state["rng"][rt.dist.rank]
    sampler.rng.bit_generator.state = json.loads(rng["sampler"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and rt.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"])
    return RunState(int(state["step"]), float(state["elapsed"]), list(state["curve"]), state["smooth_loss"])


def save_resume_state(out_dir: Path, model: GPT, optimizers: list[torch.optim.Optimizer], sampler: Sampler,
                      rt: Runtime, run: RunState, expected: str) -> None:
    """Every rank hands its RNG states to rank 0 (a collective: all ranks call it), which writes the state."""
    cuda = torch.cuda.get_rng_state() if rt.device.type == "cuda" else None
    rngs = rt.dist.gather({"sampler": json.dumps(sampler.rng.bit_generator.state), "torch": torch.get_rng_state(),
                           "cuda": cuda})
    if rt.dist.main:
        checkpoint.save_state(out_dir, {
            "model": model.state_dict(), "optimizers": [o.state_dict() for o in optimizers], "step": run.step,
            "elapsed": run.elapsed, "curve": run.curve, "smooth_loss": run.smooth_loss, "rng": rngs,
            "fingerprint": expected, "world_size": rt.dist.world_size})


def train(params: Params, corpus_dir: str | Path, tokenizer_dir: str | Path, out_dir: str | Path,
          results_dir: str | Path) -> dict:
    """Train (or resume) and write the checkpoint, ``metrics.json`` and ``curve.csv``."""
    cfg, out_dir = params.train, Path(out_dir)
    rt = setup_runtime(cfg)
    inputs = load_inputs(params, corpus_dir, tokenizer_dir)
    raw_model = GPT(GPTConfig(vocab_size=inputs.tokenizer.vocab_size, **asdict(params.model))).to(rt.device)
    optimizers = make_optimizers(raw_model, params, rt.device)
    sampler = Sampler(inputs.train_set, cfg.batch_tokens, cfg.seed + rt.dist.rank, cfg.curriculum_steps,
                      cfg.count_power, cfg.drill_share, cfg.division_drill_share, cfg.division_drill_source)
    run = resume(out_dir, raw_model, optimizers, sampler, rt, inputs.fingerprint)
    model = wrap_model(raw_model, cfg, rt)
    started, elapsed_before = time.perf_counter(), run.elapsed

    def clock() -> float:
        return time.perf_counter() - started

    progress.note(f"training {raw_model.num_params():,} parameters on {rt.device} (world size "
                  f"{rt.dist.world_size}), {len(inputs.train_set):,} cases, steps {run.step}->{cfg.max_steps}")
    tokens_seen, stopped_early = 0, False
    model.train()
    with progress.track("train", cfg.max_steps - run.step, unit="steps") as task:
        for step in range(run.step, cfg.max_steps):
            lr = lr_at(step, params)
            for optimizer in optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            x, y = sampler.sample(step)
            x, y = x.to(rt.device), y.to(rt.device)
            with rt.autocast:
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
            run.smooth_loss = value if run.smooth_loss is None else 0.95 * run.smooth_loss + 0.05 * value
            run.step = done = step + 1
            row = {"step": done, "loss": round(value, 5), "lr": round(lr, 6)}
            if rt.dist.main and (done % cfg.eval_interval == 0 or done == cfg.max_steps):
                row.update(validation(raw_model, inputs, rt.device, params))
            run.curve.append(row)
            run.elapsed = elapsed_before + clock()
            task.advance(1, step=done, loss=round(run.smooth_loss, 4),
                         tok_s=round(tokens_seen * rt.dist.world_size / max(clock(), 1e-9)),
                         **{k: v for k, v in row.items() if k.startswith("val_")})
            if done % cfg.checkpoint_interval == 0 and done < cfg.max_steps:
                save_resume_state(out_dir, raw_model, optimizers, sampler, rt, run, inputs.fingerprint)
            if cfg.max_minutes > 0 and rt.dist.any(run.elapsed > cfg.max_minutes * 60):  # all ranks stop together
                stopped_early = True
                progress.note(f"stopping at step {done}: train.max_minutes={cfg.max_minutes} reached")
                break

    tokens_per_second = tokens_seen * rt.dist.world_size / max(clock(), 1e-9)
    return finish(params, raw_model, inputs, rt, run, out_dir, tokenizer_dir, Path(results_dir), {
        "steps": run.step, "final_loss": round(run.smooth_loss or float("nan"), 5),
        "tokens_per_second": round(tokens_per_second, 1), "wall_seconds": round(elapsed_before + clock(), 1),
        "stopped_early": stopped_early})


def validation(model: GPT, inputs: Inputs, device: torch.device, params: Params) -> dict:
    """The curve's validation figures: loss on the val split, exact match on its first cases."""
    return {"val_loss": round(evaluate_loss(model, inputs.val_set, device, params.train.batch_tokens), 5),
            "val_exact_match": round(exact_match(model, inputs.tokenizer, inputs.val_set, params.train.eval_cases,
                                                 params.data.answer_format), 4)}


def finish(params: Params, model: GPT, inputs: Inputs, rt: Runtime, run: RunState, out_dir: Path,
           tokenizer_dir: str | Path, results_dir: Path, figures: dict) -> dict:
    """Rank 0 writes the checkpoint, then drops the resume state, then writes metrics.json and curve.csv."""
    meta = {"answer_format": params.data.answer_format, "min_tickets": params.data.min_tickets,
            "max_tickets": params.data.max_tickets, "tokenizer_sha256": inputs.tokenizer.sha256,
            "data_sha256": inputs.data_sha, "params": {"model": asdict(params.model), "train": asdict(params.train)},
            "torch": torch.__version__, "step": run.step}
    last = {key: next((r[key] for r in reversed(run.curve) if key in r), None)
            for key in ("val_loss", "val_exact_match")}
    metrics = {"steps": figures["steps"], "final_loss": figures["final_loss"], **last,
               "tokens_per_second": figures["tokens_per_second"], "wall_seconds": figures["wall_seconds"],
               "params": model.num_params(), "device": str(rt.device), "world_size": rt.dist.world_size,
               "stopped_early": figures["stopped_early"]}
    if rt.dist.main:
        checkpoint.save(out_dir, model, meta, tokenizer_dir)
        checkpoint.remove_state(out_dir, run.step)
        results_dir.mkdir(parents=True, exist_ok=True)
        (results_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        pl.DataFrame(run.curve, infer_schema_length=None).write_csv(results_dir / "curve.csv")
        progress.summary(f"trained {run.step} steps (world size {rt.dist.world_size}) in "
                         f"{progress.format_duration(metrics['wall_seconds'])}: loss {metrics['final_loss']}, "
                         f"val loss {metrics['val_loss']}, val exact match {metrics['val_exact_match']}, "
                         f"{metrics['tokens_per_second']:,.0f} tokens/s -> {out_dir}")
    if rt.dist.world_size > 1:
        # DDP keeps replicas identical; each rank's digest makes that checkable.
        progress.summary(f"rank {rt.dist.rank} weights sha256 {weights_sha256(model)}")
    rt.dist.close()
    return metrics


def weights_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
