"""Retargeting onto rigs built in tests/rigs.py (Mixamo A-pose with fingers, LAFAN-like bones-along-x facing +x in
cm, Unreal-like Z-up cm with a floor root, 4 spine joints and a JSON mapping), from real motions: HumanML3D
012314 (../shared/reference) and a dataset_demo clip. Every check goes through the written BVH file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import MASK_NAME, RES_NAME, make_tiny_runs

import edit_t2m
import gen_t2m
from tests import rigs
from utils.cli import run_cli
from utils.physical import skating
from utils.quaternion import qrot, yaw_quat
from utils.skeleton import get_dataset_spec
from visualization import convert
from visualization.bvh import forward_kinematics, read_bvh, write_bvh
from visualization.joints2bvh import joints_to_bvh, rig_for
from visualization.retarget import bone_direction_errors, load_plan, prepare_rig, rest_pose, retarget, source_index
from visualization.rig_mapping import guess_mapping

T2M = get_dataset_spec("t2m")
DEMO_CLIP = Path(__file__).resolve().parents[1] / "dataset_demo" / "HumanML3D" / "new_joints" / "000000.npy"
RIGS = {
    "mixamo": (rigs.mixamo_rig, None, rigs.MIXAMO_AXES),
    "lafan": (rigs.lafan_rig, None, rigs.LAFAN_AXES),
    "game": (rigs.game_rig, rigs.GAME_MAPPING, rigs.GAME_AXES),
}


@pytest.fixture(scope="module")
def clips(reference_dir: Path) -> dict[str, np.ndarray]:
    return {
        "012314": np.load(reference_dir / "humanml3d" / "new_joints" / "012314.npy").astype(np.float64),
        "demo000000": np.load(DEMO_CLIP).astype(np.float64),
    }


def rig_files(name: str, folder: Path) -> tuple[Path, Path | None]:
    """The rig as a BVH file (and its JSON mapping file when it needs one)."""
    build, mapping, _ = RIGS[name]
    rig_path = write_bvh(folder / f"{name}_rig.bvh", build())
    if mapping is None:
        return rig_path, None
    map_path = folder / f"{name}_map.json"
    map_path.write_text(json.dumps(mapping))
    return rig_path, map_path


def retarget_through_file(joints: np.ndarray, plan, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Retarget, write the BVH, read it back: world positions (T, J_rig, 3) of the file and the root scale (3,)."""
    motion, scale = retarget(joints, plan)
    return forward_kinematics(read_bvh(write_bvh(path, motion)))[0], scale


def skate_ratio(pos: np.ndarray, joints: np.ndarray, plan, axes: np.ndarray, ratio: float) -> float:
    """Foot skating (utils.physical.skating's distance) of rig positions (T, J_rig, 3) over the source's.

    The rig's feet are taken in source axes and units (/ ``ratio``), the clip's lowest foot joint on the floor (the
    dataset's convention, which the source follows already)."""
    rig_of = {T2M.joint_names[i]: j for j, i in plan.mapped.items()}
    rig_feet = (pos @ axes / ratio)[:, [rig_of[n] for n in rigs.FEET]]
    rig_feet[..., 1] -= rig_feet[..., 1].min()
    src_feet = joints[:, [source_index(n, T2M) for n in rigs.FEET]]
    return skating(rig_feet, (0, 1, 2, 3), T2M.fps)[1] / skating(src_feet, (0, 1, 2, 3), T2M.fps)[1]


def test_guess_mapping_prefixes_and_smpl_names() -> None:
    for prefix in ("mixamorig:", "mixamorig1:", "Character1:", ""):
        mapping = guess_mapping((f"{prefix}Hips", f"{prefix}Spine", f"{prefix}Spine1", f"{prefix}LeftToeBase"))
        assert mapping == {
            f"{prefix}Hips": "pelvis",
            f"{prefix}Spine": "spine1",
            f"{prefix}Spine1": "spine2",
            f"{prefix}LeftToeBase": "left_foot",
        }
    assert guess_mapping(("Pelvis", "L_Hip", "R_Knee", "Spine1", "L_Foot")) == {
        "Pelvis": "pelvis",
        "L_Hip": "left_hip",
        "R_Knee": "right_knee",
        "Spine1": "spine1",
        "L_Foot": "left_foot",
    }
    assert guess_mapping(tuple(T2M.joint_names)) == {n: n for n in T2M.joint_names}


