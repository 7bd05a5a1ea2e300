"""First-command cold start: wall time of ``python gen_t2m.py --text "a person walks forward"`` (demo model).

Each run is a fresh interpreter (imports, model and text-encoder loading, caption check, generation, BVH
export, exit). Printed: min-median-max over ``--repeats`` runs after one warm-up run (the OS file cache is
warm, as for a user's second try), with the median CPU time (user + system: less sensitive to other processes
than the wall time), beside this project's figure before the lean MiniLM (11 s median, issue 21: MiniLM build
4.7-5.3 s, ``import transformers`` 1.2-1.5 s, sympy 0.6-0.7 s) and the official gen_t2m's process start-to-exit
37.6 s (official_timings.md, 196 frames, with videos: not the same work). The load average is printed beside
the figure: on a shared machine it dominates the noise.

    python -m benchmarks.bench_cold_start                 # ~1 min
    python -m benchmarks.bench_cold_start --repeats 7 --threads 1
    python -m benchmarks.bench_cold_start --baseline ../main     # the old code timed in the same loop
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEFORE_S = 11.0  # median wall of the same command before the lean MiniLM (issue 21, this machine kind)
OFFICIAL_S = 37.6  # official gen_t2m.py, one prompt, process start to exit (official_timings.md)
HEAVY = ("transformers", "sympy", "torch._dynamo")


def one_run(out_dir: Path, threads: int) -> tuple[float, str]:
    """Wall seconds of one cold ``gen_t2m.py`` process, and which heavy modules it imported."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    probe = (
        "import sys, gen_t2m\ntry:\n    gen_t2m.main(['--text', 'a person walks forward', '--out_dir', "
        f"{str(out_dir)!r}])\nfinally:\n    print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)"
    )
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"gen_t2m.py failed:\n{done.stderr[-2000:]}")
    heavy = next((line for line in done.stderr.splitlines() if line.startswith("HEAVY")), "HEAVY ?")
    return wall, heavy.removeprefix("HEAVY ")


def plain_run(out_dir: Path, threads: int, repo: Path = REPO) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of exactly the user's command (no probe) in checkout
    ``repo``."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "gen_t2m.py", "--text", "a person walks forward", "--out_dir", str(out_dir)],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def summary(runs: list[tuple[float, float]]) -> str:
    """min/median/max wall and median CPU (user + system) of (wall, cpu) runs."""
    walls = [w for w, _ in runs]
    return (
        f"wall min {min(walls):.2f} s, median {statistics.median(walls):.2f} s, max {max(walls):.2f} s; "
        f"CPU (user+sys) median {statistics.median(c for _, c in runs):.2f} s over {len(runs)} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up (>= 5)")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the runs (0 = torch default)")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another checkout (e.g. one before the lean MiniLM) timed in the same loop, alternating",
    )
    args = parser.parse_args()
    ours, base = [], []  # (wall, cpu) seconds per run
    with tempfile.TemporaryDirectory() as tmp:
        _, heavy = one_run(Path(tmp), args.threads)
        if args.baseline:
            plain_run(Path(tmp), args.threads, args.baseline.resolve())
        load_before = os.getloadavg()
        for _ in range(max(args.repeats, 5)):
            ours.append(plain_run(Path(tmp), args.threads))
            if args.baseline:
                base.append(plain_run(Path(tmp), args.threads, args.baseline.resolve()))
        load_after = os.getloadavg()
    med = statistics.median(w for w, _ in ours)
    print(
        f'python gen_t2m.py --text "a person walks forward"  (demo model, {os.cpu_count()} CPUs, '
        f"OMP_NUM_THREADS={args.threads or 'unset'})"
    )
    print(f"  ours:   {summary(ours)}")
    print(f"  before: median {BEFORE_S:.1f} s wall (transformers MiniLM, issue 21)  -> {BEFORE_S / med:.1f}x")
    if base:
        ratio = statistics.median(w for w, _ in base) / med
        print(f"  baseline {args.baseline} in the same loop: {summary(base)}  -> {ratio:.1f}x")
    print(f"  official gen_t2m.py process start to exit: {OFFICIAL_S:.1f} s (196 frames, with videos)")
    print(f"  heavy modules imported: {heavy or 'none'}")
    print(
        "  load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )


if __name__ == "__main__":
    main()
