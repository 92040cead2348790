"""Decoding latency and throughput of the trained model, with and without the KV cache.

Batch 1: one case of ``--tickets`` tickets (10 by default), answered again and again. Timed per call:

- ``engine_predict``: ``ModelEngine.predict([case])`` end to end, as the server calls it (render the
  prompt, tokenize, decode with the KV cache, speculatively unless ``--no-speculative``, detokenize,
  parse the six lines);
- ``cache`` / ``no_cache``: the same steps as ``inference.complete`` (prompt, feeders of the fed formats,
  lockstep ``greedy_decode`` with ``use_cache`` on or off, detokenize, parse): one forward pass per token;
- ``speculative``: the same with the engine's n-gram drafter (``decode.speculative_decode``): the guesses
  of a pass that the model confirms cost no pass of their own; ``forward_passes`` counts them;
- ``prefill``: the one forward pass over the prompt that fills the cache (time to the first token).

Each reports p50/p95/p99 of the whole call and ``per_token_ms`` = p50 / decode steps (one step = one new
token, EOS included), because the issue's "p50 < 20 ms" target reads either per answer or per token.

Batch 64: ``--batch-size`` different cases of the same ticket count decoded together (one group, all rows
in lockstep): cases/s, with and without the cache. Target of issue 9: >= 200 cases/s.

    python benchmarks/decode_latency.py                       # models/checkpoint
    python benchmarks/decode_latency.py --threads 1,2         # one run per thread count
    python benchmarks/decode_latency.py --random-init         # params.yaml's shape, random weights

``--random-init`` times a model of the trained shape, but an untrained model rarely says EOS, so it decodes
up to ``model.block_size``: compare ``per_token_ms``, not whole-answer times, with a trained model.
Writes ``results/bench/decode_latency.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "decode_latency"
TARGET_P50_MS = 20.0
TARGET_CASES_PER_SECOND = 200.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    bc.add_model_source_args(parser)
    parser.add_argument("--tickets", type=int, default=10, help="tickets per case")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batch-1 calls per mode")
    parser.add_argument("--iters", type=int, default=30, help="timed batch-1 calls (engine_predict, cache)")
    parser.add_argument("--iters-no-cache", type=int, default=10, help="timed batch-1 calls without the cache")
    parser.add_argument("--hf-iters", type=int, default=10,
                        help="timed HF generate() calls, GPT2LMHeadModel of our shape (0: skip; needs transformers)")
    parser.add_argument("--batch-size", type=int, default=64, help="cases decoded together in the batch test")
    parser.add_argument("--batch-repeats", type=int, default=3, help="timed batches with the cache")
    parser.add_argument("--batch-repeats-no-cache", type=int, default=1,
                        help="timed batches without the cache (slow: every step re-reads the whole sequence)")
    parser.add_argument("--max-new-tokens", type=int, default=0,
                        help="cap on generated tokens (0: none, as served; a cap skips engine_predict)")
    parser.add_argument("--threads", default="0", help="torch CPU threads, a comma list runs each (0: default)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--speculative", action=argparse.BooleanOptionalAction, default=True,
                        help="the engine decodes a lone case speculatively, as the server does")
    parser.add_argument("--onnx", action="store_true",
                        help="also engine_predict with lone cases on ONNX Runtime (lottogpt.onnx_backend)")
    parser.add_argument("--reference-choices", action="store_true",
                        help="every greedy choice is the reference answer's token (with --random-init: a trained "
                             "model's passes and steps on random weights; skips the no-cache modes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cases")
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for decode_latency.json")
    return parser.parse_args(argv)


class Decoder:
    """``inference.complete`` + ``prediction_from_completion``, with the KV cache switch and step counts."""

    def __init__(self, engine: Any, max_new_tokens: int | None, drafter: Any, batch_draft: int = 3) -> None:
        self.engine = engine
        self.max_new_tokens = max_new_tokens
        self.drafter = drafter
        self.batch_draft = batch_draft  # guesses a row when a batch is decoded speculatively
        self.fast: Any = None  # the model on ONNX Runtime (--onnx)

    def passes(self, case: Any) -> int:
        """Forward passes of the speculative decoding of ``case`` (the prefill included)."""
        from lottogpt.decode import speculative_decode
        from lottogpt.inference import feeders_for

        engine = self.engine
        feeder = (feeders_for(engine.tokenizer, [case], engine.answer_format) or [None])[0]
        _, passes = speculative_decode(engine.model, self.prompts([case])[0], engine.tokenizer.eos_id,
                                       self.drafter, feeder, self.max_new_tokens)
        return passes

    def prompts(self, cases: list) -> list[list[int]]:
        from lottogpt.inference import prompt_tokens

        return [prompt_tokens(self.engine.tokenizer, c, self.engine.answer_format) for c in cases]

    def __call__(self, cases: list, use_cache: bool, speculative: bool = False) -> tuple[list, list[list[int]]]:
        from lottogpt.decode import greedy_decode
        from lottogpt.inference import feeders_for, prediction_from_completion

        engine, tok = self.engine, self.engine.tokenizer
        feeders = feeders_for(tok, cases, engine.answer_format)
        outputs = greedy_decode(engine.model, self.prompts(cases), tok.eos_id, engine.batch_size,
                                max_new_tokens=self.max_new_tokens, use_cache=use_cache, feeders=feeders,
                                drafter=self.drafter if speculative else None, batch_draft=self.batch_draft)
        predictions = [prediction_from_completion(tok.decode(o), len(c.tickets))
                       for o, c in zip(outputs, cases, strict=True)]
        return predictions, outputs

    def reference_steps(self, case: Any) -> int:
        """Decode steps of the right answer: the reference completion's tokens and the EOS."""
        from lottogpt import formats

        completion = formats.render_completion(case, self.engine.answer_format)
        return len(self.engine.tokenizer.encode(completion)) + 1

    def steps(self, prompt: list[int], output: list[int]) -> int:
        """Decode steps (forward passes) of one row: its tokens, plus the EOS when it stopped on one."""
        budget = self.engine.model.config.block_size - len(prompt)
        if self.max_new_tokens:
            budget = min(budget, self.max_new_tokens)
        return len(output) + 1 if len(output) < budget else budget