@pytest.mark.parametrize("name", list(RIGS))
def test_bone_directions_root_path_and_feet(name: str, clips: dict, tmp_path: Path) -> None:
    rig_path, map_path = rig_files(name, tmp_path)
    plan = load_plan(rig_path, T2M, map_path)
    axes = RIGS[name][2]
    np.testing.assert_allclose(plan.basis, axes, atol=1e-9)  # measured up/left/forward = how it was built
    rest = rest_pose(plan.rig)[0]
    rig_of = {T2M.joint_names[i]: j for j, i in plan.mapped.items()}
    legs = [
        np.linalg.norm(rest[rig_of[f"{s}_knee"]] - rest[rig_of[f"{s}_hip"]])
        + np.linalg.norm(rest[rig_of[f"{s}_ankle"]] - rest[rig_of[f"{s}_knee"]])
        for s in ("left", "right")
    ]
    for clip, joints in clips.items():
        pos, scale = retarget_through_file(joints, plan, tmp_path / f"{clip}.bvh")
        ratio = scale[0]
        src_leg = (
            np.mean(
                [
                    np.linalg.norm(joints[:, a] - joints[:, b], axis=-1).mean()
                    for a, b in ((1, 4), (4, 7), (2, 5), (5, 8))
                ]
            )
            * 2
        )
        assert ratio == pytest.approx(np.mean(legs) / src_leg, rel=1e-9) and scale[2] == ratio
        np.testing.assert_allclose(pos[:, rig_of["pelvis"]], (scale * joints[:, 0]) @ axes.T, atol=1e-4 * ratio)
        # Vertical root scale: the knees bend as the source's (hip-to-ankle distance as a share of the leg).
        share = [
            np.linalg.norm(p[:, a] - p[:, h], axis=-1) / leg
            for p, (h, a), leg in (
                (pos, (rig_of["left_hip"], rig_of["left_ankle"]), legs[0]),
                (pos, (rig_of["right_hip"], rig_of["right_ankle"]), legs[1]),
                (joints, (1, 7), src_leg),
                (joints, (2, 8), src_leg),
            )
        ]
        bend = np.abs(np.array(share[:2]) - np.array(share[2:]))
        assert bend.mean() < 0.01 and bend.max() < 0.05, (bend.mean(), bend.max())
        err = bone_direction_errors(pos, joints, plan)
        assert err.mean() < 2.0 and np.percentile(err, 99) < 8.0, (err.mean(), np.percentile(err, 99))
        # Arms, neck and head follow the source bones exactly (only the legs bend to plant the feet).
        for a, b in (("left_shoulder", "left_elbow"), ("right_elbow", "right_wrist"), ("neck", "head")):
            got = pos[:, rig_of[b]] - pos[:, rig_of[a]]
            want = (joints[:, T2M.joint_names.index(b)] - joints[:, T2M.joint_names.index(a)]) @ axes.T
            cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
            assert np.rad2deg(np.arccos(np.clip(cos, -1, 1))).max() < 0.01
        skate = skate_ratio(pos, joints, plan, axes, ratio)
        print(
            f"{name} {clip}: bone error mean {err.mean():.2f} p99 {np.percentile(err, 99):.2f} deg, "
            f"root scale {ratio:.4g} (vertical {scale[1]:.4g}), foot skate x{skate:.4f} of the source's"
        )
        # The rig keeps the source's footprints (a shorter foot pitches so its heel is no lower than the source's,
        # which would put it within the 5 cm that count as grounded more often): never more than the source's.
        assert skate <= 1.0


def test_same_error_at_every_facing(clips: dict, tmp_path: Path) -> None:
    joints = clips["012314"]
    plan = load_plan(rig_files("mixamo", tmp_path)[0], T2M)
    errors = []
    for degrees in (0, 90, 180, 270):
        turned = qrot(yaw_quat(np.full(joints.shape[:2], np.deg2rad(degrees))), joints)
        pos, _ = retarget_through_file(turned, plan, tmp_path / f"turn{degrees}.bvh")
        errors.append(bone_direction_errors(pos, turned, plan))
    for err in errors[1:]:
        np.testing.assert_allclose(err, errors[0], atol=1e-3)  # degrees
    assert errors[0].max() < 10.0


