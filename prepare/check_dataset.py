"""Check a dataset folder and list every problem; exit 1 when there are errors (or warnings with --strict).

python -m prepare.check_dataset dataset/HumanML3D --dataset_name t2m
"""

from __future__ import annotations

import argparse
import sys

from data.checks import DEFAULT_SPLITS, check_dataset
from utils.cli import run_cli
from utils.skeleton import get_dataset_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_root", help="dataset folder (holding new_joint_vecs/) or its parent")
    parser.add_argument("--dataset_name", default="t2m", help="t2m (HumanML3D) or kit (KIT-ML)")
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS), help="split files that must exist")
    parser.add_argument("--headers_only", action="store_true", help="skip the NaN/inf scan (reads headers only)")
    parser.add_argument("--strict", action="store_true", help="also fail on warnings")
    args = parser.parse_args(argv)
    spec = get_dataset_spec(args.dataset_name)
    problems = check_dataset(args.data_root, spec, args.splits, check_values=not args.headers_only)
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    print(f"{args.data_root}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors or (args.strict and warnings) else 0


if __name__ == "__main__":
    run_cli(lambda argv: sys.exit(main(argv)))
