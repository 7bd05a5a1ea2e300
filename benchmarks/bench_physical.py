"""Physical quality of the demo dataset (ground truth), the demo model raw and the demo model + clean-up.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_physical                  # ~18 CPU-minutes, mostly the evaluator
    OMP_NUM_THREADS=1 python -m benchmarks.bench_physical --eval_repeats 0 # ~3 CPU-minutes: no evaluator section

Prints, with 95 % half-widths (``1.96·std/√n``; over the 5 seeds for the model rows, over the clips for GT):

1. penetration / floating / foot skating / jitter (utils/physical.py) of every demo clip, and of every demo
   caption × 5 seeds at estimated lengths, raw and cleaned (utils/cleanup.py);
2. what the clean-up changes: mean joint displacement vs raw on non-contact frames, bone-length spread over
   time, bone-direction change, and the bone lengths of a rigid motion (GT) before/after;
3. the demo-evaluator FID / R-precision (README protocol: split all, batch 32, ``--eval_repeats`` passes at
   estimated lengths) of raw (model features), cleaned (``utils.cleanup.cleaned_features``), and both
   re-extracted from their joints — the very same generations for every row (:class:`Recorded`), so the rows
   are paired;
4. the clean-up's cost per 196-frame motion, min-median-max over ``--repeats`` runs after a warm-up, beside
   the official foot clean-up's extra cost (official_timings.md: 5.22 s foot IK − 5.05 s plain BVH).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from benchmarks.timing import load_average, spread, time_runs
from evaluation.benchmark import evaluate_t2m, make_eval_loader, pipeline_generator
from models.evaluator.word_vectorizer import WordVectorizer
from models.evaluator.wrapper import T2MEvaluator
from models.pipeline import MoMaskPipeline, Sampling
from utils.cleanup import cleaned_features, cleanup_motion
from utils.log import setup_logging
from utils.metrics import mean_and_ci95
from utils.motion import extract_features, recover_from_ric
from utils.physical import METRIC_NAMES, contact_frames, foot_joints, physical_metrics
from utils.skeleton import get_dataset_spec

logger = logging.getLogger("bench_physical")
REPO = Path(__file__).resolve().parents[1]
SPEC = get_dataset_spec("t2m")
OFFICIAL_FOOT_CLEANUP_S = 5.22 - 5.05  # official_timings.md: BVH with foot IK minus plain BVH, 196 frames
SHOWN = [
    ("penetration_mean", "Penetrate cm", 100),
    ("penetration_max", "Pen. max cm", 100),
    ("floating", "Float cm", 100),
    ("skate_ratio", "Skate %", 100),
    ("skate_distance", "Skate cm/s", 100),
    ("jerk", "Jerk m/s³", 1),
    ("acceleration", "Accel m/s²", 1),
    ("phys_err", "Phys-Err cm", 100),
    ("hovering", "Hover %", 100),
]


def _bones() -> tuple[list[int], list[int]]:
    parents = list(SPEC.parents)
    return parents[1:], list(range(1, SPEC.joints_num))


def table_row(name: str, groups: list[list[dict[str, float]]]) -> str:
    """One Markdown row: per group (seed or clip) means, then mean ± CI over the groups."""
    cells = []
    for key, _, scale in SHOWN:
        per_group = [scale * np.mean([m[key] for m in g]) for g in groups]
        mean, ci = mean_and_ci95(per_group)
        cells.append(f"{mean:.2f}±{ci:.2f}")
    return f"| {name} | " + " | ".join(cells) + " |"


def generate_all(pipe: MoMaskPipeline, seeds: list[int]) -> list[list[np.ndarray]]:
    """Joints of every demo caption at estimated lengths, one list per seed."""
    captions = pipe.known_captions
    out = []
    for seed in seeds:
        motions = []
        for i in range(0, len(captions), 32):
            motions += pipe.generate(captions[i : i + 32], seed=seed * 1000 + i)
        out.append([m.joints.astype(np.float64) for m in motions])
    return out


def change_report(raw: list[np.ndarray], cleaned: list[np.ndarray]) -> list[str]:
    parents, children = _bones()
    disp, spread_raw, spread_clean, angles = [], [], [], []
    for a, b in zip(raw, cleaned):
        free = ~contact_frames(a, foot_joints(SPEC), SPEC.fps)
        if free.any():
            disp.append(np.linalg.norm(a - b, axis=-1)[free].mean())
        la = np.linalg.norm(a[:, children] - a[:, parents], axis=-1)
        lb = np.linalg.norm(b[:, children] - b[:, parents], axis=-1)
        spread_raw.append(la.std(axis=0).mean())
        spread_clean.append(lb.std(axis=0).mean())
        va, vb = a[:, children] - a[:, parents], b[:, children] - b[:, parents]
        cos = (va * vb).sum(-1) / (la * lb)
        angles.append(np.degrees(np.arccos(np.clip(cos, -1, 1))).ravel())
    angles = np.concatenate(angles)
    return [
        f"mean joint displacement vs raw on non-contact frames: {100 * np.mean(disp):.2f} cm "
        f"(median over motions {100 * np.median(disp):.2f} cm)",
        f"bone-length spread over time (std per bone, mean): raw {100 * np.mean(spread_raw):.2f} cm -> "
        f"cleaned {100 * np.mean(spread_clean):.2f} cm",
        f"bone direction change vs raw: mean {angles.mean():.1f} deg, p99 {np.percentile(angles, 99):.1f}, "
        f"max {angles.max():.1f}",
    ]


def rigid_check(gt: list[np.ndarray]) -> str:
    parents, children = _bones()
    err = max(
        np.abs(
            np.linalg.norm(c[:, children] - c[:, parents], axis=-1)
            - np.linalg.norm(g[:, children] - g[:, parents], axis=-1)
        ).max()
        for g in gt
        for c in [cleanup_motion(g, SPEC)]
    )
    return f"GT (rigid skeleton) bone lengths after the clean-up: max change {err:.1e} m"


def features_of(joints: np.ndarray) -> np.ndarray:
    """Features (T, D) of joints (T, J, 3): extract_features on the motion with its last frame repeated."""
    return np.asarray(extract_features(np.concatenate([joints, joints[-1:]]), SPEC), dtype=np.float32)


def with_cleanup(features: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """The cleaned motion's features: the model's plus the clean-up's change (utils.cleanup.cleaned_features)."""
    return cleaned_features(features, cleanup_motion(joints, SPEC), SPEC)


