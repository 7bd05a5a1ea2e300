"""Options of gen_t2m.py and edit_t2m.py: run names + sampling flags; architecture comes from each run's opt.txt."""

from __future__ import annotations

from dataclasses import dataclass, fields

from options.base import opt, override
from options.sampling import SamplingOptions

OUTPUT_KINDS = ("npy", "bvh", "mp4", "gif", "fbx", "glb")


@dataclass
class GenerateOptions(SamplingOptions):
    """Text -> motion generation (gen_t2m.py)."""

    description = "Generate 3D human motion from text with MoMask (writes joints .npy, features and BVH)."

    name: str = override(
        "", "masked-transformer run folder (checkpoints/<dataset>/<name>); empty = embedded demo model"
    )
    res_name: str = override("", "residual-transformer run folder (with --name; empty: base code layer only)")
    ext: str = opt("text2motion", "output folder name under --out_dir")
    out_dir: str = opt("./generation", "where results are written (<out_dir>/<ext>/...)")
    text: list[str] = opt([], "a caption; repeat the flag for several", append=True)
    text_path: str = opt("", "prompt file, one 'caption#frames' per line ('#NA' or no '#' = estimate the length)")
    motion_length: int = opt(0, "frames for every --text caption (0 = estimate with the length estimator)")
    repeat_times: int = opt(1, "samples per caption")
    outputs: str = opt("npy,bvh", f"comma-separated outputs among {','.join(OUTPUT_KINDS)}")
    bvh_offsets: str = opt(
        "template",
        "BVH skeleton: template (official retarget), motion (the motion's mean bone lengths; the log says how "
        "far FK lands from generated joints) or "
        "tpose (template lengths on a T-pose rest)",
    )
    target_rig: str = opt("", "retarget BVH/FBX/GLB onto this rig, a BVH file (Mixamo or SMPL names, else --mapping)")
    mapping: str = opt("", "with --target_rig: JSON file {rig joint: source joint name}")
    cleanup: bool = opt(
        False,
        "physical clean-up of the joints (npy/BVH/video): less jitter and foot skating, "
        "feet locked on the floor (utils/cleanup.py)",
    )
    foot_cleanup: bool = opt(False, "older name of --cleanup")
    verbose: bool = opt(False, "log a physical summary (penetration, floating, skating, jitter) per motion")
    chain: bool = opt(False, "join all --text captions into one long continuous motion (inpainted transitions)")
    batch_size: int = opt(32, "prompts generated together")
    control: str = opt(
        "",
        "spatial control file: .json keyframes [{joint, frame, position}], .npy targets (T,J,3) "
        "in metres with NaN = free, or a motion (.bvh, joints/features .npy) to follow. "
        "Coordinates: the generated motion's frame (Y up, metres, it starts with the pelvis over "
        "the origin facing +Z)",
    )
    control_joints: str = opt("", "joints taken from a --control motion: names/indices or 'all' (default pelvis)")
    control_frames: str = opt("", "frames of the --control motion used: 'all' (default) or e.g. 0,40,2s,0.5")
    control_at: str = opt("", "frames of the new motion where those go (as many, or one start); default the same")

    def __post_init__(self) -> None:
        super().__post_init__()
        kinds = self.output_kinds
        unknown = [k for k in kinds if k not in OUTPUT_KINDS]
        if unknown or not kinds:
            raise ValueError(f"--outputs {self.outputs!r}: choose from {','.join(OUTPUT_KINDS)}")
        if self.bvh_offsets not in ("template", "motion", "tpose"):
            raise ValueError(f"--bvh_offsets {self.bvh_offsets!r}: use template, motion or tpose")
        self.cleanup = self.cleanup or self.foot_cleanup
        checks = [
            ("repeat_times", self.repeat_times >= 1),
            ("motion_length", self.motion_length >= 0),
            ("batch_size", self.batch_size >= 1),
        ]
        for flag, ok in checks:
            if not ok:
                raise ValueError(f"--{flag} {getattr(self, flag)!r} is out of range")
        if self.margin > 0 and (self.control or self.chain):
            raise ValueError(
                f"--margin {self.margin} applies to free single motions; leave it out with "
                f"{'--control' if self.control else '--chain'} (those decode their exact frames)"
            )

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
    mask_edit_section: list[str] = opt(
        [],
        "span(s) to regenerate: start,end in frames (59), seconds (2.5s) or "
        "fractions (0.3); ',2s' = prefix, '8s,' = suffix",
        short="-msec",
    )
    use_res_model: bool = opt(True, "regenerate the residual layers with the residual transformer")
    res_cond_scale: float = override(2.0, "guidance scale of the residual transformer (official edit_t2m: 2)")

    # Generation flags with no meaning for an edit: refused with the reason rather than silently ignored.
    NOT_FOR_EDITING = {
        "chain": "editing regenerates spans of one source motion; chain captions with gen_t2m.py --chain",
        "motion_length": "the edit keeps the source's length; trim the source file instead",
        "text_path": 'give the one caption of the edited spans with --text "..."',
        "batch_size": "an edit is one motion; use --repeat_times for several samples",
        "margin": "an edit decodes the source's own frames; the margin is for gen_t2m.py's free motions",
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        defaults = {f.name: f.default for f in fields(self)}
        for flag, why in self.NOT_FOR_EDITING.items():
            if getattr(self, flag) != defaults[flag]:
                raise ValueError(f"--{flag} does not apply to edit_t2m.py: {why}")
