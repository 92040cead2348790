"""What the model reads and writes: the canonical model prompt and the answer formats.

:func:`render_prompt` renders the model prompt (the kata transcript from :mod:`lottogpt.kata`, with the
winning numbers and the bonus restated in work-line notation and a circled index on each ticket line);
:func:`render_completion` renders what the model writes after ``---`` in each answer format of
:data:`ANSWER_FORMATS` (``data.answer_format``), and the parsers below read it back.

The prompt and every format, with examples and the reason for each, are described in
``docs/answer-formats.md``; what each format measured is in ``docs/experiments.md``.

The user always sees only the six lines; the work lines are shown on request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from lottogpt import kata

ANSWER_FORMATS = ("direct", "scratchpad", "worksheet", "tool", "longdiv", "tally", "stepwise", "ledger",
                  "column", "addends")
# Formats whose work lines hold the ticket numbers as input that the runtime feeds in.
FED_FORMATS = ("worksheet", "tool", "longdiv", "tally", "stepwise", "ledger", "column", "addends")
# Formats whose tokenizer tags the digits of the division and the rate with their place value.
PLACE_FORMATS = ("longdiv", "tally", "stepwise", "ledger", "column", "addends")
# Formats that write the long division of the rate, and those that tally each rank in the work lines.
DIVISION_FORMATS = ("longdiv", "tally", "stepwise", "ledger", "column", "addends")
TALLY_FORMATS = ("tally", "stepwise", "ledger", "column", "addends")
# Formats whose tally names the prize rank (``Ⅲ2``) instead of ``#2``.
RANK_LABEL_FORMATS = ("ledger", "column", "addends")
# Formats that add up the dividend column by column (a sum line) before the division brings it down; in
# ``addends`` each column first writes the digits it adds up.
SUM_FORMATS = ("column", "addends")
# How each division format spells the division line (see division_line).
DIVISION_STYLES = {"longdiv": "longdiv", "tally": "longdiv", "stepwise": "stepwise", "ledger": "ledger",
                   "column": "ledger", "addends": "ledger"}
TOOL_CALL = "⟨rate⟩"
SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
DIVISION_SIGN = "÷"
SUM_SIGN = "Σ"
FLAG_WINNING, FLAG_BONUS, FLAG_MISS = "+", "b", "."
# The ledger format's tally labels: the prize rank (1st prize = six matches) as a Roman numeral.
TALLY_LABELS = {kata.Rank.SIX: "Ⅰ", kata.Rank.FIVE_BONUS: "Ⅱ", kata.Rank.FIVE: "Ⅲ", kata.Rank.FOUR: "Ⅳ",
                kata.Rank.THREE: "Ⅴ"}
TALLY_CHARS = "".join(TALLY_LABELS.values())

# Circled numbers 1..50 live in three Unicode blocks.
_CIRCLED = (
    [chr(0x2460 + i) for i in range(20)]
    + [chr(0x3251 + i) for i in range(15)]
    + [chr(0x32B1 + i) for i in range(15)]
)
MAX_TICKETS = len(_CIRCLED)
CIRCLED_CHARS = "".join(_CIRCLED)
# The addends line's columns: enough for the dividend of MAX_TICKETS first prizes.
ADDEND_PLACES = 12

_HEADER_LINE = re.compile(r"\d{1,2}\+(?: \d{1,2}\+){5} \d{1,2}b")
_WORK_LINE = re.compile(rf"[{CIRCLED_CHARS}]\d{{1,2}}[+b.](?: \d{{1,2}}[+b.]){{5}} =\db?(?: [#{TALLY_CHARS}]\d+)?")
_TALLY = re.compile(rf" [#{TALLY_CHARS}]\d+$")
DIVISION_LINE = re.compile(rf"(\d{{2,}}){DIVISION_SIGN}(\d+)=((?:\d[{SUPERSCRIPTS}]+)+)")
DIVISION_STEP = re.compile(rf"(\d)([{SUPERSCRIPTS}]+)")
# The stepwise and ledger spellings: each step is the dividend digit, the quotient digit and the remainder,
# after a space (stepwise) or, but for the first, right after the step before (ledger).
STEPWISE_LINE = re.compile(rf"{DIVISION_SIGN}(\d+):((?: ?\d\d[{SUPERSCRIPTS}]+)+)")
STEPWISE_STEP = re.compile(rf"( ?)(\d)(\d)([{SUPERSCRIPTS}]+)")
# The column format's sum line: each digit of the dividend, ones first, and the carry it passes on.
SUM_LINE = re.compile(rf"{SUM_SIGN}((?:\d[{SUPERSCRIPTS}])+)")
SUM_STEP = re.compile(rf"(\d)([{SUPERSCRIPTS}])")
# The addends format's sum line: per column, ones first, each addend as its rank's numeral and digit, then the
# column's digit and the carry it passes on.
ADDEND_LINE = re.compile(rf"{SUM_SIGN}((?:(?:[{TALLY_CHARS}]\d)*\d[{SUPERSCRIPTS}])+)")
ADDEND_STEP = re.compile(rf"((?:[{TALLY_CHARS}]\d)*)(\d)([{SUPERSCRIPTS}])")


def ticket_marker(index: int) -> str:
    """The circled marker of the 1-based ticket ``index``."""
    if not 1 <= index <= MAX_TICKETS:
        raise ValueError(f"the model format numbers at most {MAX_TICKETS} tickets, got ticket {index}")
    return _CIRCLED[index - 1]


def render_prompt(case: kata.Case, answer_format: str = "scratchpad") -> str:
    """The canonical model prompt for a case in ``answer_format`` (ends with ``---\\n``).

    In the fed formats the tickets are written into the work lines, so the prompt leaves them out.
    """
    if len(case.tickets) > MAX_TICKETS:
        raise ValueError(f"the model format holds at most {MAX_TICKETS} tickets, got {len(case.tickets)}")
    header = header_line(case) + "\n"
    if answer_format in FED_FORMATS:
        return header + kata.render_transcript(case, ticket_lines=False)
    markers = _CIRCLED[: len(case.tickets)]
    return header + kata.render_transcript(case, markers)


def header_line(case: kata.Case) -> str:
    """The winning numbers and the bonus in work-line notation: ``1+ 2+ 3+ 4+ 5+ 6+ 7b``."""
    cells = [f"{n}{FLAG_WINNING}" for n in case.winning] + [f"{case.bonus}{FLAG_BONUS}"]
    return " ".join(cells)


def work_line(case: kata.Case, index: int, tally: bool = False, rank_labels: bool = False) -> str:
    """The scratchpad line of ticket ``index`` (1-based); with ``tally``, a winning ticket's running tally.

    The tally is ``#k`` (the k-th ticket of this rank so far), or with ``rank_labels`` the rank's numeral
    and k (``Ⅲ2``).
    """
    ticket = case.tickets[index - 1]
    winning = set(case.winning)
    cells = []
    for number in ticket:
        if number in winning:
            flag = FLAG_WINNING
        elif number == case.bonus:
            flag = FLAG_BONUS
        else:
            flag = FLAG_MISS
        cells.append(f"{number}{flag}")
    count = f"{len(winning.intersection(ticket))}{'b' if case.bonus in ticket else ''}"
    line = f"{ticket_marker(index)}{' '.join(cells)} ={count}"
    rank = case.rank(ticket)
    if tally and rank is not None:
        label = TALLY_LABELS[rank] if rank_labels else "#"
        line += f" {label}{sum(case.rank(t) is rank for t in case.tickets[:index])}"
    return line


def strip_tally(line: str) -> str:
    """A ticket work line without its tally."""
    return _TALLY.sub("", line)


def superscript(number: int) -> str:
    return "".join(SUPERSCRIPTS[int(d)] for d in str(number))


def division_line(total_prize: int, n_tickets: int, style: str = "longdiv") -> str:
    """The long division of the return rate, in the ``longdiv`` format's work line.

    ``n`` tickets cost ``1,000 n`` won, so the rate is ``prize / (1,000 n) * 100 %`` = ``prize / n`` tenths
    of a percent. Rounding half up is ``floor((prize + n // 2) / n)`` for whole numbers, so the line divides
    ``prize + n // 2`` (at least two digits) by ``n``: for each dividend digit, the quotient digit, then
    the remainder so far in superscript. 5,000 won over 8 tickets: ``5004÷8=0⁵6²2⁴5⁴``, quotient 0625,
    the rate 62.5%. Each step needs only the previous remainder, one dividend digit and ``n``.
    The ``stepwise`` style writes each step as dividend digit, quotient digit, remainder:
    ``÷8: 50⁵ 06² 02⁴ 45⁴``; the ``ledger`` style writes the same steps without spaces: ``÷8: 50⁵06²02⁴45⁴``.
    """
    if style not in ("longdiv", "stepwise", "ledger"):
        raise ValueError(f"unknown division style {style!r}")
    if n_tickets < 1:
        raise ValueError("the division needs at least one ticket")
    stepwise = style != "longdiv"
    dividend = f"{total_prize + n_tickets // 2:02d}"
    steps, remainder = [], 0
    for digit in dividend:
        quotient, remainder = divmod(remainder * 10 + int(digit), n_tickets)
        steps.append(f"{digit if stepwise else ''}{quotient}{superscript(remainder)}")
    if style == "ledger":
        return f"{DIVISION_SIGN}{n_tickets}: " + "".join(steps)
    if stepwise:
        return f"{DIVISION_SIGN}{n_tickets}:" + "".join(f" {step}" for step in steps)
    return f"{dividend}{DIVISION_SIGN}{n_tickets}={''.join(steps)}"


def dividend_terms(counts: dict[str, int], n_tickets: int) -> list[int]:
    """What the dividend of the division line adds up: ``n // 2`` (rounding half up), then each rank's prize."""
    return [n_tickets // 2, *(rank.prize * counts[rank.key] for rank in kata.Rank)]


def sum_line(counts: dict[str, int], n_tickets: int) -> str:
    """The column format's sum line: the dividend added up column by column, ones first.

    Each step is the column's digit and, in superscript, the carry into the next column. Written this
    way every digit needs only the terms' digits in its own column and the carry just before it, where
    the division, bringing the dividend down from its top digit, would need every column below it.
    The digits, read backwards, are the division line's dividend (at least two digits):
    ``n = 4``, one 3rd prize: ``Σ2⁰0⁰0⁰0⁰0⁰5⁰1⁰`` (the dividend 1500002).
    """
    terms = dividend_terms(counts, n_tickets)
    width = len(f"{sum(terms):02d}")
    steps, carry = [], 0
    for place in range(width):
        column = sum(term // 10 ** place % 10 for term in terms) + carry
        carry = column // 10
        steps.append(f"{column % 10}{SUPERSCRIPTS[carry]}")
    return SUM_SIGN + "".join(steps)


def prize_digits(rank: kata.Rank) -> tuple[int, int, int]:
    """A rank's prize as ``multiplier * 10**shift``, and the digits its term takes at most (``MAX_TICKETS``)."""
    multiplier, shift = rank.prize, 0
    while multiplier % 10 == 0:
        multiplier, shift = multiplier // 10, shift + 1
    return multiplier, shift, len(str(multiplier * MAX_TICKETS))


def addend_columns() -> list[list[kata.Rank]]:
    """Which ranks' terms have a digit in each column (10**0 .. 10**11), lowest rank first: a fixed template."""
    columns: list[list[kata.Rank]] = [[] for _ in range(ADDEND_PLACES)]
    for rank in kata.Rank:
        _, shift, width = prize_digits(rank)
        for place in range(shift, shift + width):
            columns[place].append(rank)
    return columns


def addend_line(counts: dict[str, int], n_tickets: int) -> str:
    """The addends format's sum line: the dividend added up column by column, ones first, every addend written.

    Each rank's term is its count times the prize's leading digits (``15 * c`` for 1,500,000 won); a column
    writes the digit of each term that reaches it (the rank's numeral, then the digit), then the column's
    digit and, in superscript, the carry into the next column. The template is the same for every case (12
    columns, the same addends), so each token is a local step: a term's digit is a lookup of one count, the
    column's digit a sum of the few digits just written and the carry before them. The two lowest columns
    hold ``n // 2`` (rounding half up). Official example (one 5th prize, 8 tickets) starts
    ``Σ4⁰0⁰0⁰Ⅴ55⁰Ⅴ0Ⅳ00⁰``.
    """
    half = n_tickets // 2
    steps, carry = [], 0
    for place, ranks in enumerate(addend_columns()):
        addends = ""
        column = carry + (half // 10 ** place % 10 if place < 2 else 0)
        for rank in ranks:
            multiplier, shift, _ = prize_digits(rank)
            digit = multiplier * counts[rank.key] // 10 ** (place - shift) % 10
            addends += f"{TALLY_LABELS[rank]}{digit}"
            column += digit
        carry = column // 10
        steps.append(f"{addends}{column % 10}{SUPERSCRIPTS[carry]}")
    return SUM_SIGN + "".join(steps)


def sum_steps(line: str) -> list[tuple[int, int]] | None:
    """The steps ``(digit, carry on)`` of a sum line, ones first; ``None`` if it is no sum line."""
    match = SUM_LINE.fullmatch(line)
    if match is None:
        return None
    return [(int(digit), SUPERSCRIPTS.index(carry)) for digit, carry in SUM_STEP.findall(match.group(1))]


def addend_steps(line: str) -> list[tuple[str, int, int]] | None:
    """The columns ``(addends, digit, carry on)`` of an addends line, ones first; ``None`` if it is none."""
    match = ADDEND_LINE.fullmatch(line)
    if match is None:
        return None
    return [(addends, int(digit), SUPERSCRIPTS.index(carry))
            for addends, digit, carry in ADDEND_STEP.findall(match.group(1))]


def division_rate(line: str) -> str | None:
    """The rate a division line yields, in the kata's spelling (``62.5``); ``None`` if it is no such line."""
    match = DIVISION_LINE.fullmatch(line)
    stepwise = STEPWISE_LINE.fullmatch(line)
    if match is not None:
        tenths = int("".join(step[0] for step in DIVISION_STEP.findall(match.group(3))))
    elif stepwise is not None:
        tenths = int("".join(quotient for _, _, quotient, _ in STEPWISE_STEP.findall(stepwise.group(2))))
    else:
        return None
    return kata.format_tenths(tenths)


def division_steps(line: str) -> tuple[int, list[tuple[int, int, int]]] | None:
    """The divisor and the steps ``(digit brought down, quotient digit, remainder)`` of a division line."""
    match = DIVISION_LINE.fullmatch(line)
    if match is not None:
        digits = [int(d) for d in match.group(1)]
        pairs = DIVISION_STEP.findall(match.group(3))
        steps = [(d, int(q), _unsuperscript(r)) for d, (q, r) in zip(digits, pairs, strict=True)]
        return int(match.group(2)), steps
    stepwise = STEPWISE_LINE.fullmatch(line)
    if stepwise is None:
        return None
    steps = [(int(d), int(q), _unsuperscript(r)) for _, d, q, r in STEPWISE_STEP.findall(stepwise.group(2))]
    return int(stepwise.group(1)), steps


def _unsuperscript(text: str) -> int:
    return int("".join(str(SUPERSCRIPTS.index(c)) for c in text))


def work_lines(case: kata.Case, answer_format: str, result: kata.Result | None = None) -> list[str]:
    """The work lines of ``case`` in ``answer_format``, in the order the model writes them."""
    if answer_format == "direct":
        return []
    tally, labels = answer_format in TALLY_FORMATS, answer_format in RANK_LABEL_FORMATS
    lines = [work_line(case, i, tally, labels) for i in range(1, len(case.tickets) + 1)]
    result = result or kata.score(case)
    if answer_format == "addends":
        lines.append(addend_line(result.counts, len(case.tickets)))
    elif answer_format in SUM_FORMATS:
        lines.append(sum_line(result.counts, len(case.tickets)))
    if answer_format in DIVISION_FORMATS:
        lines.append(division_line(result.total_prize, len(case.tickets), DIVISION_STYLES[answer_format]))
    return lines


def closing_work_lines(answer_format: str) -> int:
    """How many work lines come after the count lines, right before the rate line (the sum, the division)."""
    return (answer_format in SUM_FORMATS) + (answer_format in DIVISION_FORMATS)


def render_completion(case: kata.Case, answer_format: str, result: kata.Result | None = None) -> str:
    """What the model is trained to write after the prompt, in the given answer format."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}; choose one of {ANSWER_FORMATS}")
    result = result or kata.score(case)
    lines = result.lines
    if answer_format == "direct":
        return "\n".join(lines)
    # The formats with work lines share the ticket lines; they differ in who writes what.
    work = work_lines(case, answer_format, result)
    if answer_format == "tool":
        lines[-1] = f"총 수익률은 {TOOL_CALL}%입니다."
    closing = closing_work_lines(answer_format)
    if closing:  # the sum and the division lines come right before the rate line
        return "\n".join(work[:-closing] + lines[:5] + work[-closing:] + lines[5:])
    return "\n".join(work + lines)


def drill_texts(prompt: str, completion: str) -> tuple[str, str]:
    """A case as an arithmetic drill: the prompt and the count lines given, the lines after them to write.

    The lines after the count lines (the closing work lines and the rate) read nothing but the count lines
    and the ticket count, so a drill trains them without the ticket work lines that make up most of a long
    case, right after the same count lines as in the case.
    """
    lines = completion.split("\n")
    start = next((i for i, line in enumerate(lines) if not is_ticket_work_line(line)), len(lines))
    if len(lines) - start < 6:
        raise ValueError("a drill needs the five count lines and at least one line after them")
    return prompt + "\n".join(lines[start:start + 5]) + "\n", "\n".join(lines[start + 5:])


def is_ticket_work_line(line: str) -> bool:
    return _WORK_LINE.fullmatch(line) is not None


def is_division_line(line: str) -> bool:
    return DIVISION_LINE.fullmatch(line) is not None or STEPWISE_LINE.fullmatch(line) is not None


def is_sum_line(line: str) -> bool:
    return SUM_LINE.fullmatch(line) is not None or ADDEND_LINE.fullmatch(line) is not None


def is_work_line(line: str) -> bool:
    return is_ticket_work_line(line) or is_division_line(line) or is_sum_line(line)


def is_header_line(line: str) -> bool:
    return _HEADER_LINE.fullmatch(line) is not None


def split_work(completion: str) -> tuple[list[str], list[str]]:
    """Split a (generated) completion into its work lines and the remaining answer lines."""
    work, answer = [], []
    for line in completion.split("\n"):
        (work if is_work_line(line) else answer).append(line)
    return work, answer


_COUNT_LINE = {rank.key: re.compile(re.escape(rank.line_label) + r" - (\d+)개") for rank in kata.Rank}
_RATE_LINE = re.compile(r"총 수익률은 ([0-9,]+\.[0-9])%입니다\.")


def parse_statistics(lines: Sequence[str]) -> tuple[dict[str, int], str] | None:
    """Read counts and rate from six statistics lines; ``None`` when they are not in the kata's form."""
    if len(lines) != 6:
        return None
    counts = {}
    for rank, line in zip(kata.Rank, lines[:5], strict=True):
        match = _COUNT_LINE[rank.key].fullmatch(line)
        if not match:
            return None
        counts[rank.key] = int(match.group(1))
    rate = _RATE_LINE.fullmatch(lines[5])
    if not rate:
        return None
    return counts, rate.group(1)


def apply_tool(answer_lines: list[str], n_tickets: int) -> list[str]:
    """Fill in the ``⟨rate⟩`` call from the model's own count lines (the ``tool`` format's calculator)."""
    if len(answer_lines) != 6 or TOOL_CALL not in answer_lines[5]:
        return answer_lines
    parsed = parse_statistics([*answer_lines[:5], "총 수익률은 0.0%입니다."])
    if parsed is None:
        return answer_lines
    rate = kata.rate_for_counts(parsed[0], n_tickets)
    return [*answer_lines[:5], answer_lines[5].replace(TOOL_CALL, rate)]
