"""The embedded demo model (checkpoints/demo, trained by prepare/train_demo.sh on dataset_demo).

It must work offline right after install, follow its captions, and say when a caption is unlike anything it knows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.pipeline import MoMaskPipeline
from models.transformer.build import RunSampling
from utils.checkpoint import load_checkpoint
from utils.physical import AIRBORNE_HEIGHT, GRAVITY, min_flight_frames, true_runs, vertical_acceleration
from utils.skeleton import T2M_JOINT_NAMES
from visualization.bvh import read_bvh

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "dataset_demo" / "HumanML3D"

# caption -> the demo clips it describes (the two straight walks are one action)
CAPTIONS = {
    "a person walks forward": ("000000", "000001"),
    "a person runs forward": ("000006",),
    "a person jumps forward again and again": ("000007",),
    "a person does backflips in a row": ("000008",),
    "a person does a cartwheel to their left": ("000009",),
    "a person crawls forward on hands and knees": ("000010",),
    "a person kicks high with their right leg": ("000015",),
    "a person spins around acrobatically": ("000018",),
}
SEEDS = 5
LENGTHS = (40, 80, 120, 160, 196)  # frames; the web demo and gen_t2m offer 4..196


@pytest.fixture(scope="module")
def pipe() -> MoMaskPipeline:
    return MoMaskPipeline.demo()


def _descriptors(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-frame pose + root-motion descriptors in the canonical (facing) frame: feature dims 0..66
    (root rotation/linear velocity, root height, root-relative joint positions), normalised."""
    return ((features - mean) / std)[:, :67]


def _chamfer(a: np.ndarray, b: np.ndarray) -> float:
    d = np.linalg.norm(a[:, None] - b[None], axis=-1)
    return float(d.min(axis=1).mean() + d.min(axis=0).mean())


def test_checkpoints_are_small_and_load_weights_only() -> None:
    """The generation model (VQ, masked, residual, length estimator) is at most 20 MB; every file loads with
    weights_only=True and holds no optimizer state (release files made by prepare/strip_checkpoint.py)."""
    root = MoMaskPipeline.DEMO_CHECKPOINTS / "t2m"
    runs = ("rvq_demo", "mtrans_demo", "rtrans_demo", "length_estimator")
    model_files = [f for run in runs for f in (root / run / "model").glob("*.tar")]
    assert len(model_files) == 4 and sum(f.stat().st_size for f in model_files) <= 20 * 2**20
    for f in sorted(root.rglob("*.tar")):
        assert not any(k.startswith("opt_") for k in load_checkpoint(f))  # load_checkpoint: weights_only=True
    for run in runs:
        assert (root / run / "opt.txt").is_file()


def _references() -> tuple[np.ndarray, np.ndarray, dict[str, list[np.ndarray]]]:
    mean, std = np.load(DATA / "Mean.npy"), np.load(DATA / "Std.npy")
    clips = sorted(p.stem for p in (DATA / "new_joint_vecs").glob("[0-9]*.npy"))
    refs = {
        c: [_descriptors(np.load(DATA / "new_joint_vecs" / f"{m}{c}.npy"), mean, std) for m in ("", "M")] for c in clips
    }
    return mean, std, refs


