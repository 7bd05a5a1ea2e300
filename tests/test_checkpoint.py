"""Checkpoint helpers: atomic save, weights_only load, strict loading with named exceptions."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from utils.checkpoint import (
    BEST_FID,
    BEST_LOSS,
    LATEST,
    LENGTH,
    MASK,
    RESIDUAL,
    VQ,
    CheckpointError,
    atomic_write,
    build_checked,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)


def test_save_is_atomic_and_loads(tmp_path: Path) -> None:
    path = tmp_path / "model" / "latest.tar"
    save_checkpoint(path, {"net": {"w": torch.ones(2)}, "ep": 3})
    assert load_checkpoint(path, required_keys=("net",))["ep"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["latest.tar"]  # no temporary file left behind


def test_failed_save_keeps_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "latest.tar"
    save_checkpoint(path, {"ep": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, {"ep": 2, "bad": Unpicklable()})
    assert load_checkpoint(path)["ep"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.tar"]


def test_atomic_write_replaces_only_on_success(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "motion.npy"
    with atomic_write(out) as tmp:
        assert tmp.parent == out.parent and tmp.suffix == ".npy" and tmp != out
        np.save(tmp, np.arange(3.0))  # np.save keeps the name: the suffix is already .npy
        assert not out.exists()  # nothing visible under the target name until the block ends
    np.testing.assert_array_equal(np.load(out), np.arange(3.0))
    with pytest.raises(ValueError, match="half-way"):
        with atomic_write(out) as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError("half-way")
    np.testing.assert_array_equal(np.load(out), np.arange(3.0))
    with pytest.raises(FileNotFoundError, match="produced no file"):
        with atomic_write(tmp_path / "never.txt"):
            pass
    assert sorted(p.name for p in out.parent.iterdir()) == ["motion.npy"]
    assert not (tmp_path / "never.txt").exists()


def test_corrupt_foreign_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(bad)
    pickled = tmp_path / "numpy.tar"
    torch.save({"x": np.int64(3)}, pickled)  # not loadable with weights_only=True
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(pickled)
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_checkpoint(tmp_path / "nothing" / "latest.tar")
    save_checkpoint(tmp_path / "other.tar", {"estimator": {}})
    with pytest.raises(CheckpointError, match=r"no \['vq_model'\] entry"):
        load_checkpoint(tmp_path / "other.tar", required_keys=("vq_model",))


def test_strict_load_names_problems() -> None:
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    other = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    load_state_dict_strict(other, sd)
    torch.testing.assert_close(other[0].weight, net[0].weight)
    with pytest.raises(CheckpointError, match="missing 1 key"):
        load_state_dict_strict(other, {k: v for k, v in sd.items() if k != "1.bias"})
    load_state_dict_strict(other, {k: v for k, v in sd.items() if k != "1.bias"}, allowed_missing_prefixes=("1.",))
    with pytest.raises(CheckpointError, match="unexpected 1 key"):
        load_state_dict_strict(other, {**sd, "clip_model.x": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_state_dict_strict(other, {**sd, "0.weight": torch.zeros(4, 2)})


class _Huge(nn.Module):
    """A constructor that asks for ``make()`` and records whether the call returned (it must not)."""

    reached = False

    def __init__(self, make) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.extra = make()
        _Huge.reached = True


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Embedding(10**9, 512),  # nb_code 1e9: 2 TB
        lambda: torch.zeros(10**6, 10**4),  # 40 GB, which overcommit would let empty() return
        lambda: torch.arange(0, 1e12),
        lambda: torch.full((2**40,), 1.0),
        lambda: nn.ModuleList(nn.Linear(256, 256) for _ in range(10**6)),  # grows layer by layer
        lambda: nn.ModuleList(nn.Linear(2, 3) for _ in range(10**6)),  # tiny layers: stopped by the tensor count
    ],
)
def test_build_refuses_absurd_sizes_before_allocating(make) -> None:
    sd = nn.Linear(2, 3).state_dict()
    _Huge.reached = False
    with pytest.raises(CheckpointError, match=r"x\.tar: .*far larger than the checkpoint's 0\.0 MiB"):
        build_checked(lambda: _Huge(make), {f"lin.{k}": v for k, v in sd.items()}, "x.tar")
    assert not _Huge.reached


def test_build_checked_loads_and_names_bad_settings() -> None:
    net = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 3))
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    built = build_checked(lambda: nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 3)), sd, "x.tar")
    assert all(torch.equal(built.state_dict()[k], v) for k, v in sd.items())
    with pytest.raises(CheckpointError, match=r"x\.tar: its settings .* do not describe a model: RuntimeError"):
        build_checked(lambda: nn.Sequential(nn.Embedding(-5, 8), nn.Linear(8, 3)), sd, "x.tar")
    with pytest.raises(CheckpointError, match=r"x\.tar does not fit .* shape mismatch"):
        build_checked(lambda: nn.Sequential(nn.Embedding(51, 8), nn.Linear(8, 3)), sd, "x.tar")


def test_lookup_order_per_stage_and_fallback_warning(tmp_path: Path, caplog) -> None:
    model_dir = tmp_path / "model"
    save_checkpoint(model_dir / LATEST, {"ep": 1})
    (model_dir / ".latest.123.tmp.tar").write_bytes(b"left by a killed save")
    assert list_checkpoints(model_dir) == [LATEST]  # temporary dot-files are not checkpoints
    with caplog.at_level(logging.WARNING, logger="utils.checkpoint"):
        assert find_checkpoint(model_dir, MASK) == model_dir / LATEST  # the masked transformer's own file
    assert not caplog.records
    with caplog.at_level(logging.WARNING, logger="utils.checkpoint"):
        assert find_checkpoint(model_dir, RESIDUAL) == model_dir / LATEST
    assert "no best checkpoint" in caplog.text and "never validated" in caplog.text
    save_checkpoint(model_dir / BEST_LOSS, {"ep": 1})  # what our VQ/residual trainers write
    assert find_checkpoint(model_dir, VQ) == find_checkpoint(model_dir, RESIDUAL) == model_dir / BEST_LOSS
    save_checkpoint(model_dir / BEST_FID, {"ep": 1})  # the official release file wins
    assert find_checkpoint(model_dir, VQ) == model_dir / BEST_FID
    assert find_checkpoint(model_dir, VQ, "latest") == find_checkpoint(model_dir, VQ, LATEST) == model_dir / LATEST
    with pytest.raises(CheckpointError, match=r"net_best_acc\.tar not found.*net_best_fid\.tar"):
        find_checkpoint(model_dir, MASK, "net_best_acc")
    with pytest.raises(CheckpointError, match=r"no length checkpoint .*finest\.tar"):
        find_checkpoint(model_dir, LENGTH)
