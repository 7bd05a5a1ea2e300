"""VQ reconstruction error in joint space: root-aligned MPJPE in millimetres (spec §5.3), on any device."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch
from torch import Tensor

from models.vq.model import RVQVAE
from utils.motion import recover_from_ric
from utils.skeleton import DatasetSpec

# Dataset units -> millimetres: HumanML3D joints are in metres, KIT-ML joints already in millimetres.
_MM_PER_UNIT = {"t2m": 1000.0, "kit": 1.0}


def mm_per_unit(spec: DatasetSpec) -> float:
    if spec.name not in _MM_PER_UNIT:
        raise ValueError(f"no length unit known for dataset {spec.name!r} (known: {sorted(_MM_PER_UNIT)})")
    return _MM_PER_UNIT[spec.name]


def mpjpe_per_pose(gt_joints: Tensor, pred_joints: Tensor) -> Tensor:
    """(..., J, 3) x2 -> (...,) mean joint L2 distance after subtracting each pose's root joint."""
    if gt_joints.shape != pred_joints.shape:
        raise ValueError(f"MPJPE needs equal shapes, got {tuple(gt_joints.shape)} and {tuple(pred_joints.shape)}")
    gt = gt_joints - gt_joints[..., :1, :]
    pred = pred_joints - pred_joints[..., :1, :]
    return torch.linalg.vector_norm(gt - pred, dim=-1).mean(dim=-1)


def features_mpjpe_mm(gt_features: Tensor, pred_features: Tensor, spec: DatasetSpec) -> Tensor:
    """Per-pose MPJPE (mm) between de-normalised feature sequences (..., T, D) -> (..., T)."""
    gt = recover_from_ric(gt_features.float(), spec.joints_num)
    pred = recover_from_ric(pred_features.float(), spec.joints_num)
    return mpjpe_per_pose(gt, pred) * mm_per_unit(spec)


@torch.no_grad()
def reconstruction_mpjpe(model: RVQVAE, batches: Iterable[Tensor], mean: np.ndarray | Tensor,
                         std: np.ndarray | Tensor, spec: DatasetSpec, device: torch.device | str = "cpu") -> float:
    """Mean per-pose MPJPE (mm) of eval-mode reconstructions over normalised batches (B, T, D), T % 4 == 0."""
    device = torch.device(device)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    total, poses = 0.0, 0
    try:
        for batch in batches:
            x = batch.to(device).float()
            recon, _, _ = model(x)
            errors = features_mpjpe_mm(x * std_t + mean_t, recon * std_t + mean_t, spec)
            total += float(errors.sum())
            poses += errors.numel()
    finally:
        model.train(was_training)
    if poses == 0:
        raise ValueError("reconstruction_mpjpe got no poses (empty loader)")
    return total / poses