def _head_over_pelvis(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> (T,) height of the head (joint 15) above the pelvis (joint 0), m."""
    return joints[:, 15, 1] - joints[:, 0, 1]


WRISTS = tuple(T2M_JOINT_NAMES.index(n) for n in ("left_wrist", "right_wrist"))


def _envelope(clips: tuple[str, ...]) -> tuple[float, float, float, float]:
    """What the caption's own clips do: the highest the lowest joint gets (m; jumps and flips leave the floor),
    the fraction of frames with the head below the pelvis (flips, cartwheels), the lowest the head gets
    relative to the pelvis (m; a crawl keeps it 3 cm above) and the lowest a wrist gets (m; 0 in a cartwheel)."""
    joints = [np.load(DATA / "new_joints" / f"{c}.npy") for c in clips]
    return (
        max(float(j[..., 1].min(axis=1).max()) for j in joints),
        max(float((_head_over_pelvis(j) < 0).mean()) for j in joints),
        min(float(_head_over_pelvis(j).min()) for j in joints),
        min(float(j[:, WRISTS, 1].min()) for j in joints),
    )


FPS = 20.0  # HumanML3D


def _floating(lowest: np.ndarray, joints: np.ndarray, cap: float) -> str:
    """Why a motion is off the floor in a way its clips are not ('' if it is not): every stretch of frames with
    each joint more than AIRBORNE_HEIGHT (10 cm) up that goes higher than ``cap`` must be a ballistic flight,
    at least min_flight_frames (0.25 s) long with the body falling at g/2 or more (a free flight falls at g; the clips'
    flights fit -5.1 .. -9.8 m/s^2). A body that stays up longer than its height allows, or rises, is hovering.
    Stricter than :func:`utils.physical.hover_frames`: no caption here stands on a box."""
    for start, end in true_runs(lowest > AIRBORNE_HEIGHT):
        peak = float(lowest[start:end].max())
        if peak <= cap:
            continue
        if end - start < min_flight_frames(FPS):
            return f"lowest joint {peak:.2f} m above the floor for {end - start} frames (clips: {cap - 0.10:.2f})"
        accel = vertical_acceleration(joints[start:end], FPS)
        if accel > -GRAVITY / 2:
            return (
                f"hovering: lowest joint up to {peak:.2f} m above the floor in frames {start}-{end}, falling at "
                f"{-accel:.1f} m/s^2 (clips: {cap - 0.10:.2f} m; a flight falls at g)"
            )
    return ""


def tumbles(joints: np.ndarray, clips: tuple[str, ...]) -> str:
    """'' if a generated motion (T, 22, 3) stays upright and grounded like the caption's own clips, else why.

    Grounded: on every frame the lowest joint is within 10 cm of the floor (y = 0), or at most 10 cm above the
    highest the clips' lowest joint gets, or inside a ballistic flight (:func:`_floating`; jumps and flips may
    go higher than their clips, a body may not stay up without falling); never 10 cm below the floor.
    Upright: when the clips never turn upside down, the head is above the pelvis on every frame, or where the
    clips' own head comes within 10 cm of the pelvis height (crawling), at most 10 cm lower relative to the pelvis
    than the clips' lowest; otherwise the head is below the pelvis on at most 15 % more frames than in the clips.
    Hands: when the clips put a wrist within 10 cm of the floor (cartwheels), a wrist comes within 10 cm of the
    clips' lowest wrist height on some frame (a body that stays grounded by never planting its hands is wrong).
    """
    airborne, inverted, head_low, wrist_low = _envelope(clips)
    lowest = joints[..., 1].min(axis=1)
    if lowest.min() < -0.10:
        return f"below the floor ({lowest.min():.2f} m)"
    floating = _floating(lowest, joints, max(airborne, 0.0) + 0.10)
    if floating:
        return floating
    head = _head_over_pelvis(joints)
    if inverted > 0:
        upside_down = float((head < 0).mean())
        if upside_down > inverted + 0.15:
            return f"head below pelvis on {upside_down:.0%} of frames (clips: {inverted:.0%})"
    elif head.min() < min(0.0, head_low - 0.10):
        return f"head below pelvis by {-head.min():.2f} m on {float((head < 0).mean()):.0%} of frames (clips: never)"
    if wrist_low < 0.10 and joints[:, WRISTS, 1].min() > wrist_low + 0.10:
        return f"hands never planted (lowest wrist {joints[:, WRISTS, 1].min():.2f} m; clips: {wrist_low:.2f})"
    return ""


def _follow(
    pipe: MoMaskPipeline, lengths: tuple[int, ...], seeds: int, cleanup: bool = False
) -> dict[int, dict[str, list[str]]]:
    """For each length and caption, one entry per seed: '' when the sample's nearest demo clip is the caption's
    own and it does not tumble, else what went wrong ('nearest clip ...' or the :func:`tumbles` reason).
    ``cleanup``: samples go through the physical clean-up (features and joints), as on the web page."""
    mean, std, refs = _references()
    texts = [t for t in CAPTIONS for _ in range(seeds)]
    out: dict[int, dict[str, list[str]]] = {}
    for length in lengths:
        motions = pipe.generate(texts, [length] * len(texts), seed=0, cleanup=cleanup)
        out[length] = {t: [] for t in CAPTIONS}
        for text, motion in zip(texts, motions):
            assert motion.num_frames == length
            gen = _descriptors(motion.features, mean, std)
            dist = {c: min(_chamfer(gen, r) for r in rs) for c, rs in refs.items()}
            nearest = min(dist, key=dist.get)
            wrong = "" if nearest in CAPTIONS[text] else f"nearest clip {nearest}"
            out[length][text].append(wrong or tumbles(motion.joints, CAPTIONS[text]))
    return out


def _check_following(results: dict[int, dict[str, list[str]]], per_caption: bool) -> None:
    """Issue 21: at every length the nearest clip is the caption's own in >= 90 % of the samples, and no sample
    tumbles; with ``per_caption``, also >= 80 % of every caption's samples over all lengths."""
    report = {n: {CAPTIONS[t][0]: [w for w in ws if w] for t, ws in r.items()} for n, r in results.items()}
    print("\nfailures per length and clip:", report)
    for length, res in results.items():
        samples = [w for ws in res.values() for w in ws]
        assert sum(not w.startswith("nearest") for w in samples) >= 0.9 * len(samples), (length, report[length])
        assert all(not w or w.startswith("nearest") for w in samples), (length, report[length])
    for text in CAPTIONS if per_caption else ():
        samples = [w for res in results.values() for w in res[text]]
        assert sum(not w for w in samples) >= 0.8 * len(samples), (text, report)