def timed(function: Any, iters: int, warmup: int, sync: Any, task: Any = None) -> list[float]:
    """Seconds of ``iters`` calls after ``warmup`` untimed ones; ``task`` (lottogpt.progress) counts every call."""
    for _ in range(warmup):
        function()
        if task is not None:
            task.advance()
    seconds = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        function()
        sync()
        seconds.append(time.perf_counter() - start)
        if task is not None:
            task.advance()
    return seconds


def hf_generate(engine: Any, prompt: list[int], steps: int) -> Any:
    """A call of Hugging Face ``generate()`` (greedy, KV cache) on a ``GPT2LMHeadModel`` of our shape: the
    usual peer. It writes exactly ``steps`` new tokens after ``prompt``, the steps of our answer."""
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    transformers.logging.set_verbosity_error()
    config = engine.model.config
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size,
                                    n_embd=config.n_embd, n_layer=config.n_layer, n_head=config.n_head,
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
                                    bos_token_id=1, eos_token_id=2)).to(engine.device).eval()
    ids = torch.tensor([prompt], dtype=torch.long, device=engine.device)
    mask = torch.ones_like(ids)

    @torch.no_grad()
    def call() -> None:
        hf.generate(ids, attention_mask=mask, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                    num_beams=1, use_cache=True, pad_token_id=0)
    return call


def onnx_model(engine: Any, args: argparse.Namespace, cases: list) -> Any:
    """The engine's model on ONNX Runtime for lone cases (``lottogpt.onnx_backend``), exported to a temporary
    file, with the same reference choices as the PyTorch model when ``--reference-choices``."""
    from lottogpt import onnx_backend

    path = onnx_backend.export(engine.model, Path(tempfile.mkdtemp(prefix="lottogpt-onnx-")) / "decode.onnx")
    threads = int(str(args.threads).split(",")[0]) or 1
    fast = onnx_backend.OrtGPT(engine.model, path, threads)
    if args.reference_choices:
        return bc.reference_choices(fast, engine.tokenizer, engine.answer_format, cases)
    return fast


def onnx_engine_predict(engine: Any, fast: Any, case: Any) -> Any:
    """``engine.predict([case])`` with the engine's model on ONNX Runtime (as ``onnx_backend.accelerate``)."""
    from lottogpt.onnx_backend import LONE_DRAFT

    torch_model, engine.model = engine.model, fast
    lone_draft, engine.lone_draft = engine.lone_draft, LONE_DRAFT
    try:
        return engine.predict([case])
    finally:
        engine.model, engine.lone_draft = torch_model, lone_draft


