"""Temporal inpainting: regenerate time spans of a motion from a caption; every other frame stays the source's.

python edit_t2m.py --source_motion walk.npy --text "a person jumps" --mask_edit_section 1s,3s
python edit_t2m.py --source_motion clip.bvh --text "a person sits down" -msec 4s,      # suffix
python edit_t2m.py --source_motion walk.npy --text "a person waves" -msec 1s,3s --target_rig mixamo.bvh
"""

from __future__ import annotations

import logging

from data.prompts import check_caption, parse_edit_frames
from models.control import Control
from models.pipeline import Sampling
from models.runs import demo_cpu_threads, load_pipeline
from options.generate import EditOptions
from utils.cli import exit_without_teardown, run_cli
from utils.device import resolve_device, seed_everything
from utils.log import setup_logging
from visualization.control_input import read_control
from visualization.convert import read_motion
from visualization.export import MotionWriter
from visualization.retarget import prepare_rig

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
    if source.features is None:
        logger.info(
            "--source_motion %s: joints converted to %d feature frames as the official process_file does (the "
            "%s skeleton's bone lengths, on the floor, starting at the origin facing +Z, one frame fewer); the "
            "frames outside the spans are that conversion's",
            opt.source_motion,
            features.shape[0],
            opt.spec.data_folder,
        )
    total, limit = features.shape[0], opt.spec.max_motion_length
    if total > limit:
        raise ValueError(
            f"--source_motion {opt.source_motion}: {total} frames, editing takes at most {limit} "
            f"({limit / opt.spec.fps:.1f} s): save a window of at most {limit} frames around the span (a "
            "features .npy) and edit that"
        )
    spans = parse_edit_frames(opt.mask_edit_section, total, opt.spec.fps)
    control = None
    if opt.control:  # targets in the edited motion's frames, inside the spans
        control = Control(
            read_control(
                opt.control,
                opt.spec,
                total_frames=total,
                joints=opt.control_joints,
                frames=opt.control_frames,
                at=opt.control_at,
            ).check(opt.spec, total)
        )
    rig = prepare_rig(opt.target_rig, opt.mapping, opt.spec, opt.output_kinds)
    device = resolve_device(opt.device)
    seed_everything(opt.seed)
    demo_cpu_threads(opt, device)
    pipe = load_pipeline(opt, device)
    sampling = Sampling.from_options(opt)
    writer = MotionWriter.from_options(opt, pipe.spec, rig)
    logger.info("regenerating from %r; %d source frames", caption, total)
    for r in range(opt.repeat_times):
        motion = pipe.edit(features, caption, spans, seed=opt.seed + r, sampling=sampling, control=control)
        joints = writer.joints(motion, None if control is None else control.positions)
        writer.write(motion, sample=0, repeat=r, joints=joints)
    logger.info("wrote %d edited motion(s) to %s", opt.repeat_times, writer.root)


if __name__ == "__main__":
    run_cli(main)
    exit_without_teardown()
