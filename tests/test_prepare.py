"""prepare/: build_dataset, check_dataset CLI on planted faults, offline-safe downloads, DeepMimic conversion."""

from __future__ import annotations

import functools
import http.server
import importlib
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data.checks import check_dataset
from data.synthetic import make_tiny_dataset, synthetic_joints
from data.text import read_text_file
from prepare import check_dataset as check_cli
from prepare import download
from prepare.build_dataset import SplitFractions, build_dataset, swap_left_right
from utils.motion import extract_features, mirror_joints, recover_from_ric
from utils.skeleton import get_dataset_spec

SPEC = get_dataset_spec("t2m")


# ---------------------------------------------------------------------------------------------- build_dataset


def _input_folder(tmp_path: Path, n: int = 4) -> Path:
    src = tmp_path / "clips"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        np.save(src / f"clip{i}.npy", synthetic_joints(SPEC, 70 + 10 * i, rng))
        (src / f"clip{i}.txt").write_text("a person waves the left hand\nsomeone turns right slowly#0.5#2.75\n")
    return src


def test_swap_left_right() -> None:
    assert (
        swap_left_right("Left hand up, then turn right, clockwise") == "Right hand up, then turn left, counterclockwise"
    )
    assert swap_left_right("left/ADJ leg/NOUN bright/ADJ") == "right/ADJ leg/NOUN bright/ADJ"


def test_build_dataset_complete_layout(tmp_path: Path) -> None:
    src = _input_folder(tmp_path)
    out = build_dataset(src, tmp_path / "out" / "HumanML3D", SPEC, use_spacy=False)
    assert check_dataset(out, SPEC) == []
    ids = sorted(p.stem for p in (out / "new_joint_vecs").glob("*.npy"))
    assert ids == sorted([f"clip{i}" for i in range(4)] + [f"Mclip{i}" for i in range(4)])
    split = {s: (out / f"{s}.txt").read_text().split() for s in ("train", "val", "test", "all", "train_val")}
    assert sorted(split["all"]) == ids and sorted(split["train_val"]) == sorted(split["train"] + split["val"])
    assert all(len(split[s]) >= 2 for s in ("train", "val", "test"))
    for s in ("train", "val", "test"):  # a clip and its mirror share a split
        assert {i.lstrip("M") for i in split[s]} == {i for i in split[s] if not i.startswith("M")}
    # features are extract_features of the input; joints their recovery
    joints = np.load(src / "clip2.npy")
    np.testing.assert_allclose(np.load(out / "new_joint_vecs" / "clip2.npy"), extract_features(joints, SPEC), atol=1e-5)
    np.testing.assert_allclose(
        np.load(out / "new_joint_vecs" / "Mclip2.npy"), extract_features(mirror_joints(joints, SPEC), SPEC), atol=1e-5
    )
    feats = np.load(out / "new_joint_vecs" / "clip2.npy")
    np.testing.assert_allclose(np.load(out / "new_joints" / "clip2.npy"), recover_from_ric(feats, 22), atol=1e-6)
    texts, mirrored = read_text_file(out / "texts" / "clip1.txt"), read_text_file(out / "texts" / "Mclip1.txt")
    assert texts[0].caption == "a person waves the left hand"
    assert "left/ADJ" in texts[0].tokens and "right/ADJ" in mirrored[0].tokens
    assert mirrored[0].caption == "a person waves the right hand"
    assert (mirrored[1].caption, mirrored[1].start, mirrored[1].end) == ("someone turns left slowly", 0.5, 2.75)


def test_build_dataset_refuses_existing_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    src = _input_folder(tmp_path, n=3)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not empty"):
        build_dataset(src, out, SPEC, use_spacy=False)
    assert (out / "keep.txt").read_text() == "mine"
    np.save(src / "clip1.npy", np.zeros((50, 21, 3), np.float32))  # wrong joint count
    with pytest.raises(ValueError, match="22 joints"):
        build_dataset(src, tmp_path / "new", SPEC, use_spacy=False)
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "the file is empty"),
        (np.array(["a", "b"]), "dtype <U1 \\(string\\)"),
        (np.zeros((50, 22, 3), np.complex64), "complex"),
        (np.full((50, 22, 3), np.nan, np.float32), "NaN"),
        (np.float32(1), "0-d scalar"),
    ],
)
def test_build_dataset_refuses_bad_clip_files(tmp_path: Path, content: object, message: str) -> None:
    src = _input_folder(tmp_path, n=3)
    if isinstance(content, bytes):
        (src / "clip1.npy").write_bytes(content)
    else:
        np.save(src / "clip1.npy", content)
    with pytest.raises(ValueError, match=f"joint positions {src / 'clip1.npy'}: .*{message}"):
        build_dataset(src, tmp_path / "new", SPEC, use_spacy=False)
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------------------- check_dataset CLI


