"""The HTTP server: every endpoint and every rejection (TestClient), a real uvicorn under concurrent load,
and schemathesis against the OpenAPI spec (no 5xx)."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from lottogpt import kata
from lottogpt.inference import ReferenceEngine, load_engine
from lottogpt.serving import Settings, create_app

from .servers import uvicorn_in_thread

WIN = [1, 2, 3, 4, 5, 6]
OFFICIAL = {"tickets": [list(t) for t in kata.OFFICIAL_TICKETS], "winning": WIN, "bonus": 7}
LIMITS = Settings(engine="reference", max_cases=4, max_tickets=20, max_body_bytes=4096)


def wait_ready(client: TestClient | httpx.Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the model did not load in time"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def reference() -> Iterator[TestClient]:
    with TestClient(create_app(ReferenceEngine, LIMITS)) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> Iterator[TestClient]:
    with TestClient(create_app(str(tiny_checkpoint), Settings(device="cpu", max_wait_ms=1))) as client:
        wait_ready(client)
        yield client


def random_case(rng: random.Random, n: int) -> dict:
    winning = sorted(rng.sample(range(1, 46), 6))
    bonus = rng.choice([b for b in range(1, 46) if b not in winning])
    return {"tickets": [list(kata.draw_ticket(rng)) for _ in range(n)], "winning": winning, "bonus": bonus}


# --- health, readiness, info ---------------------------------------------------------------------------


def test_readyz_is_503_until_the_model_is_loaded() -> None:
    release = threading.Event()

    def slow_engine() -> ReferenceEngine:
        assert release.wait(10)
        return ReferenceEngine()

    app = create_app(slow_engine, Settings(engine="reference"))
    assert TestClient(app).get("/readyz").status_code == 503  # lifespan not even started
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json() == {"status": "loading"}
        assert ready.headers["retry-after"] == "1"
        for response in (client.post("/v1/predict", json=OFFICIAL), client.get("/info"),
                         client.post("/v1/play", json={"amount": 1000, "winning": WIN, "bonus": 7})):
            assert response.status_code == 503 and "not loaded" in response.json()["detail"]
        release.set()
        wait_ready(client)
        assert client.get("/readyz").json() == {"status": "ready", "model_version": "reference"}
        assert client.post("/v1/predict", json=OFFICIAL).status_code == 200


def test_a_failed_load_is_reported_not_hidden(tmp_path: Path) -> None:
    with TestClient(create_app(str(tmp_path / "missing"), Settings(background_load=False))) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "failed"
        assert "no checkpoint" in ready.json()["detail"]
        response = client.post("/v1/predict", json=OFFICIAL)
        assert response.status_code == 503 and "failed to load" in response.json()["detail"]


def test_info(model: TestClient, reference: TestClient) -> None:
    info = model.get("/info").json()
    assert info["engine"] == "model" and (info["min_tickets"], info["max_tickets"]) == (1, 8)
    assert info["model_version"].startswith(f"step{info['step']}-")
    assert len(info["tokenizer_sha256"]) == 64 and len(info["data_sha256"]) == 64
    assert info["limits"]["max_cases"] == 64 and "batching" in info
    assert reference.get("/info").json()["limits"]["max_tickets"] == 20
    assert info["backend"] == "onnx" and reference.get("/info").json()["backend"] == "none"  # auto on a CPU


def test_the_torch_backend_gives_the_onnx_backends_answers(model: TestClient, tiny_checkpoint: Path) -> None:
    rng = random.Random(21)
    cases = [random_case(rng, n) for n in (1, 3, 8)]
    settings = Settings(device="cpu", max_wait_ms=1, backend="torch")
    with TestClient(create_app(str(tiny_checkpoint), settings)) as plain:
        wait_ready(plain)
        assert plain.get("/info").json()["backend"] == "torch"
        for case in cases:
            fast, slow = (client.post("/v1/predict", json={**case, "show_work": True}).json()
                          for client in (model, plain))
            assert (fast["output"], fast["work"]) == (slow["output"], slow["work"])


# --- answers --------------------------------------------------------------------------------------------


def test_predict_one_case_with_check(reference: TestClient, official: dict) -> None:
    answer = reference.post("/v1/predict", json={**OFFICIAL, "check": True}).json()
    assert answer["output"].split("\n") == official["expected_output"]
    assert answer["counts"] == {"3": 1, "4": 0, "5": 0, "5+bonus": 0, "6": 0} and answer["return_rate"] == "62.5"
    assert answer["model_version"] == "reference" and answer["n_tickets"] == 8 and answer["format_valid"]
    assert answer["agrees"] is True and answer["lines_agree"] == [True] * 6
    assert answer["reference"]["output"] == answer["output"]
    plain = reference.post("/v1/predict", json=OFFICIAL).json()
    assert plain["reference"] is None and plain["agrees"] is None and plain["work"] is None


def test_predict_batch_keeps_order(reference: TestClient) -> None:
    rng = random.Random(3)
    cases = [random_case(rng, n) for n in (1, 4, 2, 4)]
    batch = reference.post("/v1/predict", json={"cases": cases, "show_work": True}).json()["results"]
    singles = [reference.post("/v1/predict", json={**c, "show_work": True}).json() for c in cases]
    assert batch == singles
    for case, answer in zip(cases, batch, strict=True):
        result = kata.score(kata.Case.create(case["tickets"], case["winning"], case["bonus"]))
        assert answer["output"] == result.output and len(answer["work"]) == len(case["tickets"])


def test_play_draws_reproducible_tickets(reference: TestClient) -> None:
    request = {"amount": 8000, "winning": [6, 5, 4, 3, 2, 1], "bonus": 7, "seed": 2024, "check": True}
    first = reference.post("/v1/play", json=request).json()
    assert first == reference.post("/v1/play", json=request).json()
    rng = random.Random(2024)
    tickets = [kata.draw_ticket(rng) for _ in range(8)]
    assert first["tickets"] == [list(t) for t in tickets] and first["winning"] == WIN and first["seed"] == 2024
    assert first["output"] == kata.score(kata.Case.create(tickets, WIN, 7)).output and first["agrees"]
    unseeded = reference.post("/v1/play", json={"amount": 3000, "winning": WIN, "bonus": 7}).json()
    again = reference.post("/v1/play", json={"amount": 3000, "winning": WIN, "bonus": 7, "seed": unseeded["seed"]})
    assert again.json()["tickets"] == unseeded["tickets"]


def test_model_answers_have_the_right_shape(model: TestClient) -> None:
    answer = model.post("/v1/predict", json={**OFFICIAL, "check": True, "show_work": True}).json()
    assert answer["engine"] == "model" and answer["model_version"].startswith("step")
    assert isinstance(answer["output"], str) and isinstance(answer["work"], list)
    assert answer["format_valid"] == (answer["counts"] is not None)
    assert answer["reference"]["return_rate"] == "62.5" and len(answer["lines_agree"]) == 6  # garbage is fine
    played = model.post("/v1/play", json={"amount": 5000, "winning": WIN, "bonus": 7, "seed": 1}).json()
    assert played["n_tickets"] == 5 and len(played["tickets"]) == 5


def test_the_engine_loads_and_runs_on_one_inference_thread() -> None:
    """All torch work on one thread: an engine loaded on one thread and run on another makes two OpenMP teams,
    and with more team threads than cores GNU OpenMP stops spin-waiting: forward passes ran ~3x slower (issue 18)."""
    seen: list[tuple[str, int, str]] = []

    def record(what: str) -> None:
        seen.append((what, threading.get_ident(), threading.current_thread().name))

    class Recording(ReferenceEngine):
        def __init__(self) -> None:
            record("load")

        def version(self) -> str:
            record("version")
            return super().version()

        def predict(self, cases: list[kata.Case]) -> list:
            record("predict")
            return super().predict(cases)

    with TestClient(create_app(Recording, Settings(engine="reference", max_wait_ms=0))) as client:
        wait_ready(client)
        for body in (OFFICIAL, {"amount": 3000, "winning": WIN, "bonus": 7}):
            assert client.post("/v1/predict" if "tickets" in body else "/v1/play", json=body).status_code == 200
    assert [what for what, _, _ in seen] == ["load", "version", "predict", "predict"]
    assert len({ident for _, ident, _ in seen}) == 1, seen
    assert seen[0][2].startswith("lottogpt-inference") and seen[0][1] != threading.main_thread().ident


# --- the playground: the page and the typed fields it sends ----------------------------------------------


def test_page_and_its_files_are_served(reference: TestClient) -> None:
    page = reference.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("playground.js", "playground.css"):
        assert f"/static/{name}" in page.text and reference.get(f"/static/{name}").status_code == 200
    assert '<label for="amount">' in page.text and "/v1/console" in reference.get("/static/playground.js").text
    assert "/" not in reference.get("/openapi.json").json()["paths"]


def test_console_plays_the_official_example(reference: TestClient, official: dict) -> None:
    typed = "\n".join(", ".join(map(str, t)) for t in kata.OFFICIAL_TICKETS)
    answer = reference.post("/v1/console", json={"tickets": typed, "winning": " 1,2,3,4,5,6", "bonus": "7 "})
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    assert answer["output"].split("\n") == official["expected_output"] and answer["return_rate"] == "62.5"
    assert answer["lines_agree"] == [True] * 6 and answer["agrees"] and len(answer["work"]) == 8
    assert answer["transcript"] == kata.render_transcript(kata.official_example()) and answer["seed"] is None
    drawn = reference.post("/v1/console", json={"amount": "8000", "winning": "1,2,3,4,5,6", "bonus": "7", "seed": 2024})
    played = reference.post("/v1/play", json={"amount": 8000, "winning": WIN, "bonus": 7, "seed": 2024})
    assert drawn.json()["tickets"] == played.json()["tickets"] and drawn.json()["amount"] == 8000


CONSOLE = {"amount": "8000", "winning": "1,2,3,4,5,6", "bonus": "7"}
CONSOLE_REJECTED = [
    ({"amount": "1000j"}, {"amount": "[ERROR] 구입 금액은 숫자여야 합니다."}),
    ({"amount": "1200"}, {"amount": "[ERROR] 구입 금액은 1,000원 단위여야 합니다."}),
    ({"amount": "21000"}, {"amount": "at most 20 tickets per case, got 21"}),
    ({"amount": None, "tickets": "1, 2, 3, 4, 5, 6\n1, 2, 3, 4, 5, x"},
     {"tickets": "[ERROR] 로또 번호는 숫자여야 합니다. (2번째 줄"}),
    ({"amount": None, "tickets": "1, 2, 3, 4, 5, 46"}, {"tickets": "[ERROR] 로또 번호는 1부터 45 사이의"}),
    ({"amount": None, "tickets": "\n \n"}, {"tickets": "[ERROR] 로또를 한 장 이상 구매해야 합니다."}),
    ({"tickets": "1, 2, 3, 4, 5, 6"}, {"amount": "one of them"}),
    ({"amount": None, "tickets": "1, 2, 3, 4, 5, 6", "seed": 7}, {"seed": "[ERROR] 수동 번호에는 시드를"}),
    ({"amount": None, "tickets": "1, 2, 3, 4, 5, 46", "seed": 7},  # the seed's error beside the ticket's
     {"tickets": "1부터 45 사이", "seed": "[ERROR] 수동 번호에는 시드를"}),
    ({"winning": "1,2,3,4,5"}, {"winning": "[ERROR] 당첨 번호는 6개여야 합니다."}),
    ({"winning": "1,2,3,4,5,a"}, {"winning": "[ERROR] 당첨 번호는 쉼표(,)로 구분된 숫자여야 합니다."}),
    ({"bonus": "6"}, {"bonus": "[ERROR] 보너스 번호는 당첨 번호와 중복될 수 없습니다."}),
    ({"bonus": "b"}, {"bonus": "[ERROR] 보너스 번호는 숫자여야 합니다."}),
    ({"amount": "0", "winning": "1,1,2,3,4,5", "bonus": "99"},  # every field at once, each with its own message
     {"amount": "0보다 커야", "winning": "중복될 수 없습니다", "bonus": "1부터 45 사이"}),
    ({"bonus": 7}, {"bonus": "valid string"}),
    ({"seed": -1}, {"seed": "greater than or equal to 0"}),  # the range of /v1/play's seed
    ({"seed": 2**63}, {"seed": "less than or equal to 9223372036854775807"}),
]


@pytest.mark.parametrize(("change", "expected"), CONSOLE_REJECTED)
def test_console_rejections_name_their_field(reference: TestClient, change: dict, expected: dict) -> None:
    body = {k: v for k, v in {**CONSOLE, **change}.items() if v is not None}
    response = reference.post("/v1/console", json=body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert {d["loc"][1] for d in details} == set(expected), details
    for field, message in expected.items():
        assert any(d["loc"] == ["body", field] and message in d["msg"] for d in details), details


def test_console_names_the_model_range(model: TestClient) -> None:
    response = model.post("/v1/console", json={**CONSOLE, "amount": "9000"})
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "amount"] and "1..8 tickets, got 9" in detail["msg"]
    answer = model.post("/v1/console", json={**CONSOLE, "amount": "2000", "seed": 1}).json()
    assert answer["engine"] == "model" and answer["n_tickets"] == 2 and len(answer["lines_agree"]) == 6


# --- rejections -----------------------------------------------------------------------------------------

T = OFFICIAL["tickets"]
RANGE = "[ERROR] 로또 번호는 1부터 45 사이의 숫자여야 합니다."
REJECTED = [
    ({**OFFICIAL, "tickets": [[1, 2, 3, 4, 5, 46]]}, ["body", "tickets", 0], RANGE),
    ({**OFFICIAL, "tickets": [[0, 2, 3, 4, 5, 6]]}, ["body", "tickets", 0], "1부터 45 사이"),
    ({**OFFICIAL, "tickets": [[1, 2, 3, 4, 5]]}, ["body", "tickets", 0], "[ERROR] 로또 번호는 6개여야 합니다."),
    ({**OFFICIAL, "tickets": [[1, 1, 2, 3, 4, 5]]}, ["body", "tickets", 0], "[ERROR] 로또 번호는 중복될 수 없습니다."),
    ({**OFFICIAL, "tickets": []}, ["body", "tickets"], "[ERROR] 로또를 한 장 이상 구매해야 합니다."),
    ({**OFFICIAL, "tickets": [T[0]] * 21}, ["body", "tickets"], "at most 20 tickets per case, got 21"),
    ({**OFFICIAL, "winning": [1, 2, 3, 4, 5]}, ["body", "winning"], "[ERROR] 당첨 번호는 6개여야 합니다."),
    ({**OFFICIAL, "winning": [1, 2, 3, 4, 5, 5]}, ["body", "winning"], "[ERROR] 당첨 번호는 중복될 수 없습니다."),
    ({**OFFICIAL, "winning": [1, 2, 3, 4, 5, 99]}, ["body", "winning"], "1부터 45 사이"),
    ({**OFFICIAL, "bonus": 6}, ["body"], "[ERROR] 보너스 번호는 당첨 번호와 중복될 수 없습니다."),
    ({**OFFICIAL, "bonus": 46}, ["body", "bonus"], "1부터 45 사이"),
    ({**OFFICIAL, "bonus": "7"}, ["body", "bonus"], "valid integer"),
    ({**OFFICIAL, "bonus": 7.0}, ["body", "bonus"], "valid integer"),
    ({**OFFICIAL, "bonus": True}, ["body", "bonus"], "valid integer"),
    ({**OFFICIAL, "check": "yes"}, ["body", "check"], "valid boolean"),
    ({**OFFICIAL, "extra": 1}, ["body", "extra"], "Extra inputs are not permitted"),
    ({"tickets": T, "winning": WIN}, ["body", "bonus"], "Field required"),
    ({"cases": []}, ["body", "cases"], "at least one case"),
    ({"cases": [OFFICIAL] * 5}, ["body", "cases"], "at most 4 cases per request, got 5"),
    ({"cases": [OFFICIAL, {**OFFICIAL, "bonus": 1}]}, ["body", "cases", 1], "당첨 번호와 중복"),
    ([OFFICIAL], ["body"], "expected one case"),
    ("1,2,3,4,5,6", ["body"], "expected one case"),
]


@pytest.mark.parametrize(("body", "loc", "message"), REJECTED)
def test_predict_rejections(reference: TestClient, body: object, loc: list, message: str) -> None:
    response = reference.post("/v1/predict", json=body)
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert any(d["loc"] == loc and message in d["msg"] for d in details), details


PLAY_REJECTED = [
    ({"amount": 8500}, ["body", "amount"], "[ERROR] 구입 금액은 1,000원 단위여야 합니다."),
    ({"amount": 0}, ["body", "amount"], "[ERROR] 구입 금액은 0보다 커야 합니다."),
    ({"amount": -8000}, ["body", "amount"], "[ERROR] 구입 금액은 0보다 커야 합니다."),
    ({"amount": 10**40}, ["body", "amount"], "at most 20 tickets per case"),
    ({"amount": "8000"}, ["body", "amount"], "valid integer"),
    ({"winning": [1, 2, 3]}, ["body", "winning"], "[ERROR] 당첨 번호는 6개여야 합니다."),
    ({"bonus": 1}, ["body"], "[ERROR] 보너스 번호는 당첨 번호와 중복될 수 없습니다."),
    ({"seed": -1}, ["body", "seed"], "greater than or equal to 0"),
    ({"seed": 2**63}, ["body", "seed"], "less than or equal to 9223372036854775807"),
]


@pytest.mark.parametrize(("change", "loc", "message"), PLAY_REJECTED)
def test_play_rejections(reference: TestClient, change: dict, loc: list, message: str) -> None:
    response = reference.post("/v1/play", json={"amount": 8000, "winning": WIN, "bonus": 7, **change})
    assert response.status_code == 422, response.text
    assert any(d["loc"] == loc and message in d["msg"] for d in response.json()["detail"]), response.text


def test_malformed_json_and_body_size(reference: TestClient) -> None:
    response = reference.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"
    undecodable = reference.post("/v1/predict", content=b'{"a": "\xff"}', headers={"content-type": "application/json"})
    assert undecodable.status_code == 422 and undecodable.json()["detail"][0]["type"] == "json_invalid"
    big = b'{"tickets": [' + b" " * 5000 + b"]}"
    response = reference.post("/v1/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "the limit is 4,096 bytes" in response.json()["detail"]
    chunked = reference.post("/v1/predict", content=iter([big[:3000], big[3000:]]),
                             headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and "more than" in chunked.json()["detail"]
    small = reference.post("/v1/predict", content=iter([b'{"tickets": [[1,2,3,4,5,6]], ', b'"winning": [1,2,3,4,5,7], '
                                                         b'"bonus": 8}']), headers={"content-type": "application/json"})
    assert small.status_code == 200, small.text


def test_model_range_is_named(model: TestClient) -> None:
    response = model.post("/v1/predict", json={**OFFICIAL, "tickets": [*T, T[0]]})
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "tickets"] and "1..8 tickets, got 9" in detail["msg"]
    assert detail["msg"].startswith("[ERROR] ")
    batch = model.post("/v1/predict", json={"cases": [OFFICIAL, {**OFFICIAL, "tickets": [*T, T[1]]}]})
    assert batch.status_code == 422 and batch.json()["detail"][0]["loc"] == ["body", "cases", 1, "tickets"]
    play = model.post("/v1/play", json={"amount": 9000, "winning": WIN, "bonus": 7})
    assert play.status_code == 422 and "1..8" in play.json()["detail"][0]["msg"]


# --- a real uvicorn under concurrent load --------------------------------------------------------------


@pytest.mark.slow
def test_real_server_concurrent_answers_equal_serial(tiny_checkpoint: Path) -> None:
    app = create_app(str(tiny_checkpoint), Settings(device="cpu", max_batch_size=256, max_wait_ms=20))
    rng = random.Random(11)
    # the tiny model never says EOS, so every decode runs to the end of its window: few distinct cases
    distinct = [random_case(rng, n) for n in (2, 6) for _ in range(4)]  # 8 cases, 2 prompt lengths
    with uvicorn_in_thread(app) as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            wait_ready(client)
            serial = [client.post("/v1/predict", json=case).json() for case in distinct]
        requests = [distinct[i % len(distinct)] for i in range(200)]
        random.Random(5).shuffle(requests)

        async def hit() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
                return await asyncio.gather(*(client.post("/v1/predict", json=case) for case in requests))

        responses = asyncio.run(hit())
        assert [r.status_code for r in responses] == [200] * len(requests)
        expected = {id(case): answer for case, answer in zip(distinct, serial, strict=True)}
        for case, response in zip(requests, responses, strict=True):
            assert response.json() == expected[id(case)]
        batching = httpx.get(f"{base}/info").json()["batching"]
        assert batching["largest_batch"] > 1, batching  # concurrent requests did share forward passes
        assert batching["batches"] < len(distinct) + len(requests)
    assert app.state.lotto.stopping and app.state.lotto.batcher._task.done()


# --- schemathesis: the OpenAPI spec, fuzzed, never a 5xx ---------------------------------------------


FUZZ = Settings(background_load=False, max_wait_ms=0, max_tickets=12)
# pytest 9 breaks schemathesis.pytest.from_fixture, and the app needs the tiny checkpoint (a fixture): the
# schema is read from an app that never starts, and each call goes in-process to the fixture's app.
SPEC_APP = create_app(ReferenceEngine, FUZZ)
schema = schemathesis.openapi.from_dict(SPEC_APP.openapi())
schema.app = SPEC_APP


@pytest.fixture(scope="module")
def fuzz_app(tiny_checkpoint: Path) -> object:
    engine = load_engine("model", tiny_checkpoint, "cpu")
    return create_app(lambda: engine, FUZZ)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])
def test_openapi_no_server_errors(case: schemathesis.Case, fuzz_app: object) -> None:
    case.call_and_validate(app=fuzz_app, checks=[not_a_server_error, response_schema_conformance])
