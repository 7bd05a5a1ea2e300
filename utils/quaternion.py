"""Quaternion, rotation-matrix, 6D and Euler conversions (docs/data.md#rotation-conventions).

Conventions: quaternions are ``(w, x, y, z)``, Hamilton product, active rotation (``qrot(q, v)`` rotates the
vector ``v``); matrices act on column vectors (``v' = R @ v``); the continuous 6D representation is the
concatenation of matrix columns 0 and 1. Every function is batched over leading dimensions, keeps the input's
device and dtype, never modifies its inputs, and also accepts NumPy arrays (the result is then a NumPy array of
the same dtype).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

F = TypeVar("F", bound=Callable)

_AXIS_INDEX = {"x": 0, "y": 1, "z": 2}


def numpy_io(fn: F) -> F:
    """Let a torch function take NumPy arrays: array inputs become tensors and a tensor result becomes an array.

    Conversion happens only when the first argument is an ``np.ndarray``; tuples of results are converted
    element-wise.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if not (args and isinstance(args[0], np.ndarray)):
            return fn(*args, **kwargs)
        args = tuple(torch.from_numpy(np.ascontiguousarray(a)) if isinstance(a, np.ndarray) else a for a in args)
        kwargs = {
            k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()
        }
        out = fn(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(o.numpy() if isinstance(o, Tensor) else o for o in out)
        return out.numpy() if isinstance(out, Tensor) else out

    return wrapper  # type: ignore[return-value]


def _check_last(x: Tensor, size: int, name: str) -> None:
    if x.shape[-1] != size:
        raise ValueError(f"{name} must have last dimension {size}, got shape {tuple(x.shape)}")


@numpy_io
def qnormalize(q: Tensor) -> Tensor:
    """Unit quaternions. q: (..., 4) -> (..., 4)."""
    _check_last(q, 4, "q")
    return q / q.norm(dim=-1, keepdim=True)


@numpy_io
def qinv(q: Tensor) -> Tensor:
    """Conjugate ``(w, -x, -y, -z)``: the inverse of a unit quaternion. q: (..., 4) -> (..., 4)."""
    _check_last(q, 4, "q")
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


@numpy_io
def qmul(q: Tensor, r: Tensor) -> Tensor:
    """Hamilton product ``q ⊗ r`` (apply ``r`` first, then ``q``). q, r: (..., 4), broadcast -> (..., 4)."""
    _check_last(q, 4, "q")
    _check_last(r, 4, "r")
    q0, q1, q2, q3 = q.unbind(-1)
    r0, r1, r2, r3 = r.unbind(-1)
    return torch.stack(
        (
            q0 * r0 - q1 * r1 - q2 * r2 - q3 * r3,
            q0 * r1 + q1 * r0 + q2 * r3 - q3 * r2,
            q0 * r2 - q1 * r3 + q2 * r0 + q3 * r1,
            q0 * r3 + q1 * r2 - q2 * r1 + q3 * r0,
        ),
        dim=-1,
    )


@numpy_io
def qrot(q: Tensor, v: Tensor) -> Tensor:
    """Rotate vectors by unit quaternions: ``v + 2 (w (u × v) + u × (u × v))``, ``u = (x, y, z)``.

    q: (..., 4), v: (..., 3), leading dims broadcast -> (..., 3).
    """
    _check_last(q, 4, "q")
    _check_last(v, 3, "v")
    # Not torch.broadcast_shapes: its first call imports sympy (~0.6 s of a first command).
    lead = torch.broadcast_tensors(q[..., 0], v[..., 0])[0].shape
    q, v = q.expand(lead + (4,)), v.expand(lead + (3,))
    w, u = q[..., :1], q[..., 1:]
    uv = torch.linalg.cross(u, v, dim=-1)
    uuv = torch.linalg.cross(u, uv, dim=-1)
    return v + 2.0 * (w * uv + uuv)


@numpy_io
def qbetween(a: Tensor, b: Tensor) -> Tensor:
    """Shortest-arc unit quaternion rotating direction ``a`` onto direction ``b``.

    a, b: (..., 3), broadcast, need not be unit -> (..., 4). ``normalize([|a||b| + a·b, a × b])``. For exactly
    opposite vectors (where that formula is 0/0) a half turn about an axis perpendicular to ``a`` is returned.
    """
    _check_last(a, 3, "a")
    _check_last(b, 3, "b")
    a, b = torch.broadcast_tensors(a, b)
    cross = torch.linalg.cross(a, b, dim=-1)
    norms = torch.sqrt((a * a).sum(-1, keepdim=True) * (b * b).sum(-1, keepdim=True))
    w = norms + (a * b).sum(-1, keepdim=True)
    q = torch.cat((w, cross), dim=-1)
    size = q.norm(dim=-1, keepdim=True)
    degenerate = size <= 1e-7 * norms
    if bool(degenerate.any()):
        # Half turn about a ⊥ axis: cross with the basis vector least aligned with a.
        basis = torch.eye(3, dtype=a.dtype, device=a.device)[a.abs().argmin(dim=-1)]
        axis = torch.linalg.cross(a, basis, dim=-1)
        half_turn = torch.cat((torch.zeros_like(w), axis), dim=-1)
        q = torch.where(degenerate, half_turn, q)
        size = q.norm(dim=-1, keepdim=True)
    return q / size


@numpy_io
def qfix(q: Tensor, dim: int = -3) -> Tensor:
    """Sign continuity over time: flip frames whose dot product with the previous frame is negative, cumulatively.

    q: (..., T, J, 4) with time at ``dim`` (default -3; use -2 for (..., T, 4)) -> same shape. Same rotations.
    """
    _check_last(q, 4, "q")
    dim = dim % q.ndim
    if dim == q.ndim - 1:
        raise ValueError("qfix: dim must be the time axis, not the quaternion axis")
    T = q.shape[dim]
    if T < 2:
        return q.clone()
    dots = (q.narrow(dim, 1, T - 1) * q.narrow(dim, 0, T - 1)).sum(-1, keepdim=True)
    flips = torch.cumsum((dots < 0).to(torch.int64), dim=dim) % 2
    flips = torch.cat((torch.zeros_like(flips.narrow(dim, 0, 1)), flips), dim=dim)
    return q * (1 - 2 * flips).to(q.dtype)


@numpy_io
def quat_to_matrix(q: Tensor) -> Tensor:
    """Rotation matrices from quaternions (need not be unit: uses the ``2/|q|²`` scaling). (..., 4) -> (..., 3, 3)."""
    _check_last(q, 4, "q")
    w, x, y, z = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    xx, yy, zz = x * x * s, y * y * s, z * z * s
    xy, xz, yz = x * y * s, x * z * s, y * z * s
    wx, wy, wz = w * x * s, w * y * s, w * z * s
    rows = (
        1.0 - (yy + zz),
        xy - wz,
        xz + wy,
        xy + wz,
        1.0 - (xx + zz),
        yz - wx,
        xz - wy,
        yz + wx,
        1.0 - (xx + yy),
    )
    return torch.stack(rows, dim=-1).reshape(q.shape[:-1] + (3, 3))


@numpy_io
def matrix_to_quat(m: Tensor) -> Tensor:
    """Unit quaternions (``w >= 0``) from rotation matrices. (..., 3, 3) -> (..., 4).

    Numerically stable for all rotations: each of the four candidate formulas is evaluated and the one with the
    largest denominator is picked per element (no branching on data).
    """
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"m must have shape (..., 3, 3), got {tuple(m.shape)}")
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    # 4 q_i^2 for i = w, x, y, z.
    sq = torch.stack((1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), -1)
    # Row i: the quaternion scaled by 4 q_i (each row is exact for its own pivot).
    candidates = torch.stack(
        (
            torch.stack((sq[..., 0], m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, sq[..., 1], m10 + m01, m02 + m20), -1),
            torch.stack((m02 - m20, m10 + m01, sq[..., 2], m12 + m21), -1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, sq[..., 3]), -1),
        ),
        dim=-2,
    )
    best = sq.argmax(dim=-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(best.shape + (1, 4)))[..., 0, :]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


