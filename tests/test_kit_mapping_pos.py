"""SMPL-22 -> KIT-21 mapping (units, mirror invariance, valid KIT features) and the fallback POS tagger's verbs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.pos_tagging import fallback_tag
from utils.kit_mapping import smpl22_to_kit21
from utils.motion import extract_features, mirror_joints, recover_from_ric
from utils.skeleton import get_dataset_spec


def test_smpl_to_kit_units_mirror_and_features(reference_dir: Path) -> None:
    t2m, kit = get_dataset_spec("t2m"), get_dataset_spec("kit")
    smpl = np.load(reference_dir / "humanml3d/new_joints/012314.npy")[:80]
    joints = smpl22_to_kit21(smpl)
    assert joints.shape == (80, 21, 3)
    np.testing.assert_allclose(joints[:, 12], smpl[:, 4] * 1000, rtol=1e-6)  # LK = left knee, in mm
    thigh = np.linalg.norm(joints[:, 12] - joints[:, 11], axis=-1)  # LH -> LK
    assert 300 < thigh.mean() < 500
    # mapping commutes with mirroring (left/right tables of both skeletons agree)
    np.testing.assert_allclose(smpl22_to_kit21(mirror_joints(smpl, t2m)), mirror_joints(joints, kit), atol=1e-3)
    features = extract_features(joints, kit)
    assert features.shape == (79, 251) and np.isfinite(features).all()
    assert np.isfinite(recover_from_ric(features, 21)).all()


def test_fallback_tagger_knows_motion_verbs() -> None:
    tags = fallback_tag("a person picks up a box and carries it, then does a kick and stepped back")
    assert "pick/VERB" in tags and "carry/VERB" in tags and "step/VERB" in tags and "kick/NOUN" in tags
    assert fallback_tag("someone throws a ball and catches it")[-2] == "catch/VERB"


def test_build_dataset_summary_refusal_and_kit_from_smpl(tmp_path: Path, reference_dir: Path, caplog) -> None:
    import logging

    import pytest

    from prepare.build_dataset import build_dataset

    src = tmp_path / "clips"
    src.mkdir()
    for i, clip in enumerate(("012314", "012314")):
        np.save(src / f"c{i}.npy", np.load(reference_dir / f"humanml3d/new_joints/{clip}.npy")[i * 10 : 100 + i * 10])
        (src / f"c{i}.txt").write_text("a person picks up a box and carries it\n")
    with pytest.raises(ValueError, match="fails its own check .*empty_split"):  # 2 clips: val/test empty
        build_dataset(src, tmp_path / "bad", get_dataset_spec("t2m"), use_spacy=False)
    assert not (tmp_path / "bad").exists()
    with caplog.at_level(logging.INFO):
        out = build_dataset(
            src,
            tmp_path / "kit",
            get_dataset_spec("kit"),
            use_spacy=False,
            src_fps=20,
            fractions=__import__("prepare.build_dataset", fromlist=["x"]).SplitFractions(0, 0),
        )
    assert np.load(out / "new_joint_vecs" / "c0.npy").shape[1] == 251
    assert "resampled from 20 fps to 12.5 fps" in caplog.text and "frame(s) dropped" in caplog.text
    assert "pick/VERB" in (out / "texts" / "c0.txt").read_text()


def test_build_dataset_summary_names_the_retargeting(tmp_path: Path, reference_dir: Path, caplog) -> None:
    """Clips 1.25x the HumanML3D skeleton: every bone and the root path come out x0.80, and the summary says so."""
    import logging

    from prepare.build_dataset import SplitFractions, build_dataset

    src = tmp_path / "clips"
    src.mkdir()
    walk = np.load(reference_dir / "humanml3d/new_joints/012314.npy")
    for i in range(2):
        np.save(src / f"big{i}.npy", 1.25 * walk[i * 20 : 120 + i * 20])
        (src / f"big{i}.txt").write_text("a tall person walks forward\n")
    with caplog.at_level(logging.INFO):
        build_dataset(src, tmp_path / "out", get_dataset_spec("t2m"), use_spacy=False, fractions=SplitFractions(0, 0))
    assert "retargeted to the t2m target skeleton: bone lengths x0.80..x0.80 (-20 %..-20 %)" in caplog.text
    assert "root path length x0.80..x0.80" in caplog.text
