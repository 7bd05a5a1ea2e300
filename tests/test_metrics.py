"""Benchmark metric math (utils/metrics.py) against closed forms and straightforward NumPy/SciPy references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg
from scipy.spatial.distance import cdist

from utils import metrics as M


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_distance_matrix_matches_cdist_and_never_nan() -> None:
    a, b = _rng(0).normal(size=(32, 16)), _rng(1).normal(size=(20, 16))
    np.testing.assert_allclose(M.euclidean_distance_matrix(a, b), cdist(a, b), rtol=1e-10, atol=1e-10)
    # identical large-norm rows: the expanded form rounds slightly below zero; clamped, so 0 not NaN
    x = _rng(2).normal(size=(64, 512)) * 1e3
    d = M.euclidean_distance_matrix(x, x)
    assert np.isfinite(d).all()
    assert np.abs(np.diag(d)).max() < 1e-3 * 1e3


def test_r_precision_perfect_match_is_one() -> None:
    x = _rng(3).normal(size=(32, 512))
    np.testing.assert_array_equal(M.r_precision_hits(x, x), [32, 32, 32])


def test_r_precision_known_ranks() -> None:
    """1-D embeddings: text i at i, motion i displaced so its rank among the motions is known."""
    text = np.arange(5, dtype=float)[:, None] * 10
    motion = text.copy()
    motion[0] = 10.4  # text 0: m1 (10) is nearer than m0 (10.4) -> its match ranks 2nd; text 1 still hits m1 (0)
    hits = M.r_precision_hits(text, motion)
    np.testing.assert_array_equal(hits, [4, 5, 5])


def test_r_precision_vs_bruteforce() -> None:
    text, motion = _rng(4).normal(size=(32, 8)), _rng(5).normal(size=(32, 8))
    d = cdist(text, motion)
    ranks = np.array([(d[i] < d[i, i]).sum() for i in range(32)])  # no ties with continuous data
    expected = [(ranks < k).sum() for k in (1, 2, 3)]
    np.testing.assert_array_equal(M.r_precision_hits(text, motion), expected)


def test_matching_score_known_values() -> None:
    text = np.zeros((3, 2))
    motion = np.array([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    assert M.matching_score_sum(text, motion) == pytest.approx(5 + 1 + 10)
    a, b = _rng(6).normal(size=(32, 16)), _rng(7).normal(size=(32, 16))
    assert M.matching_score_sum(a, b) == pytest.approx(np.trace(cdist(a, b)), rel=1e-12)


def test_fid_identical_sets_is_zero() -> None:
    x = _rng(8).normal(size=(400, 16))
    assert abs(M.fid(x, x)) < 1e-8


def test_fid_shifted_means_only() -> None:
    x = _rng(9).normal(size=(300, 8))
    shift = _rng(10).normal(size=8)
    assert M.fid(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-8, abs=1e-8)


def test_fid_closed_form_gaussians() -> None:
    """Diagonal covariances: FID = ‖Δμ‖² + Σ (σ₁ − σ₂)²."""
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    got = M.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(5.0 + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum(), rel=1e-10)


def test_fid_vs_scipy_reference_random() -> None:
    a, b = _rng(11).normal(size=(200, 12)), _rng(12).normal(size=(150, 12)) * 1.5 + 0.3
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    assert M.fid(a, b) == pytest.approx(ref, rel=1e-8)


def test_fid_singular_covariances_stay_finite() -> None:
    """Fewer samples than dimensions: singular covariances; the result must be finite and non-negative."""
    a, b = _rng(13).normal(size=(10, 32)), _rng(14).normal(size=(10, 32))
    value = M.fid(a, b)
    assert np.isfinite(value) and value > 0


def test_diversity_vs_reference_and_generator_reproducible() -> None:
    x = _rng(15).normal(size=(500, 16))
    g1, g2 = _rng(99), _rng(99)
    first, second = g2.choice(500, 300, replace=False), g2.choice(500, 300, replace=False)
    ref = np.linalg.norm(x[first] - x[second], axis=1).mean()
    assert M.diversity(x, g1) == pytest.approx(ref, rel=1e-12)
    assert M.diversity_times(301) == 300 and M.diversity_times(300) == 100
    with pytest.raises(ValueError, match="more than 100 rows"):
        M.diversity(x[:100], _rng(0))


def test_diversity_of_constant_set_is_zero() -> None:
    assert M.diversity(np.ones((150, 4)), _rng(0)) == 0.0


def test_multimodality_vs_reference() -> None:
    emb = _rng(16).normal(size=(96, 30, 8))
    g = _rng(5)
    first, second = g.choice(30, 10, replace=False), g.choice(30, 10, replace=False)
    ref = np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean()
    assert M.multimodality(emb, _rng(5)) == pytest.approx(ref, rel=1e-12)
    # identical generations per text -> 0
    assert M.multimodality(np.repeat(emb[:, :1], 30, axis=1), _rng(0)) == 0.0


def test_mpjpe_root_relative() -> None:
    gt = _rng(17).normal(size=(7, 22, 3))
    # a global translation per pose is removed by the root subtraction
    assert np.allclose(M.mpjpe_per_pose(gt, gt + _rng(18).normal(size=(7, 1, 3))), 0.0)
    pred = gt.copy()
    pred[:, 5] += np.array([0.0, 0.3, 0.4])  # one joint off by 0.5 -> mean over 22 joints
    np.testing.assert_allclose(M.mpjpe_per_pose(gt, pred), np.full(7, 0.5 / 22))


def test_mean_and_ci95() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, ci = M.mean_and_ci95(values)
    assert mean == 2.5
    assert ci == pytest.approx(1.96 * np.sqrt(1.25) / 2)
    assert M.mean_and_ci95([5.0]) == (5.0, 0.0)
