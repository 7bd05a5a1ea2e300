"""Spatial control: specification parsing, objectives (closed forms), the optimiser on tiny untrained runs, CLIs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from evaluator_helpers import write_small_evaluator
from tiny_runs import MASK_NAME, RES_NAME, make_tiny_runs

import edit_t2m
import gen_t2m
from evaluation.benchmark import EvalBatch
from evaluation.control import ControlTally, control_generator
from models.control import (
    Control,
    ControlSettings,
    ControlSpec,
    FloorObjective,
    keyframes_from_json,
)
from models.control.objectives import PlantedFeet, TargetObjective, target_distances
from models.control.optimise import YAW_UNIT, Controller, gaussian_smoother, moved_root
from models.control.spec import parse_frames, targets_from_motion
from models.pipeline import MoMaskPipeline, Sampling
from utils.cli import run_cli
from utils.motion import recover_from_ric, recover_root_rot_pos
from utils.physical import foot_joints, skating
from utils.skeleton import get_dataset_spec
from visualization.control_input import read_control
from visualization.joints2bvh import save_bvh

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
T2M, KIT = get_dataset_spec("t2m"), get_dataset_spec("kit")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_runs(tmp_path_factory.mktemp("checkpoints"), "t2m")


@pytest.fixture(scope="module")
def pipe(runs: Path) -> MoMaskPipeline:
    return MoMaskPipeline.from_checkpoints(runs, "t2m", MASK_NAME, RES_NAME)


# ---- specification ---------------------------------------------------------------------------------------------
def test_joint_names_aliases_and_indices() -> None:
    assert T2M.joint_index("Left_Wrist") == 20 and T2M.joint_index(15) == T2M.joint_index("head") == 15
    assert KIT.joint_index("pelvis") == 0 and KIT.joint_index("left_wrist") == KIT.joint_index("LW") == 7
    with pytest.raises(ValueError, match="unknown joint 'elbow' for t2m"):
        T2M.joint_index("elbow")
    with pytest.raises(ValueError, match="out of range"):
        KIT.joint_index(21)


def test_keyframes_in_frames_seconds_and_fractions() -> None:
    spec = keyframes_from_json(
        {
            "keyframes": [
                {"joint": "pelvis", "frame": "2s", "position": [0.5, None, 1.0]},
                {"joint": 21, "frame": "0.5", "position": [0, 1, 2]},
                {"joint": "head", "frame": 3, "position": [1, 1.6, 0]},
            ]
        },
        T2M,
        total_frames=100,
    )
    assert spec.targets.shape == (100, 22, 3)
    np.testing.assert_array_equal(spec.targets[40, 0], [0.5, np.nan, 1.0])  # 2 s at 20 fps
    np.testing.assert_array_equal(spec.targets[50, 21], [0, 1, 2])  # half of 100 frames
    assert spec.mask.sum() == 3 and spec.last_frame == 50 and spec.joints == [0, 15, 21]


@pytest.mark.parametrize(
    "item,message",
    [
        ({"joint": "tail", "frame": 0, "position": [0, 0, 0]}, "unknown joint 'tail'"),
        ({"joint": "pelvis", "frame": 120, "position": [0, 0, 0]}, "frame 120 is outside the motion's 100 frames"),
        ({"joint": "pelvis", "frame": "9s", "position": [0, 0, 0]}, r"frame 180 \('9s'\) is outside .* use 0..99 "),
        ({"joint": "pelvis", "frame": 0, "position": [0, 0]}, r"'position' must be \[x, y, z\]"),
        ({"joint": "pelvis", "frame": 0, "position": [None, None, None]}, "every control target is NaN"),
    ],
)
def test_bad_keyframes(item: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        keyframes_from_json([item], T2M, total_frames=100)


def test_targets_of_another_dataset_and_shapes() -> None:
    with pytest.raises(ValueError, match="21 joints .a kit skeleton. but the model's dataset t2m has 22"):
        ControlSpec(np.zeros((10, 21, 3))).check(T2M)
    with pytest.raises(ValueError, match=r"shape \(frames, joints, 3\)"):
        ControlSpec(np.zeros((10, 22)))
    with pytest.raises(ValueError, match="frame 9 is controlled but the motion has 8 frames"):
        ControlSpec(np.zeros((10, 22, 3))).check(T2M, 8)


def test_targets_from_motion_move_frames() -> None:
    joints = np.random.default_rng(0).normal(size=(30, 22, 3)).astype(np.float32)
    spec = targets_from_motion(joints, T2M, [0, 20], [5, 6], at=[40])
    assert spec.targets.shape == (42, 22, 3) and spec.mask.sum() == 4
    np.testing.assert_array_equal(spec.targets[41, 20], joints[6, 20])
    assert parse_frames("0,1s,0.5", 30, 20.0) == [0, 20, 15]
    with pytest.raises(ValueError, match="outside 0..29"):
        parse_frames("31", 30, 20.0)


# ---- objectives ------------------------------------------------------------------------------------------------
def test_target_distance_ignores_free_axes() -> None:
    joints = torch.zeros(1, 2, 22, 3)
    targets = torch.full((1, 2, 22, 3), float("nan"))
    targets[0, 0, 0] = torch.tensor([3.0, float("nan"), 4.0])  # XZ only: 5 m away whatever y is
    targets[0, 1, 20] = torch.tensor([0.0, 1.0, 0.0])
    joints[0, 0, 0, 1] = 7.0
    dist, controlled = target_distances(joints, targets)
    assert controlled.sum() == 2
    assert dist[0, 0, 0].item() == pytest.approx(5.0) and dist[0, 1, 20].item() == pytest.approx(1.0)
    loss = TargetObjective(targets)(joints, torch.ones(1, 2, dtype=torch.bool))
    assert loss.item() == pytest.approx(3.0)


def test_smooth_target_distance_is_pseudo_huber() -> None:
    joints = torch.zeros(1, 1, 22, 3)
    targets = torch.full((1, 1, 22, 3), float("nan"))
    targets[0, 0, 3] = torch.tensor([0.03, 0.0, 0.04])  # 5 cm away
    dist, _ = target_distances(joints, targets, smooth=0.01)
    assert dist[0, 0, 3].item() == pytest.approx(np.sqrt(0.05**2 + 0.01**2) - 0.01, rel=1e-5)
    assert dist.sum().item() == pytest.approx(dist[0, 0, 3].item())
    valid = torch.ones(1, 1, dtype=torch.bool)
    assert TargetObjective(targets, 0.01)(joints, valid).item() < TargetObjective(targets)(joints, valid).item()


def test_planted_feet_closed_form() -> None:
    """A foot on the floor in the reference that slides 3 cm per frame costs its excess over the slack; the same
    slide of a foot in the air, or on a padded frame, costs nothing."""
    reference = torch.zeros(1, 4, 22, 3)
    reference[0, :, 10, 1] = 0.5  # foot joint 10 is in the air, 7 on the floor
    moved = reference.clone()
    moved[0, :, [7, 10], 0] = torch.arange(4.0)[:, None] * 0.03
    planted = PlantedFeet(reference, [7, 10], height=0.05, slack=0.01)
    valid = torch.ones(1, 4, dtype=torch.bool)
    assert planted(reference, valid).item() == 0.0
    assert planted(moved, valid).item() == pytest.approx(0.03 - 0.01, rel=1e-4)  # 3 steps of foot 7 over 3 steps
    valid[0, 3] = False
    assert planted(moved, valid).item() == pytest.approx(0.02, rel=1e-4)


def test_root_offset_moves_each_frame_by_its_own_parameter() -> None:
    """The polish's root parameters are a world position and half-yaw per frame: added to a real clip's rate
    channels, each alone moves (turns) the recovered root by exactly that much at every frame after the first,
    which stays at the origin facing +Z; a rate parameterisation would move every later frame instead."""
    feats = torch.as_tensor(np.load(REPO / "dataset_demo/HumanML3D/new_joint_vecs/000002.npy"))[:40].float()
    offset = torch.as_tensor(np.random.default_rng(1).normal(size=(1, 40, 3)), dtype=torch.float32)
    offset[:, 0] = 0.0  # frame 0's parameters are ignored
    facing, pos = recover_root_rot_pos(feats[None])
    for axes in ([1, 2], [0]):
        alone = torch.zeros_like(offset)
        alone[..., axes] = offset[..., axes]
        moved = feats[None].clone()
        moved[..., :3] = moved_root(moved[..., :3], alone, 0.2)
        new_facing, new_pos = recover_root_rot_pos(moved)
        if axes == [0]:
            turn = torch.atan2(new_facing[..., 2], new_facing[..., 0]) - torch.atan2(facing[..., 2], facing[..., 0])
            turn = torch.remainder(turn + np.pi, 2 * np.pi) - np.pi
            np.testing.assert_allclose(turn, YAW_UNIT * offset[..., 0], atol=2e-5)
            np.testing.assert_allclose(new_pos, pos, atol=2e-5)  # a turn of the root alone does not move it
        else:
            np.testing.assert_allclose((new_pos - pos)[..., [0, 2]], 0.2 * offset[..., 1:], atol=2e-5)
            np.testing.assert_allclose(new_facing, facing, atol=1e-6)


def test_polish_follows_a_dense_path_in_few_passes(pipe: MoMaskPipeline) -> None:
    """A dense pelvis path swinging 20 cm off a real walk: the polish alone meets it (1 cm) within 25 loss
    evaluations (the rate parameterisation it replaced needed 39), and adds no foot sliding on the clip's grounded
    steps beyond the slack of PlantedFeet."""
    feats = torch.as_tensor(np.load(REPO / "dataset_demo/HumanML3D/new_joint_vecs/000000.npy"))[:96].float()
    joints = recover_from_ric(feats, 22).numpy()
    targets = np.full_like(joints, np.nan)
    swing = 0.2 * np.sin(np.arange(96) / 96 * 2 * np.pi)[:, None] * np.array([1.0, 0.0, 1.0])
    targets[:, 0] = joints[:, 0] + swing
    stages: list[str] = []
    control = Control(ControlSpec(targets), progress=lambda f, s: stages.append(s))
    ctl = Controller(pipe, [control], torch.tensor([24]))
    with torch.no_grad():
        out = recover_from_ric(ctl.polish(feats[None]), 22)
    assert float(ctl.errors(out)[0]) <= 0.01 and stages.count("polish") <= 25
    feet = foot_joints(T2M)
    before = PlantedFeet(torch.as_tensor(joints)[None], feet, height=0.05)
    assert before(out, torch.ones(1, 96, dtype=torch.bool)).item() < 0.002


def test_floor_objective_closed_form() -> None:
    joints = torch.zeros(1, 4, 22, 3)
    joints[0, 1, 3, 1] = -0.1
    joints[0, 3, 5, 1] = -0.3  # on a padded frame: ignored
    valid = torch.tensor([[True, True, True, False]])
    assert FloorObjective()(joints, valid).item() == pytest.approx(0.1 + 0.1 / 3)


# ---- the optimiser -----------------------------------------------------------------------------------------------
def test_control_meets_targets_the_free_motion_misses(pipe: MoMaskPipeline) -> None:
    free = pipe.generate(["a person walks"], [48], seed=3)[0]
    targets = np.full((48, 22, 3), np.nan, np.float32)
    targets[6::12, 0] = free.joints[6::12, 0] + np.array(
        [0.08, 0.0, -0.06], np.float32
    )  # 10 cm off (frame 0 is always over the origin)
    ctl = pipe.generate(["a person walks"], [48], seed=3, control=Control(ControlSpec(targets)))[0]
    err = np.linalg.norm(ctl.joints[6::12, 0] - targets[6::12, 0], axis=-1).mean()
    assert err < 0.03 and ctl.control_error == pytest.approx(err, abs=1e-4)
    assert ctl.joints.shape == free.joints.shape and ctl.features.shape == free.features.shape


def test_reported_error_is_that_of_the_returned_joints_after_cleanup(pipe: MoMaskPipeline) -> None:
    targets = np.full((48, 22, 3), np.nan, np.float32)
    targets[10, 0] = [3.0, np.nan, 4.0]  # XZ only
    spec = ControlSpec(targets)
    joints = np.zeros((48, 22, 3), np.float32)
    joints[10, 0, 1] = 9.0
    assert spec.error(joints) == pytest.approx(5.0) and np.isnan(spec.error(joints[:5]))
    free = pipe.generate(["a person walks"], [48], seed=3)[0]
    dense = np.full((48, 22, 3), np.nan, np.float32)
    dense[:, 0] = free.joints[:, 0] + np.array([0.1, 0.0, 0.0], np.float32)
    ctl = Control(ControlSpec(dense))
    raw, cleaned = (pipe.generate(["a person walks"], [48], seed=3, control=ctl, cleanup=c)[0] for c in (False, True))
    assert not np.allclose(raw.joints, cleaned.joints, atol=1e-3)  # the clean-up moved the motion
    for motion in (raw, cleaned):
        err = np.linalg.norm(motion.joints[:, 0] - dense[:, 0], axis=-1).mean()
        assert motion.control_error == pytest.approx(err, abs=1e-5)
    # ... but not the controlled path: the clean-up is pinned back to the targets (one joint a frame: exactly).
    assert cleaned.control_error < 1e-5 < raw.control_error


def test_floor_objective_from_python(pipe: MoMaskPipeline) -> None:
    free = pipe.generate(["a person crawls"], [40], seed=1)[0]
    floor = float(np.quantile(free.joints[..., 1], 0.1))  # untrained: joints stay within a few cm of y = 0
    ctl = pipe.generate(
        ["a person crawls"],
        [40],
        seed=1,
        control=Control(objectives=[FloorObjective(floor)], settings=ControlSettings(refine_iters=150, tolerance=5e-4)),
    )[0]
    dip_free, dip_ctl = floor - free.joints[..., 1].min(), floor - ctl.joints[..., 1].min()
    assert dip_free > 0.005 and dip_ctl < dip_free / 2
    assert ctl.control_error is None  # the demo model meets a real floor: benchmarks/bench_control.py


def test_gaussian_smoother_closed_form() -> None:
    smoother = gaussian_smoother(9, 2.0, torch.zeros(()))
    np.testing.assert_allclose(smoother.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(smoother @ torch.full((9, 2), 3.0), 3.0, rtol=1e-6)
    row = np.exp(-0.5 * ((np.arange(9) - 4) / 2.0) ** 2)
    np.testing.assert_allclose(smoother[4], row / row.sum(), rtol=1e-6)


def test_polish_alone_hits_a_whole_body_pose_and_leaves_earlier_frames(pipe: MoMaskPipeline) -> None:
    """Without the decoder stages, the position-channel polish puts all 22 joints of frame 30 on a pose 6 cm off
    the free motion's, and the body pose of frames more than 5 sigma before it does not move."""
    free = pipe.generate(["a person kicks"], [48], seed=2)[0]
    targets = np.full((48, 22, 3), np.nan, np.float32)
    shift = np.random.default_rng(0).normal(size=(22, 3)).astype(np.float32)
    targets[30] = free.joints[30] + 0.06 * shift / np.linalg.norm(shift, axis=-1, keepdims=True)
    settings = ControlSettings(guide_iters=0, residual_iters=0, refine_iters=0, polish_sigma=2.0)
    ctl = pipe.generate(["a person kicks"], [48], seed=2, control=Control(ControlSpec(targets), settings=settings))[0]
    assert np.linalg.norm(ctl.joints[30] - targets[30], axis=-1).mean() < 0.01
    # Earlier frames: the path may bend (root velocities anywhere before frame 30 move it), the body pose not.
    local_ctl, local_free = ctl.joints[:20] - ctl.joints[:20, :1], free.joints[:20] - free.joints[:20, :1]
    assert np.abs(local_ctl - local_free).max() < 2e-3
    assert np.abs(ctl.joints[:20] - free.joints[:20]).max() < 0.03


