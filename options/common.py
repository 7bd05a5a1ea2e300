"""Option groups shared by the stages, each declared once and composed into the stages' dataclasses.

``CommonOptions`` (run identity, paths, device, seed) is the root of every script's options;
``TrainingOptions`` adds what every trainer has (splits, global batch, epochs/steps, accumulation, run-folder
flags). The other groups are mixins a stage adds when it uses them. A stage changes a group's default with
:func:`options.base.override`, never by declaring the option again.
"""

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
        super().__post_init__()
        _ = self.spec  # validates dataset_name early, with the list of valid names

    @property
    def spec(self) -> DatasetSpec:
        return get_dataset_spec(self.dataset_name)

    def run_dir(self, name: str) -> Path:
        """``checkpoints_dir/<dataset_name>/<name>``: the folder of the run ``name`` (official layout,
        docs/checkpoints.md#folder-layout)."""
        return Path(self.checkpoints_dir).expanduser().resolve() / self.dataset_name / name

    @property
    def save_root(self) -> Path:
        """This run's folder, :meth:`run_dir` of ``name``."""
        return self.run_dir(self.name)

    @property
    def model_dir(self) -> Path:
        return self.save_root / "model"

    @property
    def meta_dir(self) -> Path:
        return self.save_root / "meta"


@dataclass
class TrainingOptions(CommonOptions):
    """What every trainer has: splits, the global batch, how long to train, accumulation, run-folder flags.

    ``--batch_size`` is the *global* optimisation batch: under ``torchrun --nproc_per_node N`` each process
    pushes ``batch_size / (N * accum_steps)`` samples per micro-step (see utils/distributed.py).
    """

    train_split: str = opt("train", "split file (<data_root>/<split>.txt) of the training clips")
    val_split: str = opt("val", "split file of the validation clips")
    batch_size: int = opt(64, "global optimisation batch (split over torchrun processes x --accum_steps)")
    lr: float = opt(2e-4, "learning rate")
    max_epoch: int = opt(50, "training epochs")
    max_steps: int = opt(
        0,
        "stop after this many optimisation steps (0 = run max_epoch epochs; the evaluator "
        "counts each of its two phases)",
    )
    accum_steps: int = opt(
        1,
        "gradient-accumulation micro-steps per optimisation step (the global --batch_size "
        "is split into processes x accum_steps shards)",
    )
    log_every: int = opt(50, "iterations between logged training losses")
    overwrite: bool = opt(
        False,
        "start this run again from scratch in its folder: its old checkpoints, meta and "
        "TensorBoard files are removed once the new run's inputs have been checked",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(
            positive=("batch_size", "lr", "max_epoch", "accum_steps"), non_negative=("max_steps", "log_every")
        )


@dataclass
class ResumeOptions(Options):
    """Trainers that resume from ``model/latest.tar``."""

    is_continue: bool = opt(
        False,
        "resume this run from model/latest.tar (a run folder without one is started again in place)",
        short="--resume",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.is_continue and getattr(self, "overwrite", False):
            raise ValueError("--is_continue resumes a run and --overwrite starts it again: pass one of them")


AMP_MODES = ("off", "bf16", "fp16")


@dataclass
class ScaleOutOptions(Options):
    """Mixed precision and compilation (the trainers of large networks: VQ, masked and residual transformers)."""

    amp: str = opt("off", "mixed precision on CUDA: off | bf16 | fp16 (ignored on other devices)")
    compile: bool = opt(False, "torch.compile the trained network (CUDA recommended; first steps are slow)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.amp not in AMP_MODES:
            raise ValueError(f"--amp {self.amp!r}: use one of {AMP_MODES}")


@dataclass
class ScheduleOptions(Options):
    """Linear warm-up then MultiStepLR, and periodic ``latest.tar`` saves (VQ and transformers; see
    training/loop.py for when each stage steps its scheduler)."""

    warm_up_iter: int = opt(2000, "linear warm-up: lr·(it+1)/(warm_up_iter+1) for iterations it < warm_up_iter")
    milestones: list[int] = opt([50000], "MultiStepLR milestones (iterations)")
    gamma: float = opt(0.1, "MultiStepLR decay factor")
    save_latest: int = opt(500, "iterations between latest.tar saves")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(positive=("save_latest",), non_negative=("warm_up_iter",))
        if sorted(self.milestones) != list(self.milestones):
            raise ValueError(f"--milestones must be increasing, got {self.milestones}")


@dataclass
class LoaderOptions(Options):
    """DataLoader workers."""

    num_workers: int = opt(0, "DataLoader worker processes (trainers: 0 keeps mid-epoch resume exact)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(non_negative=("num_workers",))


@dataclass
class TextEncoderOptions(Options):
    """The frozen text encoder (trainers of text-conditioned stages; scripts that load runs override it)."""

    text_encoder: str = opt("clip", "frozen text encoder: clip (ViT-B/32, 512-d, official) or minilm (384-d)")
    text_encoder_path: str = opt("", "local text-encoder weights (CLIP: a HF folder or the OpenAI ViT-B-32.pt file)")


@dataclass
class GloveOptions(Options):
    """The GloVe word vectors of the T2M evaluator's text encoder."""

    glove_dir: str = opt("./glove", "folder with our_vab_data.npy, our_vab_words.pkl, our_vab_idx.pkl")

    @property
    def glove_path(self) -> Path:
        return Path(self.glove_dir).expanduser().resolve()


@dataclass
class EvaluatorOptions(GloveOptions, CommonOptions):
    """Where a trained T2M evaluator is read from (benchmarks, VQ training with --eval_fid)."""

    evaluator_dir: str = opt(
        "",
        "checkpoints folder holding <dataset>/text_mot_match and <dataset>/Comp_v6_KLD005 (empty = --checkpoints_dir)",
    )

    @property
    def evaluator_root(self) -> Path:
        return Path(self.evaluator_dir or self.checkpoints_dir).expanduser().resolve()