def timed_calls(args: argparse.Namespace) -> int:
    """How many calls :func:`run_threads` makes through :func:`timed` (the progress total)."""
    modes = (3 if args.max_new_tokens else 4) + (1 if args.onnx and not args.max_new_tokens else 0)
    single = (args.iters + args.warmup) * modes  # [onnx_]engine_predict, cache, speculative, prefill
    no_cache = args.iters_no_cache + min(args.warmup, 1) if args.iters_no_cache > 0 else 0
    hf = args.hf_iters + 1 if args.hf_iters > 0 else 0
    return single + no_cache + hf + 2 * max(args.batch_repeats, 0) + max(args.batch_repeats_no_cache, 0)


def with_per_token(stats: dict[str, float], steps: int) -> dict[str, Any]:
    return {**stats, "decode_steps": steps, "per_token_ms": round(stats["p50_ms"] / max(steps, 1), 4)}


def run_threads(engine: Any, decoder: Decoder, args: argparse.Namespace, case: Any, batch: list,
                sync: Any, task: Any = None) -> dict[str, Any]:
    import torch

    from lottogpt.model import KVCache

    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    prompt = decoder.prompts([case])[0]
    _, reference_out = decoder([case], use_cache=True)
    steps1 = decoder.steps(prompt, reference_out[0])
    single: dict[str, Any] = {}
    if not args.max_new_tokens:
        secs = timed(lambda: engine.predict([case]), args.iters, args.warmup, sync, task)
        single["engine_predict"] = with_per_token(bc.summary_ms(secs), steps1)
    if decoder.fast is not None and not args.max_new_tokens:
        served = onnx_engine_predict(engine, decoder.fast, case)[0].output
        secs = timed(lambda: onnx_engine_predict(engine, decoder.fast, case), args.iters, args.warmup, sync, task)
        single["onnx_engine_predict"] = {**with_per_token(bc.summary_ms(secs), steps1),
                                         "matches_engine_predict": served == engine.predict([case])[0].output}
    secs = timed(lambda: decoder([case], use_cache=True), args.iters, args.warmup, sync, task)
    single["cache"] = with_per_token(bc.summary_ms(secs), steps1)
    secs = timed(lambda: decoder([case], use_cache=True, speculative=True), args.iters, args.warmup, sync, task)
    single["speculative"] = {**with_per_token(bc.summary_ms(secs), steps1), "forward_passes": decoder.passes(case)}
    single["speculative_speedup_p50"] = round(single["cache"]["p50_ms"] / single["speculative"]["p50_ms"], 2)
    if args.iters_no_cache > 0:
        secs = timed(lambda: decoder([case], use_cache=False), args.iters_no_cache, min(args.warmup, 1), sync, task)
        single["no_cache"] = with_per_token(bc.summary_ms(secs), steps1)
        single["kv_cache_speedup_p50"] = round(single["no_cache"]["p50_ms"] / single["cache"]["p50_ms"], 2)

    model, device = engine.model, engine.device
    prompt_tensor = torch.tensor([prompt], dtype=torch.long, device=device)

    @torch.no_grad()
    def prefill() -> None:
        dtype = next(model.parameters()).dtype
        cache = KVCache(model.config, 1, model.config.block_size, device, dtype)
        model(prompt_tensor, cache)[:, -1].argmax(dim=-1).tolist()

    single["prefill"] = bc.summary_ms(timed(prefill, args.iters, args.warmup, sync, task))
    if args.hf_iters > 0 and importlib.util.find_spec("transformers") is None:
        single["hf_generate"] = None  # pip install -e '.[bench]'
    elif args.hf_iters > 0:
        single["hf_generate"] = with_per_token(bc.summary_ms(timed(hf_generate(engine, prompt, steps1),
                                                                   args.hf_iters, 1, sync, task)), steps1)
        headline = single.get("onnx_engine_predict", single.get("engine_predict", single["speculative"]))["p50_ms"]
        single["vs_hf_generate_p50"] = {mode: round(single["hf_generate"]["p50_ms"] / single[mode]["p50_ms"], 2)
                                        for mode in ("engine_predict", "onnx_engine_predict", "cache", "speculative")
                                        if mode in single}
        single["vs_hf_generate_p50"]["headline"] = round(single["hf_generate"]["p50_ms"] / headline, 2)
    out["batch_1"] = single

    batched: dict[str, Any] = {"batch_size": len(batch)}
    prompts = decoder.prompts(batch)
    _, outputs = decoder(batch, use_cache=True)  # also the warmup of the batched shape
    batch_steps = max(decoder.steps(p, o) for p, o in zip(prompts, outputs, strict=True))
    _, speculated = decoder(batch, use_cache=True, speculative=True)  # the warmup of the speculative batch
    batched["speculative_matches_cache"] = speculated == outputs
    # Interleaved repeats of lockstep and batched speculative decoding, so that drift hits both alike.
    times: dict[str, list[float]] = {"cache": [], "speculative": []}
    for _ in range(max(args.batch_repeats, 0)):
        for mode in times:
            times[mode] += timed(lambda m=mode: decoder(batch, use_cache=True, speculative=m == "speculative"),
                                 1, 0, sync, task)
    if args.batch_repeats_no_cache > 0:
        times["no_cache"] = timed(lambda: decoder(batch, use_cache=False), args.batch_repeats_no_cache, 0, sync, task)
    for mode, secs in times.items():
        if not secs:
            continue
        rates = [len(batch) / s for s in secs]
        batched[mode] = {"cases_per_second": round(statistics.median(rates), 2),
                         "cases_per_second_repeats": [round(r, 2) for r in rates],
                         "seconds_repeats": [round(s, 4) for s in secs], "decode_steps": batch_steps,
                         "tokens_per_second": round(statistics.median(rates) * batch_steps, 1)}
    if "cache" in batched and "no_cache" in batched:
        batched["kv_cache_speedup"] = round(batched["cache"]["cases_per_second"]
                                            / batched["no_cache"]["cases_per_second"], 2)
    if "speculative" in batched:
        batched["speculative"]["batch_draft"] = decoder.batch_draft
        batched["speculative_speedup"] = round(batched["speculative"]["cases_per_second"]
                                               / batched["cache"]["cases_per_second"], 2)
    out["batched"] = batched

    headline = single.get("onnx_engine_predict", single.get("engine_predict", single["cache"]))
    reference_steps = decoder.reference_steps(case)
    # A capped or untrained run (decoding to the length limit) is not an answer: its targets are not judged.
    comparable = not args.max_new_tokens and steps1 < engine.model.config.block_size - len(prompt)
    cases_per_second = batched.get("speculative", batched.get("cache", {})).get("cases_per_second")
    out["targets"] = {
        "comparable": comparable,
        "batch_1_p50_ms": headline["p50_ms"], "batch_1_p50_target_ms": TARGET_P50_MS,
        "batch_1_p50_met": headline["p50_ms"] < TARGET_P50_MS if comparable else None,
        "batch_1_per_token_ms": headline["per_token_ms"],
        "batch_1_per_token_met": headline["per_token_ms"] < TARGET_P50_MS,
        "batch_cases_per_second": cases_per_second,
        "batch_cases_per_second_target": TARGET_CASES_PER_SECOND,
        "batch_cases_per_second_met": (cases_per_second >= TARGET_CASES_PER_SECOND
                                       if comparable and cases_per_second is not None else None),
        # Estimates for a run that is not comparable: the measured cost per step times the right answer's steps.
        "reference_decode_steps": reference_steps,
        "batch_1_ms_at_reference_length": round(headline["per_token_ms"] * reference_steps, 3),
        "batch_cases_per_second_at_reference_length": (round(cases_per_second * batch_steps / reference_steps, 2)
                                                       if cases_per_second is not None else None),
    }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.random_init and not (Path(args.checkpoint) / "config.json").exists():
        raise SystemExit(f"no checkpoint at {args.checkpoint} (config.json missing): train one (dvc repro train), "
                         "pass --checkpoint, or time random weights with --random-init")
    import torch

    from lottogpt import progress
    from lottogpt.inference import ModelEngine, ngram_drafter

    threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="lottogpt-bench-") as tmp:
        directory = Path(args.checkpoint)
        if args.random_init:
            directory = bc.random_init_checkpoint(Path(tmp) / "checkpoint", args.params, args.tokenizer)
        engine = ModelEngine(directory, device=args.device, batch_size=args.batch_size,
                             speculative=args.speculative)
    case = bc.bench_case(args.seed, args.tickets)
    batch = [bc.bench_case(args.seed + 1 + i, args.tickets) for i in range(args.batch_size)]
    try:
        engine.check(case)
    except Exception as error:
        raise SystemExit(f"--tickets {args.tickets}: {error}") from None
    drafter = engine.drafter or ngram_drafter(engine.tokenizer, engine.answer_format, engine.min_tickets,
                                              engine.max_tickets)
    fast = onnx_model(engine, args, [case, *batch]) if args.onnx else None
    if args.reference_choices:
        engine.model = bc.reference_choices(engine.model, engine.tokenizer, engine.answer_format, [case, *batch])
        args.iters_no_cache = args.batch_repeats_no_cache = 0  # reference choices need the cache
    decoder = Decoder(engine, args.max_new_tokens or None, drafter)
    decoder.fast = fast
    device = engine.device

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.set_num_threads(threads[0] if threads and threads[0] > 0 else default_threads)
    # The timed paths must be the served one: the same text from engine.predict and from our decoder.
    served = None if args.max_new_tokens else engine.predict([case])[0].output
    cached, cached_out = decoder([case], use_cache=True)
    uncached, _ = decoder([case], use_cache=False) if args.iters_no_cache > 0 else (None, None)
    speculated, _ = decoder([case], use_cache=True, speculative=True)
    prompt = decoder.prompts([case])[0]
    steps = decoder.steps(prompt, cached_out[0])
    runs = []
    for count in threads:
        torch.set_num_threads(count if count > 0 else default_threads)
        with progress.track(f"decode timings, {torch.get_num_threads()} threads", timed_calls(args),
                            unit="calls") as task:
            runs.append(run_threads(engine, decoder, args, case, batch, sync, task))

    result = {
        "benchmark": NAME,
        "machine": bc.machine(str(device)),
        "command": bc.command_line(),
        "config": {"checkpoint": None if args.random_init else str(directory), "random_init": args.random_init,
                   "model": engine.model.config.to_dict(), "parameters": engine.model.num_params(),
                   "answer_format": engine.answer_format, "step": engine.config.get("step"),
                   "tickets": args.tickets, "prompt_tokens": len(prompt), "generated_tokens": len(cached_out[0]),
                   "decode_steps": steps, "reference_decode_steps": decoder.reference_steps(case),
                   "hit_length_limit": steps == len(cached_out[0]),
                   "max_new_tokens": args.max_new_tokens or None, "iters": args.iters,
                   "iters_no_cache": args.iters_no_cache, "warmup": args.warmup, "batch_size": args.batch_size,
                   "batch_repeats": args.batch_repeats, "batch_repeats_no_cache": args.batch_repeats_no_cache,
                   "speculative": args.speculative, "seed": args.seed, "onnx": args.onnx,
                   "reference_choices": args.reference_choices, "batch_draft": decoder.batch_draft},
        "checks": {"decoder_matches_engine": None if served is None else cached[0].output == served,
                   "no_cache_matches_cache": uncached[0].output == cached[0].output if uncached else None,
                   "speculative_matches_cache": speculated[0].output == cached[0].output,
                   "format_valid": cached[0].format_valid},
        "runs": runs,
    }
    path = bc.write_result(args.out, NAME, result)
    hit = result["config"]["hit_length_limit"]
    limit = " (hit the length limit: untrained model or --max-new-tokens)" if hit else ""
    print(f"decode on {device} ({result['machine']['cpu_model']}), {args.tickets}-ticket case: {len(prompt)} prompt "
          f"tokens, {steps} decode steps{limit}, a right answer takes {decoder.reference_steps(case)}")
    for run in runs:
        single, batched = run["batch_1"], run["batched"]
        line = f"  threads {run['threads']}: batch 1"
        for mode in ("engine_predict", "onnx_engine_predict", "cache", "speculative", "no_cache"):
            if mode in single:
                line += (f" | {mode} p50 {single[mode]['p50_ms']:.1f} ms p95 {single[mode]['p95_ms']:.1f} ms "
                         f"({single[mode]['per_token_ms']:.2f} ms/token)")
        line += f" | {single['speculative']['forward_passes']} speculative passes"
        if single.get("hf_generate"):
            line += (f" | HF generate p50 {single['hf_generate']['p50_ms']:.1f} ms "
                     f"({single['vs_hf_generate_p50']['headline']}x slower than ours)")
        print(line)
        line = f"  threads {run['threads']}: batch {batched['batch_size']}"
        for mode in ("cache", "speculative", "no_cache"):
            if mode in batched:
                line += f" | {mode} {batched[mode]['cases_per_second']:.1f} cases/s"
        print(line)
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
