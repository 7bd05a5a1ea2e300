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


AMP_MODES = ("off", "bf16", "fp16")


@dataclass
class ScaledTrainingOptions(TrainingOptions):
    """Scale-out flags of the trainers that support them (VQ, masked and residual transformers).

    ``--batch_size`` stays the *global* optimisation batch: under ``torchrun --nproc_per_node N`` each process
    pushes ``batch_size / (N * accum_steps)`` samples per micro-step (see utils/distributed.py).
    """

    accum_steps: int = opt(1, "gradient-accumulation micro-steps per optimisation step (the global --batch_size "
                              "must divide by processes x accum_steps)")
    amp: str = opt("off", "mixed precision on CUDA: off | bf16 | fp16 (ignored on other devices)")
    compile: bool = opt(False, "torch.compile the trained network (CUDA recommended; first steps are slow)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.accum_steps < 1:
            raise ValueError(f"--accum_steps must be >= 1, got {self.accum_steps}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"--amp {self.amp!r}: use one of {AMP_MODES}")
