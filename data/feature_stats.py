"""Dataset statistics Mean/Std with the official group-averaged std (docs/data.md#normalisation)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from utils.npy import load_npy
from utils.skeleton import DatasetSpec, spec_from_feature_dim

logger = logging.getLogger(__name__)


def compute_mean_std(features: Iterable[np.ndarray], spec: DatasetSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-dim mean over all frames of all clips; std replaced by its average inside each feature block.

    features: clips of shape (T_i, D) -> mean (D,), std (D,) float32. A block whose std is exactly 0 (e.g.
    contacts that never change in a tiny dataset) gets std 1 so normalisation stays finite (logged).
    """
    clips = [np.asarray(f, dtype=np.float64) for f in features]
    if not clips:
        raise ValueError("compute_mean_std: no clips given")
    bad = [c.shape for c in clips if c.ndim != 2 or c.shape[1] != spec.dim_pose]
    if bad:
        raise ValueError(f"compute_mean_std: expected (T, {spec.dim_pose}) clips for {spec.name}, got {bad[:3]}")
    frames = np.concatenate(clips, axis=0)
    mean = frames.mean(axis=0)
    std = frames.std(axis=0)
    for name, sl in spec.feature_slices.items():
        value = std[sl].mean()
        if value == 0.0:
            logger.warning("feature block %s has zero variance over the dataset; its std is set to 1", name)
            value = 1.0
        std[sl] = value
    return mean.astype(np.float32), std.astype(np.float32)


def load_feature_stats(
    mean_file: Path, std_file: Path, what: str, dim: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validated normalisation statistics: two finite (D,) float32 vectors, every std > 0 (features are
    divided by it); ``dim`` defaults to any dataset's feature width."""
    mean = load_npy(mean_file, f"{what} mean", shape=(dim,))
    std = load_npy(std_file, f"{what} std", shape=(dim,))
    if mean.shape != std.shape:
        raise ValueError(f"{what} mean {mean_file} has {mean.shape[0]} features but std {std_file} has {std.shape[0]}")
    if dim is None:
        try:
            spec_from_feature_dim(mean.shape[0])
        except ValueError as exc:
            raise ValueError(f"{what} mean {mean_file}: {exc}") from None
    if not (std > 0).all():
        raise ValueError(
            f"{what} std {std_file}: {int((std <= 0).sum())} entries are <= 0 (features are divided "
            "by it); recompute the statistics"
        )
    return mean, std
