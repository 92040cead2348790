"""A bounded load run against the real server (``lottogpt serve``, uvicorn) on 127.0.0.1.

For each mode the script starts a fresh server in a subprocess on a free port, waits for ``/readyz``,
sends ``--warmup`` untimed requests, then ``--requests`` ``POST /v1/predict`` requests (one case each,
``--tickets`` tickets, cycling over ``--distinct`` seeded cases) from ``--concurrency`` asyncio httpx
workers, stops issuing at ``--time-limit`` seconds, and stops the server (SIGTERM, graceful). Modes:

- ``on``: micro-batching, ``--max-batch-size`` cases per forward pass after up to ``--max-wait-ms``;
- ``off``: ``--max-batch-size 1 --max-wait-ms 0``: every case is decoded alone (speculatively, unless
  ``--no-speculative``).

``--backend`` is the server's (``serve --backend``): ``auto`` puts a lone case's passes on ONNX Runtime on
a CPU, ``torch`` keeps them on PyTorch; the in-process figures use the same backend.

Recorded per mode: requests/s (answered with 200 / wall time of the timed phase), latency p50/p95/p99 of
the answered requests, errors (any non-200 or transport error; issue 9 requires 0), the server's own
batching counters from ``/info`` (how many cases shared a forward pass), and whether every answer to
the same case was the same text.

    python benchmarks/server_load.py                          # models/checkpoint, modes on and off
    python benchmarks/server_load.py --engine reference       # the HTTP stack alone (no model)
    python benchmarks/server_load.py --random-init            # params.yaml's shape, random weights
    python benchmarks/server_load.py --backend torch --out results/bench/server_torch   # PyTorch passes

The load generator runs on the same machine and takes CPU from the server: on 2 cores that matters.
Only 127.0.0.1 is ever contacted. Writes ``results/bench/server_load.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "server_load"
HOST = "127.0.0.1"
MODES = {"on": None, "off": (1, 0.0)}  # None: --max-batch-size / --max-wait-ms


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from lottogpt.onnx_backend import BACKENDS  # lottogpt loads torch: imported where needed, as below

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--engine", default="model", choices=["model", "reference"])
    bc.add_model_source_args(parser)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per mode")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--warmup", type=int, default=16, help="untimed requests per mode before timing")
    parser.add_argument("--time-limit", type=float, default=180.0,
                        help="seconds after which no new timed request is sent (per mode)")
    parser.add_argument("--request-timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds for /readyz to say ready")
    parser.add_argument("--tickets", type=int, default=10, help="tickets per case")
    parser.add_argument("--distinct", type=int, default=64, help="distinct cases the requests cycle over")
    parser.add_argument("--modes", default="on,off", help="comma list of: on (micro-batching), off")
    parser.add_argument("--max-batch-size", type=int, default=64, help="server cases per forward pass (mode on)")
    parser.add_argument("--max-wait-ms", type=float, default=0.0, help="server batching wait (mode on)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the server (lottogpt serve --threads) and of the in-process "
                             "engine (0: torch's default)")
    parser.add_argument("--device", default="auto", help="server device: auto, cpu, cuda")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="what runs a lone case's passes, in the server (serve --backend) and in process")
    parser.add_argument("--speculative", action=argparse.BooleanOptionalAction, default=True,
                        help="the server decodes a case alone in its batch speculatively (its default)")
    parser.add_argument("--latency-iters", type=int, default=20,
                        help="served vs in-process: timed lone-case requests (0: skip that phase)")
    parser.add_argument("--latency-batches", type=int, default=3, help="served vs in-process: timed batch requests")
    parser.add_argument("--batch-cases", type=int, default=64, help="cases in one batch request")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cases")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for server_load.json")
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """``lottogpt serve`` in a subprocess on 127.0.0.1; stopped with SIGTERM (graceful), killed if stuck."""

    def __init__(self, args: argparse.Namespace, model: str, max_batch_size: int, max_wait_ms: float,
                 log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        env = dict(os.environ)
        command = [sys.executable, "-m", "lottogpt.cli", "serve", "--host", HOST, "--port", str(self.port),
                   "--engine", args.engine, "--model", model, "--device", args.device,
                   "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
                   "--threads", str(args.threads), "--speculative" if args.speculative else "--no-speculative",
                   "--backend", args.backend, "--log-level", "warning"]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        cwd=bc.ROOT)

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def wait_ready(self, timeout: float) -> float:
        import httpx

        started = time.perf_counter()
        with httpx.Client(base_url=self.base, timeout=5, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return time.perf_counter() - started
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > timeout:
                    raise RuntimeError(f"the server was not ready after {timeout} s:\n{self.log_tail()}")
                time.sleep(0.1)

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode


async def load(base: str, bodies: list[dict], total: int, concurrency: int, time_limit: float,
               request_timeout: float, task: Any = None) -> dict[str, Any]:
    """``total`` requests from ``concurrency`` workers; no new request after ``time_limit`` seconds.

    ``task`` (a ``lottogpt.progress`` task) counts the requests answered, well or not.
    """
    import httpx

    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    answers: dict[int, Counter[str]] = {}
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=request_timeout, limits=limits, trust_env=False) as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit

        async def worker() -> None:
            nonlocal issued
            while issued < total and loop.time() < deadline:
                index = issued
                issued += 1
                body = bodies[index % len(bodies)]
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/predict", json=body)
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
                    if task is not None:
                        task.advance()
                    continue
                elapsed = time.perf_counter() - started
                statuses[str(response.status_code)] += 1
                if task is not None:
                    task.advance()
                if response.status_code == 200:
                    latencies.append(elapsed)
                    answers.setdefault(index % len(bodies), Counter())[response.json().get("output", "")] += 1

        started = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        _, pending = await asyncio.wait(tasks, timeout=time_limit + request_timeout + 10)
        for task in pending:  # a hard cap: whatever is still in flight is cancelled and counted as an error
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall = time.perf_counter() - started
    unanswered = issued - sum(statuses.values())
    if unanswered:
        statuses["cancelled_at_cap"] += unanswered
    ok = len(latencies)
    return {"requests_sent": issued, "ok": ok, "errors": issued - ok, "status_counts": dict(statuses),
            "wall_seconds": round(wall, 3), "requests_per_second": round(ok / wall, 2) if wall > 0 else None,
            "latency": bc.summary_ms(latencies) if latencies else None,
            "stopped_by_time_limit": issued < total,
            "answers": {key: counter.most_common(1)[0][0] for key, counter in answers.items()},
            "inconsistent_answers": sum(sum(c.values()) - c.most_common(1)[0][1] for c in answers.values())}


def batching_counters(base: str) -> dict[str, int] | None:
    import httpx

    response = httpx.get(f"{base}/info", timeout=10, trust_env=False)
    return response.json().get("batching") if response.status_code == 200 else None


def run_mode(args: argparse.Namespace, mode: str, model: str, bodies: list[dict], log_dir: Path) -> dict[str, Any]:
    from lottogpt import progress

    max_batch_size, max_wait_ms = MODES[mode] or (args.max_batch_size, args.max_wait_ms)
    server = Server(args, model, max_batch_size, max_wait_ms, log_dir / f"server-{mode}.log")
    try:
        ready_seconds = server.wait_ready(args.startup_timeout)
        if args.warmup > 0:
            asyncio.run(load(server.base, bodies, args.warmup, min(args.concurrency, args.warmup),
                             args.time_limit, args.request_timeout))
        before = batching_counters(server.base)
        with progress.track(f"requests, batching {mode}", args.requests, unit="requests") as task:
            timed = asyncio.run(load(server.base, bodies, args.requests, args.concurrency, args.time_limit,
                                     args.request_timeout, task))
        after = batching_counters(server.base)
    finally:
        exit_code = server.stop()
    batching = None
    if before and after:
        batches, cases = after["batches"] - before["batches"], after["cases"] - before["cases"]
        batching = {"batches": batches, "cases": cases, "mean_batch": round(cases / batches, 2) if batches else None,
                    "largest_batch_since_start": after["largest_batch"]}
    return {"max_batch_size": max_batch_size, "max_wait_ms": max_wait_ms, "ready_seconds": round(ready_seconds, 2),
            **timed, "batching": batching, "server_exit_code": exit_code}


def case_body(case: Any) -> dict[str, Any]:
    return {"tickets": [list(t) for t in case.tickets], "winning": list(case.winning), "bonus": case.bonus}


def latency_figures(call_one: Any, call_batch: Any, iters: int, batches: int, batch_size: int) -> dict[str, Any]:
    """p50 of ``iters`` lone-case calls and cases/s of ``batches`` calls of ``batch_size`` cases (after one each)."""
    call_one()
    call_batch()
    singles, batch_seconds = [], []
    for _ in range(iters):
        start = time.perf_counter()
        call_one()
        singles.append(time.perf_counter() - start)
    for _ in range(batches):
        start = time.perf_counter()
        call_batch()
        batch_seconds.append(time.perf_counter() - start)
    rates = sorted(batch_size / s for s in batch_seconds)
    return {"batch_1": bc.summary_ms(singles), "batched_cases_per_second": round(bc.percentile(rates, 50), 2),
            "batched_cases_per_second_repeats": [round(r, 2) for r in rates]}


def served_vs_in_process(args: argparse.Namespace, model: str, log_dir: Path) -> dict[str, Any]:
    """The batch-1 and batch-``--batch-cases`` figures of decode_latency, through a fresh server (one request
    per case, then one request of all the cases) and in this process on the same engine, one after the other."""
    import httpx
    import torch

    case = bc.bench_case(args.seed, args.tickets)  # decode_latency's case and batch
    batch = [bc.bench_case(args.seed + 1 + i, args.tickets) for i in range(args.batch_cases)]
    one, many = case_body(case), {"cases": [case_body(c) for c in batch]}
    server = Server(args, model, args.max_batch_size, args.max_wait_ms, log_dir / "server-latency.log")
    try:
        server.wait_ready(args.startup_timeout)
        with httpx.Client(base_url=server.base, timeout=args.request_timeout, trust_env=False) as client:
            def post(body: dict) -> None:
                client.post("/v1/predict", json=body).raise_for_status()

            served = latency_figures(lambda: post(one), lambda: post(many), args.latency_iters,
                                     args.latency_batches, len(batch))
            served_backend = client.get("/info").json()["backend"]
    finally:
        exit_code = server.stop()
    from lottogpt.inference import load_engine
    from lottogpt.onnx_backend import backend_of, with_backend

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    engine = load_engine(args.engine, model, args.device, speculative=args.speculative)
    engine = with_backend(engine, args.backend, torch.get_num_threads())  # as the server's factory does
    if backend_of(engine) != served_backend:
        raise SystemExit(f"the server decoded on {served_backend}, this process on {backend_of(engine)}")
    in_process = latency_figures(lambda: engine.predict([case]), lambda: engine.predict(batch), args.latency_iters,
                                 args.latency_batches, len(batch))
    ratio_1 = served["batch_1"]["p50_ms"] / in_process["batch_1"]["p50_ms"]
    ratio_b = in_process["batched_cases_per_second"] / served["batched_cases_per_second"]
    return {"served": served, "in_process": in_process, "server_exit_code": exit_code, "backend": served_backend,
            "in_process_torch_threads": torch.get_num_threads(), "tickets": args.tickets,
            "batch_cases": len(batch), "served_over_in_process_batch_1_p50": round(ratio_1, 3),
            "in_process_over_served_cases_per_second": round(ratio_b, 3),
            "within_20_percent": ratio_1 <= 1.2 and ratio_b <= 1.2}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown or not modes:
        raise SystemExit(f"--modes takes a comma list of {', '.join(MODES)}")
    bodies = [case_body(bc.bench_case(args.seed + i, args.tickets)) for i in range(args.distinct)]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lottogpt-bench-") as tmp:
        model = str(Path(args.checkpoint).resolve())  # the server runs in the repository root
        if args.engine == "model":
            if args.random_init:
                model = str(bc.random_init_checkpoint(Path(tmp) / "checkpoint", args.params, args.tokenizer))
            elif not (Path(model) / "config.json").exists():
                raise SystemExit(f"no checkpoint at {model} (config.json missing): train one (dvc repro train), "
                                 "pass --checkpoint, use --random-init, or --engine reference")
        for mode in modes:
            results[mode] = run_mode(args, mode, model, bodies, Path(tmp))
        latency = served_vs_in_process(args, model, Path(tmp)) if args.latency_iters > 0 else None
    from lottogpt.common import pick_device

    answers = [results[m].pop("answers") for m in modes]
    shared = set.intersection(*(set(a) for a in answers)) if answers else set()
    result = {
        "benchmark": NAME,
        "machine": {**bc.machine(str(pick_device(args.device))), "server_threads": args.threads or "torch default",
                    "note": "client and server share this machine"},
        "command": bc.command_line(),
        "config": {"engine": args.engine, "checkpoint": model if args.engine == "model" and not args.random_init
                   else None, "random_init": args.random_init, "requests": args.requests,
                   "concurrency": args.concurrency, "warmup": args.warmup, "time_limit_s": args.time_limit,
                   "request_timeout_s": args.request_timeout, "tickets": args.tickets, "distinct_cases": args.distinct,
                   "speculative": args.speculative, "backend": args.backend,
                   "endpoint": "POST /v1/predict (one case per request)", "host": HOST},
        "modes": results,
        "served_vs_in_process": latency,
        "errors_total": sum(r["errors"] for r in results.values()),
        "answers_agree_across_modes": all(a[k] == answers[0][k] for a in answers for k in shared) if shared else None,
    }
    if "on" in results and "off" in results and results["off"]["requests_per_second"]:
        result["batching_speedup"] = round(results["on"]["requests_per_second"]
                                           / results["off"]["requests_per_second"], 2)
    path = bc.write_result(args.out, NAME, result)
    print(f"server load ({args.engine}{', random init' if args.random_init else ''}), {args.requests} requests, "
          f"concurrency {args.concurrency}, {args.tickets} tickets a case, on {result['machine']['cpu_model']}:")
    for mode, r in results.items():
        lat = r["latency"] or {}
        print(f"  batching {mode:<3} (max_batch_size {r['max_batch_size']}, max_wait_ms {r['max_wait_ms']}): "
              f"{r['requests_per_second']} req/s | p50 {lat.get('p50_ms')} ms p95 {lat.get('p95_ms')} ms "
              f"p99 {lat.get('p99_ms')} ms | errors {r['errors']}"
              f"{' | STOPPED BY TIME LIMIT' if r['stopped_by_time_limit'] else ''}"
              f" | mean batch {(r['batching'] or {}).get('mean_batch')}")
    if "batching_speedup" in result:
        print(f"  micro-batching speedup {result['batching_speedup']}x")
    if latency:
        served, local = latency["served"], latency["in_process"]
        print(f"  served / in-process: batch 1 p50 {served['batch_1']['p50_ms']:.1f} / "
              f"{local['batch_1']['p50_ms']:.1f} ms"
              f" | {latency['batch_cases']} cases in one request {served['batched_cases_per_second']} / "
              f"{local['batched_cases_per_second']} cases/s | within 20%: {latency['within_20_percent']}")
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
