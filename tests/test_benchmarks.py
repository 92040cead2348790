"""Smoke tests of the scripts in benchmarks/: each runs with tiny sizes into a temporary results folder and
writes its JSON with the machine description and positive figures. No timing is asserted."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from . import procs

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

pytestmark = pytest.mark.slow


def run_script(name: str, out: Path, *args: str, timeout: float = 120) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = procs.run([sys.executable, str(BENCH / f"{name}.py"), "--out", str(out), *args], timeout=timeout,
                     cwd=ROOT, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert str(out / f"{name}.json") in done.stdout  # the summary names the file it wrote
    result = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    assert result["benchmark"] == name
    machine = result["machine"]
    for key in ("cpu_model", "cpu_count", "usable_cores", "torch", "torch_threads", "device", "timestamp"):
        assert machine[key], key
    assert machine["usable_cores"] >= 1 and machine["torch_threads"] >= 1
    return result


def test_train_throughput(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    result = run_script("train_throughput", tmp_path, "--n-layer", "1", "--n-embd", "32", "--n-head", "2",
                        "--context", "32", "--batch-rows", "2", "--warmup", "1", "--steps", "2", "--repeats", "2",
                        "--threads", "1", "--precision", "bf16")
    for side in ("ours", "hf_gpt2"):
        assert result[side]["tokens_per_second"] > 0 and result[side]["step_ms"] > 0
        assert len(result[side]["tokens_per_second_repeats"]) == 2
        assert result[side]["parameters"] > 0
    assert result["ratio"] > 0 and isinstance(result["meets_target"], bool)
    assert result["config"]["batch_tokens"] == 64 and result["config"]["n_layer"] == 1
    assert result["config"]["precision"] == "bf16" and result["config"]["autocast"] == "bf16"
    profile = result["profile"]
    for side in ("ours", "hf"):
        assert profile[side]["attention_ms"] > 0 and profile[side]["matmul_ms"] > 0 and profile[side]["other_ms"] > 0
        assert profile[side]["total_ms"] >= profile[side]["attention_ms"] + profile[side]["matmul_ms"]
    assert profile["ratio_if_ours_were_attention_and_matmul_only"] > 0


def test_decode_latency(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = run_script("decode_latency", tmp_path, "--checkpoint", str(tiny_checkpoint), "--tickets", "2",
                        "--warmup", "0", "--iters", "2", "--iters-no-cache", "1", "--batch-size", "2",
                        "--batch-repeats", "1", "--batch-repeats-no-cache", "1", "--threads", "1")
    config = result["config"]
    assert config["prompt_tokens"] > 0 and config["decode_steps"] > 0 and config["reference_decode_steps"] > 0
    assert result["checks"]["decoder_matches_engine"] is True
    (run,) = result["runs"]
    assert run["threads"] == 1
    assert result["checks"]["speculative_matches_cache"] is True and config["speculative"] is True
    assert 1 <= run["batch_1"]["speculative"]["forward_passes"] <= config["decode_steps"]
    for mode in ("engine_predict", "cache", "speculative", "no_cache"):
        stats = run["batch_1"][mode]
        assert stats["n"] >= 1 and 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"]
        assert stats["per_token_ms"] > 0
    assert run["batch_1"]["prefill"]["p50_ms"] > 0
    for mode in ("cache", "no_cache"):
        assert run["batched"][mode]["cases_per_second"] > 0
    assert run["batched"]["batch_size"] == 2 and run["batched"]["kv_cache_speedup"] > 0
    assert run["targets"]["batch_1_p50_ms"] > 0


def test_decode_latency_without_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    done = procs.run([sys.executable, str(BENCH / "decode_latency.py"), "--checkpoint", str(tmp_path / "none"),
                      "--out", str(tmp_path)], timeout=120, cwd=ROOT)
    assert done.returncode != 0 and "--random-init" in done.stderr
    assert not (tmp_path / "decode_latency.json").exists()


def test_server_load(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = run_script("server_load", tmp_path, "--checkpoint", str(tiny_checkpoint), "--tickets", "2",
                        "--requests", "6", "--concurrency", "3", "--warmup", "0", "--distinct", "3",
                        "--time-limit", "60", "--threads", "1", "--device", "cpu")
    assert set(result["modes"]) == {"on", "off"}
    for mode in result["modes"].values():
        assert mode["ok"] == mode["requests_sent"] == 6 and mode["errors"] == 0
        assert mode["requests_per_second"] > 0 and mode["latency"]["p50_ms"] > 0
        assert mode["latency"]["p50_ms"] <= mode["latency"]["p95_ms"] <= mode["latency"]["p99_ms"]
        assert mode["batching"]["cases"] == 6 and mode["server_exit_code"] == 0
    assert result["modes"]["off"]["batching"]["largest_batch_since_start"] == 1
    assert result["errors_total"] == 0 and result["answers_agree_across_modes"] is True
    assert result["config"]["backend"] == "auto" and result["served_vs_in_process"]["backend"] == "onnx"


def test_corpus_generation(tmp_path: Path) -> None:
    result = run_script("corpus_generation", tmp_path, "--cases", "300", "--workers", "1", "--tmp", str(tmp_path))
    assert result["config"]["cases"] == 300 and result["runs"][0]["cases"] == 300
    assert result["cases_per_second"] > 0 and result["draw_cases_per_second"] > 0
    assert result["runs"][0]["parquet_bytes"] > 0
    assert not list(tmp_path.glob("lottogpt-bench-corpus-*"))  # the temporary corpus is removed


def test_speculative_agreement(tmp_path: Path, tiny_checkpoint: Path, tiny_corpus: Path) -> None:
    result = run_script("speculative_agreement", tmp_path, "--checkpoint", str(tiny_checkpoint), "--corpus",
                        str(tiny_corpus), "--splits", "test", "--max-cases", "3", "--batch-size", "2")
    split = result["splits"]["test"]
    assert split["cases"] == 3 and split["agree"] == 3 and result["all_agree"] is True
    assert 0.0 <= split["speculative_exact_match"] <= 1.0
    assert sum(row["cases"] for row in split["by_tickets"].values()) == 3
    for row in split["by_tickets"].values():
        assert 1 <= row["speculative_passes"] <= row["lockstep_steps"] and row["speculative_ms_mean"] > 0
    assert result["config"]["drafter_contexts"] > 0


def test_count_lookup_script(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = run_script("count_lookup", tmp_path, "--model", str(tiny_checkpoint), "--cases", "10",
                        "--min-tickets", "1", "--batch-size", "4", "--threads", "1")
    summary = result["summary"]
    assert summary["cases"] + summary["skipped_cases"] == 10 and summary["lines"] == 5 * summary["cases"]
    assert result["config"]["tickets"] == [1, 8]
    for table in ("by_value", "by_distance", "by_tickets", "by_line"):
        for key in ("lines", "errors", "near_misses"):
            assert sum(row[key] for row in summary[table].values()) == summary[key], (table, key)
    assert len(summary["wrong"]) == min(summary["errors"], 200)
    for row in summary["wrong"]:
        assert (row["distance"] == -1) == (row["value"] == 0) and row["distance"] < row["n_tickets"]
        assert row["margin"] <= 0
    margins = [row["margin"] for row in summary["closest_right"]]
    assert margins == sorted(margins) and all(m >= 0 for m in margins)


def test_line_margins_script(tmp_path: Path, tiny_checkpoint: Path) -> None:
    result = run_script("line_margins", tmp_path, "--model", str(tiny_checkpoint), "--cases", "10",
                        "--batch-size", "4", "--threads", "1")
    summary = result["summary"]
    assert summary["cases"] + summary["skipped_cases"] == 10 and result["config"]["tickets"] == [1, 8]
    kinds = summary["by_kind"]
    assert kinds["count"]["lines"] == 5 * summary["cases"] and kinds["rate"]["lines"] == summary["cases"]
    for key in ("lines", "errors", "near_misses"):
        assert sum(row[key] for row in kinds.values()) == summary[key], key
        for kind, row in kinds.items():
            assert sum(n[key] for n in row["by_tickets"].values()) == row[key], (kind, key)
    assert len(summary["wrong"]) == min(summary["errors"], 200)
    for row in summary["wrong"]:
        assert row["margin"] <= 0 and row["want_id"] != row["chose_id"] and row["kind"] in kinds


def test_arithmetic_drills(tmp_path: Path) -> None:
    result = run_script("arithmetic_drills", tmp_path, "--steps", "3", "--drills", "300", "--eval", "12",
                        "--format", "addends", timeout=300)
    assert result["config"]["format"] == "addends" and result["config"]["steps"] == 3
    for row in result["held_out"].values():
        assert row["drills"] == 12 and 0 <= row["errors"] <= 12 and len(row["examples"]) == min(row["errors"], 5)
        for example in row["examples"]:  # the reference's lines after the count lines: sum, division, rate
            assert example["expected"].startswith("Σ") and "총 수익률은" in example["expected"]
    assert result["tokens_per_second"] > 0 and result["rows_per_batch"] > 1


def test_training_exposure(tmp_path: Path, tiny_corpus: Path, tiny_tokenizer: Path) -> None:
    import dataclasses

    from ruamel.yaml import YAML

    from lottogpt.tokenizer import Tokenizer
    from lottogpt.train import Encoded, Sampler

    from .conftest import tiny_params

    params = tiny_params()
    params_file = tmp_path / "params.yaml"
    with params_file.open("w", encoding="utf-8") as handle:
        YAML(typ="safe").dump(dataclasses.asdict(params), handle)
    result = run_script("training_exposure", tmp_path, "--params", str(params_file), "--corpus", str(tiny_corpus),
                        "--tokenizer", str(tiny_tokenizer), "--steps", "6,3")
    assert result["config"]["steps"] == [3, 6] and result["corpus_cases"] == params.data.n_train
    # The replay draws as many cases as the training loop's own batches hold.
    from lottogpt import data

    frame = data.read_split(tiny_corpus, "train", ["model_prompt", "model_completion", "n_tickets"])
    encoded = Encoded(Tokenizer.load(tiny_tokenizer), frame, params.model.block_size, params.data.answer_format)
    cfg = params.train
    sampler = Sampler(encoded, cfg.batch_tokens, cfg.seed, cfg.curriculum_steps, cfg.count_power, cfg.drill_share)
    batches = [sampler.draw_batch(step) for step in range(6)]
    rows = [0 if source.drills else len(indices) for source, indices in batches]
    drills = [len(indices) if source.drills else 0 for source, indices in batches]
    early, late = result["steps"]["3"], result["steps"]["6"]
    assert early["cases_drawn"] == sum(rows[:3]) and late["cases_drawn"] == sum(rows)
    assert early["drills_drawn"] == sum(drills[:3]) and late["drills_drawn"] == sum(drills)
    assert early["distinct_cases"] <= early["cases_drawn"] and late["distinct_cases"] >= early["distinct_cases"]
    count = late["families"]["count"]
    assert count["reachable"] == 5 * (params.data.max_tickets + 1) and count["unreachable_seen"] == 0
    for family, row in late["families"].items():
        assert row["min"] >= early["families"][family]["min"], family
    bad = procs.run([sys.executable, str(BENCH / "training_exposure.py"), "--steps", "3,x", "--out", str(tmp_path)],
                    timeout=60, cwd=ROOT)
    assert bad.returncode == 2 and "not comma-separated integers" in bad.stderr


@pytest.mark.parametrize("source", ["random", "sums"])
def test_training_exposure_counts_division_drills(tmp_path: Path, source: str) -> None:
    import dataclasses

    from ruamel.yaml import YAML

    from lottogpt import data
    from lottogpt.tokenizer import Tokenizer
    from lottogpt.train import DivisionDrills, Encoded, Sampler, SumDivisionDrills

    from .conftest import TINY, tiny_params, train_format_tokenizer

    params = tiny_params(division_drill_share=0.5, division_drill_source=source)
    params.data = dataclasses.replace(TINY, answer_format="addends")
    data.write_corpus(params.data, tmp_path / "corpus", workers=1)
    train_format_tokenizer(tmp_path / "tok", "addends", 768, value_pieces=True)
    params_file = tmp_path / "params.yaml"
    with params_file.open("w", encoding="utf-8") as handle:
        YAML(typ="safe").dump(dataclasses.asdict(params), handle)
    result = run_script("training_exposure", tmp_path, "--params", str(params_file), "--corpus",
                        str(tmp_path / "corpus"), "--tokenizer", str(tmp_path / "tok"), "--steps", "8")
    frame = data.read_split(tmp_path / "corpus", "train", ["model_prompt", "model_completion", "n_tickets"])
    encoded = Encoded(Tokenizer.load(tmp_path / "tok"), frame, params.model.block_size, "addends")
    cfg = params.train
    sampler = Sampler(encoded, cfg.batch_tokens, cfg.seed, cfg.curriculum_steps, cfg.count_power, cfg.drill_share,
                      cfg.division_drill_share, source)
    batches = [sampler.draw_batch(step) for step in range(8)]
    drills = SumDivisionDrills if source == "sums" else DivisionDrills
    lines = sum(len(picks) for rows, picks in batches if isinstance(rows, drills))
    row = result["steps"]["8"]
    assert (result["config"]["division_drill_share"], result["config"]["division_drill_source"]) == (0.5, source)
    assert lines > 0 and row["division_drills_drawn"] == lines
    assert row["cases_drawn"] == sum(len(p) for s, p in batches if isinstance(s, Encoded) and not s.drills)