def test_estimated_length_grows_to_cover_targets(pipe: MoMaskPipeline) -> None:
    targets = np.full((150, 22, 3), np.nan, np.float32)
    targets[149, 0] = [0.0, 0.9, 1.0]
    steps = []
    motion = pipe.generate(
        ["walk"], seed=0, control=Control(ControlSpec(targets), progress=lambda f, s: steps.append(f))
    )[0]
    assert motion.num_frames >= 150 and steps[-1] == 1.0
    with pytest.raises(ValueError, match="frame 149 is controlled but the motion has 100 frames"):
        pipe.generate(["walk"], [100], control=Control(ControlSpec(targets)))


def test_edit_controls_only_inside_spans(pipe: MoMaskPipeline) -> None:
    """Targets inside the exact frame span are met on the blended output; the source is kept outside it; a target
    outside the span (even inside the tokens that cover it) is refused."""
    source = pipe.generate(["walk"], [64], seed=0)[0]
    targets = np.full((64, 22, 3), np.nan, np.float32)
    targets[32, 0] = source.joints[32, 0] + np.array([0.1, 0.0, 0.0], np.float32)  # ramps: test_edit_cli_control
    edited = pipe.edit(source.features, "jump", [(13, 51)], seed=0, control=Control(ControlSpec(targets)))
    err = np.linalg.norm(edited.joints[32, 0] - targets[32, 0])
    assert err < 0.03 and edited.control_error == pytest.approx(err, abs=1e-4)
    np.testing.assert_array_equal(edited.features[:13], source.features[:13])
    np.testing.assert_array_equal(edited.features[51:], source.features[51:])
    kept = pipe.encode_motion(source.features)[0, :16].numpy()
    np.testing.assert_array_equal(edited.tokens[:3], kept[:3])
    np.testing.assert_array_equal(edited.tokens[13:], kept[13:])
    for frame in (12, 51, 60):  # 12 and 51 are in regenerated tokens but kept source frames
        outside = np.full((64, 22, 3), np.nan, np.float32)
        outside[frame, 0] = 0.0
        with pytest.raises(ValueError, match=rf"frame\(s\) \[{frame}\] are controlled but outside the edited spans "):
            pipe.edit(source.features, "jump", [(13, 51)], control=Control(ControlSpec(outside)))


