"""Training: loss masking, overfitting a few cases, resuming after SIGKILL, DDP on gloo, params casting."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from ruamel.yaml import YAML
from safetensors.torch import load_file

from lottogpt import checkpoint, data, formats, kata, params, tokenizer, train
from lottogpt.inference import ModelEngine
from lottogpt.params import DataParams, ModelParams, Params, TokenizerParams, TrainParams

from . import procs
from .conftest import ROOT, TINY, tiny_params, train_format_tokenizer


def test_loss_is_masked_to_the_completion(tiny_corpus: Path, tiny_tokenizer: Path) -> None:
    tok = tokenizer.Tokenizer.load(tiny_tokenizer)
    encoded = train.Encoded(tok, data.read_split(tiny_corpus, "val"), block_size=512)
    x, y = train.make_batch(encoded, np.array([0, 1]))
    for row in range(2):
        prompt_len = encoded.prompt_length(row)
        sequence = encoded.tokens(row)
        assert (y[row, : prompt_len - 1] == train.IGNORE).all()
        targets = y[row][y[row] != train.IGNORE].tolist()
        assert targets == sequence[prompt_len:].tolist()  # the completion and EOS, nothing else
        assert tok.decode(targets) == encoded.completions[row]
        assert x[row, 0] == tok.bos_id


def test_loss_ignores_prompt_tokens(tiny_corpus: Path, tiny_tokenizer: Path) -> None:
    """The loss is the mean cross entropy over the completion's positions only, not over the prompt's."""
    from lottogpt.model import GPT, GPTConfig

    tok = tokenizer.Tokenizer.load(tiny_tokenizer)
    encoded = train.Encoded(tok, data.read_split(tiny_corpus, "val"), block_size=512)
    x, y = train.make_batch(encoded, np.array([0]))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=16))
    sequence = torch.from_numpy(encoded.tokens(0).astype(np.int64))
    every_target = sequence[1:]  # the next token at each position, prompt and completion alike
    with torch.no_grad():
        per_position = F.cross_entropy(model(x)[0], every_target, reduction="none")
        loss = train.completion_loss(model, x, y)
    completion = torch.arange(len(every_target)) >= encoded.prompt_length(0) - 1
    assert 0 < int(completion.sum()) < len(every_target)
    assert torch.allclose(loss, per_position[completion].mean())
    assert not torch.allclose(loss, per_position.mean())  # the prompt's positions would change it


def _corpus_and_tokenizer(tmp_path: Path, data_params: DataParams) -> tuple[Path, Path]:
    corpus = tmp_path / "data" / "corpus"
    data.write_corpus(data_params, corpus, workers=1)
    tok_dir = tmp_path / "models" / "tokenizer"
    tokenizer.train_from_corpus(TokenizerParams(), corpus, tok_dir, data_params.answer_format,
                                data_params.max_tickets)
    return corpus, tok_dir


def test_sampler_weights_ticket_counts_by_count_power(tiny_corpus: Path, tiny_tokenizer: Path) -> None:
    tok = tokenizer.Tokenizer.load(tiny_tokenizer)
    encoded = train.Encoded(tok, data.read_split(tiny_corpus, "train"), block_size=512)
    counts = sorted(int(n) for n in np.unique(encoded.n_tickets))

    def drawn(power: float, step: int = 10_000, curriculum_steps: int = 0) -> np.ndarray:
        sampler = train.Sampler(encoded, 2048, seed=3, curriculum_steps=curriculum_steps, count_power=power)
        return np.array([sampler.draw_count(step) for _ in range(4000)])

    uniform, linear = drawn(0.0), drawn(1.0)
    for n in counts:
        assert abs((uniform == n).mean() - 1 / len(counts)) < 0.03
        assert abs((linear == n).mean() - n / sum(counts)) < 0.03
    early = drawn(1.0, step=0, curriculum_steps=100)  # the curriculum still caps n: counts 1 and 2 at step 0
    assert set(early) == {1, 2} and abs((early == 2).mean() - 2 / 3) < 0.03
    # count_power 0 keeps the uniform draw of earlier runs: the same batches for the same seed
    old, new = train.Sampler(encoded, 2048, 3, 0), train.Sampler(encoded, 2048, 3, 0, count_power=0.0)
    assert all(torch.equal(old.sample(step)[0], new.sample(step)[0]) for step in range(5))


def test_sampler_mixes_in_drills_that_train_only_the_lines_after_the_counts(tiny_corpus: Path,
                                                                          tiny_tokenizer: Path) -> None:
    tok = tokenizer.Tokenizer.load(tiny_tokenizer)
    encoded = train.Encoded(tok, data.read_split(tiny_corpus, "train"), block_size=512, answer_format="scratchpad")
    sampler = train.Sampler(encoded, 2048, seed=3, curriculum_steps=0, drill_share=0.3)
    batches = [sampler.draw_batch(step) for step in range(1000)]
    drilled = [indices for source, indices in batches if source.drills]
    assert abs(len(drilled) / len(batches) - 0.3) < 0.05
    # A drill batch holds more cases than a whole-case batch of the same ticket count.
    n = int(encoded.n_tickets[drilled[0][0]])
    assert len(drilled[0]) > max(1, 2048 // sampler.count_length[n])
    index = int(drilled[0][0])
    x, y = train.make_batch(sampler.drills, np.array([index]))
    prompt, completion = formats.drill_texts(encoded.prompts[index], encoded.completions[index])
    assert tok.decode(x[0, : sampler.drills.prompt_length(index)].tolist()[1:]) == prompt
    assert tok.decode(y[0][y[0] != train.IGNORE].tolist()[:-1]) == completion  # the rate line, then EOS
    # drill_share 0 draws the batches of earlier runs
    old, new = train.Sampler(encoded, 2048, 3, 0), train.Sampler(encoded, 2048, 3, 0, drill_share=0.0)
    assert all(torch.equal(old.sample(step)[0], new.sample(step)[0]) for step in range(5))


def test_division_drills_train_the_quotients_and_remainders_of_random_dividends(
        tmp_path: Path, tiny_tokenizer: Path) -> None:
    tok = train_format_tokenizer(tmp_path / "tok", "addends", 768, value_pieces=True)
    drills = train.DivisionDrills(tok, "addends", 20)
    picks = drills.draw(np.random.default_rng(1), 4096)
    assert set(picks[:, 0]) <= set(range(1, 21)) and (picks[:, 1] >= picks[:, 0] // 2).all()
    assert picks[:, 1].max() < 10 ** 11  # 20 first prizes and the rounding half: 11 digits
    x, y = drills.batch(picks)
    for row, (divisor, dividend) in enumerate(picks[:20]):
        line = formats.division_line(int(dividend) - int(divisor) // 2, int(divisor), "ledger")
        length = int((x[row] != 0).sum())  # BOS is id 1, padding 0
        assert tok.decode([*x[row, :length].tolist()[1:], int(y[row, length - 1])]) == "\n" + line
        steps = formats.division_steps(line)[1]
        trained = [tok.decode([int(t)]) for t in y[row][y[row] != train.IGNORE]]
        assert trained == [piece for _, q, r in steps for piece in (str(q), formats.superscript(r))]
    # Divisors in proportion to their size: 20 about twenty times as often as 1.
    many = drills.draw(np.random.default_rng(2), 400_000)[:, 0]
    assert abs((many == 20).mean() / (many == 1).mean() - 20) < 3
    with pytest.raises(train.TrainError, match="ledger"):
        train.DivisionDrills(tok, "longdiv", 20)
    with pytest.raises(train.TrainError, match="value_pieces"):
        train.DivisionDrills(tokenizer.Tokenizer.load(tiny_tokenizer), "addends", 20).tokens(7, 123)


def test_sampler_mixes_in_division_drills(tmp_path: Path) -> None:
    corpus, tok_dir = _corpus_and_tokenizer(tmp_path, dataclasses.replace(TINY, answer_format="addends"))
    tok = tokenizer.Tokenizer.load(tok_dir)
    encoded = train.Encoded(tok, data.read_split(corpus, "train"), block_size=512, answer_format="addends")
    sampler = train.Sampler(encoded, 2048, seed=3, curriculum_steps=0, drill_share=0.25, division_share=0.2)
    sources = [type(sampler.draw_batch(step)[0]) for step in range(1000)]
    assert abs(sources.count(train.DivisionDrills) / 1000 - 0.2) < 0.04
    assert sampler.division[0].max_digits == len(str(8 * kata.Rank.SIX.prize + 4))  # TINY's 8 tickets
    # division_share 0 draws the batches of earlier runs
    old, new = train.Sampler(encoded, 2048, 3, 0, drill_share=0.25), train.Sampler(encoded, 2048, 3, 0, 0.0, 0.25, 0.0)
    assert all(torch.equal(old.sample(step)[0], new.sample(step)[0]) for step in range(20))


def test_division_drills_from_sums_give_the_sum_line_and_train_every_step(tmp_path: Path) -> None:
    corpus, tok_dir = _corpus_and_tokenizer(tmp_path, dataclasses.replace(TINY, answer_format="addends"))
    tok = tokenizer.Tokenizer.load(tok_dir)
    encoded = train.Encoded(tok, data.read_split(corpus, "train"), block_size=512, answer_format="addends")
    sampler = train.Sampler(encoded, 2048, seed=3, curriculum_steps=0, count_power=1.0, drill_share=0.25,
                            division_share=0.2, division_source="sums")
    batches = [sampler.draw_batch(step) for step in range(1000)]
    drawn = [picks for rows, picks in batches if isinstance(rows, train.SumDivisionDrills)]
    assert abs(len(drawn) / 1000 - 0.2) < 0.04
    picks = drawn[0]
    assert len(set(encoded.n_tickets[picks])) == 1  # one ticket count a batch, as for cases
    x, y = sampler.division[0].batch(picks)
    for row, index in enumerate(picks[:10]):
        lines = encoded.completions[int(index)].split("\n")
        at = next(i for i, line in enumerate(lines) if formats.is_sum_line(line))
        length = int((x[row] != 0).sum())
        given = tok.decode(x[row, :length].tolist()[1:])
        assert given.startswith("\n" + lines[at] + "\n" + lines[at + 1].split(" ")[0])
        n, steps = formats.division_steps(lines[at + 1])
        assert n == encoded.n_tickets[int(index)]
        trained = [tok.decode([int(t)]) for t in y[row][y[row] != train.IGNORE]]
        assert trained == [p for d, q, r in steps for p in (str(d), str(q), formats.superscript(r))]
    both = train.Sampler(encoded, 2048, seed=3, curriculum_steps=0, count_power=1.0, division_share=0.5,
                         division_source="both")
    kinds = [type(both.draw_batch(step)[0]) for step in range(1000)]
    assert abs(kinds.count(train.Encoded) / 1000 - 0.5) < 0.06  # the division share, then half each source
    assert abs(kinds.count(train.SumDivisionDrills) - kinds.count(train.DivisionDrills)) < 100
    with pytest.raises(params.ParamsError, match="division_drill_source"):
        params.validate(dataclasses.replace(params.Params(), train=params.TrainParams(division_drill_source="x")))
    ledger = train.Encoded(tok, data.read_split(corpus, "train"), block_size=512, answer_format="ledger")
    with pytest.raises(train.TrainError, match="sum line"):  # the ledger has no sum line
        train.SumDivisionDrills(ledger)


def test_bf16_autocast_on_cpu_keeps_fp32_weights_and_the_loss(tiny_corpus: Path, tiny_tokenizer: Path) -> None:
    from lottogpt.model import GPT, GPTConfig

    tok = tokenizer.Tokenizer.load(tiny_tokenizer)
    encoded = train.Encoded(tok, data.read_split(tiny_corpus, "val"), block_size=512)
    x, y = train.make_batch(encoded, np.array([0, 1, 2]))
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=512, n_layer=2, n_head=2, n_embd=64))
    cpu = torch.device("cpu")
    with train.autocast_context(cpu, "fp32"):
        full = train.completion_loss(model, x, y)
    with train.autocast_context(cpu, "bf16"):
        half = train.completion_loss(model, x, y)
    half.backward()
    assert abs(full.item() - half.item()) < 0.05 * full.item()  # bf16 products, fp32 loss
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())
    with train.autocast_context(cpu, "auto"):  # auto means fp32 on CPU
        assert train.completion_loss(model, x, y).item() == full.item()


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(params.ParamsError, match=r"train\.precision"):
        params.validate(Params(train=TrainParams(precision="fp8")))


def test_unknown_optimizer_is_refused() -> None:
    with pytest.raises(params.ParamsError, match=r"train\.optimizer"):
        params.validate(Params(train=TrainParams(optimizer="sgd")))


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_every_parameter_has_exactly_one_optimizer(name: str) -> None:
    from lottogpt.model import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=50, n_layer=2, n_head=2, n_embd=16, prev_token=True))
    optimizers = train.make_optimizers(model, Params(train=TrainParams(optimizer=name)), torch.device("cpu"))
    owners = {id(p): type(o).__name__ for o in optimizers for g in o.param_groups for p in g["params"]}
    assert len(owners) == sum(len(g["params"]) for o in optimizers for g in o.param_groups)  # no parameter twice
    for param_name, param in model.named_parameters():
        on_muon = name == "muon" and param.dim() == 2 and param_name.startswith("blocks.")
        assert owners[id(param)] == ("Muon" if on_muon else "AdamW"), param_name


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_overfits_a_few_cases_to_exact_match(tmp_path: Path, optimizer: str) -> None:
    few = DataParams(seed=5, n_train=4, n_val=4, n_test=2, n_test_natural=2, min_tickets=1, max_tickets=1)
    corpus, tok_dir = _corpus_and_tokenizer(tmp_path, few)
    p = Params(data=few, model=ModelParams(n_layer=2, n_head=2, n_embd=64, block_size=256),
               train=TrainParams(max_steps=250, batch_tokens=512, lr=3e-3, warmup_steps=10, eval_interval=1000,
                                 checkpoint_interval=1000, eval_cases=4, threads=1, weight_decay=0.0,
                                 optimizer=optimizer))
    metrics = train.train(p, corpus, tok_dir, tmp_path / "ck", tmp_path / "results")
    assert metrics["final_loss"] < 0.05
    engine = ModelEngine(tmp_path / "ck")
    cases = data.frame_cases(data.read_split(corpus, "train"))
    answers = engine.predict(cases)
    assert [a.output for a in answers] == [kata.score(c).output for c in cases]
    assert (tmp_path / "results" / "curve.csv").exists()
    assert not (tmp_path / "ck" / train.STATE_FILE).exists()  # a finished run leaves no optimizer state


def _workdir(tmp_path: Path, corpus: Path, tok_dir: Path, p: Params) -> Path:
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "models").mkdir()
    os.symlink(corpus, work / "data" / "corpus")
    os.symlink(tok_dir, work / "models" / "tokenizer")
    raw = {name: dict(vars(getattr(p, name))) for name in ("data", "tokenizer", "model", "train", "evaluate")}
    with open(work / "params.yaml", "w") as handle:
        YAML().dump(raw, handle)
    return work


def _env(**extra: str) -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": "1", "LOTTOGPT_PROGRESS": "1", **extra}


def _weights(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint_dir / checkpoint.WEIGHTS_FILE)


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def _final_loss(work: Path) -> float:
    return json.loads((work / "results" / "train" / "metrics.json").read_text())["final_loss"]


def _assert_finished(work: Path, steps: int) -> None:
    assert json.loads((work / "results" / "train" / "metrics.json").read_text())["steps"] == steps
    curve = (work / "results" / "train" / "curve.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in curve] == list(range(1, steps + 1))
    assert not (work / "models" / "checkpoint" / train.STATE_FILE).exists()


RESUME = {"max_steps": 30, "checkpoint_interval": 10, "eval_interval": 15}
# (where the kill lands, the step the restarted run resumes from): inside the save of step 20's resume state,
# and inside the final save, where the exported weights are replaced while step 20's state is still the latest.
KILL_POINTS = [("state-written@20", 10), ("state-replaced@20", 20), ("weights-written@30", 20),
               ("weights-replaced@30", 20), ("config-replaced@30", 20)]


@pytest.fixture(scope="module")
def uninterrupted(tiny_corpus: Path, tiny_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The weights and final loss of never-interrupted single-process runs of the RESUME params, per optimizer."""
    out = tmp_path_factory.mktemp("uninterrupted")
    runs = {}
    for optimizer in ("adamw", "muon"):
        metrics = train.train(tiny_params(**RESUME, optimizer=optimizer), tiny_corpus, tiny_tokenizer,
                              out / optimizer / "ck", out / optimizer / "results")
        runs[optimizer] = {"weights": _weights(out / optimizer / "ck"), "final_loss": metrics["final_loss"]}
    return runs


