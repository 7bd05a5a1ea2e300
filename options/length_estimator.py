"""Options of train_length_estimator.py (docs/networks.md#length-estimator: the official ``TrainLenEstOptions`` defaults).

The run folder is ``checkpoints/<dataset_name>/<name>`` with ``model/finest.tar`` (best validation loss) and
``model/latest.tar``, the layout the generation script reads (``length_estimator/model/finest.tar``).
"""

from __future__ import annotations

from dataclasses import dataclass

from options.base import opt, override
from options.common import ResumeOptions, TextEncoderOptions, TrainingOptions

# docs/checkpoints.md#opttxt: the classes cover clips shorter than 200 frames, num_classes = 200 // unit_length.
MAX_CLIP_FRAMES = 200


@dataclass
class LengthEstimatorOptions(TrainingOptions, ResumeOptions, TextEncoderOptions):
    """Train the text -> motion-length classifier."""

    description = "Train the MoMask length estimator (text feature -> motion length in tokens)."

    name: str = override("length_estimator")
    unit_length: int = opt(4, "frames per token; class = length // unit_length")
    lr: float = override(1e-4, "Adam learning rate")
    max_epoch: int = override(300)
    grad_clip: float = opt(0.5, "gradient-norm clipping threshold (0 = off)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(positive=("unit_length",), non_negative=("grad_clip",))
        if self.num_classes < 2:
            raise ValueError(f"--unit_length {self.unit_length} leaves fewer than 2 length classes")

    @property
    def num_classes(self) -> int:
        """Length classes ``0 .. 200 // unit_length - 1`` (50 for unit_length 4)."""
        return MAX_CLIP_FRAMES // self.unit_length