# ---- files and CLIs -------------------------------------------------------------------------------------------
def _args(runs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--checkpoints_dir",
        str(runs),
        "--dataset_name",
        "t2m",
        "--name",
        MASK_NAME,
        "--res_name",
        RES_NAME,
        "--out_dir",
        str(out),
        "--device",
        "cpu",
        *extra,
    ]


def test_gen_cli_keyframes_and_motion_file(runs: Path, tmp_path: Path, pipe: MoMaskPipeline) -> None:
    free = pipe.generate(["wave"], [40], seed=10107)[0].joints  # what gen_t2m makes without control
    target = (free[20, 20] + [0.06, 0.0, 0.0]).tolist()
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps([{"joint": "left_wrist", "frame": "1s", "position": target}]))
    gen_t2m.main(_args(runs, tmp_path / "a", "--text", "wave", "--motion_length", "40", "--control", str(keys)))
    joints = np.load(tmp_path / "a/text2motion/joints/0/sample0_repeat0_len40.npy")
    assert np.linalg.norm(joints[20, 20] - target) < 0.02
    assert (tmp_path / "a/text2motion/animations/0/sample0_repeat0_len40.bvh").is_file()
    # "hit the pose of frame 10 of this BVH at 1 s": all joints, the BVH first put in the generated frame.
    bvh = save_bvh(joints, tmp_path / "src.bvh", T2M)
    spec = read_control(bvh, T2M, joints="all", frames="10", at="1s")
    assert spec.mask.sum() == 22 and spec.last_frame == 20


