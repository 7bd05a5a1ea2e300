"""Stick-figure video: playable mp4 with one video frame per motion frame, GIF fallback, same picture as the
official matplotlib plot, clear errors on bad input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils.skeleton import get_dataset_spec
from visualization import render
from visualization.render import draw_frames, render_motion, rgb_to_yuv420, save_frame_png, wrap_title

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="ffmpeg/ffprobe not on PATH"
)


def _walk(frames: int = 12, joints: int = 22, seed: int = 0) -> np.ndarray:
    """A synthetic motion: a t2m-sized point cloud around a standing height, drifting forward."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(scale=0.3, size=(joints, 3)) + np.array([0.0, 1.0, 0.0])
    drift = np.linspace(0, 1, frames)[:, None, None] * np.array([0.2, 0.0, 1.0])
    return (pose[None] + drift + rng.normal(scale=0.01, size=(frames, joints, 3))).astype(np.float32)


def _real_motion() -> np.ndarray:
    path = REFERENCE / "humanml3d" / "new_joints" / "012314.npy"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return np.load(path)


@needs_ffmpeg
def test_mp4_is_playable_with_one_frame_per_motion_frame(tmp_path: Path) -> None:
    joints = _walk(frames=17)
    out = render_motion(joints, tmp_path / "walk.mp4", get_dataset_spec("t2m"), title="a person walks", size=128)
    assert out == tmp_path / "walk.mp4"
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height,r_frame_rate,pix_fmt",
            "-of",
            "default=noprint_wrappers=1",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split("=", 1) for line in probe.split())
    assert fields["nb_read_frames"] == "17"
    assert (fields["width"], fields["height"]) == ("128", "128")
    assert fields["r_frame_rate"] == "20/1"  # t2m fps
    assert fields["pix_fmt"] == "yuv420p"  # plays in browsers and QuickTime
    assert not list(tmp_path.glob(".*tmp"))


@needs_ffmpeg
def test_mp4_frames_match_the_rgb_frames(tmp_path: Path) -> None:
    """The mp4 path (changed rectangles converted to YUV in numpy) shows the same picture as the RGB frames."""
    joints = _walk(frames=6)
    spec = get_dataset_spec("t2m")
    out = render_motion(joints, tmp_path / "a.mp4", spec, size=128)
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    video = np.frombuffer(decoded, np.uint8).reshape(6, 128, 128, 3).astype(float)
    frames = np.stack(list(draw_frames(joints, spec.chains, size=128))).astype(float)
    assert np.abs(video - frames).mean() < 3.0  # lossy H.264 + chroma subsampling only


def test_gif_output_and_fallback_without_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    joints = _walk(frames=9)
    gif = render_motion(joints, tmp_path / "a.gif", size=96)
    with Image.open(gif) as im:
        assert im.n_frames == 9
        assert im.info["duration"] == 50  # 20 fps
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    out = render_motion(joints, tmp_path / "b.mp4", size=96)
    assert out == tmp_path / "b.gif" and out.is_file() and not (tmp_path / "b.mp4").exists()
    with Image.open(out) as im:
        assert im.n_frames == 9