@numpy_io
def matrix_to_cont6d(m: Tensor) -> Tensor:
    """Continuous 6D representation: matrix columns 0 and 1 concatenated. (..., 3, 3) -> (..., 6)."""
    if m.shape[-2:] != (3, 3):
        raise ValueError(f"m must have shape (..., 3, 3), got {tuple(m.shape)}")
    return torch.cat((m[..., :, 0], m[..., :, 1]), dim=-1)


@numpy_io
def cont6d_to_matrix(c: Tensor) -> Tensor:
    """Rotation matrices from 6D (Gram-Schmidt): ``x = n(c[:3])``, ``z = n(x × c[3:])``, ``y = z × x``.

    c: (..., 6) -> (..., 3, 3) with columns ``[x, y, z]``.
    """
    _check_last(c, 6, "c")
    x = c[..., :3] / c[..., :3].norm(dim=-1, keepdim=True)
    z = torch.linalg.cross(x, c[..., 3:], dim=-1)
    z = z / z.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x, dim=-1)
    return torch.stack((x, y, z), dim=-1)


@numpy_io
def quat_to_cont6d(q: Tensor) -> Tensor:
    """(..., 4) -> (..., 6)."""
    return matrix_to_cont6d(quat_to_matrix(q))


@numpy_io
def cont6d_to_quat(c: Tensor) -> Tensor:
    """(..., 6) -> (..., 4) unit quaternions with ``w >= 0``."""
    return matrix_to_quat(cont6d_to_matrix(c))


