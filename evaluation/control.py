"""Control benchmark (OmniControl / MaskControl protocol) on top of the text-to-motion benchmark loop.

For each evaluation batch the targets are the ground-truth motion's own joints (features -> joints, so in the
frame a generated motion starts in): one controlled joint (pelvis, left/right foot, head, left/right wrist) or
all of them, at a density of 1, 2 or 5 random frames, 25 % of the frames or every frame. The generated motions
go through the usual evaluator metrics (FID, R-precision, Diversity; see docs/evaluation.md), plus

* Traj. err: share of motions with any controlled joint more than 50 cm from its target;
* Loc. err: share of controlled (frame, joint) entries more than 50 cm off;
* Avg. err: mean distance of the controlled entries, in metres (the tables print cm);
* Skating: the project's one foot-skating ratio, ``skate_ratio`` of :mod:`utils.physical` (share of frame
  steps in which a foot joint within 5 cm of the floor slides faster than 0.5 m/s).

The unconstrained model run with the same targets gives the errors "for scale" (``controlled=False``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from evaluation.benchmark import EvalBatch, GenerateFn, Metrics, evaluate_once
from models.control.objectives import target_distances
from models.control.optimise import Control, ControlSettings, generate_controlled
from models.control.spec import ControlSpec
from models.evaluator.wrapper import T2MEvaluator
from utils.motion import recover_from_ric
from utils.physical import foot_joints, skating, to_metres
from utils.skeleton import DatasetSpec

if TYPE_CHECKING:
    from models.pipeline import MoMaskPipeline, Sampling

CONTROL_JOINTS = ("pelvis", "left_foot", "right_foot", "head", "left_wrist", "right_wrist")
DENSITIES = ("1", "2", "5", "25%", "100%")
FAR = 0.5  # metres: an entry this far from its target counts as a miss


def control_joint_ids(joint: str, spec: DatasetSpec) -> list[int]:
    """``"all"`` -> the six protocol joints; a name or index -> that joint."""
    if joint == "all":
        return [spec.joint_index(j) for j in CONTROL_JOINTS]
    return [spec.joint_index(joint)]


def control_frames(length: int, density: str, rng: np.random.Generator) -> np.ndarray:
    """Sorted frame numbers in 0..length-1: ``"k"`` random frames, ``"p%"`` of them, ``"100%"`` all."""
    if density.endswith("%"):
        share = float(density[:-1]) / 100
        if not 0 < share <= 1:
            raise ValueError(f"density {density!r}: a percentage must be in (0, 100]")
        count = max(1, int(round(share * length)))
    else:
        if not density.isdigit() or int(density) < 1:
            raise ValueError(f"density {density!r}: use a frame count (1, 2, 5) or a percentage (25%, 100%)")
        count = min(int(density), length)
    return np.sort(rng.choice(length, size=count, replace=False))


@dataclass
class ControlTally:
    """Per-pass sums of the control errors and skating over every generated motion."""

    motions: int = 0
    motions_far: int = 0
    entries: int = 0
    entries_far: int = 0
    distance: float = 0.0
    skating: list[float] = field(default_factory=list)

    def add(self, joints: np.ndarray, targets: np.ndarray, spec: DatasetSpec) -> None:
        """One motion (T, J, 3) and its targets (T, J, 3) NaN = free."""
        dist, controlled = target_distances(torch.as_tensor(joints), torch.as_tensor(targets))
        d = dist[controlled].numpy()
        self.motions += 1
        self.motions_far += int((d > FAR).any())
        self.entries += d.size
        self.entries_far += int((d > FAR).sum())
        self.distance += float(d.sum())
        self.skating.append(skating(to_metres(joints, spec), foot_joints(spec), spec.fps)[0])

    def values(self) -> dict[str, float]:
        return {
            "Traj_err": self.motions_far / max(self.motions, 1),
            "Loc_err": self.entries_far / max(self.entries, 1),
            "Avg_err": self.distance / max(self.entries, 1),
            "Skating": float(np.mean(self.skating)),
        }


def control_generator(
    pipe: MoMaskPipeline,
    sampling: Sampling,
    evaluator: T2MEvaluator,
    joint: str,
    density: str,
    rng: np.random.Generator,
    tally: ControlTally,
    *,
    controlled: bool = True,
    settings: ControlSettings = ControlSettings(),
) -> GenerateFn:
    """A :data:`GenerateFn` drawing targets from each batch's ground truth and generating under them (or not,
    with ``controlled=False``); errors and skating go to ``tally``."""
    spec, unit = pipe.spec, pipe.spec.unit_length
    joint_ids = control_joint_ids(joint, spec)

    @torch.no_grad()
    def generate(batch: EvalBatch, is_mm: bool, repeats: int = 1) -> tuple[Tensor, Tensor]:
        s = dataclasses.replace(sampling, gumbel_sample=sampling.gumbel_sample and is_mm)
        raw = evaluator.denormalize(batch.motions.to(evaluator.mean.device, torch.float32))
        gt = np.tile(recover_from_ric(raw, spec.joints_num).cpu().numpy(), (repeats, 1, 1, 1))  # (R·B, T, J, 3)
        m_lens = (torch.as_tensor(batch.m_lens, device=pipe.device) // unit).repeat(repeats)  # (R·B,)
        targets = []
        for b, length in enumerate((m_lens * unit).tolist()):
            t = np.full((length, spec.joints_num, 3), np.nan, np.float32)
            frames = control_frames(length, density, rng)
            t[frames[:, None], joint_ids] = gt[b, frames[:, None], joint_ids]
            targets.append(t)
        cond = pipe.encode_text(batch.captions).repeat(repeats, 1)
        if controlled:
            controls = [Control(ControlSpec(t, "benchmark"), settings=settings) for t in targets]
            _, feats, _ = generate_controlled(pipe, cond, m_lens, s, None, controls)
        else:  # decoded as the controlled rows are, without a decoding margin
            feats = pipe.decode_features(pipe.generate_codes(cond, m_lens, s, None))
        for (_, joints), t in zip(pipe.split(feats, m_lens), targets):
            tally.add(joints, t, spec)
        return feats, m_lens * unit

    return generate


def evaluate_control(
    loader: Iterable,
    pipe: MoMaskPipeline,
    sampling: Sampling,
    evaluator: T2MEvaluator,
    *,
    joint: str,
    density: str,
    repeats: int,
    controlled: bool = True,
    settings: ControlSettings = ControlSettings(),
    seed: int = 10107,
    diversity_times: int | None = None,
    label: str = "",
) -> Metrics:
    """``repeats`` passes of the text-to-motion metrics plus the control metrics -> :class:`Metrics` (sampling
    draws from torch's global generator: seed it first)."""
    rng = np.random.default_rng(seed)
    result = Metrics(label=label)
    for _ in range(repeats):
        tally = ControlTally()
        generate = control_generator(
            pipe, sampling, evaluator, joint, density, rng, tally, controlled=controlled, settings=settings
        )
        values = evaluate_once(
            loader, generate, evaluator, rng, mm_batches=0, diversity_times=diversity_times, progress=False
        )
        result.add({**values, **tally.values()})
    return result
