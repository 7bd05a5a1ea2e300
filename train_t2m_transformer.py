"""Train the masked transformer (MoMask stage 2) on layer-0 tokens of a trained RVQ-VAE."""
from __future__ import annotations

from options.transformer import MaskTransformerOptions
from utils.cli import run_cli
from training.transformer import MASK_STAGE, run_training


def main(argv: list[str] | None = None) -> None:
    run_training(MaskTransformerOptions.parse(argv), MASK_STAGE)


if __name__ == "__main__":
    run_cli(main)