def test_demo_follows_its_captions_at_short_and_long_lengths(pipe: MoMaskPipeline) -> None:
    """Fast subset: the shortest and longest length, 2 seeds (16 samples a length; 4 a caption, too few for a
    per-caption share)."""
    _check_following(_follow(pipe, (LENGTHS[0], LENGTHS[-1]), seeds=2), per_caption=False)


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 21 open: raw, 1 of 200 samples tumbles (seed 0; 2 / 1 / 0 with seeds 1..3), a cartwheel "
    "hovering at its last change from hands to feet at 196 frames: every joint 10 cm up for 7 frames, the lowest "
    "up to 26 cm, the mean joint height falling at 1.1 m/s^2; the nearest clip is the caption's own in 200 of 200",
)
def test_demo_follows_its_captions_at_every_length(pipe: MoMaskPipeline) -> None:
    """8 captions x 5 seeds x every length of LENGTHS (issue 21), the model's raw output (gen_t2m's default)."""
    _check_following(_follow(pipe, LENGTHS, SEEDS), per_caption=True)


@pytest.mark.slow
def test_demo_follows_its_captions_at_every_length_cleaned_up(pipe: MoMaskPipeline) -> None:
    """The same with the physical clean-up, the web page's default (``--cleanup``; utils/cleanup.py puts a body
    hovering near the floor back on it): 200 of 200 at seed 0. Not at every seed: 200 / 199 / 198 with seeds
    1..3, seed 2 one nearest-clip miss, seed 3 a cartwheel ending in the air with a foot at rest on 53 % of
    those frames (left: it may stand on a box) and a 4-frame hop 21 cm up."""
    _check_following(_follow(pipe, LENGTHS, SEEDS, cleanup=True), per_caption=True)


