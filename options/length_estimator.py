"""Options of train_length_estimator.py (spec §3.7: the official ``TrainLenEstOptions`` defaults).

The run folder is ``checkpoints/<dataset_name>/<name>`` with ``model/finest.tar`` (best validation loss) and
``model/latest.tar``, the layout the generation script reads (``length_estimator/model/finest.tar``).
"""
from __future__ import annotations

from dataclasses import dataclass

from options.base import opt
from options.common import TrainingOptions

# Spec §6.3: the classes cover clips shorter than 200 frames, num_classes = 200 // unit_length.
MAX_CLIP_FRAMES = 200


@dataclass
class LengthEstimatorOptions(TrainingOptions):
    """Train the text -> motion-length classifier."""

    description = "Train the MoMask length estimator (text feature -> motion length in tokens)."

    name: str = opt("length_estimator", "run name: checkpoints/<dataset_name>/<name>")
    text_encoder: str = opt("clip", "frozen text encoder: clip (ViT-B/32, 512-d, official) or minilm (384-d)")
    text_encoder_path: str = opt("", "local text-encoder weights (CLIP: HF folder or OpenAI ViT-B-32.pt)")
    unit_length: int = opt(4, "frames per token; class = length // unit_length")
    batch_size: int = opt(64, "training batch size (global: split over torchrun processes x --accum_steps)")
    accum_steps: int = opt(1, "gradient-accumulation micro-steps per optimisation step")
    lr: float = opt(1e-4, "Adam learning rate")
    max_epoch: int = opt(300, "training epochs")
    grad_clip: float = opt(0.5, "gradient-norm clipping threshold (0 = off)")
    is_continue: bool = opt(False, "resume this run from model/latest.tar", short="--resume")
    log_every: int = opt(50, "iterations between logged training losses")

    def __post_init__(self) -> None:
        super().__post_init__()
        for flag in ("unit_length", "batch_size", "accum_steps", "max_epoch", "log_every"):
            if getattr(self, flag) <= 0:
                raise ValueError(f"--{flag} must be positive, got {getattr(self, flag)}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.grad_clip < 0:
            raise ValueError(f"--grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        if self.num_classes < 2:
            raise ValueError(f"--unit_length {self.unit_length} leaves fewer than 2 length classes")

    @property
    def num_classes(self) -> int:
        """Length classes ``0 .. 200 // unit_length - 1`` (50 for unit_length 4)."""
        return MAX_CLIP_FRAMES // self.unit_length
