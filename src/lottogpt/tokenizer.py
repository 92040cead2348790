"""A number-aware SentencePiece tokenizer.

Plain SentencePiece BPE splits lotto numbers by context (``33`` becomes ``▁3`` + ``3]``), so the same
number would get different pieces in a ticket, in the winning numbers and as the bonus, and the model
could not see that two numbers are equal. Before SentencePiece sees a text, every lotto number
(in a ticket line, the winning numbers line, the bonus line and a work line) is replaced by one
private-use character that is a user-defined piece, so each number 1..45 is always one and the same
token. The kata's fixed texts (``kata.FIXED_TEXTS``: the prompts, ``3개 일치 (5,000원) - ``, ...) get one
piece each the same way. All other digits (amounts, counts, rates) are split one digit a piece.
Newlines get a piece of their own. Decoding maps everything back: ``decode(encode(text)) == text``.

For the answer formats in ``formats.PLACE_FORMATS`` the tokenizer also has one piece per digit and
place value (``5`` in the hundreds is another piece than ``5`` in the tens) and uses them for the
digits of the rate and of the division work line, so the model can find "the quotient digit of the
hundreds" by what a piece is, not by counting positions. A tokenizer knows it has these pieces
(:attr:`Tokenizer.place_digits`), so a checkpoint carries the choice with it. For the formats in
``formats.SUM_FORMATS`` (:attr:`Tokenizer.sum_places`) the digits of the sum line and the digits the
division brings down are tagged too, so bringing down the hundreds is copying the sum's hundreds piece.

With ``value_pieces`` (``tokenizer.value_pieces``) every small integer the model computes is one piece:
a count line's value, a tally's value, the divisor of the division line and each of its remainders
(``¹⁷`` is one piece, not two). A step of the division then reads three tokens (remainder, dividend
digit, divisor) instead of up to five, and a tally goes from piece to piece (``9`` -> ``10`` is one
lookup, not a carry). :attr:`Tokenizer.value_pieces` says whether a tokenizer has them.

Special tokens are defined here and nowhere else: ``<pad>`` 0, ``<unk>`` 1, ``<s>`` (BOS) 2,
``</s>`` (EOS) 3. The answer formats need no separator beyond the pieces of their text.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import sentencepiece as spm

from lottogpt import formats, kata, progress
from lottogpt.data import SPLITS
from lottogpt.params import TokenizerParams

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
NEWLINE_CHAR = "\ue100"
_NUMBER_BASE = 0xE000  # U+E001..U+E02D stand for the lotto numbers 1..45
NUMBER_CHARS = "".join(chr(_NUMBER_BASE + n) for n in range(kata.NUMBER_MIN, kata.NUMBER_MAX + 1))
_PHRASE_BASE = 0xE040  # one private-use character for each of the kata's fixed texts
PHRASE_CHARS = "".join(chr(_PHRASE_BASE + i) for i in range(len(kata.FIXED_TEXTS)))
_PLACE_BASE = 0xE200  # U+E200 + 10 * place + digit: a digit in the 10**place position
PLACES = 12  # enough for the largest dividend of 50 tickets (50 jackpots: 12 digits)
PLACE_CHARS = "".join(chr(_PLACE_BASE + i) for i in range(10 * PLACES))
MAX_VALUE = formats.MAX_TICKETS  # a count, a tally, a divisor or a remainder is at most the ticket count
_VALUE_BASE = 0xE300  # U+E300 + v: the value v of a count line or a tally
VALUE_CHARS = "".join(chr(_VALUE_BASE + v) for v in range(MAX_VALUE + 1))
_DIVISOR_BASE = 0xE340  # U+E340 + n: the divisor n of the division line
DIVISOR_CHARS = "".join(chr(_DIVISOR_BASE + n) for n in range(MAX_VALUE + 1))
_REMAINDER_BASE = 0xE380  # U+E380 + r: the remainder r of a division step, written in superscript
REMAINDER_CHARS = "".join(chr(_REMAINDER_BASE + r) for r in range(MAX_VALUE + 1))
MODEL_FILE = "tokenizer.model"
META_FILE = "tokenizer.json"

_PRIVATE = re.compile(rf"[{NUMBER_CHARS}{NEWLINE_CHAR}{PHRASE_CHARS}{PLACE_CHARS}{VALUE_CHARS}{DIVISOR_CHARS}"
                      rf"{REMAINDER_CHARS}]")
_PHRASE = re.compile("|".join(re.escape(t) for t in sorted(kata.FIXED_TEXTS, key=len, reverse=True)))
_TO_PHRASE_CHAR = {text: chr(_PHRASE_BASE + i) for i, text in enumerate(kata.FIXED_TEXTS)}
_TICKET_LINE = re.compile(rf"[{formats.CIRCLED_CHARS}]?\[\d{{1,2}}(?:, \d{{1,2}})*\]")
_WINNING_LINE = re.compile(r"\d{1,2}(?:,\d{1,2}){5}")
_BONUS_LINE = re.compile(r"\d{1,2}")
_ANY_NUMBER = re.compile(r"\d+")
_WORK_NUMBER = re.compile(rf"(?<![^ {formats.CIRCLED_CHARS}])\d{{1,2}}(?=[+b.])")
_TO_DIGITS = {chr(_NUMBER_BASE + n): str(n) for n in range(kata.NUMBER_MIN, kata.NUMBER_MAX + 1)}
_TO_DIGITS[NEWLINE_CHAR] = "\n"
_TO_DIGITS |= {char: text for text, char in _TO_PHRASE_CHAR.items()}
_TO_DIGITS |= {char: str(index % 10) for index, char in enumerate(PLACE_CHARS)}
_TO_DIGITS |= {char: str(v) for v, char in enumerate(VALUE_CHARS)}
_TO_DIGITS |= {char: str(n) for n, char in enumerate(DIVISOR_CHARS)}
_TO_DIGITS |= {char: formats.superscript(r) for r, char in enumerate(REMAINDER_CHARS)}
_COUNT_LABELS = [rank.line_label for rank in kata.Rank]
_COUNT_LINE = re.compile("(" + "|".join(re.escape(f"{label} - ") for label in _COUNT_LABELS) + r")(\d+)(개)")
_TALLY_VALUE = re.compile(rf"( [#{formats.TALLY_CHARS}])(\d+)$")
_RATE_LINE = re.compile(rf"({re.escape(kata.RATE_PREFIX)})([0-9,]+\.[0-9])({re.escape(kata.RATE_SUFFIX)})")


def _number_char(match: re.Match[str]) -> str:
    digits = match.group(0)
    number = int(digits)
    # Only canonical spellings map to a piece ("07" stays digits), so decoding restores the text.
    if str(number) == digits and kata.NUMBER_MIN <= number <= kata.NUMBER_MAX:
        return chr(_NUMBER_BASE + number)
    return digits


def _value(chars: str, text: str) -> str:
    """The one piece of the integer ``text`` (digits or superscript) from ``chars``; plain text if too big."""
    plain = text[0] not in formats.SUPERSCRIPTS
    value = int(text if plain else "".join(str(formats.SUPERSCRIPTS.index(c)) for c in text))
    # Only canonical spellings map to a piece ("07" stays digits), so decoding restores the text.
    canonical = str(value) if plain else formats.superscript(value)
    return chars[value] if value <= MAX_VALUE and text == canonical else text


def _place_digits(number: str, places: list[int] | None = None) -> str:
    """``number`` with each digit replaced by its digit-and-place piece; separators stay as they are.

    ``places`` gives the place of each digit; by default the last digit is the ones (place 0).
    """
    count = sum(c.isdigit() for c in number)
    places = places if places is not None else list(range(count - 1, -1, -1))
    if count > PLACES or max(places, default=0) >= PLACES:
        return number  # too long to tag: plain digits still decode to the same text
    out, digit_index = [], 0
    for char in number:
        if char.isdigit():
            out.append(chr(_PLACE_BASE + 10 * places[digit_index] + int(char)))
            digit_index += 1
        else:
            out.append(char)
    return "".join(out)


def _mark_places(line: str, value_pieces: bool = False, sum_places: bool = False) -> str | None:
    """The division line or the rate line with place-tagged digits; ``None`` for any other line.

    With ``value_pieces`` the divisor and each remainder of the division become one piece each. With
    ``sum_places`` the sum line's digits and the digits the division brings down carry their place too.
    """
    def divisor_text(divisor: str) -> str:
        return _value(DIVISOR_CHARS, divisor) if value_pieces else divisor

    def remainder_text(remainder: str) -> str:
        return _value(REMAINDER_CHARS, remainder) if value_pieces else remainder

    division = formats.DIVISION_LINE.fullmatch(line)
    if division:
        dividend, divisor, steps = division.groups()
        top = len(dividend) - 1
        marked_steps = "".join(_place_digits(quotient, [top - i]) + remainder_text(remainder)
                               for i, (quotient, remainder) in enumerate(formats.DIVISION_STEP.findall(steps)))
        return f"{_place_digits(dividend)}{formats.DIVISION_SIGN}{divisor_text(divisor)}={marked_steps}"
    stepwise = formats.STEPWISE_LINE.fullmatch(line)
    if stepwise:  # stepwise and ledger: the dividend digit stays plain, the quotient digit carries its place
        divisor, steps = stepwise.groups()
        found = formats.STEPWISE_STEP.findall(steps)
        top = len(found) - 1
        marked_steps = "".join(f"{space}{_place_digits(digit, [top - i]) if sum_places else digit}"
                               f"{_place_digits(quotient, [top - i])}{remainder_text(remainder)}"
                               for i, (space, digit, quotient, remainder) in enumerate(found))
        return f"{formats.DIVISION_SIGN}{divisor_text(divisor)}:{marked_steps}"
    addends = formats.ADDEND_LINE.fullmatch(line)
    if addends and sum_places:  # the column digits carry their place; the addends stay plain digits
        steps = formats.ADDEND_STEP.findall(addends.group(1))
        return formats.SUM_SIGN + "".join(terms + _place_digits(digit, [i]) + carry
                                          for i, (terms, digit, carry) in enumerate(steps))
    total = formats.SUM_LINE.fullmatch(line)
    if total and sum_places:  # ones first: the i-th digit is in the 10**i place
        steps = formats.SUM_STEP.findall(total.group(1))
        return formats.SUM_SIGN + "".join(_place_digits(digit, [i]) + carry for i, (digit, carry) in enumerate(steps))
    rate = _RATE_LINE.fullmatch(line)
    if rate:
        prefix, number, suffix = rate.groups()
        return prefix + _place_digits(number) + suffix
    return None


def _mark_line(line: str, place_digits: bool = False, value_pieces: bool = False, sum_places: bool = False) -> str:
    if place_digits and (marked := _mark_places(line, value_pieces, sum_places)) is not None:
        return marked
    if _TICKET_LINE.fullmatch(line) or _WINNING_LINE.fullmatch(line) or _BONUS_LINE.fullmatch(line):
        return _ANY_NUMBER.sub(_number_char, line)
    if formats.is_work_line(line) or formats.is_header_line(line):
        line = _WORK_NUMBER.sub(_number_char, line)
        if value_pieces:
            line = _TALLY_VALUE.sub(lambda m: m.group(1) + _value(VALUE_CHARS, m.group(2)), line)
        return line
    if value_pieces and (count := _COUNT_LINE.fullmatch(line)):
        label, value, suffix = count.groups()
        return label + _value(VALUE_CHARS, value) + suffix
    return line


def to_pieces_text(text: str, place_digits: bool = False, value_pieces: bool = False,
                   sum_places: bool = False) -> str:
    """The text as SentencePiece sees it: lotto numbers and newlines as private-use characters.

    With ``place_digits``, the digits of division and rate lines become digit-and-place pieces; with
    ``value_pieces``, counts, tallies, the divisor and the remainders become one piece per value; with
    ``sum_places`` (and ``place_digits``), the sum line's digits and the dividend digits of the division.
    """
    if _PRIVATE.search(text):
        raise ValueError("text holds a private-use character that the tokenizer reserves")
    marked = NEWLINE_CHAR.join(_mark_line(line, place_digits, value_pieces, sum_places)
                               for line in text.split("\n"))
    return _PHRASE.sub(lambda m: _TO_PHRASE_CHAR[m.group(0)], marked)


def from_pieces_text(text: str) -> str:
    return _PRIVATE.sub(lambda m: _TO_DIGITS[m.group(0)], text)


def user_symbols(place_digits: bool = False, value_pieces: bool = False, sum_places: bool = False) -> list[str]:
    symbols = [*NUMBER_CHARS, NEWLINE_CHAR, *PHRASE_CHARS, *formats.CIRCLED_CHARS, formats.TOOL_CALL]
    if place_digits:
        symbols += [*PLACE_CHARS, *formats.SUPERSCRIPTS, formats.DIVISION_SIGN, *formats.TALLY_CHARS]
    if value_pieces:
        symbols += [*VALUE_CHARS, *DIVISOR_CHARS, *REMAINDER_CHARS]
    if sum_places:
        symbols.append(formats.SUM_SIGN)
    return symbols


def train(texts: Iterable[str], out_dir: str | Path, vocab_size: int, model_type: str = "bpe",
          place_digits: bool = False, value_pieces: bool = False, sum_places: bool = False) -> Path:
    """Train the tokenizer on ``texts`` and write ``tokenizer.model`` and ``tokenizer.json``.

    ``place_digits`` adds the digit-and-place pieces (for the formats in ``formats.PLACE_FORMATS``),
    ``value_pieces`` one piece per small integer (counts, tallies, divisor, remainders), ``sum_places``
    the sum sign and place-tagged sum and dividend digits (``formats.SUM_FORMATS``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    # SentencePiece trains in one call: a line before and after is all the progress there is to show.
    progress.note(f"training the tokenizer ({model_type}, {vocab_size} pieces) ...")
    start = time.perf_counter()
    spm.SentencePieceTrainer.train(
        sentence_iterator=(to_pieces_text(t, place_digits, value_pieces, sum_places) for t in texts),
        model_writer=model,
        model_type=model_type,
        vocab_size=vocab_size,
        user_defined_symbols=user_symbols(place_digits, value_pieces, sum_places),
        split_digits=True,
        byte_fallback=True,
        character_coverage=1.0,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=False,
        treat_whitespace_as_suffix=True,
        hard_vocab_limit=False,
        max_sentence_length=1 << 16,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        num_threads=2,
        minloglevel=2,
    )
    (out_dir / MODEL_FILE).write_bytes(model.getvalue())
    progress.note(f"trained the tokenizer in {progress.format_duration(time.perf_counter() - start)}")
    tokenizer = Tokenizer.load(out_dir)
    meta = {"vocab_size": tokenizer.vocab_size, "model_type": model_type, "place_digits": place_digits,
            "value_pieces": value_pieces,
            "sha256": tokenizer.sha256, "sentencepiece": spm.__version__}
    if sum_places:  # only then, so that the other formats' tokenizer files stay as they were
        meta["sum_places"] = True
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


class Tokenizer:
    """Encode and decode model text; lossless for any text without the reserved private characters."""

    def __init__(self, model_proto: bytes) -> None:
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.sha256 = hashlib.sha256(model_proto).hexdigest()
        self.vocab_size: int = self._sp.get_piece_size()
        self.pad_id, self.bos_id, self.eos_id = PAD_ID, BOS_ID, EOS_ID
        # Trained with the digit-and-place pieces (formats.PLACE_FORMATS)?
        self.place_digits: bool = self._sp.piece_to_id(PLACE_CHARS[0]) != UNK_ID
        # Trained with one piece per count, tally, divisor and remainder value (tokenizer.value_pieces)?
        self.value_pieces: bool = self._sp.piece_to_id(VALUE_CHARS[0]) != UNK_ID
        # Trained for a sum format (formats.SUM_FORMATS): sum and dividend digits tagged with their place?
        self.sum_places: bool = self._sp.piece_to_id(formats.SUM_SIGN) != UNK_ID

    @classmethod
    def load(cls, directory: str | Path) -> Tokenizer:
        path = Path(directory) / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `dvc repro tokenizer` first")
        return cls(path.read_bytes())

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(to_pieces_text(text, self.place_digits, self.value_pieces, self.sum_places))

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        pieces = [to_pieces_text(t, self.place_digits, self.value_pieces, self.sum_places) for t in texts]
        return self._sp.encode(pieces, num_threads=2)

    def decode(self, ids: Sequence[int]) -> str:
        specials = (PAD_ID, BOS_ID, EOS_ID)
        return from_pieces_text(self._sp.decode([i for i in ids if i not in specials]))

    def piece(self, token_id: int) -> str:
        return self._sp.id_to_piece(token_id)

    def number_id(self, number: int) -> int:
        """The single token of lotto number ``number``."""
        return self._sp.piece_to_id(chr(_NUMBER_BASE + number))

    def marker_id(self, index: int) -> int:
        """The single token of the circled marker of ticket ``index`` (1-based)."""
        return self._sp.piece_to_id(formats.ticket_marker(index))

    @property
    def newline_id(self) -> int:
        return self._sp.piece_to_id(NEWLINE_CHAR)

    @property
    def fed_ids(self) -> frozenset[int]:
        """Tokens that are input when they appear in work lines: lotto numbers and ticket markers."""
        numbers = {self.number_id(n) for n in range(kata.NUMBER_MIN, kata.NUMBER_MAX + 1)}
        return frozenset(numbers | {self.marker_id(i) for i in range(1, formats.MAX_TICKETS + 1)})


def case_tokens(tokenizer: Tokenizer, prompt: str, completion: str) -> int:
    """Tokens of one training sequence: BOS + prompt + completion + EOS."""
    return len(tokenizer.encode(prompt)) + len(tokenizer.encode(completion)) + 2


def extreme_cases(n_tickets: int) -> list[kata.Case]:
    """Cases whose rendering is as long as ``n_tickets`` tickets allow (longest rates and counts)."""
    winning, bonus = (1, 2, 3, 4, 5, 6), 7
    six = tuple([winning] * n_tickets)
    five_bonus = tuple([(1, 2, 3, 4, 5, 7)] * n_tickets)
    bonus_misses = tuple([(7, 40, 41, 42, 43, 44)] * n_tickets)
    return [kata.Case(t, winning, bonus) for t in (six, five_bonus, bonus_misses)]


def longest_case_tokens(tokenizer: Tokenizer, max_tickets: int, answer_format: str) -> int:
    """The most tokens a case with at most ``max_tickets`` tickets can take in ``answer_format``."""
    return max(case_tokens(tokenizer, formats.render_prompt(c, answer_format),
                          formats.render_completion(c, answer_format))
               for c in extreme_cases(max_tickets))


def _encode_split(tokenizer: Tokenizer, split: str, frame: pl.DataFrame,
                  chunk: int = 5_000) -> tuple[list[list[int]], list[list[int]]]:
    """Prompt and completion tokens of a split, encoded in chunks so that progress can be shown."""
    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    with progress.track(f"tokenizing {split}", len(frame)) as task:
        for start in range(0, len(frame), chunk):
            part = frame.slice(start, chunk)
            prompts += tokenizer.encode_batch(part["model_prompt"].to_list())
            completions += tokenizer.encode_batch(part["model_completion"].to_list())
            task.advance(len(part))
    return prompts, completions


def train_from_corpus(params: TokenizerParams, corpus_dir: str | Path, out_dir: str | Path,
                      answer_format: str, max_tickets: int) -> dict:
    """Train on the train split's model text and measure tokens per case on every split."""
    corpus_dir = Path(corpus_dir)
    train_frame = pl.read_parquet(corpus_dir / "train.parquet", n_rows=params.sample_cases)
    texts = [p + c for p, c in zip(train_frame["model_prompt"], train_frame["model_completion"], strict=True)]
    train(texts, out_dir, params.vocab_size, params.model_type, answer_format in formats.PLACE_FORMATS,
          params.value_pieces, answer_format in formats.SUM_FORMATS)
    tokenizer = Tokenizer.load(out_dir)
    metrics: dict = {"vocab_size": tokenizer.vocab_size,
                     "longest_allowed_case": longest_case_tokens(tokenizer, max_tickets, answer_format)}
    for split in SPLITS:
        frame = pl.read_parquet(corpus_dir / f"{split}.parquet", columns=["model_prompt", "model_completion",
                                                                          "n_tickets"])
        prompts, completions = _encode_split(tokenizer, split, frame)
        lengths = np.array([len(p) + len(c) + 2 for p, c in zip(prompts, completions, strict=True)])
        tickets = frame["n_tickets"].to_numpy()
        metrics[split] = {
            "tokens_mean": round(float(lengths.mean()), 1),
            "tokens_p50": int(np.median(lengths)),
            "tokens_max": int(lengths.max()),
            "tokens_per_ticket": round(float(lengths.sum() / tickets.sum()), 1),
            "completion_tokens_mean": round(float(np.mean([len(c) + 1 for c in completions])), 1),
        }
    return metrics