def test_demo_samples_with_the_settings_its_run_records(pipe: MoMaskPipeline) -> None:
    """mtrans_demo/sampling.json: free motions are generated 3 tokens longer at each end and cut
    (docs/sampling.md#decoding-margin), with guidance 2; the returned motion has the asked length and starts
    over the origin."""
    assert pipe.run_sampling == RunSampling(margin=3, cond_scale=2.0)
    (motion,) = pipe.generate(["a person walks forward"], [40], seed=0)
    assert motion.num_frames == 40 and motion.tokens.shape[0] == 10
    np.testing.assert_allclose(motion.joints[0, 0, [0, 2]], 0.0, atol=1e-6)


def test_tumble_check_accepts_the_clips_and_rejects_a_tumble() -> None:
    """The check passes every caption's own clips and catches what issue 21 saw: a body lying horizontally
    with both feet 1.3 m up (a walk thrown 0.6 m up along a free-fall arc passes, held there it hovers), a
    handstand with the head under the floor; a crawl's head may dip 10 cm lower relative to the pelvis than the
    clip's, not more; a cartwheel whose hands never come within 10 cm of the clip's lowest wrist height fails."""
    for clips in CAPTIONS.values():
        for c in clips:
            assert tumbles(np.load(DATA / "new_joints" / f"{c}.npy"), clips) == ""
    walk = np.load(DATA / "new_joints" / "000000.npy")[:80]
    lying = walk.copy()
    lying[..., 1] = walk[..., 2] - walk[..., 2].min() + 1.3  # body turned horizontal, lifted 1.3 m
    assert "above the floor" in tumbles(lying, CAPTIONS["a person walks forward"])
    t = np.arange(15) / FPS  # a 0.7 s flight from frame 20: up to g * 0.7^2 / 8 = 0.60 m and down again
    thrown, held = walk.copy(), walk.copy()
    thrown[20:35, :, 1] += (GRAVITY / 2 * t * (0.7 - t))[:, None]
    held[20:35, :, 1] += 0.60
    assert tumbles(thrown, CAPTIONS["a person walks forward"]) == ""  # ballistic: not a tumble
    assert "hovering" in tumbles(held, CAPTIONS["a person walks forward"])
    held[20:35, :, 1] -= 0.60
    held[20:23, :, 1] += 0.60  # 3 frames up: too short to be a flight
    assert "for 3 frames" in tumbles(held, CAPTIONS["a person walks forward"])
    handstand = walk.copy()
    handstand[..., 1] = -walk[..., 1]  # upside down, standing on the head
    handstand[..., 1] -= handstand[..., 1].min(axis=1, keepdims=True)
    assert "head below pelvis" in tumbles(handstand, CAPTIONS["a person walks forward"])
    handstand[..., 1] -= 0.15
    assert "below the floor" in tumbles(handstand, CAPTIONS["a person walks forward"])
    crawl_clips = CAPTIONS["a person crawls forward on hands and knees"]
    crawl = np.load(DATA / "new_joints" / f"{crawl_clips[0]}.npy")
    head_low = _head_over_pelvis(crawl).min()  # 3 cm: a crawl's head is about level with the pelvis
    for drop, caught in ((head_low + 0.05, False), (head_low + 0.12, True)):  # head at most 5 / 12 cm under the pelvis
        lower = crawl.copy()
        lower[:, 15, 1] -= drop
        assert ("head below pelvis" in tumbles(lower, crawl_clips)) == caught, drop
    cartwheel_clips = CAPTIONS["a person does a cartwheel to their left"]
    cartwheel = np.load(DATA / "new_joints" / f"{cartwheel_clips[0]}.npy")
    elbows = [T2M_JOINT_NAMES.index(n) for n in ("left_elbow", "right_elbow")]
    for lift, caught in ((0.08, False), (0.15, True)):  # wrists held 8 / 15 cm higher: planted or never
        hovering = cartwheel.copy()  # the elbows take the wrists' place, so the body is as grounded as before
        hovering[:, elbows, 1] = np.minimum(cartwheel[:, elbows, 1], cartwheel[:, list(WRISTS), 1])
        hovering[:, list(WRISTS), 1] += lift
        assert ("hands never planted" in tumbles(hovering, cartwheel_clips)) == caught, lift


