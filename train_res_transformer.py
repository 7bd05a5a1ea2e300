"""Train the residual transformer (MoMask stage 3) on RVQ layers 1..Q-1 of a trained RVQ-VAE."""

from __future__ import annotations

import functools

from options.transformer import ResidualTransformerOptions
from training.run import run_trainer
from training.transformer import RESIDUAL_STAGE, TrainerState, train_stage
from utils.cli import run_cli


def main(argv: list[str] | None = None) -> TrainerState:
    return run_trainer(ResidualTransformerOptions.parse(argv), functools.partial(train_stage, stage=RESIDUAL_STAGE))


if __name__ == "__main__":
    run_cli(main)
