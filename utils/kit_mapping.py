"""SMPL-22 (HumanML3D) joints -> KIT-ML's 21 joints, so a KIT-format dataset can be built from any SMPL joints.

Units: the input is HumanML3D/SMPL joint positions in **metres** (Y up, the 22 joints of
``utils.skeleton.T2M_JOINT_NAMES``); the output is in **millimetres** (Y up), the unit of KIT-ML's
``new_joints`` and of its feature thresholds (``feet_thre`` 0.05 on squared mm displacements, plot radius
1920). The rate is not changed: resample to KIT's 12.5 fps afterwards (``prepare.build_dataset`` does).

Correspondence (KIT name <- SMPL joint); KIT's torso chain root-BP-BT-BLN-BUN and the shoulders hanging off
BLN are matched to the SMPL spine at the nearest anatomical level:

| KIT | SMPL | | KIT | SMPL |
|---|---|---|---|---|
| root | pelvis | | LH, LK, LA, LMrot | left hip, knee, ankle, foot (ball) |
| BP | spine1 | | RH, RK, RA, RMrot | right hip, knee, ankle, foot (ball) |
| BT | spine3 | | LS, LE, LW | left shoulder, elbow, wrist |
| BLN | neck | | RS, RE, RW | right shoulder, elbow, wrist |
| BUN | head | | LF, RF | toe tips: not in SMPL-22, extrapolated |

The toe tips continue the ankle -> ball direction, horizontally, by ``TOE_EXTENSION`` of its length (SMPL's
ball-to-toe-tip is about half the ankle-to-ball distance); their height is the ball's.
"""

from __future__ import annotations

import numpy as np

MM_PER_M = 1000.0
TOE_EXTENSION = 0.5
# KIT joint k <- SMPL joint SMPL_FOR_KIT[k]; -1 = extrapolated toe tip (LF = 15, RF = 20).
SMPL_FOR_KIT = (0, 3, 9, 12, 15, 16, 18, 20, 17, 19, 21, 1, 4, 7, 10, -1, 2, 5, 8, 11, -1)
TOE_TIPS = {15: (7, 10), 20: (8, 11)}  # KIT toe tip: (SMPL ankle, SMPL ball)


def smpl22_to_kit21(joints: np.ndarray) -> np.ndarray:
    """(..., 22, 3) SMPL joints in metres -> (..., 21, 3) KIT-ML joints in millimetres (float32)."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[-2:] != (22, 3):
        raise ValueError(f"expected SMPL-22 joints (..., 22, 3) in metres, got shape {joints.shape}")
    out = joints[..., [max(i, 0) for i in SMPL_FOR_KIT], :].copy()
    for kit, (ankle, ball) in TOE_TIPS.items():
        step = joints[..., ball, :] - joints[..., ankle, :]
        step[..., 1] = 0.0
        out[..., kit, :] = joints[..., ball, :] + TOE_EXTENSION * step
    return (out * MM_PER_M).astype(np.float32)