def test_unmapped_joints_keep_rest_rotation_and_spine_is_distributed(clips: dict, tmp_path: Path) -> None:
    joints = clips["demo000000"]
    plan = load_plan(rig_files("mixamo", tmp_path)[0], T2M)
    motion = read_bvh(write_bvh(tmp_path / "m.bvh", retarget(joints, plan)[0]))
    rig = plan.rig
    fingers = [j for j, n in enumerate(rig.names) if "Hand" in n and n[-1].isdigit() or "Twist" in n or "End" in n]
    assert len(fingers) == 35 and not set(fingers) & set(plan.driven)
    np.testing.assert_allclose(
        motion.rotations[:, fingers], np.repeat(rig.rotations[:1, fingers], len(joints), 0), atol=1e-5
    )
    game_rig, game_map = rig_files("game", tmp_path)
    game = load_plan(game_rig, T2M, game_map)
    spine = [game.driven.index(game.rig.names.index(f"spine_0{k}")) for k in range(1, 5)]
    assert all(len(game.paths[k]) == 5 for k in spine)  # pelvis, spine1..3, neck of the source
    assert np.all(np.diff(game.fractions[spine]) > 0)
    pos, _ = retarget_through_file(joints, game, tmp_path / "g.bvh")
    assert bone_direction_errors(pos, joints, game)[:, [k - 1 for k in spine]].max() < 0.01


def test_kit_source_onto_mixamo(clips: dict, tmp_path: Path) -> None:
    """KIT-ML joints (mm) laid out from the t2m clip's joints: no collars, 2 spine joints; the rig's collars and
    3 spine bones are distributed along the KIT path."""
    kit = get_dataset_spec("kit")
    from_t2m = (0, 3, 9, 12, 15, 16, 18, 20, 17, 19, 21, 1, 4, 7, 10, 10, 2, 5, 8, 11, 11)
    joints = clips["012314"][:, list(from_t2m)] * 1000.0
    joints[:, 15] += [0.0, 0.0, 40.0]
    joints[:, 20] += [0.0, 0.0, 40.0]
    plan = load_plan(rig_files("mixamo", tmp_path)[0], kit)
    collar = plan.rig.names.index("mixamorig:LeftShoulder")
    assert collar in plan.driven and collar not in plan.mapped
    pos, scale = retarget_through_file(joints, plan, tmp_path / "kit.bvh")
    assert scale[0] == pytest.approx(1e-3 * 1.158, rel=0.05)
    err = bone_direction_errors(pos, joints, plan)
    assert err.mean() < 2.0 and np.percentile(err, 99) < 8.0


def test_tpose_rest_for_the_projects_own_bvh(clips: dict) -> None:
    joints = clips["012314"]
    tpose, template = joints_to_bvh(joints, T2M, offsets="tpose"), joints_to_bvh(joints, T2M)
    rig = rig_for(T2M)
    for name, axis in (
        ("LeftForeArm", (1, 0, 0)),
        ("RightHand", (-1, 0, 0)),
        ("LeftLeg", (0, -1, 0)),
        ("Spine2", (0, 1, 0)),
        ("LeftToe", (0, 0, 1)),
    ):
        off = tpose.offsets[rig.names.index(name)]
        np.testing.assert_allclose(off / np.linalg.norm(off), axis, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(tpose.offsets, axis=-1), np.linalg.norm(template.offsets, axis=-1))

    def dirs(m):
        p = forward_kinematics(m)[0]
        v = p[:, 1:] - p[:, list(rig.parents[1:])]
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    limbs = [k - 1 for k, p in enumerate(rig.parents) if p >= 0 and len(rig.children[p]) == 1]
    np.testing.assert_allclose(dirs(tpose)[:, limbs], dirs(template)[:, limbs], atol=1e-4)


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        run_cli(convert.main, argv)
    return exc.value.code, capsys.readouterr().err.strip()


def test_convert_onto_rig_and_bad_rigs(clips: dict, tmp_path: Path, capsys) -> None:
    src = tmp_path / "motion.npy"
    np.save(src, clips["demo000000"].astype(np.float32))
    rig_path, map_path = rig_files("game", tmp_path)
    out = tmp_path / "out.bvh"
    convert.main([str(src), str(out), "--target_rig", str(rig_path), "--mapping", str(map_path)])
    assert read_bvh(out).names == read_bvh(rig_path).names
    before = out.read_bytes()
    capsys.readouterr()
    not_bvh = tmp_path / "notes.bvh"
    not_bvh.write_text("hello")
    bad_map = tmp_path / "bad.json"
    bad_map.write_text(json.dumps({"pelvis": "pelvis", "tail_01": "spine1"}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"pelvis": "hips"}))
    cases = [
        ([str(not_bvh)], "not a BVH file"),
        ([str(rig_path)], "no rig joint maps to"),
        ([str(rig_path), "--mapping", str(bad_map)], "names joints that are not in"),
        ([str(rig_path), "--mapping", str(unknown)], "unknown source joints"),
        ([str(tmp_path / "none.bvh")], "not found"),
    ]
    for extra, message in cases:
        code, err = _cli([str(src), str(out), "--target_rig", *extra], capsys)
        assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert out.read_bytes() == before  # a failed run leaves the output alone


