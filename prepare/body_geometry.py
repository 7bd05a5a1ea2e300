"""Give a 22-joint body the SMPL template's geometry where a joint has several children (pelvis, spine3).

A BVH on the template rig (``visualization.joints2bvh``) turns a joint with several children as one rigid body,
so the directions from the pelvis to both hips and spine1, and from spine3 to the neck and both collars, can only
be reproduced if they keep the template's shape. Mocap skeletons (DeepMimic, Mixamo-like rigs) place those joints
differently (hips level with the root, collars on the shoulder line, ...), which the export then shows as
children 10-15 deg off. :func:`fit_template_geometry` moves the *derived* joints of those two groups (pelvis,
spine1, collars) so that both groups become scaled, rotated copies of the template, keeping every other joint
(hips, legs, spine2, spine3, neck, arms) where it was. Bones with one child are free anyway.

Axes: HumanML3D's (Y up, the body's left at +X when it faces +Z), metres; joints (T, 22, 3).
"""

from __future__ import annotations

import numpy as np

from visualization.joints2bvh import T2M_SMPL_OF_BVH, T2M_TEMPLATE_OFFSETS

# SMPL joint indices
PELVIS, L_HIP, R_HIP, SPINE1, SPINE2, SPINE3, NECK, L_COLLAR, R_COLLAR = 0, 1, 2, 3, 6, 9, 12, 13, 14
# Where spine1 sits between the pelvis and spine2 (the template's 0.109 / (0.109 + 0.135)).
SPINE1_FRACTION = 0.45


def template_offset(joint: int) -> np.ndarray:
    """Template rest offset (3,) of SMPL joint ``joint`` from its parent, metres."""
    return T2M_TEMPLATE_OFFSETS[list(T2M_SMPL_OF_BVH).index(joint)]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frame(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Right-handed orthonormal frames (..., 3, 3), columns (x, y', z): x kept, y' = y made orthogonal to x."""
    x = _unit(x)
    y = _unit(y - (y * x).sum(-1, keepdims=True) * x)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def _similarity(lateral_t: np.ndarray, up_t: np.ndarray, lateral: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rotations (T, 3, 3) taking the template frame (lateral_t, up_t) onto the motion's frames (lateral, up)."""
    return _frame(lateral, up) @ _frame(lateral_t, up_t).T


def fit_template_geometry(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T, 22, 3): pelvis, spine1 and collars moved so the two multi-child groups match the template.

    Pelvis group: the hips are kept; the pelvis and spine1 are placed by the similarity (rotation x scale) that
    maps the template's hips onto them, its up axis onto the motion's pelvis up (the old spine1 - pelvis, a point
    rigid with the pelvis in both sources). Spine1 then lies along the template direction at
    ``SPINE1_FRACTION`` of the pelvis-spine2 distance. Spine3 group: spine3 and the neck are kept; the collars
    are placed by the similarity mapping the template's spine3 -> neck onto the motion's, with the template's
    collar line turned towards the motion's old collar line.
    """
    j = np.asarray(joints, dtype=np.float64).copy()
    l_hip_t, r_hip_t, spine1_t = template_offset(L_HIP), template_offset(R_HIP), template_offset(SPINE1)
    rot = _similarity(l_hip_t - r_hip_t, spine1_t, j[:, L_HIP] - j[:, R_HIP], j[:, SPINE1] - j[:, PELVIS])
    scale = np.linalg.norm(j[:, L_HIP] - j[:, R_HIP], axis=-1) / np.linalg.norm(l_hip_t - r_hip_t)
    mid_t = (l_hip_t + r_hip_t) / 2
    pelvis = (j[:, L_HIP] + j[:, R_HIP]) / 2 - scale[:, None] * (rot @ mid_t)
    reach = SPINE1_FRACTION * np.linalg.norm(j[:, SPINE2] - pelvis, axis=-1)
    j[:, SPINE1] = pelvis + reach[:, None] * (rot @ _unit(spine1_t))
    j[:, PELVIS] = pelvis

    neck_t, l_col_t, r_col_t = template_offset(NECK), template_offset(L_COLLAR), template_offset(R_COLLAR)
    rot = _similarity(neck_t, l_col_t - r_col_t, j[:, NECK] - j[:, SPINE3], j[:, L_COLLAR] - j[:, R_COLLAR])
    # _similarity keeps its first axis exactly: here that is the neck direction.
    scale = np.linalg.norm(j[:, NECK] - j[:, SPINE3], axis=-1) / np.linalg.norm(neck_t)
    for joint, offset in ((L_COLLAR, l_col_t), (R_COLLAR, r_col_t)):
        j[:, joint] = j[:, SPINE3] + scale[:, None] * (rot @ offset)
    return j.astype(np.float32)


def multi_child_direction_error(joints: np.ndarray) -> np.ndarray:
    """Angle (deg) between each multi-child bone and its best rigid fit to the template: (T, 6) for
    pelvis -> (l_hip, r_hip, spine1) and spine3 -> (neck, l_collar, r_collar). 0 when the geometry matches."""
    from visualization.joints2bvh import fit_rotation

    errors = []
    for parent, kids in ((PELVIS, (L_HIP, R_HIP, SPINE1)), (SPINE3, (NECK, L_COLLAR, R_COLLAR))):
        rest = _unit(np.stack([template_offset(k) for k in kids]))
        vec = _unit(np.asarray(joints, dtype=np.float64)[:, kids] - joints[:, parent : parent + 1])
        fitted = np.einsum("tij,kj->tki", fit_rotation(rest, vec), rest)
        errors.append(np.rad2deg(np.arccos(np.clip((fitted * vec).sum(-1), -1.0, 1.0))))
    return np.concatenate(errors, axis=1)