@numpy_io
def quat_from_axis_angle(axis: Tensor, angle: Tensor) -> Tensor:
    """Rotation by ``angle`` radians (right-handed) about ``axis`` (need not be unit).

    axis: (..., 3), angle: (...) broadcast -> (..., 4).
    """
    _check_last(axis, 3, "axis")
    angle = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device)[..., None]
    unit = axis / axis.norm(dim=-1, keepdim=True)
    half = 0.5 * angle
    unit, half = torch.broadcast_tensors(unit, half)
    return torch.cat((torch.cos(half[..., :1]), torch.sin(half) * unit), dim=-1)


@numpy_io
def yaw_quat(angle: Tensor) -> Tensor:
    """Rotation by ``angle`` radians about +Y: ``(cos(a/2), 0, sin(a/2), 0)``. (...) -> (..., 4)."""
    angle = torch.as_tensor(angle)
    half = 0.5 * angle
    zero = torch.zeros_like(half)
    return torch.stack((torch.cos(half), zero, torch.sin(half), zero), dim=-1)


@numpy_io
def qslerp(q0: Tensor, q1: Tensor, t: Tensor | float) -> Tensor:
    """Spherical linear interpolation along the shorter arc; ``t = 0`` gives ``q0``, ``t = 1`` gives ``±q1``.

    q0, q1: (..., 4) unit; t: scalar or (...) -> (..., 4).
    """
    _check_last(q0, 4, "q0")
    t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    is_close = sin_theta < 1e-6
    safe = torch.where(is_close, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(is_close, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    w1 = torch.where(is_close, t, torch.sin(t * theta) / safe)
    return qnormalize(w0 * q0 + w1 * q1)


def _parse_order(order: str) -> tuple[int, int, int]:
    axes = tuple(_AXIS_INDEX.get(ch, -1) for ch in order.lower())
    if len(axes) != 3 or sorted(axes) != [0, 1, 2]:
        raise ValueError(f"Euler order must be a permutation of 'xyz' (e.g. 'zyx'), got {order!r}")
    return axes  # type: ignore[return-value]


@numpy_io
def euler_to_quat(angles: Tensor, order: str = "zyx") -> Tensor:
    """Quaternions from Euler angles (radians).

    ``angles[..., k]`` is the angle about axis ``order[k]`` and the rotation is the product in that order:
    for ``order="zyx"``, ``R = Rz(angles[..., 0]) · Ry(angles[..., 1]) · Rx(angles[..., 2])`` (intrinsic z, y', x'';
    the BVH convention for channels listed as ``Zrotation Yrotation Xrotation``). angles: (..., 3) -> (..., 4).
    """
    _check_last(angles, 3, "angles")
    axes = _parse_order(order)
    eye = torch.eye(3, dtype=angles.dtype, device=angles.device)
    q = quat_from_axis_angle(eye[axes[0]], angles[..., 0])
    for k in (1, 2):
        q = qmul(q, quat_from_axis_angle(eye[axes[k]], angles[..., k]))
    return q


@numpy_io
def matrix_to_euler(m: Tensor, order: str = "zyx") -> Tensor:
    """Euler angles (radians) of rotation matrices, inverse of :func:`euler_to_quat`'s convention.

    m: (..., 3, 3) -> (..., 3), ``angles[..., k]`` about axis ``order[k]``, ``R = R_order[0] R_order[1] R_order[2]``.
    Ranges: first and last angle in (-π, π], middle angle in [-π/2, π/2]. At gimbal lock (middle angle ±π/2) the
    last angle is set to 0.
    """
    i, j, k = _parse_order(order)
    # Parity of the axis permutation: +1 for cyclic orders (xyz, yzx, zxy), -1 otherwise.
    s = 1.0 if (j - i) % 3 == 1 else -1.0
    sin_mid = (s * m[..., i, k]).clamp(-1.0, 1.0)
    mid = torch.asin(sin_mid)
    first = torch.atan2(-s * m[..., j, k], m[..., k, k])
    last = torch.atan2(-s * m[..., i, j], m[..., i, i])
    locked = sin_mid.abs() > 1.0 - 1e-6
    if bool(locked.any()):
        first_locked = torch.atan2(s * m[..., k, j], m[..., j, j])
        first = torch.where(locked, first_locked, first)
        last = torch.where(locked, torch.zeros_like(last), last)
    return torch.stack((first, mid, last), dim=-1)


@numpy_io
def quat_to_euler(q: Tensor, order: str = "zyx") -> Tensor:
    """Euler angles (radians) of quaternions; see :func:`euler_to_quat` for the convention.

    For ``order="zyx"`` returns ``(z, y, x)`` with ``R(q) = Rz(z) · Ry(y) · Rx(x)`` (BVH ``Zrotation Yrotation
    Xrotation``). q: (..., 4) -> (..., 3).
    """
    return matrix_to_euler(quat_to_matrix(q), order)
