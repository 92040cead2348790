"""The number-aware tokenizer: one piece per lotto number, digits elsewhere, lossless."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lottogpt import data, formats, kata, tokenizer
from lottogpt.params import TokenizerParams

from .conftest import TINY, train_format_tokenizer


@pytest.fixture(scope="module")
def tok(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tokenizer.Tokenizer:
    out = tmp_path_factory.mktemp("tok")
    params = TokenizerParams(vocab_size=512, sample_cases=400, value_pieces=False)
    metrics = tokenizer.train_from_corpus(params, tiny_corpus, out, TINY.answer_format, TINY.max_tickets)
    assert metrics["test"]["tokens_max"] <= metrics["longest_allowed_case"]
    return tokenizer.Tokenizer.load(out)


def test_lossless_on_every_split(tok: tokenizer.Tokenizer, tiny_corpus: Path) -> None:
    for split in data.SPLITS:
        frame = data.read_split(tiny_corpus, split)
        for column in ("prompt", "completion", "model_prompt", "model_completion"):
            for text in frame[column]:
                assert tok.decode(tok.encode(text)) == text


def test_lossless_on_odd_text(tok: tokenizer.Tokenizer) -> None:
    for text in ["", "\n\n", "  two  spaces ", "07,08", "[99, 100]", "한국어 ✓ emoji 🎉", "1,2,3,4,5,6\n7\n",
                 formats.TOOL_CALL, "①[1, 2, 3, 4, 5, 6]"]:
        assert tok.decode(tok.encode(text)) == text


def test_reserved_characters_are_refused(tok: tokenizer.Tokenizer) -> None:
    with pytest.raises(ValueError, match="private-use"):
        tok.encode("\ue001")


def test_each_lotto_number_is_one_piece_everywhere(tok: tokenizer.Tokenizer, tiny_corpus: Path) -> None:
    """In tickets, the winning line, the bonus line and work lines, number n is always token number_id(n)."""
    number_ids = {tok.number_id(n): n for n in range(1, 46)}
    assert len(number_ids) == 45
    frame = data.read_split(tiny_corpus, "test")
    for case, prompt, completion in zip(data.frame_cases(frame), frame["model_prompt"], frame["model_completion"],
                                        strict=True):
        ids = tok.encode(prompt)
        seen = [number_ids[i] for i in ids if i in number_ids]
        expected = [*case.winning, case.bonus, *(n for t in case.tickets for n in t), *case.winning, case.bonus]
        assert seen == expected
        work = [number_ids[i] for i in tok.encode(completion) if i in number_ids]
        assert work == [n for t in case.tickets for n in t]
        plain = [number_ids[i] for i in tok.encode(kata.render_transcript(case)) if i in number_ids]
        assert plain == [n for t in case.tickets for n in t] + [*case.winning, case.bonus]


def test_amounts_counts_and_rates_are_digits(tok: tokenizer.Tokenizer) -> None:
    assert not tok.value_pieces  # the default (tokenizer.value_pieces: false)
    pieces = [tok.piece(i) for i in tok.encode("10000\n총 수익률은 15,150.0%입니다.\n3개 일치 (5,000원) - 12개")]
    for digits in ("10000", "15150", "12"):
        for d in digits:
            assert d in pieces
    assert all(len(p.strip("▁")) <= 1 for p in pieces if any(c.isdigit() for c in p))


def test_fixed_texts_are_single_pieces(tok: tokenizer.Tokenizer) -> None:
    for text in kata.FIXED_TEXTS:
        assert len(tok.encode(text)) == 1, text


def test_special_ids() -> None:
    assert (tokenizer.PAD_ID, tokenizer.UNK_ID, tokenizer.BOS_ID, tokenizer.EOS_ID) == (0, 1, 2, 3)


def test_longest_case_bounds_the_data(tok: tokenizer.Tokenizer, tiny_corpus: Path) -> None:
    longest = tokenizer.longest_case_tokens(tok, TINY.max_tickets, TINY.answer_format)
    frame = data.read_split(tiny_corpus, "train")
    for prompt, completion in zip(frame["model_prompt"], frame["model_completion"], strict=True):
        assert tokenizer.case_tokens(tok, prompt, completion) <= longest


def test_worksheet_feeder_forces_exactly_the_fed_tokens(tok: tokenizer.Tokenizer, tiny_corpus: Path) -> None:
    """Replaying the reference completion through the feeder: it forces every marker and number, and only them."""
    from lottogpt.inference import WorksheetFeeder

    fed_ids = tok.fed_ids
    for case in data.frame_cases(data.read_split(tiny_corpus, "test")):
        tokens = tok.encode(formats.render_completion(case, "worksheet"))
        feeder = WorksheetFeeder(tok, case)
        forced_positions = []
        for position, token in enumerate(tokens):
            forced = feeder.forced()
            if forced is not None:
                assert forced == token
                forced_positions.append(position)
            feeder.observe(token)
        assert forced_positions == [i for i, t in enumerate(tokens) if t in fed_ids]
        assert len(forced_positions) == 7 * len(case.tickets)
        assert feeder.phase == "free"


@pytest.fixture(scope="module")
def place_tok(tmp_path_factory: pytest.TempPathFactory) -> tokenizer.Tokenizer:
    """A tokenizer for the ``longdiv`` format, which has the digit-and-place pieces."""
    cases = data.generate_cases(dataclasses.replace(TINY, answer_format="longdiv", max_tickets=10))["train"]
    texts = [formats.render_prompt(c, "longdiv") + formats.render_completion(c, "longdiv") for c in cases]
    out = tokenizer.train(texts, tmp_path_factory.mktemp("place_tok"), 640, place_digits=True)
    return tokenizer.Tokenizer.load(out)


def test_place_digits_are_known_from_the_model_file(tok: tokenizer.Tokenizer, place_tok: tokenizer.Tokenizer) -> None:
    assert place_tok.place_digits and not tok.place_digits


def test_place_digit_pieces_say_the_place(place_tok: tokenizer.Tokenizer) -> None:
    pieces = [place_tok.piece(i) for i in place_tok.encode("총 수익률은 5,555.5%입니다.")]
    digits = [p for p in pieces if p in tokenizer.PLACE_CHARS]
    assert len(digits) == 5 and len(set(digits)) == 5  # the same digit in five places: five pieces
    # The division line: dividend and quotient digits by place, the divisor plain.
    line = formats.division_line(1_500_000, 3)
    pieces = [place_tok.piece(i) for i in place_tok.encode(line)]
    dividend = "1500001"
    tagged = [p for p in pieces if p in tokenizer.PLACE_CHARS]
    assert len(tagged) == 2 * len(dividend)
    first_quotient = tagged[len(dividend)]
    assert first_quotient == tokenizer.PLACE_CHARS[10 * (len(dividend) - 1) + 0]  # 1 // 3 = 0 at the top place
    assert "3" in pieces


def test_place_tokenizer_is_lossless(place_tok: tokenizer.Tokenizer) -> None:
    cases = data.generate_cases(dataclasses.replace(TINY, answer_format="longdiv", max_tickets=10))["test"]
    for case in cases:
        for text in (formats.render_prompt(case, "longdiv"), formats.render_completion(case, "longdiv")):
            assert place_tok.decode(place_tok.encode(text)) == text
    long_rate = "총 수익률은 2,000,000,000,000,000.0%입니다."  # more places than there are pieces: plain digits
    assert place_tok.decode(place_tok.encode(long_rate)) == long_rate
    for text in ["5004÷8=0⁵6²2⁴5⁴", "5004÷8=", "총 수익률은 ⟨rate⟩%입니다.", "¹²³", "÷8: 50⁵ 06² 02⁴ 45⁴", "÷8: 50⁵ 0"]:
        assert place_tok.decode(place_tok.encode(text)) == text


def test_stepwise_steps_tag_only_the_quotient_digit(place_tok: tokenizer.Tokenizer) -> None:
    pieces = [place_tok.piece(i) for i in place_tok.encode("÷8: 50⁵ 06² 02⁴ 45⁴")]
    tagged = [p for p in pieces if p in tokenizer.PLACE_CHARS]
    assert tagged == [tokenizer.PLACE_CHARS[10 * place + q] for place, q in ((3, 0), (2, 6), (1, 2), (0, 5))]
    assert "5" in pieces and "4" in pieces  # the dividend digits brought down stay plain digits


def test_ledger_lines_tag_quotients_and_keep_the_rank_labels(place_tok: tokenizer.Tokenizer) -> None:
    pieces = [place_tok.piece(i) for i in place_tok.encode("÷8: 50⁵06²02⁴45⁴")]
    tagged = [p for p in pieces if p in tokenizer.PLACE_CHARS]
    assert tagged == [tokenizer.PLACE_CHARS[10 * place + q] for place, q in ((3, 0), (2, 6), (1, 2), (0, 5))]
    for label in formats.TALLY_CHARS:  # each rank label is a piece of its own
        assert label in [place_tok.piece(i) for i in place_tok.encode(f"⑤2+ 6+ 9+ 22+ 28. 32+ =5 {label}2")]
    cases = data.generate_cases(dataclasses.replace(TINY, answer_format="ledger", max_tickets=10))["test"]
    for case in cases:
        text = formats.render_prompt(case, "ledger") + formats.render_completion(case, "ledger")
        assert place_tok.decode(place_tok.encode(text)) == text


@pytest.fixture(scope="module")
def value_tok(tmp_path_factory: pytest.TempPathFactory) -> tokenizer.Tokenizer:
    """A ``ledger`` tokenizer with place digits and one piece per small value."""
    return train_format_tokenizer(tmp_path_factory.mktemp("value_tok"), "ledger", 768, value_pieces=True)


def test_divisor_and_each_remainder_are_one_piece(value_tok: tokenizer.Tokenizer) -> None:
    line = formats.division_line(4_031_550_000, 17, "ledger")  # remainders of one and of two digits
    steps = formats.division_steps(line)
    assert steps is not None and any(r >= 10 for _, _, r in steps[1])
    pieces = [value_tok.piece(i) for i in value_tok.encode(line)]
    assert pieces.count(tokenizer.DIVISOR_CHARS[17]) == 1
    assert [p for p in pieces if p in tokenizer.REMAINDER_CHARS] == [tokenizer.REMAINDER_CHARS[r]
                                                                   for _, _, r in steps[1]]
    assert not any(p in formats.SUPERSCRIPTS for p in pieces)
    tagged = [p for p in pieces if p in tokenizer.PLACE_CHARS]
    top = len(steps[1]) - 1
    assert tagged == [tokenizer.PLACE_CHARS[10 * (top - i) + q] for i, (_, q, _) in enumerate(steps[1])]


def test_tallies_and_counts_are_one_piece(value_tok: tokenizer.Tokenizer) -> None:
    pieces = [value_tok.piece(i) for i in value_tok.encode("⑬2+ 6+ 9+ 22+ 28. 32+ =5 Ⅲ12")]
    assert pieces[-2:] == ["Ⅲ", tokenizer.VALUE_CHARS[12]]
    for value in (0, 9, 10, 19, 20):
        pieces = [value_tok.piece(i) for i in value_tok.encode(f"3개 일치 (5,000원) - {value}개")]
        assert pieces[1] == tokenizer.VALUE_CHARS[value]


def test_value_pieces_are_lossless(value_tok: tokenizer.Tokenizer) -> None:
    cases = data.generate_cases(dataclasses.replace(TINY, answer_format="ledger", max_tickets=20,
                                                    prize_share=0.5))["test"]
    assert max(len(c.tickets) for c in cases) > 10
    for case in cases:
        text = formats.render_prompt(case, "ledger") + formats.render_completion(case, "ledger")
        assert value_tok.decode(value_tok.encode(text)) == text
    # Spellings that are not canonical, or values past the pieces, stay digits and decode to themselves.
    for text in ["3개 일치 (5,000원) - 07개", "3개 일치 (5,000원) - 99개", "⑬2+ 6+ 9+ 22+ 28. 32+ =5 Ⅲ07",
                 "÷08: 50⁵06²", "÷99: 50⁵", "÷8: 50⁰⁵", "÷51: 5⁵¹"]:
        assert value_tok.decode(value_tok.encode(text)) == text


@pytest.fixture(scope="module")
def column_tok(tmp_path_factory: pytest.TempPathFactory) -> tokenizer.Tokenizer:
    """A tokenizer for the ``column`` format: place digits, and the sum sign that turns on sum places."""
    return train_format_tokenizer(tmp_path_factory.mktemp("column_tok"), "column", 640, sum_places=True)


def test_each_kind_of_piece_is_known_from_the_model_file(place_tok: tokenizer.Tokenizer,
                                                         value_tok: tokenizer.Tokenizer,
                                                         column_tok: tokenizer.Tokenizer) -> None:
    def kinds(tok: tokenizer.Tokenizer) -> tuple[bool, bool, bool]:
        return tok.place_digits, tok.value_pieces, tok.sum_places

    assert kinds(place_tok) == (True, False, False)
    assert kinds(value_tok) == (True, True, False)
    assert kinds(column_tok) == (True, False, True)


def test_sum_and_dividend_digits_share_their_place_pieces(column_tok: tokenizer.Tokenizer) -> None:
    """Bringing a digit down is copying the sum line's piece of the same place."""
    work = formats.work_lines(kata.official_example(), "column")
    total, division = ([column_tok.piece(i) for i in column_tok.encode(line)] for line in work[-2:])
    tagged = [p for p in total if p in tokenizer.PLACE_CHARS]
    assert tagged == [tokenizer.PLACE_CHARS[10 * place + d] for place, d in enumerate((4, 0, 0, 5))]
    assert total[0] == formats.SUM_SIGN and total.count("⁰") == 4
    brought_down = [p for p in division if p in tokenizer.PLACE_CHARS][::2]
    assert brought_down == tagged[::-1]
    # The quotient digits keep their places, as in the ledger format.
    assert [p for p in division if p in tokenizer.PLACE_CHARS][1::2] == [
        tokenizer.PLACE_CHARS[10 * place + q] for place, q in ((3, 0), (2, 6), (1, 2), (0, 5))]


def test_column_tokenizer_is_lossless(column_tok: tokenizer.Tokenizer) -> None:
    cases = data.generate_cases(dataclasses.replace(TINY, answer_format="column", max_tickets=20))["test"]
    for case in cases:
        text = formats.render_prompt(case, "column") + formats.render_completion(case, "column")
        assert column_tok.decode(column_tok.encode(text)) == text
    for text in ["Σ4⁰0⁰0⁰5⁰", "Σ4⁰0", "Σ", "÷8: 50⁵06²02⁴45⁴", "Σ" + "1⁰" * 14]:  # 14 places: more than there are
        assert column_tok.decode(column_tok.encode(text)) == text
