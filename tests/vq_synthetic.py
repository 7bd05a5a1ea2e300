"""Tiny synthetic dataset in the official HumanML3D layout, for the VQ tests (no real data needed).

Features are a few random smooth curves mixed into D dims by a fixed random matrix, with binary contacts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def smooth_motion(rng: np.random.Generator, frames: int, mixing: np.ndarray) -> np.ndarray:
    """(frames, D) float32: ``k`` smooth latent curves (random sinusoids) mixed by ``mixing`` (k, D); the last 4
    dims are {0, 1} contacts thresholded from the mixed curves (so the data is learnable by a small model)."""
    k = mixing.shape[0]
    t = np.arange(frames, dtype=np.float64)[:, None] / 20.0
    freq = rng.uniform(0.2, 1.2, size=(1, k))
    phase = rng.uniform(0, 2 * np.pi, size=(1, k))
    latent = np.sin(2 * np.pi * freq * t + phase) + rng.normal(0, 0.3, size=(1, k))
    out = latent @ mixing
    out[:, -4:] = (out[:, -4:] > 0).astype(np.float64)
    return out.astype(np.float32)


def make_dataset(
    root: Path, *, n_train: int = 10, n_val: int = 3, dim: int = 263, seed: int = 0, frames: tuple[int, int] = (80, 130)
) -> Path:
    """Write ``root/HumanML3D`` (new_joint_vecs, Mean/Std, train/val/test splits) and return that folder."""
    rng = np.random.default_rng(seed)
    mixing = rng.normal(0, 1, size=(6, dim)) / np.sqrt(6)
    folder = root / "HumanML3D"
    (folder / "new_joint_vecs").mkdir(parents=True)
    clips = {}
    for split, count in (("train", n_train), ("val", n_val)):
        ids = [f"{split[0]}{i:05d}" for i in range(count)]
        for motion_id in ids:
            clips[motion_id] = smooth_motion(rng, int(rng.integers(*frames)), mixing)
            np.save(folder / "new_joint_vecs" / f"{motion_id}.npy", clips[motion_id])
        (folder / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (folder / "test.txt").write_text((folder / "val.txt").read_text())
    data = np.concatenate(list(clips.values()))
    std = np.maximum(data.std(axis=0), 1e-2)
    # The VQ divides the root and contact std by feat_bias**2 = 25 (docs/data.md#normalisation); pre-multiplying keeps every
    # normalised dim at unit scale, so the loss measures how well the structure is learned.
    std[[0, 1, 2, 3, dim - 4, dim - 3, dim - 2, dim - 1]] *= 25.0
    np.save(folder / "Mean.npy", data.mean(axis=0).astype(np.float32))
    np.save(folder / "Std.npy", std.astype(np.float32))
    return folder


def tiny_vq_args(data_root: Path, checkpoints: Path, name: str = "tiny", **overrides: object) -> list[str]:
    """Command line of a seconds-long CPU training run of a small RVQ-VAE on the synthetic data."""
    values: dict[str, object] = dict(
        name=name,
        dataset_name="t2m",
        data_root=data_root,
        checkpoints_dir=checkpoints,
        device="cpu",
        batch_size=8,
        nb_code=32,
        code_dim=32,
        output_emb_width=32,
        width=32,
        num_quantizers=3,
        warm_up_iter=20,
        lr=1e-3,
        milestones="150 250",
        max_epoch=1000,
        max_steps=40,
        log_every=5,
        save_latest=20,
        seed=7,
    )
    values.update(overrides)
    argv: list[str] = []
    for key, value in values.items():
        if isinstance(value, bool):
            argv.append(f"--{key}" if value else f"--no-{key}")
            continue
        argv.append(f"--{key}")
        argv.extend(str(value).split() if key == "milestones" else [str(value)])
    return argv


def assert_same_vq_state(a: dict, b: dict) -> None:
    """Two VQ ``latest.tar`` dicts hold the same training state, to the bit (weights, codebooks, optimizer, lr)."""
    assert a["total_it"] == b["total_it"] and a["ep"] == b["ep"]
    assert a["train_state"]["epoch_it"] == b["train_state"]["epoch_it"]
    for key in a["vq_model"]:
        assert torch.equal(a["vq_model"][key], b["vq_model"][key]), key
    for key in a["vq_codebook_state"]:
        assert torch.equal(a["vq_codebook_state"][key], b["vq_codebook_state"][key]), key
    sa, sb = a["opt_vq_model"]["state"], b["opt_vq_model"]["state"]
    for p in sa:
        for k in sa[p]:
            assert torch.equal(sa[p][k], sb[p][k]), (p, k)
    assert a["opt_vq_model"]["param_groups"][0]["lr"] == b["opt_vq_model"]["param_groups"][0]["lr"]
    assert a["scheduler"] == b["scheduler"]
