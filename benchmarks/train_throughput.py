"""Training throughput: our GPT's train step against Hugging Face ``GPT2LMHeadModel`` of the same size.

Both models get the same shape (layers, width, heads, context, vocabulary, no dropout), the same batch
of random tokens (rows x context), the same loss (cross-entropy over every position), the same AdamW
(parameter groups, betas, weight decay as ``pipeline/train.py``), the same gradient clipping and, on
the same precision (``--precision``, default ``train.precision``: bf16 autocast on CUDA, and on CPU when
asked). One step = forward + loss + backward + clip + optimizer step + ``loss.item()``
(the train loop reads the loss every step). After warmup steps, timed repeats alternate the order
(ours, HF / HF, ours / ...) so that drift on the machine hits both alike; the figure is the median
tokens/s over repeats. Target of issue 9: ours >= 1.3x HF.

    python benchmarks/train_throughput.py                    # params.yaml's model and batch_tokens
    python benchmarks/train_throughput.py --device cuda --repeats 5

Writes ``results/bench/train_throughput.json``. Needs ``transformers`` (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import bench_common as bc

NAME = "train_throughput"
TARGET_RATIO = 1.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--params", default=str(bc.ROOT / "params.yaml"), help="params.yaml for the defaults")
    parser.add_argument("--tokenizer", default=str(bc.ROOT / "models" / "tokenizer"),
                        help="tokenizer folder whose vocabulary size is used (else tokenizer.vocab_size)")
    parser.add_argument("--vocab", type=int, default=0, help="vocabulary size (0: from --tokenizer / params)")
    parser.add_argument("--n-layer", type=int, default=0, help="0: model.n_layer")
    parser.add_argument("--n-head", type=int, default=0, help="0: model.n_head")
    parser.add_argument("--n-embd", type=int, default=0, help="0: model.n_embd")
    parser.add_argument("--context", type=int, default=0,
                        help="sequence length of a batch row and n_positions (0: model.block_size)")
    parser.add_argument("--rope", action=argparse.BooleanOptionalAction, default=None,
                        help="our model's rotary positions (default: model.rope); HF always uses learned ones")
    parser.add_argument("--batch-tokens", type=int, default=0, help="tokens per batch (0: train.batch_tokens)")
    parser.add_argument("--batch-rows", type=int, default=0, help="rows per batch (0: batch_tokens // context)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model before timing")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model per repeat")
    parser.add_argument("--repeats", type=int, default=4, help="timed repeats per model, order alternating")
    parser.add_argument("--precision", default="", choices=["", "auto", "fp32", "bf16"],
                        help="autocast for both models ('': train.precision)")
    parser.add_argument("--prev-token", action=argparse.BooleanOptionalAction, default=None,
                        help="our model's previous-token embedding (default: model.prev_token)")
    parser.add_argument("--hf-attn", default="sdpa", choices=["sdpa", "eager"],
                        help="attention implementation of GPT2LMHeadModel (sdpa is its fast default)")
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1...")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--profile-steps", type=int, default=3,
                        help="CPU only: steps per model under torch.profiler for the time split (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT), help="folder for train_throughput.json")
    return parser.parse_args(argv)


def resolve_shape(args: argparse.Namespace) -> dict[str, Any]:
    from lottogpt import params

    loaded = params.load(args.params)
    vocab = args.vocab
    vocab_source = "--vocab"
    if vocab <= 0:
        tokenizer_model = Path(args.tokenizer) / "tokenizer.model"
        if tokenizer_model.exists():
            from lottogpt.tokenizer import Tokenizer

            vocab, vocab_source = Tokenizer.load(args.tokenizer).vocab_size, str(args.tokenizer)
        else:
            vocab, vocab_source = loaded.tokenizer.vocab_size, "params tokenizer.vocab_size"
    context = args.context or loaded.model.block_size
    batch_tokens = args.batch_tokens or loaded.train.batch_tokens
    rows = args.batch_rows or max(1, batch_tokens // context)
    shape = {
        "n_layer": args.n_layer or loaded.model.n_layer, "n_head": args.n_head or loaded.model.n_head,
        "n_embd": args.n_embd or loaded.model.n_embd, "context": context, "vocab_size": vocab,
        "vocab_source": vocab_source, "rope": loaded.model.rope if args.rope is None else args.rope,
        "prev_token": loaded.model.prev_token if args.prev_token is None else args.prev_token,
        "precision": args.precision or loaded.train.precision,
        "batch_rows": rows, "batch_tokens": rows * context,
    }
    if shape["n_embd"] % shape["n_head"]:
        raise SystemExit(f"n_embd {shape['n_embd']} is not a multiple of n_head {shape['n_head']}")
    optim = {"lr": loaded.train.lr, "betas": [loaded.train.beta1, loaded.train.beta2],
             "weight_decay": loaded.train.weight_decay, "grad_clip": loaded.train.grad_clip}
    return {"shape": shape, "optimizer": optim}


def build_models(shape: dict[str, Any], hf_attn: str, device: Any) -> dict[str, Any]:
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from lottogpt.model import GPT, GPTConfig

    transformers.logging.set_verbosity_error()
    ours = GPT(GPTConfig(vocab_size=shape["vocab_size"], block_size=shape["context"], n_layer=shape["n_layer"],
                         n_head=shape["n_head"], n_embd=shape["n_embd"], dropout=0.0, rope=shape["rope"],
                         prev_token=shape["prev_token"]))
    hf_config = GPT2Config(vocab_size=shape["vocab_size"], n_positions=shape["context"], n_embd=shape["n_embd"],
                           n_layer=shape["n_layer"], n_head=shape["n_head"], resid_pdrop=0.0, embd_pdrop=0.0,
                           attn_pdrop=0.0, use_cache=False, bos_token_id=1, eos_token_id=2,
                           tie_word_embeddings=True, attn_implementation=hf_attn)
    hf = GPT2LMHeadModel(hf_config)
    return {"ours": ours.to(device).train(), "hf": hf.to(device).train(),
            "transformers": transformers.__version__, "hf_attn": hf.config._attn_implementation}


ATTENTION_OPS = ("scaled_dot_product", "flash_attention", "efficient_attention")
MATMUL_OPS = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}


def time_split(step: Any, steps: int) -> dict[str, float]:
    """Milliseconds per step under torch.profiler (CPU self time): attention kernels, matrix products, the rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    split = {"attention_ms": 0.0, "matmul_ms": 0.0, "other_ms": 0.0}
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1000 / steps
        if any(name in event.key for name in ATTENTION_OPS):
            split["attention_ms"] += ms
        elif event.key in MATMUL_OPS:
            split["matmul_ms"] += ms
        else:
            split["other_ms"] += ms
    split["total_ms"] = sum(split.values())
    return {key: round(value, 2) for key, value in split.items()}


