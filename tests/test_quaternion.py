"""Property tests for utils.quaternion (docs/data.md#rotation-conventions conventions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from utils.quaternion import (
    cont6d_to_matrix,
    cont6d_to_quat,
    euler_to_quat,
    matrix_to_cont6d,
    matrix_to_euler,
    matrix_to_quat,
    qbetween,
    qfix,
    qinv,
    qmul,
    qnormalize,
    qrot,
    qslerp,
    quat_from_axis_angle,
    quat_to_cont6d,
    quat_to_euler,
    quat_to_matrix,
    yaw_quat,
)

ORDERS = ["xyz", "xzy", "yxz", "yzx", "zxy", "zyx"]


def _rand_quat(n: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, 4, generator=g, dtype=dtype), dim=-1)


def _axis_matrix(axis: str, angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    rows = {
        "x": [one, zero, zero, zero, c, -s, zero, s, c],
        "y": [c, zero, s, zero, one, zero, -s, zero, c],
        "z": [c, -s, zero, s, c, zero, zero, zero, one],
    }[axis]
    return torch.stack(rows, -1).reshape(angle.shape + (3, 3))


@pytest.mark.parametrize("seed", range(3))
def test_qrot_preserves_norm_and_matches_matrix(seed: int) -> None:
    q = _rand_quat(64, seed)
    v = torch.randn(64, 3, generator=torch.Generator().manual_seed(seed + 100), dtype=torch.float64)
    out = qrot(q, v)
    torch.testing.assert_close(out.norm(dim=-1), v.norm(dim=-1))
    torch.testing.assert_close(out, (quat_to_matrix(q) @ v[..., None])[..., 0])


def test_qinv_composes_to_identity_and_qmul_composes_rotations() -> None:
    q, r = _rand_quat(32, 0), _rand_quat(32, 1)
    ident = torch.tensor([1.0, 0, 0, 0], dtype=torch.float64).expand(32, 4)
    torch.testing.assert_close(qmul(qinv(q), q), ident)
    torch.testing.assert_close(qmul(q, qinv(q)), ident)
    v = torch.randn(32, 3, dtype=torch.float64)
    # q ⊗ r applies r first, then q.
    torch.testing.assert_close(qrot(qmul(q, r), v), qrot(q, qrot(r, v)))
    torch.testing.assert_close(quat_to_matrix(qmul(q, r)), quat_to_matrix(q) @ quat_to_matrix(r))


def test_hamilton_basis_products() -> None:
    i, j, k = torch.eye(4)[1], torch.eye(4)[2], torch.eye(4)[3]
    torch.testing.assert_close(qmul(i, j), k)
    torch.testing.assert_close(qmul(j, k), i)
    torch.testing.assert_close(qmul(k, i), j)


def test_yaw_convention_matches_spec() -> None:
    """docs/data.md#rotation-conventions: (cos φ, 0, sin φ, 0) rotates by 2φ about +Y, R_y(θ) = [[c,0,s],[0,1,0],[-s,0,c]]."""
    theta = torch.tensor([0.3, -1.2, 2.5], dtype=torch.float64)
    q = yaw_quat(theta)
    torch.testing.assert_close(quat_to_matrix(q), _axis_matrix("y", theta))
    # +Z rotated by +90° about Y points to +X (active rotation).
    torch.testing.assert_close(
        qrot(yaw_quat(torch.tensor(math.pi / 2)), torch.tensor([0.0, 0, 1])),
        torch.tensor([1.0, 0, 0]),
        atol=1e-6,
        rtol=0,
    )


@pytest.mark.parametrize("seed", range(3))
def test_matrix_round_trips(seed: int) -> None:
    q = _rand_quat(256, seed)
    q = torch.where(q[:, :1] < 0, -q, q)
    m = quat_to_matrix(q)
    torch.testing.assert_close(m @ m.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(256, 3, 3))
    torch.testing.assert_close(torch.linalg.det(m), torch.ones(256, dtype=torch.float64))
    torch.testing.assert_close(matrix_to_quat(m), q)
    torch.testing.assert_close(cont6d_to_matrix(matrix_to_cont6d(m)), m)
    torch.testing.assert_close(cont6d_to_quat(quat_to_cont6d(q)), q)


def test_matrix_to_quat_near_half_turns() -> None:
    """Pivots other than w are needed when trace ≈ -1 (rotations by ≈180°)."""
    axes = F.normalize(torch.randn(50, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64), dim=-1)
    q = quat_from_axis_angle(axes, torch.full((50,), math.pi - 1e-9, dtype=torch.float64))
    back = matrix_to_quat(quat_to_matrix(q))
    same = torch.minimum((back - q).abs().amax(-1), (back + q).abs().amax(-1))
    assert same.max() < 1e-7


def test_cont6d_layout_is_first_two_columns() -> None:
    m = quat_to_matrix(_rand_quat(4, 3))
    c = matrix_to_cont6d(m)
    torch.testing.assert_close(c[:, :3], m[:, :, 0])
    torch.testing.assert_close(c[:, 3:], m[:, :, 1])
    # Gram-Schmidt tolerates non-orthonormal inputs and returns a rotation.
    noisy = cont6d_to_matrix(c * 3.0 + 0.05)
    torch.testing.assert_close(torch.linalg.det(noisy), torch.ones(4, dtype=torch.float64))


