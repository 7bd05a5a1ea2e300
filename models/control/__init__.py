"""Zero-shot spatial control: targets for joints at frames, pluggable objectives, inference-time optimisation."""

from models.control.objectives import FloorObjective, Objective, TargetObjective
from models.control.optimise import Control, ControlSettings
from models.control.spec import (
    ControlSpec,
    keyframes_from_json,
    targets_from_array,
    targets_from_motion,
)

__all__ = [
    "Control",
    "ControlSettings",
    "ControlSpec",
    "FloorObjective",
    "Objective",
    "TargetObjective",
    "keyframes_from_json",
    "targets_from_array",
    "targets_from_motion",
]