def test_picture_matches_official_matplotlib_plot(tmp_path: Path) -> None:
    """Frame 120 of 012314 drawn the official way (matplotlib 3D axes, official limits/view/colours) and by us:
    the drawn (non-white) pixels must coincide. Golden data: ../shared/reference/humanml3d/new_joints."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    joints = _real_motion().astype(np.float64)
    spec, size, index, r = get_dataset_spec("t2m"), 300, 120, 4.0
    data = joints.copy()
    mins, maxs = data.min(axis=(0, 1)), data.max(axis=(0, 1))
    data[..., 1] -= mins[1]
    traj = data[:, 0, [0, 2]].copy()
    data[..., 0] -= traj[:, None, 0]
    data[..., 2] -= traj[:, None, 1]
    fig = Figure(figsize=(10, 10), dpi=size / 10)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(111, projection="3d")
    ax.set_xlim3d([-r / 2, r / 2])
    ax.set_ylim3d([0, r])
    ax.set_zlim3d([0, r])
    ax.view_init(elev=120, azim=-90)
    ax.set_box_aspect(None, zoom=10 / 7.5)
    ax.set_axis_off()
    x0, x1 = mins[0] - traj[index, 0], maxs[0] - traj[index, 0]
    z0, z1 = mins[2] - traj[index, 1], maxs[2] - traj[index, 1]
    floor = Poly3DCollection([[[x0, 0, z0], [x0, 0, z1], [x1, 0, z1], [x1, 0, z0]]])
    floor.set_facecolor((0.5, 0.5, 0.5, 0.5))
    ax.add_collection3d(floor)
    ax.plot3D(traj[:index, 0] - traj[index, 0], np.zeros(index), traj[:index, 1] - traj[index, 1], lw=1, color="blue")
    for chain, color in zip(spec.chains, ["red", "blue", "black", "red", "blue"]):
        ax.plot3D(data[index, chain, 0], data[index, chain, 1], data[index, chain, 2], lw=4, color=color)
    canvas.draw()
    official = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    ours = next(draw_frames(joints, spec.chains, size=size, frames=[index])).astype(int)
    ink_o, ink_m = official.sum(-1) < 700, ours.sum(-1) < 700
    iou = (ink_o & ink_m).sum() / (ink_o | ink_m).sum()
    assert iou > 0.85, iou
    red_o = (official[..., 0] > 180) & (official[..., 1] < 90)
    red_m = (ours[..., 0] > 180) & (ours[..., 1] < 90)
    assert (red_o & red_m).sum() / (red_o | red_m).sum() > 0.5  # thin lines: a few px of offset is fatal


def test_motion_outside_the_view_still_renders() -> None:
    """Wrong units (e.g. KIT millimetres with the t2m radius) put everything off-screen: still valid frames."""
    far = _walk(frames=3) * 1000.0
    frames = list(draw_frames(far, get_dataset_spec("t2m").chains, radius=4.0, size=64))
    assert len(frames) == 3 and all(f.shape == (64, 64, 3) for f in frames)


def test_png_frame(tmp_path: Path) -> None:
    joints = _walk(frames=5)
    path = save_frame_png(joints, 3, tmp_path / "f.png", size=64)
    with Image.open(path) as im:
        assert im.size == (64, 64)
        assert np.asarray(im).min() < 100  # something was drawn


def test_rgb_to_yuv420_luma_matches_ffmpeg() -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not on PATH")
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    out = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            "32x32",
            "-i",
            "-",
            "-pix_fmt",
            "yuv420p",
            "-f",
            "rawvideo",
            "-",
        ],
        input=rgb.tobytes(),
        capture_output=True,
        check=True,
    ).stdout
    y_ref = np.frombuffer(out[:1024], np.uint8).reshape(32, 32).astype(int)
    y, u, v = rgb_to_yuv420(rgb)
    assert np.abs(y.astype(int) - y_ref).max() <= 1
    flat = np.full((4, 4, 3), (255, 0, 0), np.uint8)  # pure red: U, V known (BT.601 tv range)
    _, u, v = rgb_to_yuv420(flat)
    assert abs(int(u[0, 0]) - 90) <= 1 and abs(int(v[0, 0]) - 240) <= 1


def test_wrap_title() -> None:
    words = [f"w{i}" for i in range(25)]
    lines = wrap_title(" ".join(words)).split("\n")
    assert [len(line.split()) for line in lines] == [10, 10, 5]
    assert wrap_title("a short one") == "a short one"


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((5, 22, 3), np.nan), "NaN"),
        (np.zeros((1, 22, 3)), "at least 2 frames"),
        (np.zeros((5, 22)), "shape"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path: Path, bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        render_motion(bad, tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())


def test_wrong_joint_count_and_extension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kit has 21 joints"):
        render_motion(_walk(joints=22), tmp_path / "x.gif", get_dataset_spec("kit"))
    with pytest.raises(ValueError, match="joint count 7"):
        render_motion(_walk(joints=7), tmp_path / "x.gif")
    with pytest.raises(ValueError, match="unsupported video extension"):
        render_motion(_walk(), tmp_path / "x.avi")


def test_failure_keeps_existing_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "keep.gif"
    target.write_bytes(b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("encoder died")

    monkeypatch.setattr(render, "write_gif", boom)
    with pytest.raises(RuntimeError, match="encoder died"):
        render_motion(_walk(), target)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gif"]


def test_kit_chains_and_custom_chains(tmp_path: Path) -> None:
    kit = _walk(frames=4, joints=21) * 1000.0  # millimetres, radius from the dataset table
    frame = next(draw_frames(kit, get_dataset_spec("kit").chains, radius=get_dataset_spec("kit").plot_radius, size=64))
    assert frame.shape == (64, 64, 3) and frame.min() < 100
    out = render_motion(_walk(frames=3, joints=4), tmp_path / "c.gif", [(0, 1, 2), (1, 3)], size=64)
    assert out.is_file()
    with pytest.raises(ValueError, match="chains reference joints"):
        render_motion(_walk(frames=3, joints=4), tmp_path / "d.gif", [(0, 9)])


@needs_ffmpeg
def test_convert_cli_writes_video(tmp_path: Path) -> None:
    from visualization.convert import main

    np.save(tmp_path / "j.npy", _walk(frames=8))
    main([str(tmp_path / "j.npy"), str(tmp_path / "j.mp4"), "--title", "a walk", "--size", "96"])
    main([str(tmp_path / "j.npy"), str(tmp_path / "j.gif"), "--size", "96"])
    with Image.open(tmp_path / "j.gif") as im:
        assert im.n_frames == 8 and im.size == (96, 96)
    assert (tmp_path / "j.mp4").stat().st_size > 1000