def test_unfamiliar_caption_still_gives_a_motion(pipe: MoMaskPipeline, caplog: pytest.LogCaptureFixture) -> None:
    assert pipe.warn_if_unfamiliar(["a person walks forward"]) == []
    with caplog.at_level("WARNING"):
        far = pipe.warn_if_unfamiliar(["the stock market closed higher today"])
    assert far and "only knows its ~20 actions" in caplog.text
    motion = pipe.generate(["the stock market closed higher today"], [80], seed=1)[0]
    assert motion.joints.shape == (80, 22, 3) and np.isfinite(motion.joints).all()


def test_readme_first_command_offline_in_a_temp_dir(tmp_path: Path) -> None:
    """README: python gen_t2m.py --text "a person walks forward", from another folder, without network."""
    cmd = [sys.executable, str(REPO / "gen_t2m.py"), "--text", "a person walks forward"]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
        cmd = ["unshare", "-n", *cmd]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HOME=str(tmp_path))  # no model-hub cache to fall back on
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "embedded demo model" in proc.stderr
    bvhs = list((tmp_path / "generation/text2motion/animations/0").glob("*.bvh"))
    joints = list((tmp_path / "generation/text2motion/joints/0").glob("*.npy"))
    assert len(bvhs) == 1 and len(joints) == 1
    bvh = read_bvh(bvhs[0])
    assert bvh.num_frames == np.load(joints[0]).shape[0] >= 4


@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="blender not on PATH")
def test_demo_bvh_imports_in_blender(pipe: MoMaskPipeline, tmp_path: Path) -> None:
    """A demo BVH (gen_t2m's default template export) imports in Blender 3.4 exactly as our reader's FK
    describes it (< 1 mm), its root follows the generated motion, bones with one child point exactly where the
    motion's do, and the children of the pelvis and of spine3 (one rigid group each on the template rig) are
    within 8 deg mean (12.1 deg before the demo clips got the SMPL hip/shoulder geometry)."""
    from visualization.blender_check import blender_joint_positions
    from visualization.joints2bvh import bvh_to_joints, rig_for, save_bvh

    motion = pipe.generate(["a person walks forward"], [80], seed=3)[0]
    path = save_bvh(motion.joints, tmp_path / "walk.bvh", pipe.spec)
    names, positions = blender_joint_positions(path)
    rig = rig_for(pipe.spec)
    blender = positions[:, [names.index(n) for n in rig.names]][:, rig.bvh_index]
    ours = bvh_to_joints(read_bvh(path), pipe.spec)
    assert blender.shape == motion.joints.shape
    assert np.abs(blender - ours).max() < 1e-3
    assert np.abs(blender[:, 0] - motion.joints[:, 0]).max() < 1e-3
    errors = bone_direction_errors(blender, motion.joints, pipe.spec.parents)
    multi = [1, 2, 3, 12, 13, 14]  # child joints of the pelvis (0) and spine3 (9)
    single = [j for j in range(1, 22) if j not in multi]
    print(
        f"\nBlender: single-child bones max {errors[:, single].max():.3f} deg, pelvis/spine3 children mean "
        f"{errors[:, multi].mean():.2f} deg"
    )
    assert errors[:, single].max() < 0.5
    assert errors[:, multi].mean() <= 8.0


def bone_direction_errors(a: np.ndarray, b: np.ndarray, parents: tuple[int, ...]) -> np.ndarray:
    """Angle (deg) between the bone parent -> j of two poses (T, J, 3): (T, J) with column 0 = 0 (no bone)."""
    par = np.maximum(np.asarray(parents), 0)

    def unit(x: np.ndarray) -> np.ndarray:
        v = x - x[:, par]
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    return np.rad2deg(np.arccos(np.clip((unit(a) * unit(b)).sum(-1), -1.0, 1.0))) * (np.arange(a.shape[1]) > 0)
