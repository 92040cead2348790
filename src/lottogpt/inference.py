"""Engines that answer lotto cases: the reference program and the trained model.

Every caller (``lottogpt predict``, ``play``, the server, the evaluation, the MLflow pyfunc) goes
through :func:`load_engine` and ``Engine.predict``, so all of them see the same model and decoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from lottogpt import checkpoint, data, formats, kata
from lottogpt.common import file_sha256, pick_device, set_threads
from lottogpt.decode import NGramDrafter, greedy_decode
from lottogpt.model import GPT
from lottogpt.params import DataParams
from lottogpt.tokenizer import Tokenizer


@dataclass
class Prediction:
    """One answer: the six lines as printed, and what they say when they are in the kata's form."""

    output: str
    counts: dict[str, int] | None
    return_rate: str | None
    work: list[str] = field(default_factory=list)
    tool_used: bool = False

    @property
    def format_valid(self) -> bool:
        return self.counts is not None

    def to_json(self, show_work: bool = False) -> dict:
        data: dict = {"output": self.output, "counts": self.counts, "return_rate": self.return_rate}
        if not self.format_valid:
            data["format_valid"] = False
        if self.tool_used:
            data["tool_used"] = True
        if show_work:
            data["work"] = self.work
        return data


def reference_prediction(case: kata.Case) -> Prediction:
    result = kata.score(case)
    work = [formats.work_line(case, i) for i in range(1, len(case.tickets) + 1)]
    return Prediction(result.output, dict(result.counts), result.return_rate, work)


def prediction_from_completion(completion: str, n_tickets: int) -> Prediction:
    """Read a generated completion: work lines apart, the tool call filled in, the six lines parsed."""
    work, answer = formats.split_work(completion)
    filled = formats.apply_tool(answer, n_tickets)
    tool_used = filled != answer
    parsed = formats.parse_statistics(filled)
    if parsed is None:
        return Prediction("\n".join(filled), None, None, work, tool_used)
    counts, rate = parsed
    return Prediction("\n".join(filled), counts, rate, work, tool_used)


class WorksheetFeeder:
    """Feeds a case's ticket markers and numbers into its work lines; the model writes everything else.

    A work line is ``marker N1 flag N2 flag ... N6 flag(+" =") count [b] newline``: the marker and the
    numbers are input, the flags, the count and the newline are the model's.
    """

    def __init__(self, tokenizer: Tokenizer, case: kata.Case) -> None:
        self.tickets = [(tokenizer.marker_id(i), [tokenizer.number_id(n) for n in ticket])
                        for i, ticket in enumerate(case.tickets, start=1)]
        self.newline_id = tokenizer.newline_id
        self.ticket, self.fed, self.phase = 0, 0, "marker"

    def forced(self) -> int | None:
        if self.phase == "marker":
            return self.tickets[self.ticket][0]
        if self.phase == "number":
            return self.tickets[self.ticket][1][self.fed]
        return None

    def observe(self, token: int) -> None:
        if self.phase == "marker":
            self.phase = "number"
        elif self.phase == "number":
            self.fed += 1
            self.phase = "flag"
        elif self.phase == "flag":
            self.phase = "number" if self.fed < kata.NUMBERS_PER_TICKET else "tail"
        elif self.phase == "tail" and token == self.newline_id:
            self.ticket, self.fed = self.ticket + 1, 0
            self.phase = "marker" if self.ticket < len(self.tickets) else "free"


def prompt_tokens(tokenizer: Tokenizer, case: kata.Case, answer_format: str) -> list[int]:
    return [tokenizer.bos_id, *tokenizer.encode(formats.render_prompt(case, answer_format))]


def feeders_for(tokenizer: Tokenizer, cases: list[kata.Case], answer_format: str) -> list[WorksheetFeeder] | None:
    """One feeder per case in the fed answer formats (ticket markers and numbers are input), else None."""
    if answer_format not in formats.FED_FORMATS:
        return None
    return [WorksheetFeeder(tokenizer, c) for c in cases]


def ngram_drafter(tokenizer: Tokenizer, answer_format: str, min_tickets: int, max_tickets: int,
                  cases: int = 1000, seed: int = 0) -> NGramDrafter:
    """An n-gram guesser for speculative decoding, counted on ``cases`` drawn like the training corpus.

    The cases are fresh draws of the corpus generator (stratified, ``seed``), rendered and tokenized as
    in training: the table holds token statistics, never the answer to the case being decoded.
    """
    params = DataParams(min_tickets=min_tickets, max_tickets=max_tickets, answer_format=answer_format)
    drawn = data.draw_cases(np.random.default_rng(seed), params, cases, "stratified")
    completions = tokenizer.encode_batch([formats.render_completion(c, answer_format) for c in drawn])
    sequences = (prompt_tokens(tokenizer, c, answer_format) + completion + [tokenizer.eos_id]
                 for c, completion in zip(drawn, completions, strict=True))
    return NGramDrafter.count(sequences)