class Recorded:
    """A GenerateFn that records every call (captions, raw features, lengths, torch RNG state after it), so that
    :meth:`replay` hands the evaluation loop the very same generations again, batch for batch (the loader's
    shuffle draws from torch's RNG, which generation advances: it is restored after each replayed call)."""

    def __init__(self, generate) -> None:
        self.generate = generate
        self.calls: list[tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def __call__(self, batch, is_mm, repeats=1):
        raw, lens = self.generate(batch, is_mm, repeats)
        self.calls.append((list(batch.captions), raw, lens, torch.get_rng_state()))
        return raw, lens

    def replay(self, transform):
        """A GenerateFn giving the recorded generations with ``transform(features (n, D), joints (n, J, 3)) ->
        features (n, D)`` applied to each motion's raw features and recovered joints (float64)."""
        calls = iter(self.calls)

        def replayed(batch, is_mm, repeats=1):
            captions, raw, lens, state = next(calls)
            if captions != list(batch.captions):
                raise RuntimeError("replayed evaluation batches differ from the recorded ones")
            out = raw.clone()  # frames past a motion's length stay the recorded ones, which the evaluator also sees
            for i, n in enumerate(lens.tolist()):
                features = raw[i, :n].cpu().numpy().astype(np.float64)
                joints = recover_from_ric(features, SPEC.joints_num)
                out[i, :n] = torch.from_numpy(np.asarray(transform(features, joints), dtype=np.float32)).to(raw)
            torch.set_rng_state(state)
            return out, lens

        return replayed


def evaluator_rows(pipe: MoMaskPipeline, repeats: int) -> list[str]:
    evaluator = T2MEvaluator.from_checkpoints(REPO / "checkpoints" / "demo", "t2m")
    vectorizer = WordVectorizer(REPO / "dataset_demo" / "glove")
    recorded = Recorded(pipeline_generator(pipe, Sampling(), use_estimated_length=True))
    rows = ["| generated | Top-1 ↑ | Top-3 ↑ | FID ↓ | MM-Dist ↓ |", "|---|---|---|---|---|"]
    variants = [
        ("raw (model features)", lambda: recorded),
        ("cleaned (model features + the clean-up's change)", lambda: recorded.replay(with_cleanup)),
        ("raw, re-extracted from its joints", lambda: recorded.replay(lambda f, j: features_of(j))),
        (
            "cleaned, re-extracted from its joints",
            lambda: recorded.replay(lambda f, j: features_of(cleanup_motion(j, SPEC))),
        ),
    ]
    for name, make in variants:
        torch.manual_seed(0)  # same loader order, captions and generations for every variant: paired
        loader = make_eval_loader(
            REPO / "dataset_demo" / "HumanML3D", SPEC, evaluator, vectorizer, split="all", batch_size=32, seed=0
        )
        m = evaluate_t2m(
            loader,
            make(),
            evaluator,
            repeats=repeats,
            mm_batches=0,
            diversity_times=30,
            rng=np.random.default_rng(0),
            progress=False,
        )
        s = m.summary()
        rows.append(
            f"| {name} | "
            + " | ".join(f"{s[k][0]:.3f}±{s[k][1]:.3f}" for k in ("TOP1", "TOP3", "FID", "Matching"))
            + " |"
        )
    return rows


def timing(pipe: MoMaskPipeline, repeats: int) -> str:
    motions = pipe.generate(["a person walks forward", "a person jumps", "a person kicks"], [196] * 3, seed=1)
    joints = [m.joints for m in motions]
    t = time_runs(lambda: [cleanup_motion(j, SPEC) for j in joints], repeats).scaled(1000 / len(joints))
    return (
        f"clean-up per 196-frame motion (min–median–max of {repeats} runs x 3 motions after a warm-up, 1 thread): "
        f"CPU {spread(t.cpu, 'ms', 1)}, wall {spread(t.wall, 'ms', 1)}; official foot clean-up (BVH with foot IK "
        f"minus plain) ≈{1000 * OFFICIAL_FOOT_CLEANUP_S:.0f} ms; {load_average()}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per caption (model rows)")
    parser.add_argument("--repeats", type=int, default=5, help="timing runs")
    parser.add_argument("--eval_repeats", type=int, default=5, help="evaluator passes (0: skip the evaluator)")
    args = parser.parse_args(argv)
    setup_logging(level=logging.WARNING)
    torch.set_num_threads(1)
    gt = [np.load(p).astype(np.float64) for p in sorted((REPO / "dataset_demo/HumanML3D/new_joints").glob("*.npy"))]
    pipe = MoMaskPipeline.demo()
    raw = generate_all(pipe, list(range(args.seeds)))
    cleaned = [[cleanup_motion(j, SPEC) for j in seed] for seed in raw]
    metrics = lambda group: [physical_metrics(j, SPEC).as_dict() for j in group]  # noqa: E731
    assert set(k for k, _, _ in SHOWN) <= set(METRIC_NAMES)
    print(
        f"## Physical metrics ({len(gt)} demo clips; {len(pipe.known_captions)} demo captions x {args.seeds} "
        "seeds at estimated lengths)\n"
    )
    print("| motion | " + " | ".join(t for _, t, _ in SHOWN) + " |")
    print("|---|" + "---|" * len(SHOWN))
    print(table_row("demo dataset (GT)", [[m] for m in metrics(gt)]))
    print(table_row("demo model, raw", [metrics(s) for s in raw]))
    print(table_row("demo model + clean-up", [metrics(s) for s in cleaned]))
    print("\n## What the clean-up changes\n")
    flat_raw, flat_clean = [j for s in raw for j in s], [j for s in cleaned for j in s]
    for line in [*change_report(flat_raw, flat_clean), rigid_check(gt)]:
        print(f"- {line}")
    if args.eval_repeats > 0:
        print(f"\n## Demo evaluator ({args.eval_repeats} passes, split all, estimated lengths)\n")
        print("\n".join(evaluator_rows(pipe, args.eval_repeats)))
    print(f"\n## Cost\n\n{timing(pipe, args.repeats)}")


if __name__ == "__main__":
    main()
