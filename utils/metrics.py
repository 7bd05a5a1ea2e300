"""Benchmark metric math on embedding arrays (docs/evaluation.md#metrics). Pure NumPy/SciPy functions, no state.

Embeddings are rows: text ``(N, d)``, motion ``(N, d)``; row i of both belongs to the same pair.
Random draws take an explicit ``numpy.random.Generator``.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg


def euclidean_distance_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a: (N, d), b: (M, d) -> (N, M) Euclidean distances, via ``‖a‖² + ‖b‖² − 2a·b``.

    The reference takes the square root without clamping, so rounding can give NaN for (near-)identical
    rows; here the squared distance is clamped at 0 (same values wherever the reference is finite).
    """
    sq = np.sum(a * a, axis=1, keepdims=True) + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(sq, 0.0))


def r_precision_hits(text_emb: np.ndarray, motion_emb: np.ndarray, top_k: int = 3) -> np.ndarray:
    """(N, d), (N, d) -> (top_k,) number of texts whose own motion is among the k nearest, k = 1..top_k.

    Computed within the given batch (the protocol uses batches of 32); divide sums by the sample count.
    """
    order = np.argsort(euclidean_distance_matrix(text_emb, motion_emb), axis=1, kind="stable")
    rank = np.argmax(order == np.arange(len(order))[:, None], axis=1)  # position of the matching motion
    return np.array([(rank < k).sum() for k in range(1, top_k + 1)], dtype=np.int64)


def matching_score_sum(text_emb: np.ndarray, motion_emb: np.ndarray) -> float:
    """Sum over pairs of the text-motion distance (trace of the distance matrix); divide by the sample count."""
    return float(np.sqrt(np.maximum(np.sum((text_emb - motion_emb) ** 2, axis=1), 0.0)).sum())


def activation_statistics(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, d) -> mean (d,), covariance (d, d) with ddof 1 (``np.cov``, rows = samples)."""
    return emb.mean(axis=0), np.cov(emb, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance of two Gaussians: ``‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½)``.

    A non-finite matrix square root is retried with ``eps·I`` added to both covariances; a complex result whose
    diagonal has an imaginary part above 1e-3 raises ValueError, otherwise its real part is used.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"FID inputs disagree: means {mu1.shape} vs {mu2.shape}, covs {sigma1.shape} vs {sigma2.shape}"
        )
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0.0, atol=1e-3):
            raise ValueError(f"FID: matrix square root has imaginary part {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid(real_emb: np.ndarray, fake_emb: np.ndarray) -> float:
    """FID between two embedding sets (N, d) and (M, d)."""
    return frechet_distance(*activation_statistics(real_emb), *activation_statistics(fake_emb))


def diversity_times(num_samples: int) -> int:
    """Pairs drawn for diversity: 300 when there are more than 300 samples, else 100 (reference protocol)."""
    return 300 if num_samples > 300 else 100


def diversity(emb: np.ndarray, rng: np.random.Generator, times: int | None = None) -> float:
    """Mean L2 distance between ``times`` random pairs of rows of emb (N, d); two index sets drawn without
    replacement. ``times`` defaults to :func:`diversity_times`."""
    times = diversity_times(len(emb)) if times is None else times
    if emb.ndim != 2 or len(emb) <= times:
        raise ValueError(f"diversity needs a 2-D array with more than {times} rows, got shape {emb.shape}")
    first = rng.choice(len(emb), times, replace=False)
    second = rng.choice(len(emb), times, replace=False)
    return float(np.linalg.norm(emb[first] - emb[second], axis=1).mean())


def multimodality(emb: np.ndarray, rng: np.random.Generator, times: int = 10) -> float:
    """emb: (N_text, R, d) R generations per text -> mean L2 distance between ``times`` random pairs of
    generations (same index pairs for every text). With ``R <= times`` (a quick check, not the protocol's 30)
    ``R`` pairs are drawn instead: the same estimate of the mean pair distance, noisier."""
    if emb.ndim != 3 or emb.shape[1] < 2:
        raise ValueError(f"multimodality needs (texts, at least 2 generations, d), got shape {emb.shape}")
    times = min(times, emb.shape[1])
    first = rng.choice(emb.shape[1], times, replace=False)
    second = rng.choice(emb.shape[1], times, replace=False)
    return float(np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean())


def mpjpe_per_pose(gt_joints: np.ndarray, pred_joints: np.ndarray) -> np.ndarray:
    """(T, J, 3), (T, J, 3) -> (T,) mean joint L2 error after subtracting each pose's root joint (joint 0)."""
    if gt_joints.shape != pred_joints.shape:
        raise ValueError(f"MPJPE needs equal shapes, got {gt_joints.shape} and {pred_joints.shape}")
    gt = gt_joints - gt_joints[:, :1]
    pred = pred_joints - pred_joints[:, :1]
    return np.linalg.norm(gt - pred, axis=-1).mean(axis=-1)


def mean_and_ci95(values: np.ndarray | list[float]) -> tuple[float, float]:
    """Mean and the 95 % half-width ``1.96·std/√n`` (population std, as the reference reports)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("mean_and_ci95 needs at least one value")
    return float(values.mean()), float(values.std() * 1.96 / np.sqrt(values.size))
