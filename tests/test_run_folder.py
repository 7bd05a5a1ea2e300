"""The trainers' run folder (training/run.py): every state x flag of the decision table, and a real trainer
restarting a folder left without a checkpoint in place with one command."""

from __future__ import annotations

from pathlib import Path

import pytest

import train_vq
from tests.vq_synthetic import make_dataset, tiny_vq_args
from training.run import NEW, RESTART, RESUME, RunFolder
from utils.checkpoint import FINEST, LATEST, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _unfinished(root: Path) -> None:
    """What a run killed before its first checkpoint leaves: options, log, TensorBoard, a torn temporary save."""
    (root / "model").mkdir(parents=True)
    (root / "opt.txt").write_text("------------ Options -------------\nname: x\n-------------- End ----------------\n")
    (root / "log.txt").write_text("started\n")
    (root / "tensorboard").mkdir()
    (root / "tensorboard" / "events.out").write_bytes(b"old curve")
    (root / "model" / ".latest.4242.tmp.tar").write_bytes(b"half a checkpoint")


def test_decision_table(tmp_path: Path) -> None:
    missing, empty, unfinished, done = (tmp_path / n for n in ("missing", "empty", "unfinished", "done"))
    empty.mkdir()
    _unfinished(unfinished)
    save_checkpoint(done / "model" / LATEST, {"ep": 0})

    for root in (missing, empty):
        assert RunFolder.decide(root).action == NEW
        assert RunFolder.decide(root, overwrite=True).action == NEW
    with pytest.raises(FileNotFoundError, match="nothing to resume; drop --is_continue"):
        RunFolder.decide(missing, is_continue=True)

    with pytest.raises(ValueError, match=r"has no model/latest\.tar .*--overwrite \(or --is_continue\)"):
        RunFolder.decide(unfinished)
    for flag in ("is_continue", "overwrite"):
        folder = RunFolder.decide(unfinished, **{flag: True})
        assert folder.action == RESTART and f"--{flag}" in folder.reason and "again in place" in folder.reason

    with pytest.raises(
        ValueError, match="already exists with model/latest.tar: pass --is_continue to resume it, --overwrite"
    ):
        RunFolder.decide(done)
    assert RunFolder.decide(done, is_continue=True).action == RESUME
    assert RunFolder.decide(done, is_continue=True).latest == done / "model" / LATEST
    assert RunFolder.decide(done, overwrite=True).action == RESTART
    with pytest.raises(ValueError, match="pass one of them"):
        RunFolder.decide(done, is_continue=True, overwrite=True)

    # A trainer without --is_continue (the evaluator's, judged by finest.tar) is never told to pass it.
    save_checkpoint(tmp_path / "ev" / "model" / FINEST, {"epoch": 0})
    with pytest.raises(ValueError, match=r"model/finest\.tar: pass --overwrite") as info:
        RunFolder.decide(tmp_path / "ev", checkpoint=FINEST, resumable=False)
    assert "--is_continue" not in str(info.value)
    assert RunFolder.decide(done, checkpoint=FINEST, resumable=False, overwrite=True).action == RESTART


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_unfinished_run_restarts_in_place_with_one_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_dataset(data, n_train=4, n_val=2)
    run = tmp_path / "ck" / "t2m" / "tiny"
    _unfinished(run)
    before = _snapshot(run)
    args = tiny_vq_args(data, tmp_path / "ck", max_steps=3, save_latest=1, batch_size=8)

    with pytest.raises(ValueError, match="--overwrite"):
        train_vq.main(args)
    with pytest.raises(ValueError, match="nosuch"):  # fails on its inputs: the folder is untouched
        train_vq.main(args + ["--overwrite", "--val_split", "nosuch"])
    assert _snapshot(run) == before

    train_vq.main(args + ["--is_continue"])  # the one command: starts it again in place
    log = (run / "log.txt").read_text()
    assert log.startswith("started\n") and "--is_continue: " in log and "starting it again in place" in log
    assert sorted(p.name for p in (run / "model").iterdir()) == [LATEST, "net_best_loss.tar"]  # torn save gone
    assert not (run / "tensorboard" / "events.out").exists()
    assert load_checkpoint(run / "model" / LATEST)["total_it"] == 3

    train_vq.main(tiny_vq_args(data, tmp_path / "ck", max_steps=5, save_latest=1, batch_size=8, is_continue=True))
    assert load_checkpoint(run / "model" / LATEST)["total_it"] == 5  # now a real resume
    train_vq.main(args + ["--overwrite"])  # a finished run started again from scratch
    assert load_checkpoint(run / "model" / LATEST)["total_it"] == 3
    assert "--overwrite: starting" in (run / "log.txt").read_text()
