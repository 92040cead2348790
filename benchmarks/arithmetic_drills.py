"""Arithmetic drills: how well an answer format's arithmetic is learned on its own, in minutes.

The lines after the five count lines (a format's sum and division work lines and the rate line) read
nothing but the count lines and the ticket count. A drill (``formats.drill_texts``) gives a case's prompt and
count lines and trains only those lines, so a model of ``params.yaml``'s shape trained on drills alone for
``--steps`` shows how learnable a format's arithmetic is, without the hour a whole-pipeline run takes. Half
the training drills are prize-drawn as in the corpus (a uniform ticket count of 1-20, then a uniform prize
composition), half realise distinct compositions drawn uniformly over all of them (most have 15-20
tickets); the held-out drills are ``--eval`` of each kind (11-20 tickets for the second), drawn with
another seed (a composition may recur: the answer depends on nothing else, so this screens learning, not
generalisation), decoded greedily and compared with the reference's lines.

    python benchmarks/arithmetic_drills.py --format ledger --no-value-pieces --vocab-size 640 \
        --out results/bench/drills/ledger
    python benchmarks/arithmetic_drills.py --format addends --value-pieces --out results/bench/drills/addends_vp

Writes ``arithmetic_drills.json`` in ``--out``: the wrong drills of each held-out set and a few of them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import asdict
from typing import Any

import bench_common as bc

NAME = "arithmetic_drills"
# The held-out sets: (name, fewest tickets, most tickets, ticket count drawn uniformly rather than the composition)
EVAL_SETS = (("compositions_11_20", 11, 20, False), ("tickets_1_20", 1, 20, True))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--params", default=str(bc.ROOT / "params.yaml"), help="params.yaml (model and train)")
    parser.add_argument("--format", default=None, help="answer format (default: data.answer_format)")
    parser.add_argument("--value-pieces", action=argparse.BooleanOptionalAction, default=None,
                        help="one piece per small value (default: tokenizer.value_pieces)")
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="tokenizer pieces (default: tokenizer.vocab_size; 640 suits digit pieces)")
    parser.add_argument("--steps", type=int, default=1200, help="training steps of train.batch_tokens tokens")
    parser.add_argument("--drills", type=int, default=60_000, help="distinct training drills")
    parser.add_argument("--eval", type=int, default=1000, help="held-out drills per set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(bc.DEFAULT_OUT))
    return parser.parse_args(argv)


def draw(rng: Any, params: Any, size: int, fewest: int, most: int, uniform_count: bool) -> list:
    """``size`` cases of ``fewest..most`` tickets: prize-drawn as in the corpus (a uniform ticket count, then
    a uniform composition), or realising distinct compositions drawn uniformly over all of them."""
    from dataclasses import replace

    from lottogpt import data, suites

    if uniform_count:
        return data.draw_cases(rng, replace(params.data, min_tickets=fewest, max_tickets=most), size, "prizes")
    found = suites.sampled_compositions(rng, fewest, most, size)
    return data.draw_composed(rng, found, params.data.bonus_prob, repeat_share=0.0)


def train_on_drills(params: Any, drills: Any, steps: int, rng: Any) -> tuple[Any, dict[str, float]]:
    """A fresh model of ``params.model``'s shape trained on ``drills`` only, as the training loop does."""
    import numpy as np
    import torch

    from lottogpt import train
    from lottogpt.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=drills.tokenizer.vocab_size, **asdict(params.model)))
    optimizers = train.make_optimizers(model, params, torch.device("cpu"))
    rows = max(1, params.train.batch_tokens // int(np.mean([len(drills.tokens(i)) for i in range(256)])))
    started, tokens = time.perf_counter(), 0
    model.train()
    for step in range(steps):
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = train.lr_at(step, params)
        x, y = train.make_batch(drills, rng.choice(len(drills), size=rows))
        loss = train.completion_loss(model, x, y)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), params.train.grad_clip)
        for optimizer in optimizers:
            optimizer.step()
        tokens += x.numel()
    seconds = time.perf_counter() - started
    return model, {"train_seconds": round(seconds, 1), "tokens_per_second": round(tokens / seconds, 1),
                   "rows_per_batch": rows, "final_loss": round(loss.item(), 5)}


def score(model: Any, drills: Any) -> dict[str, Any]:
    """Greedy completions of held-out drills against the reference's lines."""
    from lottogpt.decode import greedy_decode

    tok = drills.tokenizer
    prompts = [drills.tokens(i)[: drills.prompt_length(i)].tolist() for i in range(len(drills))]
    outputs = greedy_decode(model, prompts, tok.eos_id, batch_size=256, max_new_tokens=160)
    wrong = []
    for index, output in enumerate(outputs):
        expected = tok.decode(drills.tokens(index)[drills.prompt_length(index):-1].tolist())
        if tok.decode(output) != expected:
            wrong.append({"expected": expected, "generated": tok.decode(output)})
    return {"drills": len(drills), "errors": len(wrong), "examples": wrong[:5]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import numpy as np
    import torch

    from lottogpt import data, formats, tokenizer
    from lottogpt import params as params_module
    from lottogpt.train import Encoded

    bc.set_threads(args.threads)
    torch.manual_seed(args.seed)
    params = params_module.load(args.params)
    fmt = args.format or params.data.answer_format
    value_pieces = params.tokenizer.value_pieces if args.value_pieces is None else args.value_pieces
    params.train.max_steps = args.steps  # the learning-rate schedule spans the drill run
    rng = np.random.default_rng(args.seed)
    half = args.drills // 2
    drawn = draw(rng, params, half, 1, 20, True) + draw(rng, params, args.drills - half, 1, 20, False)
    frame = data.to_frame("drills", drawn, fmt)
    with tempfile.TemporaryDirectory() as tok_dir:
        texts = [p + c for p, c in zip(frame["model_prompt"][:3000], frame["model_completion"][:3000], strict=True)]
        tokenizer.train(texts, tok_dir, args.vocab_size or params.tokenizer.vocab_size, "bpe",
                        fmt in formats.PLACE_FORMATS, value_pieces, fmt in formats.SUM_FORMATS)
        tok = tokenizer.Tokenizer.load(tok_dir)
    drills = Encoded(tok, frame, params.model.block_size, fmt, drills=True)
    model, figures = train_on_drills(params, drills, args.steps, rng)
    held_out = {}
    for name, fewest, most, uniform_count in EVAL_SETS:
        cases = draw(np.random.default_rng([args.seed, 999]), params, args.eval, fewest, most, uniform_count)
        held_out[name] = score(model, Encoded(tok, data.to_frame(name, cases, fmt), params.model.block_size, fmt,
                                               drills=True))
    result = {"benchmark": NAME, "command": bc.command_line(), "machine": bc.machine("cpu"),
              "config": {"format": fmt, "value_pieces": value_pieces, "steps": args.steps, "drills": args.drills,
                         "vocab_size": tok.vocab_size, "seed": args.seed, "model": asdict(params.model),
                         "lr": params.train.lr, "optimizer": params.train.optimizer,
                         "batch_tokens": params.train.batch_tokens},
              **figures, "held_out": held_out}
    print(f"{fmt}{' + value pieces' if value_pieces else ''}, {args.steps} steps in {figures['train_seconds']} s: "
          + ", ".join(f"{name} {row['errors']} of {row['drills']} wrong" for name, row in held_out.items()))
    print(f"wrote {bc.write_result(args.out, NAME, result)}")


if __name__ == "__main__":
    main()
