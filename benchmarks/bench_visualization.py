"""Joints -> BVH and stick-figure video speed beside the official CPU figures.

196-frame motion: ../shared/reference/official_fixture/bvh/ik_bvh_012314.npz (input_joints) when present,
otherwise a synthetic motion of the same size. Official figures: ../shared/reference/official_timings.md
(official code on this project's machine kind: 5.05 s plain / 5.22 s foot-IK BVH, 8.80 s per 1000 px mp4).
Machine noise of +-30 % is normal there; the ratios are what to compare.

What both sides do. BVH: the official joints -> BVH is an iterative IK fit (100 iterations) and one file
write per export (gen_t2m writes two per motion, plain and foot IK: each row compares with ONE of them);
ours is the closed-form fit and one file text. Video: the official one is a 1000 x 1000 px matplotlib 3D
redraw per frame saved by matplotlib's ffmpeg writer (libx264 defaults: preset medium, crf 23); the speed-up
is printed only for our 1000 px mp4, with our default preset (``visualization.render.X264_PRESET``) and with
``medium`` (equal encoder work); our 512 px mp4 and the GIFs are printed for reference without a ratio.
Every row: min / median / max wall time of ``--repeats`` runs after one warm-up run, and the median CPU time
(this process + ffmpeg).

    python -m benchmarks.bench_visualization               # about a minute on 2 CPU cores
    python -m benchmarks.bench_visualization --repeats 7
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import load_average, official_hardware, time_runs
from utils.log import setup_logging
from utils.precision import describe_device
from utils.skeleton import get_dataset_spec
from visualization.bvh import format_bvh
from visualization.joints2bvh import joints_to_bvh
from visualization.render import DEFAULT_SIZE, OFFICIAL_SIZE, X264_PRESET, render_motion

logger = logging.getLogger("bench_visualization")

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURE = SHARED / "reference" / "official_fixture" / "bvh" / "ik_bvh_012314.npz"
# Seconds, official code (official_timings.md).
OFFICIAL = {"bvh plain": 5.05, "bvh foot": 5.22, "video": 8.80}


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
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row, after one warm-up run")
    args = parser.parse_args(argv)
    setup_logging()
    spec = get_dataset_spec("t2m")
    joints, source = load_motion()
    # (label, wall (min, median, max), cpu median, official seconds or None, output bytes or None)
    rows: list[tuple[str, tuple[float, float, float], float, float | None, int | None]] = []
    for label, kwargs, official in [
        ("BVH export, template offsets (official mode)", {"offsets": "template"}, OFFICIAL["bvh plain"]),
        ("BVH export, motion offsets (exact)", {"offsets": "motion"}, OFFICIAL["bvh plain"]),
        (
            "BVH export, template + clean-up (feet locked)",
            {"offsets": "template", "cleanup": True},
            OFFICIAL["bvh foot"],
        ),
    ]:
        t = time_runs(lambda kw=kwargs: format_bvh(joints_to_bvh(joints, spec, **kw)), args.repeats)
        rows.append((label, t.wall, t.cpu[1], official, None))
    videos = [
        (OFFICIAL_SIZE, ".mp4", X264_PRESET, OFFICIAL["video"]),
        (OFFICIAL_SIZE, ".mp4", "medium", OFFICIAL["video"]),
        (DEFAULT_SIZE, ".mp4", X264_PRESET, None),
        (DEFAULT_SIZE, ".gif", None, None),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for size, ext, preset, official in videos:
            path = Path(tmp) / f"v{size}{preset}{ext}"
            extra = {"preset": preset} if preset else {}
            t = time_runs(
                lambda p=path, s=size, kw=extra: render_motion(joints, p, spec, title="a person walks", size=s, **kw),
                args.repeats,
            )
            what = f"{ext[1:]} {size} px" + (f", x264 {preset}" if preset else "")
            rows.append((f"stick-figure {what}", t.wall, t.cpu[1], official, path.stat().st_size))
    print(
        f"motion: {source}; {describe_device(torch.device('cpu'))}; "
        f"{load_average()}; {args.repeats} runs after a warm-up"
    )
    print(official_hardware(torch.device("cpu")))
    print(
        f"{'stage (196 frames)':<46} {'min s':>8} {'median s':>8} {'max s':>8} {'cpu s':>7} {'official s':>10} "
        f"{'speed-up':>9} {'vs cpu s':>9} {'file':>9}"
    )
    for label, (lo, med, hi), cpu, official, size in rows:
        ref = f"{official:10.2f}" if official is not None else f"{'-':>10}"
        ratio = f"{official / med:8.1f}x" if official is not None else f"{'-':>9}"
        ratio_cpu = f"{official / cpu:8.1f}x" if official is not None else f"{'-':>9}"
        kb = f"{size / 1024:7.0f}kB" if size is not None else f"{'':>9}"
        print(f"{label:<46} {lo:8.4f} {med:8.4f} {hi:8.4f} {cpu:7.3f} {ref} {ratio} {ratio_cpu} {kb}")
    print(
        "speed-up = official / our median wall; 'vs cpu s' = official / our median CPU time, the fairer ratio "
        "on a loaded machine (the official figures were wall times on a quiet one)"
    )


if __name__ == "__main__":
    main()
