"""Joints -> BVH and stick-figure video speed beside the official CPU figures.

196-frame motion: ../shared/reference/official_fixture/bvh/ik_bvh_012314.npz (input_joints) when present,
otherwise a synthetic motion of the same size. Official figures: ../shared/reference/official_timings.md
(official code on this project's machine kind: 5.05 s plain / 5.22 s foot-IK BVH, 8.80 s per 1000 px mp4).
Machine noise of +-30 % is normal there; the ratios are what to compare.

    python -m benchmarks.bench_visualization               # ~15 s on 2 CPU cores
    python -m benchmarks.bench_visualization --repeats 7 --official_size
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from utils.log import setup_logging
from utils.skeleton import get_dataset_spec
from visualization.bvh import format_bvh
from visualization.joints2bvh import joints_to_bvh
from visualization.render import DEFAULT_SIZE, OFFICIAL_SIZE, render_motion

logger = logging.getLogger("bench_visualization")

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture" / "bvh" / "ik_bvh_012314.npz"
# Seconds, official code (official_timings.md).
OFFICIAL = {"bvh plain": 5.05, "bvh foot": 5.22, "video": 8.80}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (ffmpeg), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time (incl. child processes) of ``fn`` over ``repeats`` runs after one
    warm-up run. CPU time is much less sensitive than wall time to other jobs sharing the machine."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(_cpu_seconds() - c0)
    return statistics.median(walls), statistics.median(cpus)


def load_motion() -> tuple[np.ndarray, str]:
    if FIXTURE.is_file():
        return np.load(FIXTURE)["input_joints"].astype(np.float64), "012314 (196 frames, real)"
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 196)[:, None, None]
    base = rng.normal(scale=0.3, size=(1, 22, 3)) + np.array([0, 1.0, 0])
    return base + 0.1 * np.sin(6 * t + rng.uniform(0, 6, (1, 22, 3))), "synthetic (196 frames)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_visualization", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--official_size", action="store_true", help="also time the 1000 px video")
    args = parser.parse_args(argv)
    setup_logging()
    spec = get_dataset_spec("t2m")
    joints, source = load_motion()
    rows: list[tuple[str, float, float, float]] = []
    for label, kwargs, official in [
        ("BVH export, template offsets (official mode)", {"offsets": "template"}, OFFICIAL["bvh plain"]),
        ("BVH export, motion offsets (exact)", {"offsets": "motion"}, OFFICIAL["bvh plain"]),
        ("BVH export, template + foot cleanup", {"offsets": "template", "foot_cleanup": True}, OFFICIAL["bvh foot"]),
    ]:
        wall, cpu = timed(lambda kw=kwargs: format_bvh(joints_to_bvh(joints, spec, **kw)), args.repeats)
        rows.append((label, wall, cpu, official))
    sizes = [DEFAULT_SIZE] + ([OFFICIAL_SIZE] if args.official_size else [])
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for ext in (".mp4", ".gif"):
                path = Path(tmp) / f"v{size}{ext}"
                wall, cpu = timed(
                    lambda p=path, s=size: render_motion(joints, p, spec, title="a person walks", size=s), args.repeats
                )
                rows.append((f"stick-figure video {ext[1:]} {size} px", wall, cpu, OFFICIAL["video"]))
    print(f"motion: {source}; median of {args.repeats} runs after a warm-up; load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage (196 frames)':<46} {'wall (s)':>9} {'cpu (s)':>8} {'official (s)':>12} {'speed-up (wall)':>16}")
    for label, wall, cpu, official in rows:
        print(f"{label:<46} {wall:9.4f} {cpu:8.4f} {official:12.2f} {official / wall:15.0f}x")


if __name__ == "__main__":
    main()
