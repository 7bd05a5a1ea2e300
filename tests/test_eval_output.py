"""Evaluation logs go where the user says (--eval_dir), and a read-only checkpoint folder is never written."""

from __future__ import annotations

import importlib
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from tests.evaluator_helpers import (
    one_torch_thread,  # noqa: F401  (autouse fixture)
    write_small_evaluator,
    write_tiny_dataset,
    write_tiny_glove,
)

VQ = "rvq_nq6_dc64_nc32_w64"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def _chmod_tree(root: Path, writable: bool) -> None:
    for p in [root, *root.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture()
def read_only_run(tmp_path: Path, fixture_dir: Path):
    ckpt = tmp_path / "checkpoints"
    shutil.copytree(fixture_dir / "checkpoints" / "t2m" / VQ, ckpt / "t2m" / VQ)
    write_small_evaluator(tmp_path / "evaluators", "t2m")
    write_tiny_dataset(tmp_path / "HumanML3D", num_clips=20)
    write_tiny_glove(tmp_path / "glove")
    common = [
        "--dataset_name",
        "t2m",
        "--checkpoints_dir",
        str(ckpt),
        "--evaluator_dir",
        str(tmp_path / "evaluators"),
        "--data_root",
        str(tmp_path),
        "--glove_dir",
        str(tmp_path / "glove"),
        "--device",
        "cpu",
        "--repeat_times",
        "1",
        "--batch_size",
        "8",
        "--diversity_times",
        "10",
        "--name",
        VQ,
        "--ext",
        "ro",
    ]
    _chmod_tree(ckpt, writable=False)
    yield ckpt, common
    _chmod_tree(ckpt, writable=True)


def test_eval_on_a_read_only_checkpoint_folder(read_only_run, tmp_path: Path, monkeypatch) -> None:
    eval_t2m_vq = importlib.import_module("eval_t2m_vq")
    ckpt, common = read_only_run
    before = _snapshot(ckpt)
    monkeypatch.chdir(tmp_path)
    eval_t2m_vq.main(common)  # default: ./eval_logs/<ds>/<name>
    assert (tmp_path / "eval_logs" / "t2m" / VQ / "ro.log").read_text().startswith("net_best_fid.tar final result")
    eval_t2m_vq.main([*common, "--eval_dir", str(tmp_path / "mine")])  # the user's folder
    assert (tmp_path / "mine" / "ro.log").is_file() and (tmp_path / "mine" / "ro.txt").is_file()
    assert _snapshot(ckpt) == before


def test_quick_multimodality_with_few_repeats() -> None:
    """--mm_repeats 2..10 (a quick check) draws that many pairs; fewer than 2 is refused."""
    from options.eval import EvalT2MOptions
    from utils.metrics import multimodality

    assert EvalT2MOptions.parse(["--mm_repeats", "3"]).mm_repeats == 3
    with pytest.raises(ValueError, match="--mm_repeats must be at least 2"):
        EvalT2MOptions.parse(["--mm_repeats", "1"])
    emb = np.random.default_rng(0).normal(size=(5, 3, 4))
    g = np.random.default_rng(7)
    first, second = g.choice(3, 3, replace=False), g.choice(3, 3, replace=False)
    expected = np.linalg.norm(emb[:, first] - emb[:, second], axis=2).mean()
    assert multimodality(emb, np.random.default_rng(7)) == pytest.approx(expected, rel=1e-12)
