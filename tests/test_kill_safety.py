"""Kill safety: a real ``train_vq.py`` process SIGKILLed again and again — before its first checkpoint and in the
middle of writing ``latest.tar`` — always restarts or resumes with one command, and the run it finally completes
equals an uninterrupted one bit for bit.

The command after a kill is ``--is_continue`` whenever the run folder exists (training/run.py: it resumes from
``latest.tar``, or starts the run again in place when the kill came before the first checkpoint), the plain
command otherwise.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import train_vq
from tests.vq_synthetic import assert_same_vq_state, make_dataset, tiny_vq_args
from utils.checkpoint import LATEST, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
STEPS = 30  # ~23 iterations per epoch here: the run crosses an epoch boundary
pytestmark = pytest.mark.usefixtures("one_thread")


def _args(data: Path, ck: Path, save_latest: int, resume: bool) -> list[str]:
    return tiny_vq_args(data, ck, max_steps=STEPS, batch_size=8, save_latest=save_latest, is_continue=resume)


Trigger = Callable[[Path, int], bool]  # (model folder, pid of the training process) -> kill now?


class _Forked:
    """``train_vq.main(argv)`` in a forked child (no interpreter start-up: seconds instead of tens of seconds);
    the same interface as the subprocess.Popen of the real command line used by the slow variant."""

    def __init__(self, argv: list[str]) -> None:
        self.process = multiprocessing.get_context("fork").Process(target=train_vq.main, args=(argv,))
        self.process.start()
        self.pid = self.process.pid

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self) -> int | None:
        self.process.join()
        return self.process.exitcode


def _launch(argv: list[str], real_cli: bool) -> _Forked | subprocess.Popen:
    if not real_cli:
        return _Forked(argv)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(REPO / "train_vq.py"), *argv],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _run_until(argv: list[str], model_dir: Path, trigger: Trigger, real_cli: bool, timeout: float = 300.0) -> bool:
    """Start a training process; SIGKILL it as soon as ``trigger(model_dir, pid)`` holds. -> whether it was killed
    (False: it finished first, successfully)."""
    proc = _launch(argv, real_cli)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if trigger(model_dir, proc.pid):
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            if time.monotonic() > deadline:
                raise TimeoutError(f"training {argv} did not reach its kill point in {timeout} s")
            time.sleep(0.0005)
        assert proc.wait() == 0, f"training {argv} failed (exit {proc.poll()})"
        return False
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _started(model_dir: Path, pid: int) -> bool:
    """The run has written its options (training is about to start); no checkpoint yet."""
    return (model_dir.parent / "opt.txt").is_file()


def _saving(model_dir: Path, pid: int) -> bool:
    """This process is writing ``latest.tar`` right now (its temporary file, utils.checkpoint.atomic_write)."""
    try:
        return f".latest.{pid}.tmp.tar" in os.listdir(model_dir)
    except FileNotFoundError:
        return False


def _after(seconds: float) -> Trigger:
    start = time.monotonic()
    return lambda *_: time.monotonic() - start > seconds


@pytest.mark.parametrize(
    "real_cli, random_kills", [(False, 0), pytest.param(True, 6, marks=pytest.mark.slow)], ids=["forked", "cli-many"]
)
def test_sigkilled_training_always_restarts_and_equals_uninterrupted(
    tmp_path: Path, real_cli: bool, random_kills: int
) -> None:
    """Default: forked ``train_vq.main`` processes, killed before the first checkpoint and twice while saving.
    Slow: the real command line (a new interpreter each time), plus six kills at random moments."""
    data = tmp_path / "data"
    make_dataset(data, n_train=5, n_val=2)
    train_vq.main(_args(data, tmp_path / "straight", save_latest=20, resume=False))
    straight = load_checkpoint(tmp_path / "straight" / "t2m" / "tiny" / "model" / LATEST)
    assert straight["ep"] >= 1 and straight["total_it"] == STEPS  # an epoch boundary is crossed

    ck = tmp_path / "killed"
    run = ck / "t2m" / "tiny"

    def again(save_latest: int, trigger: Trigger) -> bool:
        return _run_until(_args(data, ck, save_latest, resume=run.exists()), run / "model", trigger, real_cli)

    # 1. Killed before its first checkpoint (saves only at the epoch end, ~23 iterations away).
    assert again(1000, _started)
    assert run.is_dir() and not (run / "model" / LATEST).exists()
    # 2. Killed while writing latest.tar (saved every iteration): the folder restarts again / resumes.
    for _ in range(2):
        assert again(1, _saving)
        if (run / "model" / LATEST).exists():
            assert load_checkpoint(run / "model" / LATEST)["total_it"] < STEPS  # the previous file, whole
    # 3. (slow) Killed at random moments, saving every few iterations.
    rng = random.Random(0)
    for _ in range(random_kills):
        again(rng.choice([1, 3, 7]), _after(rng.uniform(4.0, 12.0)))
    assert not again(5, lambda *_: False)  # the last command runs to the end
    assert_same_vq_state(straight, load_checkpoint(run / "model" / LATEST))
    assert not [p.name for p in (run / "model").iterdir() if p.name.startswith(".")]  # no torn saves left
