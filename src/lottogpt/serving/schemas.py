"""Request and response models. Where the kata has a rule, its check runs and its ``[ERROR]`` text is the message."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from lottogpt import kata

# The seed of a draw (``console.draw``): what the response reports back, so it fits a signed 64-bit integer.
DrawSeed = Annotated[StrictInt | None, Field(ge=0, le=2**63 - 1)]


def _lotto(function: Callable[..., Any], *args: Any) -> Any:
    """Run a kata check; its ``LottoError`` becomes a validation error whose message is the kata's."""
    try:
        return function(*args)
    except kata.LottoError as error:
        raise PydanticCustomError("lotto", str(error)) from None


_NUMBER_SCHEMA = {"type": "integer", "minimum": kata.NUMBER_MIN, "maximum": kata.NUMBER_MAX}
_SIX_SCHEMA = {"type": "array", "items": _NUMBER_SCHEMA, "minItems": kata.NUMBERS_PER_TICKET,
               "maxItems": kata.NUMBERS_PER_TICKET, "uniqueItems": True}

Number = Annotated[StrictInt, AfterValidator(lambda n: _lotto(kata.validate_bonus, n, ())),
                   WithJsonSchema(_NUMBER_SCHEMA)]
Ticket = Annotated[list[StrictInt], AfterValidator(lambda t: list(_lotto(kata.validate_numbers, t))),
                   WithJsonSchema({**_SIX_SCHEMA, "description": "six unique numbers in 1..45"})]
Winning = Annotated[list[StrictInt], AfterValidator(lambda t: list(_lotto(kata.validate_numbers, t, "당첨 번호"))),
                    WithJsonSchema({**_SIX_SCHEMA, "description": "the six winning numbers"})]


def ticket_count_error(n: int, max_tickets: int) -> tuple[str, str, dict] | None:
    """Why ``n`` tickets cannot be one case (type, message template, context), or None when they can."""
    if n < 1:
        return "lotto", "[ERROR] 로또를 한 장 이상 구매해야 합니다.", {}
    if n > max_tickets:
        return ("too_many_tickets", "[ERROR] 한 번에 {limit}장까지 구매할 수 있습니다 "
                "(at most {limit} tickets per case, got {got})", {"limit": max_tickets, "got": n})
    return None


def _check_count(n: int, max_tickets: int) -> None:
    error = ticket_count_error(n, max_tickets)
    if error is not None:
        raise PydanticCustomError(*error)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Drawing(_Strict):
    """The winning numbers and the bonus, which must not be one of them."""

    winning: Winning
    bonus: Number

    @model_validator(mode="after")
    def _bonus_not_winning(self) -> "_Drawing":
        _lotto(kata.validate_bonus, self.bonus, self.winning)
        return self


@dataclass
class Schemas:
    """The request models of one app (their caps come from its settings)."""

    case: type[BaseModel]
    batch: type[BaseModel]
    single: type[BaseModel]
    play: type[BaseModel]


def build_schemas(max_tickets: int, max_cases: int) -> Schemas:
    case = _case_model(max_tickets)

    class PredictOne(case):
        """One case, with options."""

        check: StrictBool = Field(False, description="also answer with the reference program and compare")
        show_work: StrictBool = Field(False, description="include the model's work lines")

    class PredictBatch(_Strict):
        """Several cases, answered in order."""

        cases: list[case] = Field(description=f"1..{max_cases} cases",
                                  json_schema_extra={"minItems": 1, "maxItems": max_cases})
        check: StrictBool = False
        show_work: StrictBool = False

        @field_validator("cases")
        @classmethod
        def _count(cls, cases: list) -> list:
            if not cases:
                raise PydanticCustomError("no_cases", "at least one case is needed")
            if len(cases) > max_cases:
                raise PydanticCustomError("too_many_cases", "at most {limit} cases per request, got {got}",
                                          {"limit": max_cases, "got": len(cases)})
            return cases

    return Schemas(case, PredictBatch, PredictOne, _play_model(max_tickets))


def _case_model(max_tickets: int) -> type[BaseModel]:
    class CaseIn(_Drawing):
        """One case in the ``predict`` JSON form."""

        tickets: list[Ticket] = Field(description=f"1..{max_tickets} tickets (the model's trained range applies too)",
                                      json_schema_extra={"minItems": 1, "maxItems": max_tickets})

        @field_validator("tickets")
        @classmethod
        def _count(cls, tickets: list[list[int]]) -> list[list[int]]:
            _check_count(len(tickets), max_tickets)
            return tickets

    return CaseIn


def _play_model(max_tickets: int) -> type[BaseModel]:
    class PlayIn(_Drawing):
        """The kata's three inputs; the server buys the tickets."""

        amount: StrictInt = Field(description="purchase amount in won, a multiple of 1,000",
                                  json_schema_extra={"minimum": kata.TICKET_PRICE,
                                                     "maximum": kata.TICKET_PRICE * max_tickets,
                                                     "multipleOf": kata.TICKET_PRICE})
        seed: DrawSeed = Field(None, description="draw the same tickets again")
        check: StrictBool = False
        show_work: StrictBool = False

        @field_validator("amount")
        @classmethod
        def _amount(cls, amount: int) -> int:
            amount = _lotto(kata.parse_amount, str(amount))
            _check_count(amount // kata.TICKET_PRICE, max_tickets)
            return amount

    return PlayIn


_LINE = 2_000  # characters in one typed field: far more than any valid input


class ConsoleIn(_Strict):
    """The playground's fields as typed, read with the console's own parsers (``kata.parse_*``)."""

    amount: StrictStr | None = Field(None, max_length=_LINE, description="구입금액, e.g. 8000 (draw tickets)")
    tickets: StrictStr | None = Field(None, max_length=20 * _LINE,
                                      description="manual purchase: one ticket a line, e.g. 1, 2, 3, 4, 5, 6")
    winning: StrictStr = Field(max_length=_LINE, description="당첨 번호, e.g. 1,2,3,4,5,6")
    bonus: StrictStr = Field(max_length=_LINE, description="보너스 번호, e.g. 7")
    seed: DrawSeed = Field(None, description="draw the same tickets again (with the amount, not the tickets)")


class Answer(BaseModel):
    """Six statistics lines, and what they say when they are in the kata's form."""

    output: str
    counts: dict[str, int] | None
    return_rate: str | None
    format_valid: bool


class CaseResult(Answer):
    model_version: str
    engine: str
    n_tickets: int
    tool_used: bool = False
    work: list[str] | None = None
    reference: Answer | None = Field(None, description="with check: the reference program's answer")
    agrees: bool | None = Field(None, description="with check: the output equals the reference's")
    lines_agree: list[bool] | None = Field(None, description="with check: each of the six lines")


class BatchResult(BaseModel):
    results: list[CaseResult]


class PlayResult(CaseResult):
    amount: int
    tickets: list[list[int]]
    winning: list[int]
    bonus: int
    seed: int


class ConsoleResult(CaseResult):
    amount: int
    tickets: list[list[int]]
    winning: list[int]
    bonus: int
    seed: int | None = Field(description="the seed of drawn tickets; null for a manual purchase")
    transcript: str = Field(description="the console up to ---, as the kata prints it")


class Status(BaseModel):
    status: str
    detail: str | None = None
    model_version: str | None = None
