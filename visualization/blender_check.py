"""Blender headless: read back a motion file's joints, and export FBX / glTF through Blender's own exporters.

Two roles in one file:

* run by Blender (``blender -b -P blender_check.py -- positions in.bvh out.json 0`` or ``-- export in.bvh
  out.fbx out.glb``): imports the file with Blender's own importer (a BVH with axes unchanged: forward Y, up Z, so
  coordinates are the file's; FBX/glTF with their default axis conversion, which undoes the exporters'), then
  writes ``{"names": [...], "positions": [[[x, y, z] per joint] per frame]}`` (pose-bone heads in world space),
  or exports the armature with every frame baked;
* imported from Python: :func:`blender_joint_positions` and :func:`export_with_blender` run that.

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

BLENDER_HINT = "install Blender 3.x (e.g. apt-get install blender) or put the blender binary on PATH"
FORMATS = (".bvh", ".fbx", ".glb", ".gltf")


def find_blender(blender: str = "blender", purpose: str = "this") -> str:
    """The Blender executable, or a FileNotFoundError naming the missing tool and what needs it."""
    exe = shutil.which(blender)
    if exe is None:
        raise FileNotFoundError(f"{purpose} needs Blender, but {blender!r} is not on PATH: {BLENDER_HINT}")
    return exe


def _run_blender(exe: str, args: list[str], what: str, timeout: float) -> None:
    cmd = [exe, "-b", "--factory-startup", "--python-exit-code", "1", "-P", str(Path(__file__).resolve()), "--", *args]
    # A system Blender's embedded Python takes its prefix from the first python3 on PATH: under a pyenv/venv
    # interpreter that would be ours (without Blender's site packages), so Blender's own folder goes first.
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(exe).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0 and "No module named 'numpy'" in proc.stdout + proc.stderr:
        raise FileNotFoundError(
            f"Blender could not {what}: its glTF add-on needs NumPy in Blender's own Python "
            "(Debian/Ubuntu: apt-get install python3-numpy)"
        )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise RuntimeError(f"Blender failed to {what} (exit {proc.returncode}):\n{tail}")


def blender_joint_positions(
    path: str | os.PathLike[str], blender: str = "blender", timeout: float = 600.0, fps: float | None = None
):
    """World joint positions of a .bvh/.fbx/.glb as Blender imports it: (names, positions (T, J, 3) ndarray).

    ``fps``: scene frame rate to import .fbx/.glb at (their animation is stored in seconds; a .bvh sets its own)."""
    import numpy as np

    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"file {path} not found")
    exe = find_blender(blender, f"reading {path.name} in Blender")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "positions.json"
        _run_blender(exe, ["positions", str(path), str(out), str(fps or 0)], f"import {path}", timeout)
        data = json.loads(out.read_text())
    return data["names"], np.asarray(data["positions"], dtype=np.float64)


def export_with_blender(
    bvh_path: str | os.PathLike[str], outputs: list[Path], blender: str = "blender", timeout: float = 600.0
) -> list[Path]:
    """Import a BVH in Blender and export its armature animation to each of ``outputs`` (.fbx, .glb, .gltf).

    Every output is written under a temporary name beside it and renamed into place when Blender succeeded."""
    bad = [str(p) for p in outputs if Path(p).suffix.lower() not in FORMATS[1:]]
    if bad:
        raise ValueError(f"Blender export writes .fbx, .glb or .gltf, not {bad}")
    exe = find_blender(blender, "FBX/glTF export (" + ", ".join(Path(p).suffix for p in outputs) + ")")
    finals = [Path(p).resolve() for p in outputs]
    temps = [p.with_name(f".{p.stem}.{os.getpid()}.tmp{p.suffix}") for p in finals]
    try:
        for p in finals:
            p.parent.mkdir(parents=True, exist_ok=True)
        _run_blender(exe, ["export", str(Path(bvh_path).resolve()), *map(str, temps)], f"export {bvh_path}", timeout)
        for tmp, final in zip(temps, finals):
            os.replace(tmp, final)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    return finals


# ---- inside Blender -------------------------------------------------------------------------------------------
def _import(path: str, fps: float) -> object:
    """Blender side: import one file; returns its armature object."""
    import builtins

    import bpy  # type: ignore[import-not-found]

    ext = Path(path).suffix.lower()
    bpy.ops.wm.read_factory_settings(use_empty=True)  # no default cube / camera / light in the exports
    if fps > 0:
        bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = round(fps), round(fps) / fps
    if ext == ".bvh":
        original_open = builtins.open

        def open_without_u(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
            return original_open(file, mode.replace("U", ""), *args, **kwargs)

        builtins.open = open_without_u
        try:
            bpy.ops.import_anim.bvh(
                filepath=path,
                global_scale=1.0,
                frame_start=1,
                use_fps_scale=False,
                update_scene_fps=True,
                update_scene_duration=True,
                rotate_mode="NATIVE",
                axis_forward="Y",
                axis_up="Z",
            )
        finally:
            builtins.open = original_open
    elif ext == ".fbx":
        bpy.ops.import_scene.fbx(filepath=path)
    elif ext in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=path)
    else:
        raise ValueError(f"cannot import {path}: use one of {FORMATS}")
    return next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")


def _write_positions(path: str, out_path: str, fps: float) -> None:
    """Blender side: import, then every frame's pose-bone heads in world space as JSON."""
    import bpy  # type: ignore[import-not-found]

    arm = _import(path, fps)
    scene = bpy.context.scene
    names = [b.name for b in arm.data.bones]
    first, last = (int(round(v)) for v in arm.animation_data.action.frame_range)
    positions = []
    for frame in range(first, last + 1):
        scene.frame_set(frame)
        positions.append([list(arm.matrix_world @ arm.pose.bones[n].head) for n in names])
    with open(out_path, "w") as f:
        json.dump({"names": names, "positions": positions}, f)


def _export(bvh_path: str, outputs: list[str]) -> None:
    """Blender side: import a BVH, export the armature and its animation, every frame baked."""
    import bpy  # type: ignore[import-not-found]

    arm = _import(bvh_path, 0.0)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = (int(round(v)) for v in arm.animation_data.action.frame_range)
    for out in outputs:
        if out.lower().endswith(".fbx"):
            bpy.ops.export_scene.fbx(
                filepath=out,
                object_types={"ARMATURE"},
                add_leaf_bones=False,
                bake_anim=True,
                bake_anim_use_all_actions=False,
                bake_anim_use_nla_strips=False,
                bake_anim_simplify_factor=0.0,
            )
        else:
            kind = "GLB" if out.lower().endswith(".glb") else "GLTF_EMBEDDED"
            bpy.ops.export_scene.gltf(
                filepath=out, export_format=kind, export_animations=True, export_force_sampling=True
            )


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if len(argv) == 4 and argv[0] == "positions":
        _write_positions(argv[1], argv[2], float(argv[3]))
    elif len(argv) >= 3 and argv[0] == "export":
        _export(argv[1], argv[2:])
    else:
        sys.exit(
            "usage: blender -b -P blender_check.py -- positions in.(bvh|fbx|glb) out.json fps | "
            "export in.bvh out.fbx [out.glb ...]"
        )
