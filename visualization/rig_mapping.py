"""Which joint of a target rig follows which joint of this project's skeletons (used by ``retarget.py``).

Mappings are keyed by the rig's joint names and point at *source names*: the SMPL joint names of the t2m skeleton
(``pelvis``, ``left_hip``, ..., :data:`utils.skeleton.T2M_JOINT_NAMES`), which name the same body parts for both
datasets (KIT-ML joints are listed under those names in :data:`KIT_SOURCE`; the parts KIT lacks, e.g. collars,
are left to the in-between distribution of ``retarget.py``).

Built in: Mixamo names (``mixamorig:Hips``, ``Spine``, ``Spine1``, ``Spine2``, ``LeftArm``, ... with or without any
``prefix:``; the project's own BVH names and LAFAN's ``LeftToe`` are the same convention) and SMPL names
(``pelvis``/``Pelvis``, ``left_hip``/``L_Hip``, ...). The convention that names more of the rig's joints wins.
Anything else takes a JSON file ``{"rig joint": "source name" or null, ...}`` (it replaces the built-in guess).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from utils.skeleton import T2M_JOINT_NAMES, DatasetSpec

SOURCE_NAMES = T2M_JOINT_NAMES

# Mixamo name (lower case, prefix removed) -> source name.
_MIXAMO = {
    "hips": "pelvis",
    "spine": "spine1",
    "spine1": "spine2",
    "spine2": "spine3",
    "neck": "neck",
    "head": "head",
}
for _side in ("left", "right"):
    _MIXAMO.update(
        {
            f"{_side}shoulder": f"{_side}_collar",
            f"{_side}arm": f"{_side}_shoulder",
            f"{_side}forearm": f"{_side}_elbow",
            f"{_side}hand": f"{_side}_wrist",
            f"{_side}upleg": f"{_side}_hip",
            f"{_side}leg": f"{_side}_knee",
            f"{_side}foot": f"{_side}_ankle",
            f"{_side}toebase": f"{_side}_foot",
            f"{_side}toe": f"{_side}_foot",
        }
    )

# KIT-ML joint index of each source name it has (left = +X in its rest directions, like t2m).
KIT_SOURCE = {
    "pelvis": 0,
    "neck": 3,
    "head": 4,
    "left_shoulder": 5,
    "left_elbow": 6,
    "left_wrist": 7,
    "right_shoulder": 8,
    "right_elbow": 9,
    "right_wrist": 10,
    "left_hip": 11,
    "left_knee": 12,
    "left_ankle": 13,
    "left_foot": 14,
    "right_hip": 16,
    "right_knee": 17,
    "right_ankle": 18,
    "right_foot": 19,
}
# What a rig must map for the body to be placed at all (root, facing, leg length).
REQUIRED = ("pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee", "right_ankle")


def _bare(name: str) -> str:
    """A rig joint name without any ``prefix:``, lower case."""
    return name.rsplit(":", 1)[-1].strip().lower()


def _smpl(name: str) -> str | None:
    key = _bare(name)
    for short, side in (("l_", "left_"), ("r_", "right_")):
        if key.startswith(short):
            key = side + key[len(short) :]
    return key if key in SOURCE_NAMES else None


def guess_mapping(rig_names: tuple[str, ...]) -> dict[str, str]:
    """Built-in mapping for a rig's joint names: Mixamo-style or SMPL-style, whichever names more joints."""
    candidates = []
    for lookup in (lambda n: _MIXAMO.get(_bare(n)), _smpl):
        mapping: dict[str, str] = {}
        for name in rig_names:
            source = lookup(name)
            if source is not None and source not in mapping.values():
                mapping[name] = source
        candidates.append(mapping)
    return max(candidates, key=len)


def read_mapping(
    path: str | os.PathLike[str], rig_names: tuple[str, ...], rig_source: str = "the rig"
) -> dict[str, str]:
    """A user mapping file ``{"rig joint": "source name" | null}``, checked against the rig and the source names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--mapping {path} not found")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--mapping {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not all(isinstance(v, (str, type(None))) for v in data.values()):
        raise ValueError(f'--mapping {path}: expected an object {{"rig joint": "source joint" or null, ...}}')
    missing = [k for k in data if k not in rig_names]
    if missing:
        raise ValueError(
            f"--mapping {path} names joints that are not in {rig_source}: {missing[:6]}; "
            f"the rig has {list(rig_names[:8])}..."
        )
    mapping = {k: v for k, v in data.items() if v is not None}
    unknown = sorted({v for v in mapping.values() if v not in SOURCE_NAMES})
    if unknown:
        raise ValueError(
            f"--mapping {path}: unknown source joints {unknown[:6]}; use these names: {', '.join(SOURCE_NAMES)}"
        )
    twice = sorted({v for v in mapping.values() if list(mapping.values()).count(v) > 1})
    if twice:
        raise ValueError(f"--mapping {path}: source joints {twice} are given to more than one rig joint")
    return mapping


def source_index(source_name: str, spec: DatasetSpec) -> int | None:
    """The dataset joint of a source name (None where the dataset lacks that part, e.g. KIT collars)."""
    if spec.name == "kit":
        return KIT_SOURCE.get(source_name)
    return spec.joint_names.index(source_name) if source_name in spec.joint_names else None


def check_required(mapping: dict[str, str], rig_source: str) -> None:
    """Refuse a mapping that cannot place the body (no hips or legs)."""
    missing = [s for s in REQUIRED if s not in mapping.values()]
    if missing:
        raise ValueError(
            f"{rig_source}: no rig joint maps to {missing} (need hips and both legs); name the joints "
            "Mixamo- or SMPL-style or pass --mapping map.json"
        )
