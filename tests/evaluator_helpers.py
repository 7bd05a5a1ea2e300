"""Tiny synthetic evaluator fixtures shared by the evaluator/evaluation tests (generated, no downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from models.evaluator.wrapper import EvaluatorPaths, T2MEvaluator, save_evaluator
from options.eval import EvaluatorTrainOptions
from utils.skeleton import get_dataset_spec

WORDS = (
    "unk",
    "sos",
    "eos",
    "a",
    "person",
    "walk",
    "forward",
    "slowly",
    "and",
    "turn",
    "left",
    "the",
    "jump",
    "up",
    "wave",
    "hand",
    "run",
    "in",
    "circle",
    "sit",
    "down",
    "on",
    "chair",
    "kick",
    "ball",
)

SMALL_SIZES = {
    "dim_movement_enc_hidden": 16,
    "dim_movement_latent": 16,
    "dim_text_hidden": 16,
    "dim_motion_hidden": 16,
    "dim_coemb_hidden": 8,
}


def write_tiny_glove(glove_dir: Path, words: tuple[str, ...] = WORDS, seed: int = 0) -> np.ndarray:
    """Write our_vab_{data.npy,words.pkl,idx.pkl} with random 300-d vectors; returns the vectors."""
    glove_dir.mkdir(parents=True, exist_ok=True)
    vectors = np.random.default_rng(seed).normal(size=(len(words), 300)).astype(np.float32)
    np.save(glove_dir / "our_vab_data.npy", vectors)
    with open(glove_dir / "our_vab_words.pkl", "wb") as f:
        pickle.dump(list(words), f)
    with open(glove_dir / "our_vab_idx.pkl", "wb") as f:
        pickle.dump({w: i for i, w in enumerate(words)}, f)
    return vectors


def write_tiny_dataset(root: Path, num_clips: int = 24, dim: int = 263, seed: int = 0) -> list[str]:
    """A HumanML3D-layout folder (new_joint_vecs, texts, Mean/Std, train/val/test = all clips) of random
    features; each clip's caption is drawn from :data:`WORDS`. Returns the clip ids."""
    from data.text import TextAnnotation, write_text_file

    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    rng = np.random.default_rng(seed)
    ids = [f"{i:06d}" for i in range(num_clips)]
    for i, clip in enumerate(ids):
        np.save(root / "new_joint_vecs" / f"{clip}.npy", rng.normal(size=(40 + 6 * i, dim)).astype(np.float32))
        words = rng.choice(WORDS[3:], size=int(rng.integers(3, 25)))
        write_text_file(
            root / "texts" / f"{clip}.txt", [TextAnnotation(" ".join(words), tuple(f"{w}/NOUN" for w in words))]
        )
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    np.save(root / "Mean.npy", np.zeros(dim, np.float32))
    np.save(root / "Std.npy", np.ones(dim, np.float32))
    return ids


def feature_stats(dataset_name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    dim = get_dataset_spec(dataset_name).dim_pose
    rng = np.random.default_rng(seed)
    return rng.normal(size=dim).astype(np.float32), rng.uniform(0.5, 2.0, size=dim).astype(np.float32)


def write_small_evaluator(checkpoints_dir: Path, dataset_name: str = "t2m", seed: int = 0) -> T2MEvaluator:
    """A small random evaluator saved in our format (official layout + ``model_args``)."""
    torch.manual_seed(seed)
    mean, std = feature_stats(dataset_name, seed)
    evaluator = T2MEvaluator(dim_pose=get_dataset_spec(dataset_name).dim_pose, mean=mean, std=std, **SMALL_SIZES)
    opt = EvaluatorTrainOptions(
        dataset_name=dataset_name, checkpoints_dir=str(checkpoints_dir), **{k: v for k, v in SMALL_SIZES.items()}
    )
    save_evaluator(evaluator, EvaluatorPaths.for_dataset(checkpoints_dir, dataset_name), opt, epoch=3)
    return evaluator


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: intra-op threads only add contention on the shared 2-core test machine (100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
