"""The option group of every script that loads trained runs and samples from them (generation, editing,
evaluation): run folders and the official sampling flags. Scripts override defaults, never redeclare the group."""

from __future__ import annotations

from dataclasses import dataclass

from options.base import opt, override
from options.common import CommonOptions, TextEncoderOptions
from utils.precision import PRECISION_HELP, PRECISIONS

MAX_MARGIN = 49  # decoding-margin tokens at most (a 196-frame motion's worth): the runs' sampling.json too
OFFICIAL_COND_SCALE = 4.0  # the official gen_t2m / eval_t2m guidance of the masked transformer


@dataclass
class SamplingOptions(TextEncoderOptions, CommonOptions):
    """Run folders + sampling flags (official names); defaults are gen_t2m's and also the library's
    (``models.pipeline.Sampling`` reads them from here)."""

    name: str = override("t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns", "masked-transformer run folder")
    res_name: str = opt("tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw", "residual-transformer run folder")
    which_epoch: str = opt("latest", "masked-transformer checkpoint file stem (official generation uses latest)")
    text_encoder: str = override("", "override the text encoder recorded in the run's opt.txt (minilm | clip)")
    seed: int = override(10107, "random seed (same seed -> same output; official generation and evaluation: 10107)")
    time_steps: int = opt(18, "masked-transformer decoding steps")
    cond_scale: float = opt(
        -1.0,
        "classifier-free guidance scale of the masked transformer; -1 = the masked-transformer run's sampling.json, "
        f"else {OFFICIAL_COND_SCALE:g} (official)",
    )
    res_cond_scale: float = opt(5.0, "guidance scale of the residual transformer (official gen_t2m: 5)")
    temperature: float = opt(1.0, "sampling temperature of the masked transformer")
    topkr: float = opt(0.9, "top-k filter ratio: keep the ceil((1 - topkr) * K) largest logits")
    gumbel_sample: bool = opt(False, "Gumbel-max sampling instead of categorical")
    force_mask: bool = opt(False, "unconditional generation (ignore the text)")
    precision: str = opt("fp32", PRECISION_HELP)
    margin: int = opt(
        -1,
        "tokens generated past each end of a free motion and cut off after decoding (the VQ decoder is least "
        "accurate in a sequence's first and last frames); -1 = the masked-transformer run's sampling.json, else 0 "
        "(official)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        checks = [
            ("time_steps", self.time_steps >= 1),
            ("cond_scale", self.cond_scale >= 0 or self.cond_scale == -1),
            ("res_cond_scale", self.res_cond_scale >= 0),
            ("temperature", self.temperature >= 0),
            ("topkr", 0 <= self.topkr < 1),
            ("precision", self.precision in PRECISIONS),
            ("margin", -1 <= self.margin <= MAX_MARGIN),
        ]
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"--{flag} {getattr(self, flag)!r} is out of range")