def complete(model: GPT, tokenizer: Tokenizer, cases: list[kata.Case], answer_format: str,
             batch_size: int = 64, drafter: NGramDrafter | None = None, batch_draft: int = 0,
             lone_draft: int = 16) -> list[str]:
    """The model's completions (work lines and answer) for ``cases``, greedy, in ``answer_format``.

    With a ``drafter``, a case alone in its shape group is decoded speculatively (same answer, fewer passes;
    ``lone_draft`` 0: not), and with ``batch_draft`` > 0 so are larger groups (``decode.speculative_decode_rows``).
    """
    prompts = [prompt_tokens(tokenizer, c, answer_format) for c in cases]
    feeders = feeders_for(tokenizer, cases, answer_format)
    outputs = greedy_decode(model, prompts, tokenizer.eos_id, batch_size, feeders=feeders, drafter=drafter,
                            batch_draft=batch_draft, lone_draft=lone_draft)
    return [tokenizer.decode(tokens) for tokens in outputs]


class Engine(Protocol):
    name: str

    def check(self, case: kata.Case) -> None: ...

    def predict(self, cases: list[kata.Case]) -> list[Prediction]: ...

    def info(self) -> dict: ...

    def version(self) -> str: ...


class ReferenceEngine:
    """The kata itself."""

    name = "reference"

    def check(self, case: kata.Case) -> None:
        """Every valid case is answerable."""

    def predict(self, cases: list[kata.Case]) -> list[Prediction]:
        return [reference_prediction(case) for case in cases]

    def info(self) -> dict:
        return {"engine": self.name, "min_tickets": 1, "max_tickets": None}

    def version(self) -> str:
        return "reference"


class ModelEngine:
    """The trained GPT, loaded from a checkpoint folder."""

    name = "model"

    def __init__(self, directory: str | Path, device: str = "auto", batch_size: int = 64,
                 threads: int = 0, speculative: bool = False, batch_draft: int = 3, lone_draft: int = 16) -> None:
        # Decoding runs many small matrix products; one CPU thread avoids spin-waiting on a busy machine.
        set_threads(threads)
        self.directory = Path(directory)
        self.device = pick_device(device)
        self.model, self.tokenizer, self.config = checkpoint.load(self.directory, self.device)
        self.weights_sha256 = file_sha256(self.directory / checkpoint.WEIGHTS_FILE)
        self.batch_size = batch_size
        self.min_tickets = int(self.config.get("min_tickets", 1))
        self.max_tickets = int(self.config.get("max_tickets", formats.MAX_TICKETS))
        self.answer_format = str(self.config.get("answer_format", "scratchpad"))
        # Speculative decoding (lone cases: ``speculative``; batches: ``batch_draft``); counting its n-gram
        # table takes about a second on a CPU.
        self.drafter = (ngram_drafter(self.tokenizer, self.answer_format, self.min_tickets, self.max_tickets)
                        if speculative or batch_draft > 0 else None)
        # Batches decode speculatively too (decode.speculative_decode_rows) with up to ``batch_draft`` guesses
        # a row: 1.2-1.45x the cases/s of lockstep on a CPU (more guesses make every pass wider; 0: lockstep).
        self.batch_draft = batch_draft
        self.speculative = speculative
        self.lone_draft = lone_draft  # guesses a pass for a lone case (the best number depends on the backend)

    def check(self, case: kata.Case) -> None:
        """Refuse a case outside the ticket range the model was trained on."""
        n = len(case.tickets)
        if not self.min_tickets <= n <= self.max_tickets:
            raise kata.LottoError(f"이 모델은 {self.min_tickets}~{self.max_tickets}장만 학습했습니다 "
                                  f"(the model was trained on {self.min_tickets}..{self.max_tickets} tickets, "
                                  f"got {n})")

    def completions(self, cases: list[kata.Case]) -> list[str]:
        for case in cases:
            self.check(case)
        return complete(self.model, self.tokenizer, cases, self.answer_format, self.batch_size, self.drafter,
                        self.batch_draft, self.lone_draft if self.speculative else 0)

    def predict(self, cases: list[kata.Case]) -> list[Prediction]:
        texts = self.completions(cases)
        return [prediction_from_completion(t, len(c.tickets)) for t, c in zip(texts, cases, strict=True)]

    def version(self) -> str:
        """A short, stable name of these weights: ``step<N>-<weights sha256[:12]>``."""
        return f"step{self.config.get('step')}-{self.weights_sha256[:12]}"

    def info(self) -> dict:
        keys = ("step", "answer_format", "min_tickets", "max_tickets", "tokenizer_sha256", "data_sha256",
                "params")
        return {"engine": self.name, "path": str(self.directory), "device": str(self.device),
                "speculative": self.speculative, "batch_draft": self.batch_draft, "model": self.config["model"],
                **{k: self.config.get(k) for k in keys}}


def load_engine(name: str, model: str | Path = "models/checkpoint", device: str = "auto",
                speculative: bool = False) -> Engine:
    """``reference`` or ``model`` (a local checkpoint folder; ``registry.local_model`` resolves ``models:/``).

    ``speculative``: the model decodes a case alone in its batch speculatively (see ``decode``)."""
    if name == "reference":
        return ReferenceEngine()
    if name == "model":
        return ModelEngine(model, device, speculative=speculative)
    raise ValueError(f"unknown engine {name!r}: use 'reference' or 'model'")
