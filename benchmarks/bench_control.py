"""Spatial control: the OmniControl/MaskControl table, the cost of control, a pose target and a floor objective.

    python -m benchmarks.bench_control                       # demo model + dataset_demo + demo evaluator
    python -m benchmarks.bench_control --rows pelvis:100%,pelvis:5 --repeats 5
    python -m benchmarks.bench_control --max_batches 1 --repeats 2   # one batch of 32 captions a pass (quick)
    python -m benchmarks.bench_control --timing              # one 196-frame prompt, controlled vs not
    python -m benchmarks.bench_control --examples OUT        # pose-at-2-s and floor examples, npy + BVH in OUT
    python -m benchmarks.bench_control --checkpoints_dir ./checkpoints --name t2m_nlayer8_nhead6_ld384_ff1024_cdp0.1_rvq6ns \\
        --res_name tres_nlayer8_ld384_ff1024_rvq6ns_cdp0.2_sw --data_root ./dataset --glove_dir ./glove --split test \\
        --repeats 20 --rows all                              # released checkpoints + HumanML3D (all 35 rows)

Every row is run twice on the same targets: under control and unconstrained ("free"), whose errors give the
scale. Metrics are mean ± 95 % half-width over ``--repeats`` passes (evaluation/control.py).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import load_average, stats, time_runs
from evaluation.benchmark import Metrics, make_eval_loader
from evaluation.control import CONTROL_JOINTS, DENSITIES, evaluate_control
from models.control import Control, ControlSpec, FloorObjective
from models.evaluator.word_vectorizer import WordVectorizer
from models.evaluator.wrapper import T2MEvaluator
from models.pipeline import MoMaskPipeline, Sampling
from utils.device import resolve_device
from visualization.control_input import read_control
from visualization.export import MotionWriter
from visualization.joints2bvh import save_bvh

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROWS = "pelvis:100%,pelvis:5,all:5,left_wrist:5,left_wrist:100%"
COLUMNS = (
    ("FID", 1, "FID"),
    ("TOP3", 1, "R-prec top3"),
    ("Diversity", 1, "Diversity"),
    ("Skating", 1, "Skating"),
    ("Traj_err", 1, "Traj. err"),
    ("Loc_err", 1, "Loc. err"),
    ("Avg_err", 100, "Avg. err cm"),
)


def load(args: argparse.Namespace, device: torch.device) -> MoMaskPipeline:
    if not args.name:
        return MoMaskPipeline.demo(device=device)
    return MoMaskPipeline.from_checkpoints(
        args.checkpoints_dir, args.dataset_name, args.name, args.res_name, device=device
    )


def cell(metrics: Metrics, key: str, scale: float) -> str:
    return f"{metrics.mean(key) * scale:.3f}±{metrics.ci(key) * scale:.3f}"


def table(args: argparse.Namespace, pipe: MoMaskPipeline, device: torch.device) -> None:
    evaluator = T2MEvaluator.from_checkpoints(args.evaluator_dir or args.checkpoints_dir, args.dataset_name, device)
    loader = make_eval_loader(
        args.data_root,
        pipe.spec,
        evaluator,
        WordVectorizer(args.glove_dir),
        split=args.split,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    sampling = Sampling(time_steps=args.time_steps, cond_scale=args.cond_scale)
    rows = (
        [(j, d) for j in (*CONTROL_JOINTS, "all") for d in DENSITIES]
        if args.rows == "all"
        else [tuple(r.split(":")) for r in args.rows.split(",")]
    )
    print("| control | density | run | " + " | ".join(c[2] for c in COLUMNS) + " | s/pass |")
    print("|---|---|---|" + "---|" * (len(COLUMNS) + 1))
    for joint, density in rows:
        for controlled in (False, True):
            torch.manual_seed(args.seed)
            start = time.perf_counter()
            m = evaluate_control(
                loader if not args.max_batches else list(itertools.islice(loader, args.max_batches)),
                pipe,
                sampling,
                evaluator,
                joint=joint,
                density=density,
                repeats=args.repeats,
                controlled=controlled,
                seed=args.seed,
                diversity_times=args.diversity_times or None,
            )
            per_pass = (time.perf_counter() - start) / args.repeats
            run = "controlled" if controlled else "free"
            print(
                f"| {joint} | {density} | {run} | "
                + " | ".join(cell(m, k, s) for k, s, _ in COLUMNS)
                + f" | {per_pass:.1f} |",
                flush=True,
            )


def timing(pipe: MoMaskPipeline, repeats: int) -> None:
    """One 196-frame prompt: unconstrained vs dense pelvis control (targets: another seed's pelvis path)."""
    caption = "a person walks forward"
    path = pipe.generate([caption], [196], seed=123)[0].joints
    targets = np.full_like(path, np.nan)
    targets[:, 0] = path[:, 0]
    keys = np.full_like(path, np.nan)
    keys[np.linspace(0, 195, 5).astype(int), 0] = path[np.linspace(0, 195, 5).astype(int), 0]
    runs = {
        "free": None,
        "pelvis dense": Control(ControlSpec(targets)),
        "pelvis 5 keyframes": Control(ControlSpec(keys)),
    }
    # Rounds alternate the cases (A/B interleaved) so a change of load hits all of them alike; round 0 (seed 0)
    # is the warm-up, timed rounds use seeds 1..repeats.
    walls: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeats + 1):
        for name, control in runs.items():
            wall = time_runs(lambda c=control: pipe.generate([caption], [196], seed=r, control=c), 1, warmup=False)
            if r:
                walls[name].append(wall.median)
    times = {name: stats(v) for name, v in walls.items()}
    free = times["free"][1]
    print(
        f"one 196-frame prompt on {pipe.device} ({torch.get_num_threads()} threads), {repeats} runs after warm-up; "
        f"official gen_t2m neural part per prompt: 1.36 s (official_timings.md); {load_average()}"
    )
    for name, (lo, med, hi) in times.items():
        print(f"  {name:20s} min {lo:.2f}  median {med:.2f}  max {hi:.2f} s  ({med / free:.1f}x unconstrained)")


