"""Option groups shared by every stage (composed into each stage's dataclass by inheritance)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from options.base import Options, opt
from utils.skeleton import DatasetSpec, get_dataset_spec


@dataclass
class CommonOptions(Options):
    """Run identity, paths, device and seed."""

    name: str = opt("test", "run name: the folder checkpoints/<dataset_name>/<name>")
    dataset_name: str = opt("t2m", "t2m (HumanML3D) or kit (KIT-ML)")
    checkpoints_dir: str = opt("./checkpoints", "root of the checkpoint folders")
    data_root: str = opt("./dataset", "dataset folder, or its parent holding HumanML3D/ or KIT-ML/")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N | mps")
    seed: int = opt(3407, "random seed")

    def __post_init__(self) -> None:
        self.spec  # validates dataset_name early, with the list of valid names

    @property
    def spec(self) -> DatasetSpec:
        return get_dataset_spec(self.dataset_name)

    @property
    def save_root(self) -> Path:
        """``checkpoints_dir/<dataset_name>/<name>`` (official layout, spec §6.1)."""
        return Path(self.checkpoints_dir).expanduser().resolve() / self.dataset_name / self.name

    @property
    def model_dir(self) -> Path:
        return self.save_root / "model"

    @property
    def meta_dir(self) -> Path:
        return self.save_root / "meta"


@dataclass
class TrainingOptions(CommonOptions):
    """Options every trainer shares: which split files to train and validate on."""

    train_split: str = opt("train", "split file (<data_root>/<split>.txt) of the training clips")
    val_split: str = opt("val", "split file of the validation clips")
