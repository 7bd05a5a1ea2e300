"""Options of the benchmark scripts (eval_t2m.py, eval_t2m_vq.py) and of the evaluator trainer (docs/evaluation.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from options.base import opt, override
from options.common import EvaluatorOptions, GloveOptions, LoaderOptions, TrainingOptions
from options.sampling import SamplingOptions


@dataclass
class BenchmarkOptions(EvaluatorOptions, LoaderOptions):
    """Shared by both benchmark scripts: protocol size, evaluator files, output name."""

    ext: str = opt("evaluation", "log file name: <eval_dir>/<ext>.log")
    eval_dir: str = opt(
        "",
        "folder for the evaluation logs (empty = checkpoints/<dataset>/<name>/eval, or "
        "./eval_logs/<dataset>/<name> when the checkpoint folder is read-only)",
    )
    split: str = opt("test", "evaluation split (official benchmark: test)")
    repeat_times: int = opt(20, "passes over the split; metrics are mean and 1.96*std/sqrt(n) over passes")
    batch_size: int = opt(32, "evaluation batch size (R-precision is computed within each batch of 32)")
    diversity_times: int = opt(
        0,
        "pairs drawn for Diversity (0 = protocol: 300 if more than 300 samples, else "
        "100); only for test sets smaller than that",
    )
    seed: int = override(10107, "random seed (official evaluation: fixseed(10107) once per run)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self._require(positive=("repeat_times", "batch_size"))

    @property
    def eval_root(self) -> Path:
        """Where the logs go: --eval_dir, else the run's eval/ folder, else (read-only run) ./eval_logs/..."""
        if self.eval_dir:
            return Path(self.eval_dir).expanduser().resolve()
        inside = self.save_root / "eval"
        target = inside if inside.is_dir() else self.save_root
        # No write bit for anyone = read-only on purpose (released weights), even for root, which os.access lets by.
        if os.access(target, os.W_OK) and target.stat().st_mode & 0o222:
            return inside
        return Path("eval_logs", self.dataset_name, self.name).resolve()


@dataclass
class EvalT2MOptions(SamplingOptions, BenchmarkOptions):
    """Text-to-motion benchmark of a masked (+ residual) transformer run."""

    description = "Evaluate MoMask text-to-motion checkpoints (FID, R-precision, MM-Dist, Diversity, MModality)."

    use_res_model: bool = opt(True, "decode all quantizer layers with the residual transformer")
    which_epoch: str = override(
        "latest",
        "evaluate every file in <name>/model whose name contains this (empty: the file the run is loaded from, latest)",
    )
    time_steps: int = override(10, "masked-transformer decoding steps (README: 10)")
    cond_scale: float = override(
        -1.0,
        "masked-transformer guidance scale (official README: 4 for t2m, 2 for kit); -1 = the masked-transformer run's "
        "sampling.json, else 4",
    )
    gumbel_sample: bool = override(True, "Gumbel sampling for the multimodality batches (official: True)")
    force_mask: bool = override(False, "unconditional generation; multimodality is then not computed")
    use_estimated_length: bool = opt(
        False,
        "generate at lengths from the length estimator instead of the ground-truth lengths (labelled in the output)",
    )
    mm_batches: int = opt(3, "batches per pass used for multimodality")
    mm_repeats: int = opt(
        30,
        "generations per text in the multimodality batches (protocol 30; 2-10 for a quick "
        "check draws that many pairs instead of 10)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mm_repeats < 2 and self.mm_batches > 0 and not self.force_mask:
            raise ValueError(
                f"--mm_repeats must be at least 2 (multimodality compares pairs of generations; the "
                f"protocol uses 30), got {self.mm_repeats}"
            )

    @property
    def length_label(self) -> str:
        return "estimated length" if self.use_estimated_length else "ground-truth length"


@dataclass
class EvalVQOptions(BenchmarkOptions):
    """Reconstruction benchmark of an RVQ-VAE run (FID, R-precision, MM-Dist, Diversity, MPJPE)."""

    description = "Evaluate RVQ-VAE reconstruction with the T2M evaluator (+ MPJPE)."

    name: str = override("rvq_nq6_dc512_nc512_noshare_qdp0.2", "RVQ-VAE run folder")
    which_epoch: str = opt(
        "",
        "evaluate every file in <name>/model whose name contains this (empty: the file "
        "the run is loaded from: net_best_fid, else net_best_loss, else latest)",
    )


@dataclass
class EvaluatorTrainOptions(TrainingOptions, LoaderOptions, GloveOptions):
    """Training the text/motion evaluator (contrastive co-embedding, Guo et al. 2022). Negatives are drawn inside
    each shard of ``batch_size / (processes x accum_steps)`` samples."""

    description = "Train the text-motion matching evaluator (movement, motion and text encoders)."

    name: str = override(
        "text_mot_match",
        "fixed by the official layout (finest.tar in checkpoints/<dataset>/"
        "<name>/model, stats in checkpoints/<dataset>/Comp_v6_KLD005)",
    )
    dim_movement_enc_hidden: int = opt(512, "movement encoder conv channels")
    dim_movement_latent: int = opt(512, "movement encoder output width")
    dim_movement_dec_hidden: int = opt(512, "movement decoder channels (pre-training only)")
    dim_text_hidden: int = opt(512, "text BiGRU width")
    dim_motion_hidden: int = opt(1024, "motion BiGRU width")
    dim_coemb_hidden: int = opt(512, "co-embedding width")
    unit_length: int = opt(4, "frames per movement step")
    max_text_len: int = opt(20, "words kept per caption")
    batch_size: int = override(32)
    lr: float = override(1e-4, "Adam learning rate")
    movement_epochs: int = opt(10, "movement auto-encoder pre-training epochs (0 = skip)")
    max_epoch: int = override(50, "contrastive training epochs")
    negative_margin: float = opt(10.0, "contrastive margin for mismatched text-motion pairs")
    lambda_smooth: float = opt(0.001, "movement pre-training: smoothness weight on consecutive latents")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.name != "text_mot_match":
            raise ValueError(
                f"--name {self.name!r}: the evaluator folders are fixed (text_mot_match, "
                "Comp_v6_KLD005); use a different --checkpoints_dir to keep evaluators apart"
            )
        if self.negative_margin <= 0:
            raise ValueError(f"--negative_margin must be > 0, got {self.negative_margin}")
        if self.batch_size < 2:
            raise ValueError(f"--batch_size must be >= 2 (negatives are other samples), got {self.batch_size}")