@pytest.mark.parametrize("seed", range(3))
def test_qbetween_maps_a_onto_b(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(128, 3, generator=g, dtype=torch.float64) * 3
    b = torch.randn(128, 3, generator=g, dtype=torch.float64)
    q = qbetween(a, b)
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(128, dtype=torch.float64))
    torch.testing.assert_close(F.normalize(qrot(q, a), dim=-1), F.normalize(b, dim=-1))
    # Shortest arc: the rotation axis is perpendicular to both.
    torch.testing.assert_close((q[:, 1:] * a).sum(-1), torch.zeros(128, dtype=torch.float64), atol=1e-9, rtol=0)


def test_qbetween_opposite_vectors_is_a_half_turn() -> None:
    a = torch.tensor([[0.0, 0, -1], [1.0, 0, 0], [0.0, 2, 0]])
    q = qbetween(a, -a)
    assert torch.isfinite(q).all()
    torch.testing.assert_close(qrot(q, a), -a, atol=1e-6, rtol=0)


def test_qfix_removes_sign_flips_along_time() -> None:
    t = torch.linspace(0, 3, 40, dtype=torch.float64)
    q = yaw_quat(t)[:, None, :].expand(40, 2, 4).clone()  # (T, J, 4)
    signs = torch.where(torch.rand(40, 2, 1, generator=torch.Generator().manual_seed(0)) < 0.5, -1.0, 1.0)
    flipped = q * signs.to(q.dtype)
    fixed = qfix(flipped)
    dots = (fixed[1:] * fixed[:-1]).sum(-1)
    assert (dots > 0).all()
    torch.testing.assert_close(quat_to_matrix(fixed), quat_to_matrix(flipped))
    torch.testing.assert_close(fixed, q * signs[:1].to(q.dtype))
    # Batched over a leading dim, time on dim=-2 for (B, T, 4).
    fixed2 = qfix(flipped[:, 0][None], dim=-2)
    torch.testing.assert_close(fixed2[0], fixed[:, 0])


@pytest.mark.parametrize("order", ORDERS)
def test_euler_convention_and_round_trip(order: str) -> None:
    g = torch.Generator().manual_seed(11)
    angles = (torch.rand(200, 3, generator=g, dtype=torch.float64) * 2 - 1) * torch.tensor(
        [math.pi * 0.99, math.pi / 2 * 0.98, math.pi * 0.99], dtype=torch.float64
    )
    q = euler_to_quat(angles, order)
    expected = (
        _axis_matrix(order[0], angles[:, 0])
        @ _axis_matrix(order[1], angles[:, 1])
        @ _axis_matrix(order[2], angles[:, 2])
    )
    torch.testing.assert_close(quat_to_matrix(q), expected)
    torch.testing.assert_close(quat_to_euler(q, order), angles)


@pytest.mark.parametrize("order", ["zyx", "xyz"])
def test_euler_gimbal_lock_still_reproduces_rotation(order: str) -> None:
    angles = torch.tensor([[0.4, math.pi / 2, -0.3], [1.1, -math.pi / 2, 0.2]], dtype=torch.float64)
    m = quat_to_matrix(euler_to_quat(angles, order))
    back = matrix_to_euler(m, order)
    torch.testing.assert_close(quat_to_matrix(euler_to_quat(back, order)), m, atol=1e-6, rtol=0)


def test_bad_euler_order_raises() -> None:
    with pytest.raises(ValueError, match="permutation"):
        euler_to_quat(torch.zeros(3), "zzx")


def test_axis_angle_and_slerp() -> None:
    q = quat_from_axis_angle(torch.tensor([0.0, 2.0, 0.0]), torch.tensor(0.8))
    torch.testing.assert_close(q, yaw_quat(torch.tensor(0.8)))
    q0, q1 = yaw_quat(torch.tensor(0.2)), yaw_quat(torch.tensor(1.0))
    torch.testing.assert_close(qslerp(q0, q1, 0.25), yaw_quat(torch.tensor(0.4)))
    torch.testing.assert_close(qslerp(q0, -q1, 1.0), q1)


def test_numpy_in_numpy_out_and_no_input_mutation() -> None:
    q = _rand_quat(5, 2).numpy()
    v = np.arange(15, dtype=np.float64).reshape(5, 3)
    q_copy, v_copy = q.copy(), v.copy()
    out = qrot(q, v)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(v, axis=-1))
    np.testing.assert_array_equal(q, q_copy)
    np.testing.assert_array_equal(v, v_copy)
    assert qnormalize(np.ones((2, 4), dtype=np.float32)).dtype == np.float32


def test_float32_dtype_preserved() -> None:
    q = _rand_quat(3, 0, torch.float32)
    assert qmul(q, q).dtype == torch.float32
    assert quat_to_cont6d(q).dtype == torch.float32
    assert quat_to_euler(q).dtype == torch.float32
    assert qbetween(torch.randn(3, 3), torch.randn(3, 3)).dtype == torch.float32
