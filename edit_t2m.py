"""Temporal inpainting: regenerate time spans of a motion from a caption, keeping the rest exactly.

    python edit_t2m.py --source_motion walk.npy --text "a person jumps" --mask_edit_section 1s,3s
    python edit_t2m.py --source_motion clip.bvh --text "a person sits down" -msec 4s,      # suffix
"""
from __future__ import annotations

import logging
from pathlib import Path

from data.prompts import check_caption, parse_edit_sections
from gen_t2m import load_pipeline
from models.control import Control
from models.pipeline import Sampling
from options.generate import EditOptions
from utils.cli import run_cli
from utils.device import resolve_device, seed_everything
from utils.log import setup_logging
from visualization.control_input import read_control
from visualization.convert import read_motion
from visualization.export import MotionWriter

logger = logging.getLogger("edit_t2m")


def main(argv: list[str] | None = None) -> None:
    opt = EditOptions.parse(argv)
    setup_logging()
    if len(opt.text) != 1:
        raise ValueError('give exactly one caption for the edited spans with --text "..."')
    caption = check_caption(opt.text[0])
    if not opt.source_motion:
        raise ValueError("give the motion to edit with --source_motion (features .npy, joints .npy or .bvh)")
    source = read_motion(opt.source_motion, opt.spec)
    features = source.as_features()
    total = features.shape[0]
    if opt.motion_length:
        if not opt.spec.unit_length <= opt.motion_length <= total:
            raise ValueError(f"--motion_length {opt.motion_length} must be between {opt.spec.unit_length} and the "
                             f"source's {total} frames")
        features = features[: opt.motion_length]
        total = opt.motion_length
    spans = parse_edit_sections(opt.mask_edit_section, total, opt.spec.fps, opt.spec.unit_length)
    control = None
    if opt.control:   # targets in the edited motion's frames, inside the spans
        control = Control(read_control(opt.control, opt.spec, total_frames=total, joints=opt.control_joints,
                                       frames=opt.control_frames, at=opt.control_at).check(opt.spec, total))
    device = resolve_device(opt.device)
    seed_everything(opt.seed)
    pipe = load_pipeline(opt, device)
    sampling = Sampling.from_options(opt)
    writer = MotionWriter(Path(opt.out_dir) / opt.ext, pipe.spec, opt.output_kinds, bvh_offsets=opt.bvh_offsets,
                          cleanup=opt.cleanup)
    unit, fps = opt.spec.unit_length, opt.spec.fps
    logger.info("regenerating %s of %d frames from %r", ", ".join(f"{s * unit / fps:.2f}-{e * unit / fps:.2f} s"
                                                                 for s, e in spans), total, caption)
    for r in range(opt.repeat_times):
        motion = pipe.edit(features, caption, spans, seed=opt.seed + r, sampling=sampling, control=control)
        writer.write(motion, sample=0, repeat=r)
    logger.info("wrote %d edited motion(s) to %s", opt.repeat_times, writer.root)


if __name__ == "__main__":
    run_cli(main)
