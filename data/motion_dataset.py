"""VQ training data: fixed-length windows of normalised motion features (docs/data.md#datasets MotionDataset).

Clips are read once from the official layout (``new_joint_vecs/<id>.npy`` listed in ``<split>.txt``) and kept in
memory. Window order is drawn from ``(seed, epoch)`` by :class:`ResumableRandomSampler`, so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data.layout import DatasetPaths, apply_feat_bias
from utils.distributed import ShardedBatchSampler, make_shard_plan
from utils.npy import load_npy, read_npy_header
from utils.skeleton import DatasetSpec

logger = logging.getLogger(__name__)


def vq_normalisation(paths: DatasetPaths, spec: DatasetSpec, feat_bias: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) (D,) float32 the VQ normalises with: dataset Mean/Std, std with the doubled feat_bias quirk."""
    mean, std = paths.load_mean_std()
    for name, arr in (("Mean.npy", mean), ("Std.npy", std)):
        if arr.shape != (spec.dim_pose,):
            raise ValueError(
                f"{paths.root / name} has shape {arr.shape}, but dataset_name {spec.name} has "
                f"{spec.dim_pose} features: wrong --dataset_name or --data_root?"
            )
    if not np.all(std > 0):
        raise ValueError(f"{paths.std_file} has {int(np.sum(std <= 0))} entries <= 0")
    return mean, apply_feat_bias(std, spec, feat_bias)


def load_split_motions(
    paths: DatasetPaths,
    split: str,
    spec: DatasetSpec,
    min_frames: int,
) -> tuple[list[str], list[np.ndarray]]:
    """Ids and (T, D) float32 features of a split's clips with at least ``min_frames`` frames.

    Missing files are skipped with a warning (the reference skips them silently); a feature file whose width is
    not ``spec.dim_pose`` is an error (wrong ``--dataset_name``).
    """
    ids, motions, missing, short = [], [], [], 0
    for motion_id in paths.read_split(split):
        path = paths.motion_dir / f"{motion_id}.npy"
        if not path.is_file():
            missing.append(motion_id)
            continue
        shape = read_npy_header(path, "motion features").shape
        if len(shape) != 2 or shape[1] != spec.dim_pose:
            raise ValueError(
                f"{path} has shape {shape}, but dataset_name {spec.name} expects "
                f"(T, {spec.dim_pose}) features: wrong dataset_name or data_root?"
            )
        motion = load_npy(path, "motion features")
        if motion.shape[0] < min_frames:
            short += 1
            continue
        ids.append(motion_id)
        motions.append(motion.astype(np.float32, copy=False))
    if missing:
        logger.warning(
            "%s split: %d motion file(s) missing in %s (e.g. %s); skipped",
            split,
            len(missing),
            paths.motion_dir,
            missing[:3],
        )
    logger.info("%s split: %d clips (%d shorter than %d frames skipped)", split, len(ids), short, min_frames)
    return ids, motions


class MotionDataset(Dataset):
    """Normalised windows (window_size, D) of clips; clip k contributes ``T_k - window_size`` windows.

    QUIRK(reference): item i maps to clip ``k = searchsorted(cumsum, i) - 1`` at start ``i - cumsum[k] - 1``
    (item 0 -> clip 0, start 0), so the last start ``T - window_size`` is never used. Kept for identical data.
    """

    def __init__(self, motions: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray, window_size: int = 64) -> None:
        self.window_size = window_size
        self.motions = [m for m in motions if m.shape[0] >= window_size]
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        lengths = [m.shape[0] - window_size for m in self.motions]
        self.cumsum = np.cumsum([0] + lengths)

    def __len__(self) -> int:
        return int(self.cumsum[-1])

    def locate(self, item: int) -> tuple[int, int]:
        """(clip index, window start) of a global item index."""
        if item == 0:
            return 0, 0
        clip = int(np.searchsorted(self.cumsum, item)) - 1
        return clip, int(item - self.cumsum[clip] - 1)

    def __getitem__(self, item: int) -> torch.Tensor:
        clip, start = self.locate(item)
        window = self.motions[clip][start : start + self.window_size]
        return torch.from_numpy((window - self.mean) / self.std)


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The item order of one epoch, a pure function of ``(seed, epoch)``."""
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(num_items, generator=g)


class ResumableRandomSampler(Sampler[int]):
    """Shuffled indices per epoch from ``(seed, epoch)``, optionally skipping the first ``start`` items."""

    def __init__(self, num_items: int, seed: int) -> None:
        self.num_items, self.seed = num_items, seed
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[int]:
        return iter(epoch_permutation(self.num_items, self.seed, self.epoch)[self.start :].tolist())

    def __len__(self) -> int:
        return self.num_items - self.start


def make_train_loader(
    dataset: MotionDataset,
    *,
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    accum_steps: int = 1,
) -> DataLoader:
    """Shuffled (resumable), ``drop_last`` loader of this process's micro-batches.

    ``batch_size`` is the global batch; the loader yields ``accum_steps`` micro-batches per optimisation step,
    this rank's shards of the global batches of :class:`ResumableRandomSampler`'s order
    (:class:`utils.distributed.ShardedBatchSampler`, reached as ``loader.batch_sampler``).
    """
    if len(dataset) < batch_size:
        raise ValueError(
            f"the training split has {len(dataset)} windows, fewer than --batch_size {batch_size}: "
            "lower --batch_size or add data"
        )
    num_items = len(dataset)
    sampler = ShardedBatchSampler(
        lambda epoch: epoch_permutation(num_items, seed, epoch), num_items, make_shard_plan(batch_size, accum_steps)
    )
    return DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory, persistent_workers=False
    )


def make_val_loader(
    dataset: MotionDataset, *, batch_size: int, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """Every window once, in order (deterministic validation loss)."""
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=False, drop_last=False, num_workers=num_workers, pin_memory=pin_memory
    )


def load_vq_datasets(
    data_root: str | Path,
    spec: DatasetSpec,
    *,
    window_size: int = 64,
    feat_bias: float = 5.0,
    splits: tuple[str, str] = ("train", "val"),
) -> tuple[MotionDataset, MotionDataset, np.ndarray, np.ndarray]:
    """(train, val, mean, std) for VQ training from the official dataset folder."""
    paths = DatasetPaths.for_dataset(data_root, spec)
    if not paths.motion_dir.is_dir():
        raise FileNotFoundError(
            f"{paths.motion_dir} not found: --data_root must be the {spec.data_folder} folder "
            "(with new_joint_vecs/, Mean.npy, Std.npy, train.txt, val.txt) or its parent"
        )
    mean, std = vq_normalisation(paths, spec, feat_bias)
    out = []
    for split in splits:
        _, motions = load_split_motions(paths, split, spec, min_frames=window_size)
        dataset = MotionDataset(motions, mean, std, window_size)
        if len(dataset) == 0:
            raise ValueError(
                f"{paths.split_file(split)}: no clip longer than {window_size} frames was found in {paths.motion_dir}"
            )
        out.append(dataset)
    return out[0], out[1], mean, std
