"""Physical metrics (utils/physical.py) on closed-form motions: exact values where they are analytic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from utils.physical import (
    GRAVITY,
    METRIC_NAMES,
    contact_frames,
    floating,
    foot_joints,
    hover_frames,
    jitter,
    min_flight_frames,
    penetration,
    physical_metrics,
    skating,
    to_metres,
    vertical_acceleration,
    write_report,
)
from utils.skeleton import get_dataset_spec

T2M = get_dataset_spec("t2m")
KIT = get_dataset_spec("kit")
FEET = foot_joints(T2M)


def standing(frames: int, spec=T2M, lowest: float = 0.0) -> np.ndarray:
    """A still pose (T, J, 3): joints stacked at distinct heights, the foot joints lowest, min height ``lowest``."""
    rng = np.random.default_rng(0)
    pose = np.stack(
        [
            rng.uniform(-0.3, 0.3, spec.joints_num),
            rng.uniform(0.3, 1.7, spec.joints_num),
            rng.uniform(-0.3, 0.3, spec.joints_num),
        ],
        -1,
    )
    feet = list(foot_joints(spec))
    pose[feet, 1] = [0.08, 0.02, 0.07, 0.03]
    pose[:, 1] += lowest - pose[:, 1].min()
    return np.repeat(pose[None], frames, axis=0)


@pytest.mark.parametrize("fps", [20.0, 12.5, 60.0])
@pytest.mark.parametrize("speed", [0.2, 0.8])
def test_sliding_body_skate_distance_is_its_speed(fps: float, speed: float) -> None:
    joints = standing(50)
    joints[..., 0] += speed * np.arange(50)[:, None] / fps
    ratio, distance = skating(joints, FEET, fps)
    np.testing.assert_allclose(distance, speed, rtol=1e-9)
    # 0.5 m/s threshold: 2.5 cm per frame at 20 fps; the ratio does not depend on the frame rate.
    assert ratio == (1.0 if speed > 0.5 else 0.0)


def test_skate_ratio_counts_the_sliding_steps_of_grounded_feet_only() -> None:
    joints = standing(41)
    step = np.zeros(40)
    step[10:30] = 0.03  # 20 of 40 steps slide 3 cm (> 2.5 cm at 20 fps)
    joints[:, FEET[1], 0] += np.concatenate([[0.0], np.cumsum(step)])
    ratio, distance = skating(joints, FEET, 20.0)
    assert ratio == pytest.approx(0.5, abs=1e-12)
    # Distance: 0.6 m slid by one of the two feet over 2 s.
    np.testing.assert_allclose(distance, 0.6 / 2 / 2.0, rtol=1e-9)
    joints[:, FEET[1], 1] = 0.06  # lifted above 5 cm: not skating any more
    assert skating(joints, FEET, 20.0) == (0.0, 0.0)


@pytest.mark.parametrize("lift", [0.0, 0.037, 0.25])
def test_body_lifted_by_a_known_height_floats_by_it(lift: float) -> None:
    joints = standing(30, lowest=lift)
    assert contact_frames(joints, FEET, 20.0).all()  # still feet: should touch the floor
    np.testing.assert_allclose(floating(joints, FEET, 20.0), lift, rtol=1e-12, atol=1e-15)
    assert penetration(joints) == (0.0, 0.0)


def test_sunk_body_penetrates_by_its_depth_and_flight_is_not_floating() -> None:
    joints = standing(30, lowest=-0.04)
    joints[20:, :, 1] += 0.02  # 2 cm less deep for the last third
    mean, worst = penetration(joints)
    np.testing.assert_allclose([mean, worst], [(20 * 0.04 + 10 * 0.02) / 30, 0.04], rtol=1e-12)
    flying = standing(30, lowest=0.3)
    flying[..., 2] += 2.0 * np.arange(30)[:, None] / 20.0  # every joint moves at 2 m/s: a flight phase
    assert not contact_frames(flying, FEET, 20.0).any() and floating(flying, FEET, 20.0) == 0.0


def thrown(frames: int, fps: float, start: int, flight: float) -> np.ndarray:
    """A standing pose whose every joint follows a free-fall arc for ``flight`` seconds from frame ``start``:
    up g·flight²/8 and back down, moving forward at 2 m/s throughout (the feet never still)."""
    joints = standing(frames)
    t = np.clip(np.arange(frames) - start, 0, None) / fps
    joints[..., 1] += np.where(t < flight, GRAVITY / 2 * t * (flight - t), 0.0)[:, None]
    joints[..., 2] += 2.0 * np.arange(frames)[:, None] / fps
    return joints


@pytest.mark.parametrize("fps", [20.0, 60.0])
def test_a_free_flight_falls_at_g_and_does_not_hover(fps: float) -> None:
    """A 0.7 s flight (0.60 m up) is off the floor for longer than MIN_FLIGHT and its mean height is a parabola
    of acceleration -g exactly; held at its peak height instead, every frame it is up hovers."""
    start, flight = int(0.5 * fps), 0.7
    jump = thrown(int(2 * fps), fps, start, flight)
    up = jump[..., 1].min(axis=1) > 0.10
    assert up.sum() >= 0.25 * fps
    np.testing.assert_allclose(vertical_acceleration(jump[up], fps), -GRAVITY, rtol=1e-9)
    assert not hover_frames(jump, FEET, fps).any() and physical_metrics(jump, T2M, fps).hovering == 0.0
    held = jump.copy()
    held[up, :, 1] = standing(1)[0, :, 1] + GRAVITY * flight**2 / 8
    np.testing.assert_array_equal(hover_frames(held, FEET, fps), up)
    assert physical_metrics(held, T2M, fps).hovering == pytest.approx(up.mean())


def test_short_hops_and_bodies_standing_on_a_box_do_not_hover() -> None:
    """Off the floor for less than MIN_FLIGHT (a hop, noise) is not measured; a body 30 cm up for 2 s whose feet
    are at rest stands on something (a box): neither hovers. Moving feet held up for the same 2 s hover, and so do
    feet slow enough for a contact that drift up and down; a body barely off the floor (on tiptoes) does not."""
    hop = thrown(40, 20.0, 10, 0.7)
    hop[14:40, :, 1] = standing(1)[0, :, 1]  # frames 10-13 on the arc (3 above 10 cm), then on the floor
    assert not hover_frames(hop, FEET, 20.0).any()
    box = standing(60, lowest=0.3)
    box[:10, :, 1] -= 0.3  # steps up onto the box at frame 10
    assert not hover_frames(box, FEET, 20.0).any()
    gliding = box.copy()
    gliding[..., 0] += 2.0 * np.arange(60)[:, None] / 20.0  # the same height, moving at 2 m/s: nothing holds it up
    np.testing.assert_array_equal(hover_frames(gliding, FEET, 20.0), np.arange(60) >= 10)
    drifting = box.copy()  # the feet still slower than CONTACT_SPEED, but rising and sinking at 0.3 m/s
    drifting[10:, :, 1] += 0.15 * np.abs(np.sin(np.pi * np.arange(50) / 20))[:, None]
    assert contact_frames(drifting, FEET, 20.0)[10:].all() and hover_frames(drifting, FEET, 20.0)[10:].mean() == 1.0
    tiptoes = gliding.copy()
    tiptoes[10:, :, 1] -= 0.3 - 0.14  # lowest joint 14 cm up: under AIRBORNE_HEIGHT + HOVER_CLEARANCE
    assert not hover_frames(tiptoes, FEET, 20.0).any()


def test_hovering_at_a_low_frame_rate_still_fits_three_frames() -> None:
    """At 6 fps MIN_FLIGHT is 2 frames, too few for a parabola: spans need 3 (no error), and a body held up for
    3 frames hovers."""
    assert min_flight_frames(6.0) == 3 and min_flight_frames(20.0) == 5 and min_flight_frames(12.5) == 4
    held = thrown(12, 6.0, 0, 0.0)
    held[4:7, :, 1] += 0.4
    np.testing.assert_array_equal(hover_frames(held, FEET, 6.0), np.isin(np.arange(12), [4, 5, 6]))
    assert physical_metrics(held[:6], T2M, 6.0).hovering == 0.0  # 2 frames up: too short


def test_real_motion_never_hovers(reference_dir: Path) -> None:
    """Every demo clip (walks, runs, jumps, flips, cartwheels, dances, boxes and stairs; mirrored too) and the
    reference clip: no frame hovers (jumps and flips fall at 5-10 m/s², supports hold a foot at rest)."""
    demo = sorted((Path(__file__).resolve().parents[1] / "dataset_demo" / "HumanML3D" / "new_joints").glob("*.npy"))
    clips = [*demo, *sorted((reference_dir / "humanml3d" / "new_joints").glob("*.npy"))]
    assert len(clips) > 60
    for clip in clips:
        assert not hover_frames(np.load(clip), FEET, 20.0).any(), clip.name


@pytest.mark.parametrize("fps", [20.0, 12.5])
def test_circular_motion_has_its_exact_finite_difference_jerk_and_acceleration(fps: float) -> None:
    """Every joint on a horizontal circle of radius A at ω: any finite difference of a uniformly rotating vector
    has constant norm, |Δⁿx| = A (2 sin(ωh/2))ⁿ, so the metrics are exact; they tend to A ω³ and A ω²."""
    radius, omega, h = 0.3, 2 * np.pi * 1.5, 1 / fps
    t = np.arange(80) * h
    joints = standing(80)
    joints[..., 0] += radius * np.cos(omega * t)[:, None]
    joints[..., 2] += radius * np.sin(omega * t)[:, None]
    jerk, acc = jitter(joints, fps)
    chord = 2 * np.sin(omega * h / 2)
    np.testing.assert_allclose(jerk, radius * chord**3 / h**3, rtol=1e-9)
    np.testing.assert_allclose(acc, radius * chord**2 / h**2, rtol=1e-9)
    assert jerk == pytest.approx(radius * omega**3, rel=0.1)


def test_sine_jerk_approaches_the_analytic_mean() -> None:
    """1-D sine A sin(ωt) over whole periods: mean |jerk| -> A ω³ · 2/π (mean of |cos|)."""
    amp, omega, fps = 0.1, 2 * np.pi, 200.0
    t = np.arange(int(4 * fps) + 3) / fps
    joints = np.zeros((len(t), 22, 3))
    joints[..., 1] = 1.0 + amp * np.sin(omega * t)[:, None]
    jerk, _ = jitter(joints, fps)
    assert jerk == pytest.approx(amp * omega**3 * 2 / np.pi, rel=1e-3)


def test_physical_metrics_summary_and_units() -> None:
    joints = standing(40, lowest=0.05)
    joints[..., 0] += 0.2 * np.arange(40)[:, None] / 20
    m = physical_metrics(joints, T2M)
    assert tuple(m.as_dict()) == METRIC_NAMES
    np.testing.assert_allclose(m.phys_err, (m.penetration_mean + m.floating + m.skate_distance / 20) / 3)
    assert m.floating == pytest.approx(0.05) and m.jerk < 1e-9
    # KIT millimetres -> metres: the same motion scaled by 1000 gives the same metrics.
    kit = standing(40, KIT, lowest=0.05) * 1000
    np.testing.assert_allclose(physical_metrics(to_metres(kit, KIT), KIT).floating, 0.05)
    assert "floating 5.00 cm" in m.summary()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((1, 22, 3)), "at least 4 frames"),
        (np.full((10, 22, 3), np.nan), "NaN"),
        (np.zeros((10, 20, 3)), "shape"),
        (np.zeros((10, 22)), "shape"),
    ],
)
def test_bad_input_is_a_value_error(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        physical_metrics(bad, T2M)


def test_report_json_is_written_atomically(tmp_path: Path) -> None:
    path = write_report(tmp_path / "physical.json", [{"caption": "x", "metrics": {"jerk": 1.0}}], T2M)
    doc = json.loads(path.read_text())
    assert doc["fps"] == 20.0 and doc["motions"][0]["caption"] == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["physical.json"]


def test_benchmark_columns_of_a_padded_batch_are_those_of_each_motion(reference_dir: Path) -> None:
    """The benchmark recovers a whole padded batch at once: each motion's metrics must be those of its own frames
    (whatever follows them), and motions under 4 frames are left out."""
    import torch

    from evaluation.physical import PhysicalAccumulator
    from utils.motion import recover_from_ric
    from utils.physical import physical_metrics, to_metres

    demo = Path(__file__).resolve().parents[1] / "dataset_demo" / "HumanML3D" / "new_joint_vecs"
    clips = [reference_dir / "humanml3d" / "new_joint_vecs" / "012314.npy", *sorted(demo.glob("*.npy"))[:2]]
    feats = [torch.from_numpy(np.load(c)).float() for c in clips]
    lengths = torch.tensor([len(f) - 7 * k for k, f in enumerate(feats)] + [3])
    batch = torch.randn(len(lengths), int(lengths.max()) + 5, feats[0].shape[1]) * 5  # garbage after each motion
    for i, f in enumerate(feats):
        batch[i, : lengths[i]] = f[: lengths[i]]
    acc = PhysicalAccumulator(T2M)
    acc.add(batch, lengths, batch, lengths)
    assert len(acc.generated) == len(acc.real) == len(feats)
    for f, n, got in zip(feats, lengths.tolist(), acc.generated):
        want = physical_metrics(to_metres(recover_from_ric(f[:n], T2M.joints_num).numpy(), T2M), T2M)
        np.testing.assert_allclose(list(got.as_dict().values()), list(want.as_dict().values()), rtol=1e-5)
