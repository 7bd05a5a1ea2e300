"""Options of train_vq.py (docs/training.md#vq-options): official names and defaults, plus run-control extras."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from options.base import opt, override
from options.common import (
    EvaluatorOptions,
    LoaderOptions,
    ResumeOptions,
    ScaleOutOptions,
    ScheduleOptions,
    TrainingOptions,
)

RECONS_LOSSES = ("l1", "l1_smooth")


@dataclass
class VQOptions(TrainingOptions, ResumeOptions, ScaleOutOptions, ScheduleOptions, LoaderOptions, EvaluatorOptions):
    """Residual VQ-VAE training. Field names are the official option names (they are opt.txt keys)."""

    description = "Train the residual VQ-VAE motion tokenizer (MoMask stage 1)."

    name: str = override("rvq_nq6_dc512_nc512_noshare_qdp0.2")
    # data
    batch_size: int = override(256)
    window_size: int = opt(64, "training window length in frames")
    feat_bias: float = opt(5, "divisor of the root/foot-contact std (applied twice, as the reference does)")
    deterministic: bool = opt(False, "deterministic cuDNN kernels: bit-exact resume on CUDA (slower)")
    # optimisation (the scheduler steps from iteration warm_up_iter on, as the reference)
    milestones: list[int] = override([150000, 250000])
    gamma: float = override(0.1, "MultiStepLR decay factor (released model: 0.05)")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    commit: float = opt(0.02, "commitment loss weight")
    loss_vel: float = opt(0.5, "weight of the extra loss on the joint-position (RIC) features")
    recons_loss: str = opt("l1_smooth", "reconstruction loss: l1_smooth or l1")
    loss_ground: float = opt(
        0.0,
        "weight of a loss on the heights of the joints near the floor (feet, hands, knees that touch it), so "
        "that the decoder keeps them planted (0: the official loss; docs/training.md#vq-losses)",
    )
    # architecture
    code_dim: int = opt(512, "code dimension C")
    nb_code: int = opt(512, "codebook size K")
    mu: float = opt(0.99, "EMA decay of the codebooks")
    down_t: int = opt(2, "number of stride-2 down-sampling levels")
    stride_t: int = opt(2, "temporal stride of each level")
    width: int = opt(512, "convolution channels")
    depth: int = opt(3, "residual blocks per level")
    dilation_growth_rate: int = opt(3, "dilation growth of the residual blocks")
    output_emb_width: int = opt(512, "encoder output width (must equal code_dim)")
    vq_act: str = opt("relu", "activation: relu, silu or gelu")
    vq_norm: str | None = opt(None, "normalisation in residual blocks: None, LN, GN or BN")
    num_quantizers: int = opt(3, "number of residual quantizers Q (released model: 6)")
    shared_codebook: bool = opt(False, "one codebook shared by all quantizers")
    quantize_dropout_prob: float = opt(0.2, "probability of dropping the upper quantizer layers in a step")
    # decoder fine-tuning (docs/training.md#vq-decoder-fine-tuning)
    decoder_from: str = opt(
        "",
        "fine-tune only the decoder of this VQ run (a name under checkpoints_dir/dataset_name, same architecture "
        "flags): its encoder and codebooks are copied and frozen, so its codes and every transformer trained on "
        "them stay valid",
    )
    code_noise: float = opt(0.0, "decoder fine-tuning: chance that a corrupted window's base-layer code is replaced")
    res_code_noise: float = opt(0.0, "decoder fine-tuning: the same for each residual layer's codes")
    noisy_windows: float = opt(0.5, "decoder fine-tuning: fraction of the windows whose codes are corrupted")
    # evaluation during training (docs/training.md#vq-schedule: T2M evaluator on the val split; best FID/matching checkpoints)
    eval_fid: bool = opt(
        False,
        "also evaluate FID/matching with the T2M evaluator at each validation; the best "
        "checkpoints are then net_best_fid.tar / net_best_mm.tar (else net_best_loss.tar)",
    )
    eval_batch_size: int = opt(32, "evaluator batch size (official: 32)")
    # run control
    log_every: int = override(10)
    save_every_e: int = opt(2, "kept for opt.txt compatibility (unused, as in the reference)")
    eval_every_e: int = opt(1, "epochs between validations")
    ext: str = opt("default", "kept for opt.txt compatibility")
    which_epoch: str = opt("all", "kept for opt.txt compatibility")
    vq_name: str = opt("rvq_nq6_dc512_nc512_noshare_qdp0.2", "kept for opt.txt compatibility")

    @property
    def decoder_source_dir(self) -> Path | None:
        """``checkpoints_dir/<dataset_name>/<decoder_from>``, or None when the whole VQ trains."""
        if not self.decoder_from:
            return None
        return self.run_dir(self.decoder_from)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vq_norm == "None":
            self.vq_norm = None
        if self.recons_loss not in RECONS_LOSSES:
            raise ValueError(f"--recons_loss {self.recons_loss!r}: use one of {RECONS_LOSSES}")
        if self.output_emb_width != self.code_dim:
            raise ValueError(f"--output_emb_width ({self.output_emb_width}) must equal --code_dim ({self.code_dim})")
        if not 0.0 <= self.quantize_dropout_prob < 1.0:
            raise ValueError(f"--quantize_dropout_prob must be in [0, 1), got {self.quantize_dropout_prob}")
        if self.loss_ground < 0:
            raise ValueError(f"--loss_ground must be >= 0, got {self.loss_ground}")
        for flag in ("code_noise", "res_code_noise", "noisy_windows"):
            if not 0.0 <= getattr(self, flag) <= 1.0:
                raise ValueError(f"--{flag} must be in [0, 1], got {getattr(self, flag)}")
        if (self.code_noise or self.res_code_noise) and not self.decoder_from:
            raise ValueError(
                "--code_noise / --res_code_noise corrupt the codes of decoder fine-tuning: add --decoder_from"
            )
        if self.decoder_from == self.name:
            raise ValueError(f"--decoder_from {self.decoder_from} is this run (--name): fine-tune into a new run")
        if not (1 <= self.stride_t <= 8 and 0 <= self.down_t <= 8):  # before the power below (huge values hang)
            raise ValueError(f"--stride_t must be in 1..8 and --down_t in 0..8, got {self.stride_t}, {self.down_t}")
        if self.window_size % (self.stride_t**self.down_t):
            raise ValueError(
                f"--window_size {self.window_size} must be a multiple of "
                f"stride_t**down_t = {self.stride_t**self.down_t}"
            )
        self._require(
            positive=(
                "window_size",
                "nb_code",
                "code_dim",
                "width",
                "depth",
                "num_quantizers",
                "eval_every_e",
                "eval_batch_size",
            )
        )
        if self.feat_bias <= 0 or not 0 < self.mu < 1:
            raise ValueError(f"--feat_bias must be > 0 and --mu in (0, 1); got {self.feat_bias}, {self.mu}")