@pytest.mark.parametrize(
    "content,message",
    [
        ('[{"joint": "tail", "frame": 0, "position": [0, 0, 0]}]', "unknown joint 'tail'"),
        ('[{"joint": "pelvis", "frame": 90, "position": [0, 0, 0]}]', "frame 90 is outside the motion's 40 frames"),
        ("not json", "not a JSON keyframe file"),
    ],
)
def test_bad_control_exits_2_and_writes_nothing(
    runs: Path, tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture
) -> None:
    """In process through the scripts' own wrapper (the real script once, in test_bad_control_from_the_shell)."""
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    args = _args(runs, tmp_path / "out", "--text", "walk", "--motion_length", "40", "--control", str(bad))
    with pytest.raises(SystemExit) as exit_:
        run_cli(gen_t2m.main, args)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # a subprocess start of torch; tests/test_bad_inputs_cli.py runs gen_t2m's refusal in the default run
def test_bad_control_from_the_shell(runs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"joint": "tail", "frame": 0, "position": [0, 0, 0]}]')
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "gen_t2m.py"),
            *_args(runs, tmp_path / "out", "--text", "walk", "--motion_length", "40", "--control", str(bad)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2 and "unknown joint 'tail'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "array,message",
    [
        (np.full((40, 22, 3), np.nan), "every control target is NaN"),
        (np.where(np.arange(40)[:, None, None] == 0, 0.0, np.nan) * np.ones((40, 21, 3)), "a kit skeleton"),
        (np.full((40, 22, 2), np.nan), r"shape \(frames, joints, 3\)"),
    ],
)
def test_bad_target_arrays(runs: Path, tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = tmp_path / "targets.npy"
    np.save(path, array.astype(np.float32))
    with pytest.raises(ValueError, match=message):
        gen_t2m.main(_args(runs, tmp_path / "out", "--text", "walk", "--control", str(path)))
    assert not (tmp_path / "out").exists()


def test_edit_cli_control(runs: Path, tmp_path: Path, pipe: MoMaskPipeline) -> None:
    source = pipe.generate(["walk"], [64], seed=0)[0]
    np.save(tmp_path / "src.npy", source.features)
    targets = np.full((64, 22, 3), np.nan, np.float32)
    targets[24, 0] = source.joints[24, 0] + np.array([0.1, 0.0, 0.0], np.float32)
    np.save(tmp_path / "t.npy", targets)
    edit_t2m.main(
        _args(
            runs,
            tmp_path / "e",
            "--source_motion",
            str(tmp_path / "src.npy"),
            "--text",
            "jump",
            "-msec",
            "16,48",
            "--control",
            str(tmp_path / "t.npy"),
            "--outputs",
            "npy",
        )
    )
    out = np.load(tmp_path / "e/editing/joints/0/sample0_repeat0_len64.npy")
    # Frame 24 lies in the crossfade ramp (weight ~0.5 once it widens to 16 frames): refined through the blend.
    assert np.linalg.norm(out[24, 0] - targets[24, 0]) < 0.05
    np.testing.assert_array_equal(out[:16], source.joints[:16])


def test_web_demo_follows_an_uploaded_path(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    from visualization.webapp import DemoService

    service = DemoService({"tiny": pipe}, tmp_path / "work", video_size=64)
    source = pipe.generate(["run"], [40], seed=5)[0]
    np.save(tmp_path / "path.npy", source.features)
    seen: list[float] = []
    path = str(tmp_path / "path.npy")
    raw = service.generate("tiny", "walk", 40, False, 1, cleanup=False, control=path)
    pelvis_error = np.linalg.norm(np.load(raw.joints)[:, 0] - source.joints[:, 0], axis=-1).mean()
    assert pelvis_error < 0.02
    # The page's default clean-up runs after the control, pinned back to its targets.
    result = service.generate("tiny", "walk", 40, False, 1, control=path, progress=lambda f, stage: seen.append(f))
    joints = np.load(result.joints)
    assert np.linalg.norm(joints[:, 0] - source.joints[:, 0], axis=-1).mean() <= pelvis_error + 1e-4
    assert "cm from their targets" in result.message and seen and seen[-1] == 1.0
    (tmp_path / "bad.json").write_text('[{"joint": "tail", "frame": 0, "position": [0, 0, 0]}]')
    with pytest.raises(ValueError, match="control file 'bad.json': .*unknown joint 'tail'") as err:
        service.generate("tiny", "walk", 40, False, 1, control=str(tmp_path / "bad.json"))
    assert str(tmp_path) not in str(err.value)


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="blender not on PATH")
def test_controlled_demo_motion_imports_into_blender(tmp_path: Path) -> None:
    """The embedded demo model under 3 pelvis keyframes: the BVH Blender reads puts the pelvis on them."""
    from visualization.blender_check import blender_joint_positions
    from visualization.joints2bvh import rig_for

    keys = [
        {"joint": "pelvis", "frame": f, "position": p}
        for f, p in ((20, [0.0, None, 0.6]), (40, [0.2, None, 1.3]), (60, [0.5, None, 2.0]))
    ]  # XZ only
    (tmp_path / "keys.json").write_text(json.dumps(keys))
    gen_t2m.main(
        [
            "--text",
            "a person walks forward",
            "--motion_length",
            "80",
            "--control",
            str(tmp_path / "keys.json"),
            "--out_dir",
            str(tmp_path),
            "--device",
            "cpu",
        ]
    )
    names, pos = blender_joint_positions(tmp_path / "text2motion/animations/0/sample0_repeat0_len80.bvh")
    pelvis = pos[:, names.index(rig_for(T2M).names[0])]
    for key in keys:
        assert np.linalg.norm(pelvis[key["frame"], [0, 2]] - np.array(key["position"])[[0, 2]]) < 0.03
    joints = np.load(tmp_path / "text2motion/joints/0/sample0_repeat0_len80.npy")  # the npy written beside it
    assert pos.shape[0] == joints.shape[0] == 80
    np.testing.assert_allclose(pelvis, joints[:, 0], atol=0.01)


def test_control_tally_closed_form_and_the_one_skate_ratio() -> None:
    joints = np.zeros((20, 22, 3), np.float32)
    joints[:, :, 0] = np.arange(20)[:, None] * 0.04  # everything slides 4 cm a frame (0.8 m/s) on the floor
    targets = np.full_like(joints, np.nan)
    targets[5, 0] = joints[5, 0] + [0.0, 0.0, 0.6]  # 60 cm off: a miss
    targets[9, 20] = joints[9, 20] + [0.0, 0.1, 0.0]  # 10 cm off
    tally = ControlTally()
    tally.add(joints, targets, T2M)
    values = tally.values()
    assert values["Traj_err"] == 1.0 and values["Loc_err"] == 0.5
    assert values["Avg_err"] == pytest.approx(0.35)
    assert values["Skating"] == skating(joints, foot_joints(T2M), T2M.fps)[0] == 1.0


def test_benchmark_generator_controls_with_the_ground_truth(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    """The control benchmark's generate function: targets from each batch's ground-truth joints, R repeats of a
    batch in one call (the evaluation loop's contract), errors tallied per motion."""
    evaluator = write_small_evaluator(tmp_path)
    gt = [m.features for m in pipe.generate(["run", "walk"], [40, 32], seed=4)]
    motions = torch.zeros(2, 40, 263)
    for b, f in enumerate(gt):
        motions[b, : len(f)] = evaluator.normalize(torch.as_tensor(f))
    batch = EvalBatch(torch.zeros(2, 5, 300), torch.zeros(2, 5, 15), ["walk", "run"], torch.tensor([5, 5]), motions,
                      torch.tensor([40, 32]), ["", ""])  # fmt: skip
    errors = {}
    for controlled in (False, True):
        tally = ControlTally()
        generate = control_generator(
            pipe, Sampling(), evaluator, "pelvis", "5", np.random.default_rng(0), tally, controlled=controlled
        )
        feats, lens = generate(batch, False, 2)
        assert feats.shape[0] == 4 and lens.tolist() == [40, 32, 40, 32] and tally.motions == 4
        assert tally.entries == 20
        errors[controlled] = tally.values()["Avg_err"]
    assert errors[True] < 0.02 < errors[False]


@pytest.mark.slow
def test_demo_model_hits_a_bvh_pose_and_keeps_off_the_floor(tmp_path: Path) -> None:
    """The embedded demo model: "hit the pose of frame 30 of this BVH at 2 s" puts all 22 joints within 3 cm
    (mean) of that pose; a floor objective keeps every joint above y = -1 cm where free generation dips lower."""
    demo = MoMaskPipeline.demo()
    clip = demo.DEMO_DATASET / "new_joints" / "000015.npy"  # a high kick
    caption = (demo.DEMO_DATASET / "texts" / "000015.txt").read_text().split("#")[0]
    pose = read_control(save_bvh(np.load(clip), tmp_path / "kick.bvh", T2M), T2M, total_frames=120, joints="all",
                        frames="30", at="2s")  # fmt: skip
    errors = [
        np.linalg.norm(demo.generate([caption], [120], seed=0, control=c)[0].joints[40] - pose.targets[40], axis=-1)
        for c in (None, Control(pose))
    ]
    assert errors[1].mean() < 0.03 < errors[0].mean()
    getup = "a person lying face down gets up"  # free, this seed goes 8 cm under the floor (the crawl no longer does)
    free = demo.generate([getup], [120], seed=0)[0]
    floor = demo.generate([getup], [120], seed=0, control=Control(objectives=[FloorObjective(0.0)]))[0]
    assert free.joints[..., 1].min() < -0.01 <= floor.joints[..., 1].min()