def test_fbx_without_blender_names_the_tool(monkeypatch, tmp_path: Path, capsys, clips: dict) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="needs Blender"):
        prepare_rig("", "", T2M, ["npy", "fbx"])
    src = tmp_path / "motion.npy"
    np.save(src, clips["demo000000"].astype(np.float32))
    code, err = _cli([str(src), str(tmp_path / "out.glb")], capsys)
    assert code == 2 and "needs Blender" in err and "blender" in err and not (tmp_path / "out.glb").exists()


def test_gen_and_edit_write_onto_the_target_rig(tmp_path: Path, capsys) -> None:
    """gen_t2m.py and edit_t2m.py with --target_rig --mapping (tiny untrained runs): the BVH is the rig's, and it is
    the retargeting of the joints .npy written beside it; a bad rig stops edit_t2m.py before any model is loaded."""
    runs = make_tiny_runs(tmp_path / "checkpoints", "t2m")
    rig_path, map_path = rig_files("game", tmp_path)
    plan = load_plan(rig_path, T2M, map_path)
    common = ["--checkpoints_dir", str(runs), "--name", MASK_NAME, "--res_name", RES_NAME, "--device", "cpu"]
    common += ["--target_rig", str(rig_path), "--mapping", str(map_path), "--outputs", "npy,bvh"]
    gen_t2m.main([*common, "--out_dir", str(tmp_path / "gen"), "--text", "a person walks", "--motion_length", "40"])
    generated = tmp_path / "gen" / "text2motion"
    source = generated / "features" / "0" / "sample0_repeat0_len40.npy"
    edit = ["--source_motion", str(source), "--text", "a person jumps", "-msec", "0.5s,1.5s"]
    edit_t2m.main([*common, "--out_dir", str(tmp_path / "edit"), *edit])
    for root in (generated, tmp_path / "edit" / "editing"):
        joints = np.load(root / "joints" / "0" / "sample0_repeat0_len40.npy").astype(np.float64)
        bvh = read_bvh(root / "animations" / "0" / "sample0_repeat0_len40.bvh")
        assert bvh.names == plan.rig.names and bvh.num_frames == 40
        want, _ = retarget_through_file(joints, plan, tmp_path / "want.bvh")
        np.testing.assert_allclose(forward_kinematics(bvh)[0], want, atol=1e-3)  # cm
    not_bvh = tmp_path / "notes.bvh"
    not_bvh.write_text("hello")
    argv = [*common, "--out_dir", str(tmp_path / "bad"), *edit, "--target_rig", str(not_bvh)]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        run_cli(edit_t2m.main, argv)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "not a BVH file" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "bad").exists()


def test_a_shorter_planted_foot_pitches_so_its_heel_is_no_lower() -> None:
    """Closed form: with its toe on the source's toe, a rig foot keeps the source ankle's height where that needs
    at most 5 degrees more pitch; it never pitches to lower the ankle (a longer foot, a toe above the heel)."""
    from visualization.retarget import _MAX_FOOT_PITCH, _pitched_foot

    up = np.array([0.0, 1.0, 0.0])
    src = np.array([[0.0, -0.04, 0.15], [0.0, -0.04, 0.15], [0.0, 0.03, 0.15], [0.0, -0.04, 0.15]])  # ankle -> toe
    lengths = (0.150, 0.30, 0.14, 0.08)  # shorter, longer, shorter with the toe up, far shorter (beyond the cap)
    for v, length in zip(src, lengths):
        d = _pitched_foot(v[None], length, up, _MAX_FOOT_PITCH)[0]
        assert np.linalg.norm(d) == pytest.approx(1.0) and d[0] == pytest.approx(0.0)  # in the foot's plane
        heel_rise = -length * d[1]  # rig ankle above its toe
        unpitched = -length * v[1] / np.linalg.norm(v)
        turn = np.arccos(np.clip(d @ v / np.linalg.norm(v), -1, 1))
        assert heel_rise >= unpitched - 1e-12 and turn <= _MAX_FOOT_PITCH + 1e-12
        if length == 0.150:
            assert heel_rise == pytest.approx(-v[1])  # exactly the source ankle's height
        if length in (0.30, 0.14):
            assert turn == pytest.approx(0.0, abs=1e-6)
        if length == 0.08:
            assert turn == pytest.approx(_MAX_FOOT_PITCH)
