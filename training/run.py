"""The skeleton of every training script: run folder (create / refuse / resume / restart), logging, TensorBoard,
torchrun set-up and tear-down.

A run folder is ``checkpoints/<dataset>/<name>`` with ``opt.txt``, ``log.txt``, ``tensorboard/`` and
``model/*.tar`` (see utils/checkpoint.py for the file names). What a start does with it:

==========================  ==============  ================================  ===============================
folder                      (no flag)       ``--is_continue``                 ``--overwrite``
==========================  ==============  ================================  ===============================
missing or empty            new run         error: nothing to resume          new run
files but no checkpoint     refused         started again in place            started again in place
(killed before its first
checkpoint)
a checkpoint                refused         resumed from ``model/latest.tar``  started again in place
==========================  ==============  ================================  ===============================

"Started again in place" removes the folder's ``model/``, ``meta/`` and ``tensorboard/`` only in
:meth:`Run.start`, i.e. once the new run's data and options have been checked: a start that fails early changes
nothing. Every rank decides (the same way); rank 0 alone writes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch.utils.tensorboard import SummaryWriter

from options.common import ResumeOptions, TrainingOptions
from utils import distributed as dist
from utils.checkpoint import LATEST, list_checkpoints
from utils.device import seed_everything
from utils.log import git_sha, setup_logging

logger = logging.getLogger(__name__)

OPT_FILE = "opt.txt"
LOG_FILE = "log.txt"
TENSORBOARD_DIR = "tensorboard"
RESTART_REMOVES = ("model", "meta", TENSORBOARD_DIR)  # what starting a run again in place clears

NEW, RESUME, RESTART = "new", "resume", "restart"
T = TypeVar("T")


@dataclass(frozen=True)
class RunFolder:
    """Where a run lives and what this start does with it (``NEW``, ``RESUME`` or ``RESTART``), and why."""

    root: Path
    action: str
    reason: str
    checkpoint: str = LATEST

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def latest(self) -> Path:
        return self.model_dir / self.checkpoint

    @property
    def resume(self) -> bool:
        return self.action == RESUME

    @classmethod
    def decide(
        cls,
        root: Path,
        *,
        is_continue: bool = False,
        overwrite: bool = False,
        checkpoint: str = LATEST,
        resumable: bool = True,
    ) -> RunFolder:
        """The one place a run folder is judged; refusals raise ValueError/FileNotFoundError naming the flag.
        ``resumable=False``: a trainer without ``--is_continue`` (the evaluator's)."""
        if is_continue and overwrite:
            raise ValueError("--is_continue resumes a run and --overwrite starts it again: pass one of them")
        has_files = root.is_dir() and any(root.iterdir())
        usable = (root / "model" / checkpoint).is_file()
        if usable and is_continue:
            return cls(root, RESUME, f"resuming {root} from model/{checkpoint}", checkpoint)
        if usable and overwrite:
            return cls(
                root,
                RESTART,
                f"--overwrite: starting {root} again from scratch (its checkpoints "
                f"{list_checkpoints(root / 'model')} are replaced)",
                checkpoint,
            )
        resume_hint = "--is_continue to resume it, " if resumable else ""
        if usable:
            raise ValueError(
                f"run folder {root} already exists with model/{checkpoint}: pass {resume_hint}"
                "--overwrite to start it again from scratch, or choose another --name"
            )
        if has_files and (is_continue or overwrite):
            flag = "--is_continue" if is_continue else "--overwrite"
            return cls(
                root,
                RESTART,
                f"{flag}: {root} has no model/{checkpoint} (stopped before its first "
                "checkpoint): starting it again in place",
                checkpoint,
            )
        if has_files:
            raise ValueError(
                f"run folder {root} already exists but has no model/{checkpoint} (stopped before its "
                f"first checkpoint?): pass --overwrite{' (or --is_continue)' if resumable else ''} to "
                "start it again in place, or choose another --name"
            )
        if is_continue:
            raise FileNotFoundError(
                f"--is_continue: {root / 'model' / checkpoint} not found (nothing to resume; "
                "drop --is_continue to start this run)"
            )
        return cls(root, NEW, f"new run in {root}", checkpoint)


@dataclass
class Run:
    """One training process's view of its run: folder decision, options, torchrun place, device, TensorBoard."""

    folder: RunFolder
    opt: TrainingOptions
    env: dist.DistEnv
    device: torch.device
    writer: SummaryWriter | None = field(default=None, repr=False)

    @property
    def root(self) -> Path:
        return self.folder.root

    @property
    def model_dir(self) -> Path:
        return self.folder.model_dir

    @property
    def resume(self) -> bool:
        return self.folder.resume

    def start(self, *, write_options: bool = True, tensorboard: bool = True, **opt_extra: Any) -> None:
        """Call once the run's inputs are checked, before anything is written: rank 0 clears a restarted folder
        (and the temporary files of saves that were killed), writes ``opt.txt`` (official format, ``is_train: True`` plus ``opt_extra``), logs to ``log.txt`` and
        opens TensorBoard; then every rank waits for it."""
        if self.env.is_main:
            if self.folder.action == RESTART:
                for name in RESTART_REMOVES:
                    shutil.rmtree(self.root / name, ignore_errors=True)
            self.model_dir.mkdir(parents=True, exist_ok=True)
            for torn in self.model_dir.glob(".*.tmp*"):  # left by a save that was killed (utils.checkpoint)
                torn.unlink()
            if write_options:
                self.opt.save(self.root / OPT_FILE, is_train=True, **opt_extra)
            setup_logging(self.root / LOG_FILE)
            if tensorboard:
                self.writer = SummaryWriter(log_dir=str(self.root / TENSORBOARD_DIR))
        dist.configure_rank_logging(self.env)
        logger.info(
            "%s; git %s, device %s, %d process(es); options: %s",
            self.folder.reason,
            git_sha(),
            self.device,
            self.env.world_size,
            self.opt.to_dict(),
        )
        dist.barrier()  # the run files exist before any rank reads or resumes from them

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def run_trainer(opt: TrainingOptions, train: Callable[[Run], T], *, checkpoint: str = LATEST) -> T:
    """What every ``train_*.py`` does around its own ``train(run)``: seed, join torchrun (if any), judge the run
    folder (``--is_continue`` / ``--overwrite``), log to stderr, and tear down whatever happens."""
    seed_everything(opt.seed)
    env, device = dist.init_distributed(opt.device)
    try:
        resumable = isinstance(opt, ResumeOptions)
        folder = RunFolder.decide(
            opt.save_root,
            is_continue=resumable and opt.is_continue,
            overwrite=opt.overwrite,
            checkpoint=checkpoint,
            resumable=resumable,
        )
        dist.barrier()  # every rank has judged the folder before rank 0 writes into it
        setup_logging()
        dist.configure_rank_logging(env)
        run = Run(folder, opt, env, device)
        try:
            return train(run)
        finally:
            run.close()
    finally:
        dist.cleanup()