def make_optimizer(model: Any, optim: dict[str, Any], device: Any) -> Any:
    """AdamW exactly as ``lottogpt.train.train`` builds it: weight decay on matrices only."""
    import torch

    return torch.optim.AdamW(
        [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": optim["weight_decay"]},
         {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}],
        lr=optim["lr"], betas=tuple(optim["betas"]), fused=device.type == "cuda")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    bc.set_threads(args.threads)
    import torch
    import torch.nn.functional as F  # noqa: N812

    from lottogpt import progress
    from lottogpt.common import pick_device
    from lottogpt.train import IGNORE, autocast_context, completion_loss

    setup = resolve_shape(args)
    shape, optim = setup["shape"], setup["optimizer"]
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(args.seed)
    built = build_models(shape, args.hf_attn, device)
    models = {"ours": built["ours"], "hf": built["hf"]}
    optimizers = {name: make_optimizer(model, optim, device) for name, model in models.items()}

    def hf_loss(model: Any, x: Any, y: Any) -> Any:  # the same formula as completion_loss, on HF's logits
        logits = model(input_ids=x).logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=IGNORE)

    losses = {"ours": completion_loss, "hf": hf_loss}
    generator = torch.Generator().manual_seed(args.seed)
    size = (shape["batch_rows"], shape["context"])
    batches = [(torch.randint(0, shape["vocab_size"], size, generator=generator).to(device),
                torch.randint(0, shape["vocab_size"], size, generator=generator).to(device)) for _ in range(4)]
    autocast = autocast_context(device, shape["precision"])  # the same for both models
    last_loss: dict[str, float] = {}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def run(name: str, steps: int, offset: int) -> float:
        model, optimizer, loss_fn = models[name], optimizers[name], losses[name]
        sync()
        start = time.perf_counter()
        for step in range(steps):
            x, y = batches[(offset + step) % len(batches)]
            with autocast:
                loss = loss_fn(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if optim["grad_clip"] > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim["grad_clip"])
            optimizer.step()
            last_loss[name] = loss.item()
        sync()
        return time.perf_counter() - start

    for name in models:
        run(name, args.warmup, 0)
    seconds: dict[str, list[float]] = {"ours": [], "hf": []}
    tokens_per_run = shape["batch_tokens"] * args.steps
    with progress.track("timing ours and HF GPT-2", 2 * args.repeats * args.steps, unit="steps") as task:
        for repeat in range(args.repeats):
            order = ("ours", "hf") if repeat % 2 == 0 else ("hf", "ours")
            for name in order:
                seconds[name].append(run(name, args.steps, repeat * args.steps))
                task.advance(args.steps, **{f"{name}_tok_s": round(tokens_per_run / seconds[name][-1])})

    profiles: dict[str, Any] | None = None
    if args.profile_steps > 0 and device.type == "cpu":
        profiles = {name: time_split(lambda name=name: run(name, 1, 0), args.profile_steps) for name in models}
        # Both models run the same attention kernel and matrix products of the same sizes; if ours spent
        # nothing anywhere else, its step would still take attention + matmul.
        floor = profiles["ours"]["attention_ms"] + profiles["ours"]["matmul_ms"]
        profiles["ratio_if_ours_were_attention_and_matmul_only"] = round(profiles["hf"]["total_ms"] / floor, 3)

    tokens_per_repeat = shape["batch_tokens"] * args.steps
    per_model = {}
    for name, model in models.items():
        rates = [tokens_per_repeat / s for s in seconds[name]]
        rate = statistics.median(rates)
        per_model[name] = {
            "tokens_per_second": round(rate, 1),
            "tokens_per_second_repeats": [round(r, 1) for r in rates],
            "step_ms": round(shape["batch_tokens"] / rate * 1000, 2),
            "parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": round(last_loss[name], 4),
        }
    ratio = per_model["ours"]["tokens_per_second"] / per_model["hf"]["tokens_per_second"]
    result = {
        "benchmark": NAME,
        "machine": bc.machine(str(device)),
        "command": bc.command_line(),
        "config": {**shape, **optim, "warmup_steps": args.warmup, "timed_steps": args.steps,
                   "repeats": args.repeats,
                   "autocast": None if isinstance(autocast, contextlib.nullcontext) else "bf16",
                   "hf_attn_implementation": built["hf_attn"], "transformers": built["transformers"]},
        "ours": per_model["ours"],
        "hf_gpt2": per_model["hf"],
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio >= TARGET_RATIO,
        "profile": profiles,
        "notes": ("Same shape; HF GPT-2 also has biases, learned positions (n_positions*n_embd more parameters) "
                  "and tanh-GELU, ours has no biases and rotary positions when rope is true. Random tokens; "
                  "loss over every position."),
    }
    path = bc.write_result(args.out, NAME, result)
    print(f"train throughput on {device} ({result['machine']['cpu_model']}, {torch.get_num_threads()} threads), "
          f"batch {shape['batch_rows']}x{shape['context']}, {shape['n_layer']}L/{shape['n_embd']}d/"
          f"{shape['n_head']}h, vocab {shape['vocab_size']}:")
    print(f"  ours     {per_model['ours']['tokens_per_second']:>12,.0f} tokens/s "
          f"({per_model['ours']['step_ms']:.1f} ms/step)")
    print(f"  HF GPT-2 {per_model['hf']['tokens_per_second']:>12,.0f} tokens/s "
          f"({per_model['hf']['step_ms']:.1f} ms/step)")
    print(f"  ratio {ratio:.2f}x (target >= {TARGET_RATIO}x: {'met' if result['meets_target'] else 'NOT met'})")
    if profiles:
        for name in ("ours", "hf"):
            split = profiles[name]
            print(f"  profiled {name}: attention {split['attention_ms']} ms, matmul {split['matmul_ms']} ms, "
                  f"other {split['other_ms']} ms per step")
        print(f"  ratio if ours were attention + matmul only: "
              f"{profiles['ratio_if_ours_were_attention_and_matmul_only']}x")
    print(f"  -> {path}")
    return result


if __name__ == "__main__":
    main()