def examples(pipe: MoMaskPipeline, out: Path) -> None:
    """Pose of frame k of a BVH hit at 2 s, and a floor objective; npy + BVH of each written under ``out``."""
    spec = pipe.spec
    writer = MotionWriter(out, spec, ["npy", "bvh"])
    clip = "000015"  # a high kick
    caption = (pipe.DEMO_DATASET / "texts" / f"{clip}.txt").read_text().split("#")[0]
    bvh = save_bvh(np.load(pipe.DEMO_DATASET / "new_joints" / f"{clip}.npy"), out / f"{clip}.bvh", spec)
    pose = read_control(bvh, spec, total_frames=120, joints="all", frames="30", at="2s")
    for k, control in enumerate((None, Control(pose))):
        m = pipe.generate([caption], [120], seed=0, control=control)[0]
        err = np.linalg.norm(m.joints[40] - pose.targets[40], axis=-1).mean()
        print(
            f"pose of frame 30 of {bvh.name} at 2 s ({caption!r}): {'controlled' if k else 'free'} mean joint "
            f"error {100 * err:.2f} cm"
        )
        writer.write(m, sample=0, repeat=k)
    for caption in (
        "a person crawls forward on hands and knees",
        "a person does a forward roll twice",
        "a person lying face down gets up",
    ):
        free = pipe.generate([caption], [120], seed=0)[0]
        if free.joints[..., 1].min() < -0.01:
            break
    floor = pipe.generate([caption], [120], seed=0, control=Control(objectives=[FloorObjective(0.0)]))[0]
    print(
        f"floor y = 0 ({caption!r}): min joint height free {100 * free.joints[..., 1].min():.2f} cm, "
        f"with FloorObjective {100 * floor.joints[..., 1].min():.2f} cm"
    )
    writer.write(free, sample=1, repeat=0)
    writer.write(floor, sample=1, repeat=1)
    print(f"wrote {writer.root}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints_dir", default=str(MoMaskPipeline.DEMO_CHECKPOINTS))
    p.add_argument("--dataset_name", default="t2m")
    p.add_argument("--name", default="", help="masked-transformer run (empty: embedded demo model)")
    p.add_argument("--res_name", default="")
    p.add_argument("--evaluator_dir", default="", help="folder with <dataset>/text_mot_match (default checkpoints_dir)")
    p.add_argument("--data_root", default=str(REPO / "dataset_demo"))
    p.add_argument("--glove_dir", default=str(REPO / "dataset_demo" / "glove"))
    p.add_argument("--split", default="all")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max_batches", type=int, default=0, help="only the first N batches of each pass (0 = all)")
    p.add_argument("--diversity_times", type=int, default=30, help="0 = protocol (300/100 pairs)")
    p.add_argument("--time_steps", type=int, default=10)
    p.add_argument("--cond_scale", type=float, default=4.0)
    p.add_argument("--rows", default=DEFAULT_ROWS, help="joint:density,... or 'all' (every joint x density)")
    p.add_argument("--seed", type=int, default=10107)
    p.add_argument("--device", default="cpu")
    p.add_argument("--timing", action="store_true", help="only the cost of one 196-frame prompt")
    p.add_argument("--timing_repeats", type=int, default=5)
    p.add_argument("--examples", default="", help="folder: write the pose and floor examples there")
    args = p.parse_args()
    device = resolve_device(args.device)
    pipe = load(args, device)
    if args.timing:
        timing(pipe, args.timing_repeats)
    elif args.examples:
        examples(pipe, Path(args.examples))
    else:
        table(args, pipe, device)


if __name__ == "__main__":
    main()
