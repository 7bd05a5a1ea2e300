"""Differentiable objectives on generated joints, the losses the control optimiser minimises.

An objective is any callable ``(joints (B, T, J, 3), valid (B, T) bool) -> (B,)`` per-sample loss in metres
(0 = satisfied); ``valid`` is False on frames past each sample's length. :class:`TargetObjective` pulls
joints to targets; :class:`FloorObjective` keeps every joint above a height. Write your own the same way,
e.g. "stay out of this box": ``lambda j, v: (relu(0.3 - (j[..., 0, [0, 2]] - c).abs().amax(-1)) * v).amax(-1)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Objective = Callable[[Tensor, Tensor], Tensor]


def target_distances(joints: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Distances to targets over their finite axes. joints, targets (..., J, 3), NaN = free ->
    (distances (..., J) metres, controlled (..., J) bool); uncontrolled entries have distance 0."""
    finite = torch.isfinite(targets)
    diff = torch.where(finite, joints - torch.nan_to_num(targets), torch.zeros_like(joints))
    controlled = finite.any(-1)
    # A small epsilon keeps the gradient finite at zero distance.
    dist = torch.sqrt((diff**2).sum(-1) + 1e-10) * controlled
    return dist, controlled


class TargetObjective:
    """Mean distance (m) of the controlled joints to their targets (B, T, J, 3), NaN = free."""

    def __init__(self, targets: Tensor) -> None:
        self.targets = targets

    def __call__(self, joints: Tensor, valid: Tensor) -> Tensor:
        targets = self.targets.to(joints)
        dist, controlled = target_distances(joints[:, : targets.shape[1]], targets)
        controlled = controlled & valid[:, : targets.shape[1], None]
        count = controlled.flatten(1).sum(-1).clamp(min=1)
        return (dist * controlled).flatten(1).sum(-1) / count


@dataclass(frozen=True)
class FloorObjective:
    """No joint below ``height`` (m): the deepest dip plus the mean per-frame dip over valid frames."""

    height: float = 0.0

    def __call__(self, joints: Tensor, valid: Tensor) -> Tensor:
        dip = torch.relu(self.height - joints[..., 1]).amax(-1) * valid  # (B, T)
        return dip.amax(-1) + dip.sum(-1) / valid.sum(-1).clamp(min=1)


def total_loss(objectives: list[list[Objective]], joints: Tensor, valid: Tensor) -> Tensor:
    """Per-sample sum of each sample's own objectives: (B,) (0 for a sample without any). An objective shared by
    several samples runs once on the whole batch."""
    loss = joints.new_zeros(joints.shape[0])
    distinct = {id(o): o for objs in objectives for o in objs}
    for key, objective in distinct.items():
        uses = torch.tensor([sum(id(o) == key for o in objs) for objs in objectives], device=joints.device)
        loss = loss + objective(joints, valid) * uses
    return loss
