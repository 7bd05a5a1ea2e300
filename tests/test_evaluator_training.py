"""Evaluator training (training/evaluator.py, train_evaluator.py) on tiny synthetic data."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from models.evaluator.wrapper import EvaluatorPaths, T2MEvaluator
from options.base import read_opt_file
from tests.evaluator_helpers import (
    SMALL_SIZES,
    feature_stats,
    one_torch_thread,  # noqa: F401  (autouse fixture)
    write_tiny_dataset,
    write_tiny_glove,
)
from training.evaluator import contrastive_loss, train_evaluator


def test_contrastive_loss_closed_form() -> None:
    text = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 20.0]])
    motion = torch.tensor([[3.0, 4.0], [10.0, 0.0], [0.0, 20.0]])
    pos, neg = contrastive_loss(text, motion, margin=12.0, shift=1)
    assert pos.item() == pytest.approx(25.0 / 3)
    # negatives: text0-motion1 d=10, text1-motion2 d=sqrt(500)~22.4, text2-motion0 d=sqrt(9+256)~16.3
    assert neg.item() == pytest.approx((12 - 10) ** 2 / 3, rel=1e-5)
    with pytest.raises(ValueError, match="shift"):
        contrastive_loss(text, motion, 1.0, shift=0)


def _batches(seed: int = 0, n: int = 4, b: int = 8, t: int = 32, d: int = 263) -> list[tuple]:
    """Texts and motions share a hidden code per sample, so matching is learnable."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        code = torch.randn(b, 4, generator=g)
        words = (code @ torch.randn(4, 300, generator=g))[:, None].repeat(1, 22, 1)
        motions = (code @ torch.randn(4, d, generator=g))[:, None].repeat(1, t, 1) + 0.1 * torch.randn(
            b, t, d, generator=g
        )
        pos = torch.zeros(b, 22, 15)
        pos[..., 14] = 1
        out.append((words, pos, ["c"] * b, torch.full((b,), 22), motions, torch.full((b,), t), ["t"] * b))
    return out


def test_tiny_training_lowers_contrastive_loss() -> None:
    torch.manual_seed(0)
    mean, std = feature_stats("t2m")
    evaluator = T2MEvaluator(dim_pose=263, mean=mean, std=std, **SMALL_SIZES)
    batches = _batches()
    best_calls = []
    history = train_evaluator(
        evaluator,
        batches,
        batches,
        device=torch.device("cpu"),
        lr=3e-3,
        movement_epochs=2,
        max_epoch=12,
        margin=2.0,
        dim_movement_dec_hidden=16,
        log_every=0,
        on_best=lambda ev, epoch: best_calls.append(epoch),
    )
    assert len(history.movement) == 2 and history.movement[-1] < history.movement[0]
    assert len(history.matching) == 12
    assert history.val_matching[-1] < 0.5 * history.val_matching[0]
    assert best_calls and best_calls[0] == 0 and best_calls[-1] == history.best_epoch
    assert not evaluator.training


def test_train_evaluator_script_writes_loadable_official_layout(tmp_path) -> None:
    train_script = importlib.import_module("train_evaluator")
    write_tiny_dataset(tmp_path / "HumanML3D", num_clips=20)
    write_tiny_glove(tmp_path / "glove")
    ckpt = tmp_path / "checkpoints"
    argv = [
        "--dataset_name",
        "t2m",
        "--data_root",
        str(tmp_path),
        "--checkpoints_dir",
        str(ckpt),
        "--glove_dir",
        str(tmp_path / "glove"),
        "--device",
        "cpu",
        "--batch_size",
        "8",
        "--movement_epochs",
        "1",
        "--max_epoch",
        "2",
        "--log_every",
        "0",
        *[x for k, v in SMALL_SIZES.items() for x in (f"--{k}", str(v))],
        "--dim_movement_dec_hidden",
        "16",
    ]
    train_script.main(argv)
    paths = EvaluatorPaths.for_dataset(ckpt, "t2m")
    loaded = T2MEvaluator.from_checkpoints(ckpt, "t2m")
    state = torch.load(paths.weights, map_location="cpu", weights_only=True)
    assert {"movement_encoder", "text_encoder", "motion_encoder", "epoch"} <= set(state)
    assert read_opt_file(paths.opt_file)["dim_movement_latent"] == "16"
    std = np.load(paths.std_file)
    assert std[0] == pytest.approx(1 / 25) and std[4] == 1.0  # feat_bias applied twice to root dims
    assert loaded.model_args["dim_coemb_hidden"] == 8
    with pytest.raises(ValueError, match="--overwrite"):
        train_script.main(argv)
