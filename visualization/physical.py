"""Physical metrics of motion files: ``python -m visualization.physical IN [IN ...] [--cleanup] [--json OUT]``.

Inputs: anything :func:`visualization.convert.read_motion` reads (features or joints ``.npy``, this project's
``.bvh``). Prints one line per file (penetration, floating, foot skating, jitter; definitions in
utils/physical.py) and, with ``--cleanup``, the same for the cleaned motion. ``--json`` also writes the records.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from utils.cleanup import cleanup_motion
from utils.cli import run_cli
from utils.log import setup_logging
from utils.physical import PhysicalMetrics, motion_report, write_report
from utils.skeleton import get_dataset_spec
from visualization.convert import read_motion

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m visualization.physical", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="motion files (.npy features/joints, .bvh)")
    parser.add_argument("--dataset", default=None, help="t2m (HumanML3D) or kit; default: inferred from the shape")
    parser.add_argument("--cleanup", action="store_true", help="also measure the motion after the clean-up")
    parser.add_argument("--json", type=Path, default=None, help="write the records to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    args = build_parser().parse_args(argv)
    setup_logging()
    spec = get_dataset_spec(args.dataset) if args.dataset else None
    if args.json is not None and args.json.suffix.lower() != ".json":
        raise ValueError(f"--json {args.json}: the output must end in .json")
    records = []
    for path in args.inputs:
        motion = read_motion(path.expanduser(), spec)
        joints = motion.as_joints()
        if joints.shape[0] < 4:
            raise ValueError(f"{path}: the metrics need at least 4 frames, got {joints.shape[0]}")
        if args.cleanup:
            record = motion_report(cleanup_motion(joints, motion.spec), motion.spec, joints, file=str(path))
            print(f"{path}: raw     {PhysicalMetrics(**record['raw_metrics']).summary()}")
            print(f"{path}: cleaned {PhysicalMetrics(**record['metrics']).summary()}")
        else:
            record = motion_report(joints, motion.spec, file=str(path))
            print(f"{path}: {PhysicalMetrics(**record['metrics']).summary()}")
        records.append(record)
    if args.json is not None:
        write_report(args.json, records, motion.spec)
        logger.info("wrote %s", args.json)
    return records


if __name__ == "__main__":
    run_cli(main)
