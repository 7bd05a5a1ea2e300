"""Physical-plausibility columns of the benchmark (penetration, floating, skating, jitter, hovering; utils/physical.py).

:class:`PhysicalAccumulator` is fed, batch by batch, the ground-truth and generated **raw** features the benchmark
loop already has, recovers joints (``recover_from_ric``) and averages the per-motion metrics over one pass; the
loop's per-pass values then give the 95 % CIs like every other column. Generated keys are ``Penetrate`` (cm, mean
depth below the floor), ``Float`` (cm), ``Skate`` (% of frame steps), ``Jerk`` (m/s³), ``Accel`` (m/s²), ``Hover``
(% of frames off the floor without falling); the ground truth's carry a ``_real`` suffix.
"""

from __future__ import annotations

from torch import Tensor

from utils.motion import recover_from_ric
from utils.physical import PhysicalMetrics, physical_metrics, to_metres
from utils.skeleton import DatasetSpec

# column key -> (PhysicalMetrics field, display scale)
COLUMNS = {
    "Penetrate": ("penetration_mean", 100.0),
    "Float": ("floating", 100.0),
    "Skate": ("skate_ratio", 100.0),
    "Jerk": ("jerk", 1.0),
    "Accel": ("acceleration", 1.0),
    "Hover": ("hovering", 100.0),
}
TABLE_COLUMNS = [
    ("Penetrate", "Penetrate cm ↓"),
    ("Float", "Float cm ↓"),
    ("Skate", "Skate % ↓"),
    ("Jerk", "Jerk m/s³ ↓"),
    ("Accel", "Accel m/s² ↓"),
    ("Hover", "Hover % ↓"),
]


class PhysicalAccumulator:
    """Per-motion physical metrics of one benchmark pass, for generated and ground-truth motions."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.generated: list[PhysicalMetrics] = []
        self.real: list[PhysicalMetrics] = []

    def _measure(self, raw: Tensor, lengths: Tensor) -> list[PhysicalMetrics]:
        """raw features (B, T, D) and frames (B,) -> metrics of each motion of at least 4 frames.

        The whole batch is recovered at once: a frame's joints depend only on the frames up to it, so the
        padding after a motion leaves it unchanged."""
        joints = to_metres(recover_from_ric(raw.float(), self.spec.joints_num).detach().cpu().numpy(), self.spec)
        return [physical_metrics(joints[i, :n], self.spec) for i, n in enumerate(lengths.tolist()) if n >= 4]

    def add(self, raw_real: Tensor, real_lengths: Tensor, raw_generated: Tensor, generated_lengths: Tensor) -> None:
        """One batch: ground-truth and generated raw (de-normalised) features (B, T, D) with their frames (B,)."""
        self.real += self._measure(raw_real, real_lengths)
        self.generated += self._measure(raw_generated, generated_lengths)

    def values(self) -> dict[str, float]:
        """Pass means of every column (empty when no motion had 4 frames)."""
        out = {}
        for suffix, metrics in (("", self.generated), ("_real", self.real)):
            if metrics:
                for key, (name, scale) in COLUMNS.items():
                    out[key + suffix] = scale * sum(getattr(m, name) for m in metrics) / len(metrics)
        return out
