"""Strip a training checkpoint to a release checkpoint: model weights and their metadata, no optimizer state.

    python -m prepare.strip_checkpoint checkpoints/t2m/my_run/model/latest.tar [--out release.tar]

Keeps the model entry (``vq_model`` / ``t2m_transformer`` / ``res_transformer`` / ``estimator``), ``ep``,
``total_it`` and ``model_args`` (the VQ codebooks are part of the weights); drops AdamW/scheduler state, the
codebooks' EMA statistics, RNG state and the loop position, which only resuming needs (a stripped file can be
loaded, not resumed). Written atomically.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.cli import run_cli
from utils.log import setup_logging

logger = logging.getLogger(__name__)

TRAINING_ONLY = ("scheduler", "rng", "it_in_epoch", "best", "train_state", "vq_codebook_state")


def strip_state(state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint dict without optimizer (``opt_*``), scheduler, RNG and loop-position entries."""
    return {k: v for k, v in state.items() if not k.startswith("opt_") and k not in TRAINING_ONLY}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=None, help="output file (default: replace the input)")
    args = p.parse_args(argv)
    setup_logging()
    state = load_checkpoint(args.checkpoint)
    stripped = strip_state(state)
    out = args.out or args.checkpoint
    save_checkpoint(out, stripped)
    logger.info(
        "%s -> %s: kept %s, dropped %s", args.checkpoint, out, sorted(stripped), sorted(set(state) - set(stripped))
    )


if __name__ == "__main__":
    run_cli(main)