@pytest.mark.slow
@pytest.mark.parametrize(("kill_at", "resumed_from", "optimizer"),
                         [(*point, "adamw") for point in KILL_POINTS] + [("state-replaced@20", 20, "muon")])
def test_a_run_sigkilled_anywhere_in_a_save_resumes_to_the_same_weights(
        tmp_path: Path, tiny_corpus: Path, tiny_tokenizer: Path, uninterrupted: dict, kill_at: str,
        resumed_from: int, optimizer: str) -> None:
    """SIGKILL at each point of the save (checkpoint.save_point); the restart ends with torch.equal weights."""
    work = _workdir(tmp_path, tiny_corpus, tiny_tokenizer, tiny_params(**RESUME, optimizer=optimizer))
    command = [sys.executable, str(ROOT / "pipeline" / "train.py")]
    killed = procs.run(command, timeout=120, cwd=work, env=_env(**{checkpoint.KILL_ENV: kill_at}))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state = checkpoint.load_state(work / "models" / "checkpoint")
    assert state is not None and state["step"] == resumed_from  # both of one step: weights and optimizers
    resumed = procs.run(command, timeout=120, cwd=work, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from step {resumed_from}" in resumed.stderr
    _assert_finished(work, 30)
    _assert_same_weights(_weights(work / "models" / "checkpoint"), uninterrupted[optimizer]["weights"])
    assert _final_loss(work) == uninterrupted[optimizer]["final_loss"]  # the loss average resumes too


DDP = {"max_steps": 40, "checkpoint_interval": 4, "eval_interval": 1000}


def _torchrun(work: Path, timeout: float = 150, **env: str) -> subprocess.CompletedProcess:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun
    return procs.run([torchrun, "--standalone", "--nproc_per_node=2", str(ROOT / "pipeline" / "train.py")],
                     timeout=timeout, cwd=work, env=_env(**env))


def _rank_digests(run: subprocess.CompletedProcess) -> dict[str, str]:
    lines = (run.stdout + run.stderr).splitlines()
    return {line.split()[1]: line.split()[-1] for line in lines if re.match(r"rank \d+ weights sha256", line)}


@pytest.fixture(scope="module")
def ddp_uninterrupted(tiny_corpus: Path, tiny_tokenizer: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 2-rank gloo run that checkpoints every 4 of its 40 steps (it used to hang at the first checkpoint)."""
    work = _workdir(tmp_path_factory.mktemp("ddp"), tiny_corpus, tiny_tokenizer, tiny_params(**DDP))
    run = _torchrun(work)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"work": work, "run": run, "weights": _weights(work / "models" / "checkpoint")}


@pytest.mark.slow
def test_ddp_on_gloo_checkpoints_and_keeps_ranks_identical(ddp_uninterrupted: dict) -> None:
    digests = _rank_digests(ddp_uninterrupted["run"])
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    model, _, _ = checkpoint.load(ddp_uninterrupted["work"] / "models" / "checkpoint")
    assert digests["0"] == train.weights_sha256(model)  # the exported weights are the ranks' weights
    assert json.loads((ddp_uninterrupted["work"] / "results" / "train" / "metrics.json").read_text())[
        "world_size"] == 2
    _assert_finished(ddp_uninterrupted["work"], 40)


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["all-ranks", "rank-0-mid-save"])
def test_ddp_sigkilled_and_restarted_ends_like_the_uninterrupted_run(
        tmp_path: Path, tiny_corpus: Path, tiny_tokenizer: Path, ddp_uninterrupted: dict, kill: str) -> None:
    """SIGKILL every rank (and torchrun) once a resume state exists, or rank 0 between writing and renaming
    one; the same command then resumes both ranks and ends with the uninterrupted run's weights."""
    work = _workdir(tmp_path, tiny_corpus, tiny_tokenizer, tiny_params(**DDP))
    state = work / "models" / "checkpoint" / train.STATE_FILE
    if kill == "all-ranks":
        torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
        command = [str(torchrun), "--standalone", "--nproc_per_node=2", str(ROOT / "pipeline" / "train.py")]
        with procs.started(command, cwd=work, env=_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) as process:
            deadline = time.monotonic() + 120
            while not state.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert process.poll() is None, "the run ended before it could be killed"
            ranks = procs.descendants(process.pid)
            procs.kill_tree(process)
        assert len(ranks) >= 2 and not [pid for pid in ranks if procs.alive(pid)]  # no rank outlives the kill
    else:
        killed = _torchrun(work, **{checkpoint.KILL_ENV: "state-written@8"})
        assert killed.returncode != 0
    saved = checkpoint.load_state(work / "models" / "checkpoint")
    assert saved is not None and 4 <= saved["step"] < 40 and saved["world_size"] == 2
    resumed = _torchrun(work)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming from step {saved['step']}" in resumed.stderr
    digests = _rank_digests(resumed)
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"]
    _assert_finished(work, 40)
    _assert_same_weights(_weights(work / "models" / "checkpoint"), ddp_uninterrupted["weights"])
    assert _final_loss(work) == _final_loss(ddp_uninterrupted["work"])


@pytest.mark.slow
def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path: Path, tiny_corpus: Path, tiny_tokenizer: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ck"
    out.mkdir()
    torch.save({"fingerprint": "other", "step": 3, "version": checkpoint.STATE_VERSION}, out / train.STATE_FILE)
    metrics = train.train(tiny_params(max_steps=3), tiny_corpus, tiny_tokenizer, out, tmp_path / "r")
    assert metrics["steps"] == 3
    assert "ignoring" in capsys.readouterr().err
    assert not (out / train.STATE_FILE).exists()


def test_block_size_too_small_is_refused_with_the_params_to_change(tiny_corpus: Path, tiny_tokenizer: Path,
                                                                   tmp_path: Path) -> None:
    p = tiny_params()
    p.model.block_size = 64
    with pytest.raises(train.TrainError, match=r"model\.block_size.*data\.max_tickets"):
        train.train(p, tiny_corpus, tiny_tokenizer, tmp_path / "ck", tmp_path / "r")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_torch_cannot_use_is_refused_before_training(tiny_corpus: Path, tiny_tokenizer: Path,
                                                                    tmp_path: Path) -> None:
    for device, reason in (("cuda", "sees no CUDA GPU"), ("tpu", "unknown device 'tpu'")):
        p = tiny_params(device=device)
        with pytest.raises(train.TrainError, match=rf"train\.device: .*{reason}"):
            train.train(p, tiny_corpus, tiny_tokenizer, tmp_path / "ck", tmp_path / "r")
    assert not (tmp_path / "ck").exists()


def test_yaml_1_2_floats_from_dvc_exp_set_param(tmp_path: Path) -> None:
    """`dvc exp run -S train.lr=3e-4` writes `lr: 3e-4`, a string to YAML 1.1 readers."""
    text = re.sub(r"(?m)^  lr: .*$", "  lr: 3e-4", (ROOT / "params.yaml").read_text())
    text = re.sub(r"(?m)^  min_lr: .*$", "  min_lr: '1e-5'", text)
    assert "lr: 3e-4" in text and "min_lr: '1e-5'" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    loaded = params.load(path)
    assert loaded.train.lr == pytest.approx(3e-4)
    assert loaded.train.min_lr == pytest.approx(1e-5)
    assert isinstance(loaded.model.n_layer, int)


def test_bad_params_are_named(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"

    def edited(pattern: str, line: str) -> str:
        text, count = re.subn(pattern, line, (ROOT / "params.yaml").read_text())
        assert count == 1, pattern  # the edit happened, whatever today's value
        return text

    path.write_text(edited(r"(?m)^  n_layer: .*$", "  n_layer: four"))
    with pytest.raises(params.ParamsError, match=r"params\.model\.n_layer"):
        params.load(path)
    path.write_text(edited(r"(?m)^  n_layer: (.*)$", r"  n_layers: \1"))
    with pytest.raises(params.ParamsError, match="n_layers"):
        params.load(path)
    path.write_text(edited(r"(?m)^  max_tickets: .*$", "  max_tickets: 99"))
    with pytest.raises(params.ParamsError, match="max_tickets"):
        params.load(path)


def test_default_params_load() -> None:
    loaded = params.load(ROOT / "params.yaml")
    assert loaded.data.max_tickets >= 10
    assert TINY.max_tickets <= loaded.data.max_tickets
