"""Generate motions from text: joints/features .npy and BVH (and optionally mp4/gif) per caption.

    python gen_t2m.py --text "a person walks forward"                       # embedded demo model
    python gen_t2m.py --name t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns \
        --res_name tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw --text_path prompts.txt --outputs npy,bvh,mp4
"""

from __future__ import annotations

import logging

from tqdm import tqdm

from data.prompts import Prompt, check_caption, check_length, parse_prompt_file
from models.control import Control
from models.pipeline import Sampling
from models.runs import demo_cpu_threads, load_pipeline
from options.generate import GenerateOptions
from utils.cli import exit_without_teardown, run_cli
from utils.device import resolve_device, seed_everything
from utils.log import setup_logging
from utils.physical import PhysicalMetrics, motion_report, write_report
from visualization.control_input import read_control
from visualization.export import MotionWriter
from visualization.retarget import prepare_rig

logger = logging.getLogger("gen_t2m")


def collect_prompts(opt: GenerateOptions) -> list[Prompt]:
    """Captions and lengths from --text/--motion_length and/or --text_path, all validated before any work."""
    spec = opt.spec
    if not opt.text and not opt.text_path:
        raise ValueError('give a caption with --text "a person walks forward" or a prompt file with --text_path')
    frames = None
    if opt.motion_length:
        frames = check_length(opt.motion_length, spec.max_motion_length, spec.unit_length, "--motion_length")
    prompts = [Prompt(check_caption(t), frames) for t in opt.text]
    if opt.text_path:
        prompts += parse_prompt_file(opt.text_path, spec.max_motion_length, spec.unit_length)
    return prompts


def load_control(opt: GenerateOptions) -> Control | None:
    """The --control file (and selection flags) as a Control for every caption, or None."""
    if not opt.control:
        if opt.control_joints or opt.control_frames or opt.control_at:
            raise ValueError("--control_joints/--control_frames/--control_at need a --control file")
        return None
    targets = read_control(
        opt.control,
        opt.spec,
        total_frames=opt.motion_length or None,
        joints=opt.control_joints,
        frames=opt.control_frames,
        at=opt.control_at,
    )
    logger.info("control: %s from %s", targets.describe(opt.spec), opt.control)
    return Control(targets)


def main(argv: list[str] | None = None) -> None:
    opt = GenerateOptions.parse(argv)
    setup_logging()
    prompts = collect_prompts(opt)
    control = load_control(opt)
    if control is not None and opt.chain:
        raise ValueError("--control works on single motions, not with --chain")
    rig = prepare_rig(opt.target_rig, opt.mapping, opt.spec, opt.output_kinds)
    device = resolve_device(opt.device)
    seed_everything(opt.seed)
    demo_cpu_threads(opt, device)
    pipe = load_pipeline(opt, device)
    pipe.warn_if_unfamiliar([p.text for p in prompts])
    writer = MotionWriter.from_options(opt, pipe.spec, rig)
    sampling = Sampling.from_options(opt)
    report: list[dict[str, object]] = []

    def write(motion, sample: int, repeat: int) -> None:
        joints = writer.joints(motion, None if control is None else control.positions)
        writer.write(motion, sample=sample, repeat=repeat, joints=joints)
        if control is not None and control.targets is not None:  # measured on what was written (after --cleanup)
            logger.info(
                "sample %d repeat %d: controlled joints %.2f cm from their targets on average",
                sample,
                repeat,
                100 * control.targets.error(joints),
            )
        record = motion_report(
            joints,
            pipe.spec,
            motion.joints if opt.cleanup else None,
            caption=motion.caption,
            sample=sample,
            repeat=repeat,
            cleaned=opt.cleanup,
        )
        report.append(record)
        logger.log(
            logging.INFO if opt.verbose else logging.DEBUG,
            "sample%d_repeat%d: %s",
            sample,
            repeat,
            PhysicalMetrics(**record["metrics"]).summary(),
        )

    if opt.chain:
        for r in range(opt.repeat_times):
            motion = pipe.generate_long(
                [p.text for p in prompts], [p.frames for p in prompts], seed=opt.seed + r, sampling=sampling
            )
            write(motion, sample=0, repeat=r)
        write_report(writer.root / "physical.json", report, pipe.spec)
        logger.info("wrote %d chained motion(s) to %s", opt.repeat_times, writer.root)
        return
    batches = [prompts[i : i + opt.batch_size] for i in range(0, len(prompts), opt.batch_size)]
    jobs = [(r, b) for r in range(opt.repeat_times) for b in range(len(batches))]
    for r, b in tqdm(jobs, desc="generating", disable=len(jobs) == 1):
        batch = batches[b]
        motions = pipe.generate(
            [p.text for p in batch],
            [p.frames for p in batch],
            seed=opt.seed + 1000 * r + b,
            sampling=sampling,
            control=control,
        )
        for k, motion in enumerate(motions):
            write(motion, sample=b * opt.batch_size + k, repeat=r)
    write_report(writer.root / "physical.json", report, pipe.spec)
    logger.info("wrote %d motion(s) to %s", len(prompts) * opt.repeat_times, writer.root)


if __name__ == "__main__":
    run_cli(main)
    exit_without_teardown()
