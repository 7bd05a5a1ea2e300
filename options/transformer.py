"""Options of train_t2m_transformer.py and train_res_transformer.py (docs/training.md#transformer-schedule, docs/training.md#residual-transformer-objective).

Both stages share one group (the official code uses one parser for both); field names are the official option
names because they are ``opt.txt`` keys. Additions: ``clip_dim`` (the width of the frozen text encoder, recorded)
and the groups of options/common.py (text encoder, ``max_steps``, ``accum_steps``, ``amp``, ``compile``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from options.base import opt, override
from options.common import (
    LoaderOptions,
    ResumeOptions,
    ScaleOutOptions,
    ScheduleOptions,
    TextEncoderOptions,
    TrainingOptions,
)


@dataclass
class TransformerOptions(
    TrainingOptions, ResumeOptions, ScaleOutOptions, ScheduleOptions, LoaderOptions, TextEncoderOptions
):
    """Shared training options of the masked and the residual transformer (the scheduler steps every iteration,
    warm-up included, as the reference)."""

    # data
    batch_size: int = override(64, "global optimisation batch (released t2m: 64, kit: 16)")
    max_motion_length: int = opt(196, "frames of the zero-padded training motions")
    unit_length: int = opt(4, "frames per token (the VQ down-sampling factor)")
    # stage-1 tokenizer and text condition
    vq_name: str = opt(
        "rvq_nq6_dc512_nc512_noshare_qdp0.2",
        "VQ run folder under checkpoints/<dataset_name>/ (official parser default: rvq_nq1_dc512_nc512)",
    )
    clip_dim: int = opt(0, "width of the text condition vector; 0 = the text encoder's (512 CLIP, 384 MiniLM)")
    # architecture
    latent_dim: int = opt(384, "transformer width d")
    n_heads: int = opt(6, "attention heads")
    n_layers: int = opt(8, "encoder layers")
    ff_size: int = opt(1024, "feed-forward width")
    dropout: float = opt(0.2, "dropout of embeddings, attention and feed-forward")
    cond_drop_prob: float = opt(0.1, "probability of dropping the text condition (classifier-free guidance)")
    share_weight: bool = opt(False, "residual transformer: tie output projections to the next layer's embeddings")
    init_from: str = opt(
        "",
        "start from the weights of this run of the same stage (a name under checkpoints_dir/dataset_name, the same "
        "architecture and vq_name; the checkpoint generation would load); the optimizer, the schedule and the step "
        "count start afresh",
    )
    # optimisation
    max_epoch: int = override(500)
    # run control
    val_every_e: int = opt(1, "epochs between validation (+ best/latest checkpoint at the epoch end)")
    eval_every_e: int = opt(10, "kept for opt.txt compatibility (evaluation with the T2M evaluator)")
    # sampling flags kept from the official parser (they are opt.txt keys)
    gumbel_sample: bool = opt(False, "kept for opt.txt compatibility (sampling flag)")
    force_mask: bool = opt(False, "kept for opt.txt compatibility (sampling flag)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(
            positive=(
                "max_motion_length",
                "unit_length",
                "latent_dim",
                "n_heads",
                "n_layers",
                "ff_size",
                "eval_every_e",
                "val_every_e",
            ),
            non_negative=("clip_dim",),
        )
        if self.latent_dim % self.n_heads:
            raise ValueError(f"--latent_dim {self.latent_dim} must be divisible by --n_heads {self.n_heads}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(
                f"--dropout and --cond_drop_prob must be in [0, 1); got {self.dropout}, {self.cond_drop_prob}"
            )
        if self.init_from and self.init_from == self.name:
            raise ValueError(f"--init_from {self.init_from} is this run (--name): continue it with --is_continue")
        if self.max_motion_length % self.unit_length:
            raise ValueError(
                f"--max_motion_length {self.max_motion_length} must be a multiple of --unit_length {self.unit_length}"
            )

    @property
    def init_source_dir(self) -> Path | None:
        """``checkpoints_dir/<dataset_name>/<init_from>``, or None when the run starts from scratch."""
        if not self.init_from:
            return None
        return self.run_dir(self.init_from)

    @property
    def vq_dir(self) -> Path:
        """``checkpoints_dir/<dataset_name>/<vq_name>``."""
        return self.run_dir(self.vq_name)

    @property
    def max_tokens(self) -> int:
        return self.max_motion_length // self.unit_length


@dataclass
class MaskTransformerOptions(TransformerOptions):
    """Masked (base-layer) transformer training (stage 2)."""

    description = "Train the MoMask masked transformer on layer-0 RVQ tokens (stage 2)."

    name: str = override("t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns")


@dataclass
class ResidualTransformerOptions(TransformerOptions):
    """Residual transformer training (stage 3); defaults are the released recipe (cdp 0.2, share_weight)."""

    description = "Train the MoMask residual transformer on RVQ layers 1..Q-1 (stage 3)."

    name: str = override("tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw")
    cond_drop_prob: float = override(0.2)
    share_weight: bool = override(True)
