"""Check a BVH file in Blender: import it headless and read back every joint's world position per frame.

Two roles in one file:

* run by Blender (``blender -b -P blender_check.py -- in.bvh out.json``): imports the BVH with Blender's own
  importer (axes unchanged: forward Y, up Z, so coordinates are the file's), then writes
  ``{"names": [...], "positions": [[[x, y, z] per joint] per frame]}`` (pose-bone heads in world space);
* imported from Python: :func:`blender_joint_positions` runs that and returns a NumPy array.

Blender 3.4's importer opens files with mode ``'rU'``, which Python 3.11 rejects, so ``open`` is wrapped to
drop the ``U`` during the import (see shared notes/environment.md). Blender's Python has no NumPy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def blender_joint_positions(bvh_path: str | os.PathLike[str], blender: str = "blender", timeout: float = 600.0):
    """World joint positions of a BVH as Blender sees them: (names, positions (T, J, 3) float64 ndarray)."""
    import numpy as np

    bvh_path = Path(bvh_path).resolve()
    if not bvh_path.is_file():
        raise FileNotFoundError(f"BVH file {bvh_path} not found")
    exe = shutil.which(blender)
    if exe is None:
        raise FileNotFoundError(f"{blender!r} is not on PATH (install Blender, e.g. apt-get install blender)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "positions.json"
        cmd = [exe, "-b", "--factory-startup", "--python-exit-code", "1", "-P", str(Path(__file__).resolve()),
               "--", str(bvh_path), str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stdout + proc.stderr)[-2000:]
            raise RuntimeError(f"Blender failed to import {bvh_path} (exit {proc.returncode}):\n{tail}")
        data = json.loads(out.read_text())
    return data["names"], np.asarray(data["positions"], dtype=np.float64)


def _run_in_blender(bvh_path: str, out_path: str) -> None:
    """Blender side: import, then sample every frame. Only called inside Blender."""
    import builtins

    import bpy  # type: ignore[import-not-found]

    original_open = builtins.open

    def open_without_u(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        return original_open(file, mode.replace("U", ""), *args, **kwargs)

    builtins.open = open_without_u
    try:
        bpy.ops.import_anim.bvh(filepath=bvh_path, global_scale=1.0, frame_start=1, use_fps_scale=False,
                                update_scene_fps=True, update_scene_duration=True, rotate_mode="NATIVE",
                                axis_forward="Y", axis_up="Z")
    finally:
        builtins.open = original_open
    arm = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
    scene = bpy.context.scene
    names = [b.name for b in arm.data.bones]
    action = arm.animation_data.action
    first, last = (int(round(v)) for v in action.frame_range)
    positions = []
    for frame in range(first, last + 1):
        scene.frame_set(frame)
        positions.append([list(arm.matrix_world @ arm.pose.bones[n].head) for n in names])
    with original_open(out_path, "w") as f:
        json.dump({"names": names, "positions": positions}, f)


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 2:
        sys.exit("usage: blender -b -P blender_check.py -- in.bvh out.json")
    _run_in_blender(argv[0], argv[1])
