"""Differentiable objectives on generated joints, the losses the control optimiser minimises.

An objective is any callable ``(joints (B, T, J, 3), valid (B, T) bool) -> (B,)`` per-sample loss in metres
(0 = satisfied); ``valid`` is False on frames past each sample's length. :class:`TargetObjective` pulls
joints to targets; :class:`FloorObjective` keeps every joint above a height. Write your own the same way,
e.g. "stay out of this box": ``lambda j, v: (relu(0.3 - (j[..., 0, [0, 2]] - c).abs().amax(-1)) * v).amax(-1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Objective = Callable[[Tensor, Tensor], Tensor]


def target_distances(joints: Tensor, targets: Tensor, smooth: float = 0.0) -> tuple[Tensor, Tensor]:
    """Distances to targets over their finite axes. joints, targets (..., J, 3), NaN = free ->
    (distances (..., J) metres, controlled (..., J) bool); uncontrolled entries have distance 0.

    ``smooth`` > 0 (metres) gives the pseudo-Huber distance ``sqrt(d² + smooth²) - smooth`` instead: quadratic
    within ``smooth`` of the target, the distance minus ``smooth`` beyond. An optimiser minimising a mean of plain
    distances zig-zags once many entries sit near their targets (each keeps a unit gradient there); the smooth one
    lets them settle."""
    finite = torch.isfinite(targets)
    diff = torch.where(finite, joints - torch.nan_to_num(targets), torch.zeros_like(joints))
    controlled = finite.any(-1)
    squared = (diff**2).sum(-1)
    if smooth > 0:
        dist = torch.sqrt(squared + smooth**2) - smooth
    else:
        dist = torch.sqrt(squared + 1e-10)  # the epsilon keeps the gradient finite at zero distance
    return dist * controlled, controlled


class TargetObjective:
    """Mean distance (m) of the controlled joints to their targets (B, T, J, 3), NaN = free; with ``smooth`` > 0
    the mean pseudo-Huber distance (:func:`target_distances`)."""

    def __init__(self, targets: Tensor, smooth: float = 0.0) -> None:
        self.targets = targets
        self.smooth = smooth

    def __call__(self, joints: Tensor, valid: Tensor) -> Tensor:
        targets = self.targets.to(joints)
        dist, controlled = target_distances(joints[:, : targets.shape[1]], targets, self.smooth)
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


class PlantedFeet:
    """Feet that stand in a ``reference`` motion (B, T, J, 3) slide no faster than they did there: over the steps
    where a ``feet`` joint is below ``height`` at both frames of the reference, the mean (m per frame) by which
    its horizontal step exceeds the reference's by more than ``slack`` (m per frame; without it, the first
    micrometre of slide would be fought over). Steps touching a frame where ``exempt`` (B, T, F) is True are not
    counted (the polish exempts a foot near its own targets, which decide there). The polish adds it so that
    moving the body to its targets does not drag planted feet along (foot skating)."""

    def __init__(
        self,
        reference: Tensor,
        feet: Sequence[int],
        height: float,
        slack: float = 0.0,
        exempt: Tensor | None = None,
    ) -> None:
        self.feet = list(feet)
        self.slack = slack
        low = reference[..., self.feet, 1] < height  # (B, T, F)
        if exempt is not None:
            low &= ~exempt
        self.grounded = low[:, 1:] & low[:, :-1]  # (B, T-1, F)
        self.slide = self.steps(reference).detach()

    def steps(self, joints: Tensor) -> Tensor:
        """Horizontal step length (B, T-1, F) of each foot joint."""
        xz = joints[..., self.feet, :][..., [0, 2]]
        return torch.sqrt(((xz[:, 1:] - xz[:, :-1]) ** 2).sum(-1) + 1e-12)

    def __call__(self, joints: Tensor, valid: Tensor) -> Tensor:
        grounded = self.grounded & (valid[:, 1:] & valid[:, :-1])[..., None]
        excess = torch.relu(self.steps(joints) - self.slide - self.slack) * grounded
        return excess.flatten(1).sum(-1) / grounded.flatten(1).sum(-1).clamp(min=1)


def total_loss(objectives: list[list[Objective]], joints: Tensor, valid: Tensor) -> Tensor:
    """Per-sample sum of each sample's own objectives: (B,) (0 for a sample without any). An objective shared by
    several samples runs once on the whole batch."""
    loss = joints.new_zeros(joints.shape[0])
    distinct = {id(o): o for objs in objectives for o in objs}
    for key, objective in distinct.items():
        uses = torch.tensor([sum(id(o) == key for o in objs) for objs in objectives], device=joints.device)
        loss = loss + objective(joints, valid) * uses
    return loss
