"""Options of gen_t2m.py and edit_t2m.py: run names + sampling flags; architecture comes from each run's opt.txt."""
from __future__ import annotations

from dataclasses import dataclass

from options.base import opt, override
from options.sampling import SamplingOptions

OUTPUT_KINDS = ("npy", "bvh", "mp4", "gif")


@dataclass
class GenerateOptions(SamplingOptions):
    """Text -> motion generation (gen_t2m.py)."""

    description = "Generate 3D human motion from text with MoMask (writes joints .npy, features and BVH)."

    name: str = override("", "masked-transformer run folder (checkpoints/<dataset>/<name>); empty = embedded demo "
                             "model")
    res_name: str = override("", "residual-transformer run folder (with --name; empty: base code layer only)")
    ext: str = opt("text2motion", "output folder name under --out_dir")
    out_dir: str = opt("./generation", "where results are written (<out_dir>/<ext>/...)")
    text: list[str] = opt([], "a caption; repeat the flag for several", append=True)
    text_path: str = opt("", "prompt file, one 'caption#frames' per line ('#NA' or no '#' = estimate the length)")
    motion_length: int = opt(0, "frames for every --text caption (0 = estimate with the length estimator)")
    repeat_times: int = opt(1, "samples per caption")
    outputs: str = opt("npy,bvh", f"comma-separated outputs among {','.join(OUTPUT_KINDS)}")
    bvh_offsets: str = opt("template", "BVH skeleton: template (official retarget) or motion (exact bone lengths)")
    foot_cleanup: bool = opt(False, "remove foot skating in the BVH using the foot-contact channels")
    chain: bool = opt(False, "join all --text captions into one long continuous motion (inpainted transitions)")
    batch_size: int = opt(32, "prompts generated together")

    def __post_init__(self) -> None:
        super().__post_init__()
        kinds = self.output_kinds
        unknown = [k for k in kinds if k not in OUTPUT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"--outputs {self.outputs!r}: choose from {','.join(OUTPUT_KINDS)}")
        if self.bvh_offsets not in ("template", "motion"):
            raise ValueError(f"--bvh_offsets {self.bvh_offsets!r}: use template or motion")
        checks = [("repeat_times", self.repeat_times >= 1), ("motion_length", self.motion_length >= 0),
                  ("batch_size", self.batch_size >= 1)]
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"--{flag} {getattr(self, flag)!r} is out of range")

    @property
    def output_kinds(self) -> list[str]:
        return [k.strip().lower() for k in self.outputs.split(",") if k.strip()]


@dataclass
class EditOptions(GenerateOptions):
    """Temporal inpainting of a source motion (edit_t2m.py)."""

    description = "Regenerate time spans of a motion from text (temporal inpainting with MoMask)."

    ext: str = override("editing")
    out_dir: str = override("./editing")
    source_motion: str = opt("", "source motion: features .npy (T,263|251), joints .npy (T,J,3) or .bvh")
    mask_edit_section: list[str] = opt([], "span(s) to regenerate: start,end in frames (59), seconds (2.5s) or "
                                       "fractions (0.3); ',2s' = prefix, '8s,' = suffix", short="-msec")
    use_res_model: bool = opt(True, "regenerate the residual layers with the residual transformer")
    res_cond_scale: float = override(2.0, "guidance scale of the residual transformer (official edit_t2m: 2)")