def test_check_dataset_cli_lists_each_planted_fault(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_tiny_dataset(tmp_path, "t2m", n_clips=6, seed=2)
    assert check_cli.main([str(root)]) == 0
    (root / "texts" / "000001.txt").unlink()  # motion without captions
    (root / "texts" / "999999.txt").write_text("orphan#orphan/NOUN#0.0#0.0\n")  # captions without motion
    bad = np.load(root / "new_joint_vecs" / "000002.npy")
    bad[5, 7] = np.nan
    np.save(root / "new_joint_vecs" / "000002.npy", bad)  # NaN
    np.save(root / "new_joint_vecs" / "000003.npy", np.zeros((80, 251), np.float32))  # wrong feature dim
    np.save(root / "new_joint_vecs" / "000004.npy", bad[:20])  # too short
    np.save(root / "Mean.npy", np.zeros(100, np.float32))  # Mean shape
    (root / "texts" / "000005.txt").write_text("no separators here\n")  # malformed caption
    (root / "val.txt").unlink()  # missing split
    capsys.readouterr()
    assert check_cli.main([str(root)]) == 1
    out = capsys.readouterr().out
    for kind, path in [
        ("motion_without_captions", "000001.npy"),
        ("captions_without_motion", "999999.txt"),
        ("non_finite", "000002.npy"),
        ("feature_dim", "000003.npy"),
        ("too_short", "000004.npy"),
        ("stats_shape", "Mean.npy"),
        ("bad_caption", "000005.txt"),
        ("missing_file", "val.txt"),
    ]:
        assert any(kind in line and path in line for line in out.splitlines()), f"{kind} {path} not reported"
    assert "error(s)" in out


# ---------------------------------------------------------------------------------------------- download


def test_download_offline_fails_with_instructions(tmp_path: Path) -> None:
    res = download.RESOURCES[0]
    with pytest.raises(download.DownloadError) as info:
        download.install(res, tmp_path, timeout=2, url="http://127.0.0.1:9/glove.zip")
    msg = str(info.value)
    assert "glove.zip" in msg and res.page in msg and str(tmp_path) in msg and "our_vab_data.npy" in msg
    assert not any(tmp_path.rglob("*.part"))
    assert not (tmp_path / "glove").exists()


def test_download_cli_reports_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(download, "GDRIVE_URL", "http://127.0.0.1:9/{id}")
    assert download.main(["--what", "glove", "--dest", str(tmp_path), "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert "FAILED" in err and "download glove.zip by hand" in err


def test_download_from_local_server_unzips_and_verifies(tmp_path: Path) -> None:
    served = tmp_path / "www"
    served.mkdir()
    with zipfile.ZipFile(served / "glove.zip", "w") as zf:
        for name in ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl"):
            zf.writestr(f"glove/{name}", b"x")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "proj"
        res = download.RESOURCES[0]
        download.install(res, dest, timeout=5, url=f"http://127.0.0.1:{server.server_port}/glove.zip")
        assert download.is_present(res, dest) and not (dest / "glove.zip").exists()
    finally:
        server.shutdown()


def test_unzip_refuses_path_traversal(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", b"x")
    with pytest.raises(download.DownloadError, match="outside"):
        download.unzip(archive, tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()


def test_download_dry_run_and_dataset_steps(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert download.main(["--dry_run", "--dest", str(tmp_path), "--dataset", "t2m"]) == 0
    out = capsys.readouterr().out
    assert "humanml3d_evaluator.zip" in out and "humanml3d_models.zip" in out and "kit_models.zip" not in out
    assert "amass.is.tue.mpg.de" in out and str(tmp_path / "dataset" / "HumanML3D") in out


# ---------------------------------------------------------------------------------------------- DeepMimic


@pytest.fixture(scope="module")
def motions_dir() -> Path:
    pybullet_data = pytest.importorskip("pybullet_data")
    return Path(pybullet_data.getDataPath()) / "data" / "motions"


def test_deepmimic_fk_is_rigid_and_resampled(motions_dir: Path) -> None:
    from prepare.deepmimic import convert_clip, load_clip

    clip = load_clip(motions_dir / "humanoid3d_walk.txt")
    assert clip.rotations.shape == (39, 13, 4) and clip.is_loop
    joints, cycle = convert_clip(motions_dir / "humanoid3d_walk.txt", mode="loop", frames=60)
    assert joints.shape == (60, 22, 3) and cycle == round(clip.duration * 20)
    bones = np.linalg.norm(joints[:, 1:] - joints[:, list(SPEC.parents[1:])], axis=-1)
    # 1-DoF knees/elbows and rigid extra joints: bone lengths constant up to slerp/interpolation error
    assert np.abs(bones - bones[0]).max() < 1e-4
    # loop seam is continuous: the root step at the seam is like any other step
    steps = np.linalg.norm(np.diff(joints[:, 0], axis=0), axis=-1)
    assert steps.max() < 2.5 * np.median(steps)


def test_deepmimic_axes_left_is_plus_x_when_facing_plus_z(motions_dir: Path) -> None:
    from prepare.deepmimic import convert_clip

    joints, _ = convert_clip(motions_dir / "walker/turn_left0.txt", frames=25)
    # DeepMimic characters face +x; after conversion they face +z with their left hip at +x
    across = joints[0, 1] - joints[0, 2]
    assert across[0] > 0.1 and abs(across[2]) < 0.05
    assert joints[-1, 0, 2] - joints[0, 0, 2] > 0.5  # walked towards +z
    assert joints[-1, 0, 0] - joints[0, 0, 0] > 0.2  # and drifted to its left (+x) while turning left


def test_deepmimic_repeat_has_no_jump_and_smpl_geometry(motions_dir: Path) -> None:
    """A repeated non-cyclic action (kick) joins its repetitions without a jump, and the pelvis/spine3 groups
    have the template's shape exactly (what a template-rig BVH needs)."""
    from prepare.body_geometry import multi_child_direction_error
    from prepare.deepmimic import convert_clip

    joints, unit = convert_clip(motions_dir / "humanoid3d_kick.txt", mode="repeat", hold_start=0.6, hold_end=0.6)
    assert joints.shape == (197, 22, 3) and unit == 55
    steps = np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=1)
    seams = [k * unit - 1 for k in (1, 2, 3)]
    assert steps[seams].max() < 0.2 * steps.max()
    assert multi_child_direction_error(joints).max() < 0.01


def test_build_dataset_reads_bvh(tmp_path: Path) -> None:
    """A BVH written by visualization.joints2bvh (at 30 fps) goes through the same pipeline, resampled to 20."""
    joints2bvh = importlib.import_module("visualization.joints2bvh")
    src = tmp_path / "clips"
    src.mkdir()
    joints = synthetic_joints(SPEC, 90, np.random.default_rng(3))
    motion = joints2bvh.joints_to_bvh(joints, SPEC)
    motion = type(motion)(**{**motion.__dict__, "frame_time": 1.0 / 30})
    from visualization.bvh import write_bvh

    write_bvh(src / "take1.bvh", motion)
    assert not (src / "take1.npy").exists()
    (src / "take1.txt").write_text("a person sways\n")
    out = build_dataset(src, tmp_path / "out", SPEC, mirror=False, fractions=SplitFractions(0.0, 0.0), use_spacy=False)
    features = np.load(out / "new_joint_vecs" / "take1.npy")
    # 90 frames at 30 fps span 2.967 s -> 60 frames at 20 fps -> 59 feature rows
    assert features.shape == (59, 263)
    recovered = np.load(out / "new_joints" / "take1.npy")
    assert recovered.shape == (59, 22, 3) and abs(recovered[..., 1].min()) < 0.05
