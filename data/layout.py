"""The official dataset folder layout (docs/data.md#folder-layout) and its statistics files (docs/data.md#normalisation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data.feature_stats import load_feature_stats
from utils.skeleton import DatasetSpec


@dataclass(frozen=True)
class DatasetPaths:
    """Paths of one dataset folder, e.g. ``dataset/HumanML3D``."""

    root: Path

    @classmethod
    def for_dataset(cls, data_root: str | Path, spec: DatasetSpec) -> DatasetPaths:
        """``data_root`` may be the dataset folder itself or its parent (``./dataset``)."""
        root = Path(data_root).expanduser().resolve()
        if not (root / "new_joint_vecs").is_dir() and (root / spec.data_folder).is_dir():
            root = root / spec.data_folder
        return cls(root)

    @property
    def motion_dir(self) -> Path:
        return self.root / "new_joint_vecs"

    @property
    def joints_dir(self) -> Path:
        return self.root / "new_joints"

    @property
    def text_dir(self) -> Path:
        return self.root / "texts"

    @property
    def mean_file(self) -> Path:
        return self.root / "Mean.npy"

    @property
    def std_file(self) -> Path:
        return self.root / "Std.npy"

    def split_file(self, split: str) -> Path:
        return self.root / f"{split}.txt"

    def read_split(self, split: str) -> list[str]:
        """Motion ids of a split file (one per line, blank lines ignored)."""
        path = self.split_file(split)
        if not path.is_file():
            raise FileNotFoundError(f"split file {path} not found (expected train/val/test.txt in {self.root})")
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"split file {path} is not UTF-8 text (expected one motion id per line)") from None
        return [line.strip() for line in text.splitlines() if line.strip()]

    def load_mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        for path in (self.mean_file, self.std_file):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: the dataset folder needs Mean.npy and Std.npy")
        return load_feature_stats(self.mean_file, self.std_file, "dataset")


def apply_feat_bias(std: np.ndarray, spec: DatasetSpec, feat_bias: float = 5.0, times: int = 2) -> np.ndarray:
    """The VQ ``meta/std.npy``: root and foot-contact std divided by ``feat_bias`` ``times`` times.

    QUIRK(reference): the official VQ dataset divides in place on an array shared by train and val, so the
    division happens twice (/25 for feat_bias 5). Kept: the released meta files and every model contain it.
    """
    out = np.array(std, dtype=np.float32, copy=True)
    sl = spec.feature_slices
    idx = np.r_[sl["root_rot_vel"], sl["root_lin_vel"], sl["root_y"], sl["foot_contact"]]
    out[idx] = out[idx] / (feat_bias**times)
    return out
