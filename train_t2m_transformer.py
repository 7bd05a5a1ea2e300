"""Train the masked transformer (MoMask stage 2) on layer-0 tokens of a trained RVQ-VAE."""

from __future__ import annotations

import functools

from options.transformer import MaskTransformerOptions
from training.run import run_trainer
from training.transformer import MASK_STAGE, TrainerState, train_stage
from utils.cli import run_cli


def main(argv: list[str] | None = None) -> TrainerState:
    return run_trainer(MaskTransformerOptions.parse(argv), functools.partial(train_stage, stage=MASK_STAGE))


if __name__ == "__main__":
    run_cli(main)
