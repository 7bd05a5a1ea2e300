"""Train the residual transformer (MoMask stage 3) on RVQ layers 1..Q-1 of a trained RVQ-VAE."""
from __future__ import annotations

from options.transformer import ResidualTransformerOptions
from utils.cli import run_cli
from training.transformer import RESIDUAL_STAGE, run_training


def main(argv: list[str] | None = None) -> None:
    run_training(ResidualTransformerOptions.parse(argv), RESIDUAL_STAGE)


if __name__ == "__main__":
    run_cli(main)
