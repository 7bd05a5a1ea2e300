"""The benchmarks' one timing helper: a warm-up run, then ``repeats`` (default 5) timed runs -> min / median / max.

    stats = time_runs(fn, repeats=5, device=device)   # Timing: wall and CPU (min, median, max) seconds
    print(spread(stats.wall), load_average())          # "0.59–0.61–0.66 s", "load average 0.71 0.80 0.92"

Wall time is ``time.perf_counter``; CPU time is this process's and its finished children's (ffmpeg) user + system
time, much less sensitive than wall time to other jobs sharing the machine. A CUDA ``device`` is synchronised
after every run so the wall time covers the kernels.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from utils.precision import cpu_flags

REPEATS = 5  # default timed runs per case
# The machine ../shared/reference/official_timings.md was measured on: this project's reference kind.
OFFICIAL_CPU = "2 cores, AMD EPYC, AVX2, no AVX-512 or bf16"


def cpu_seconds() -> float:
    """CPU time of this process and its finished children, user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def stats(values: Sequence[float]) -> tuple[float, float, float]:
    """(min, median, max) of ``values``."""
    return min(values), statistics.median(values), max(values)


@dataclass(frozen=True)
class Timing:
    """Seconds per run: wall and CPU as (min, median, max), over ``runs`` timed runs."""

    wall: tuple[float, float, float]
    cpu: tuple[float, float, float]
    runs: int

    @property
    def median(self) -> float:
        return self.wall[1]

    def scaled(self, factor: float) -> Timing:
        """Every figure times ``factor`` (per item of a batch, milliseconds, ...)."""
        return Timing(tuple(v * factor for v in self.wall), tuple(v * factor for v in self.cpu), self.runs)


def time_runs(
    fn: Callable[[int], object] | Callable[[], object],
    repeats: int = REPEATS,
    device: torch.device | None = None,
    *,
    warmup: bool = True,
    pass_index: bool = False,
) -> Timing:
    """Time ``fn`` (called with the run index, 0 = warm-up, when ``pass_index``): one untimed warm-up run
    (unless ``warmup`` is False), then ``repeats`` timed runs."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")

    def run(i: int) -> None:
        fn(i) if pass_index else fn()  # type: ignore[call-arg]
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    if warmup:
        run(0)
    walls, cpus = [], []
    for i in range(1, repeats + 1):
        c0, t0 = cpu_seconds(), time.perf_counter()
        run(i)
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds() - c0)
    return Timing(stats(walls), stats(cpus), repeats)


def wall_stats(
    fn: Callable[[], object], repeats: int = REPEATS, device: torch.device | None = None, warmup: bool = True
) -> tuple[float, float, float]:
    """(min, median, max) wall seconds of ``fn`` (:func:`time_runs`)."""
    return time_runs(fn, repeats, device, warmup=warmup).wall


def wall_median(
    fn: Callable[[], object], repeats: int = REPEATS, device: torch.device | None = None, warmup: bool = True
) -> float:
    """Median wall seconds of ``fn`` (:func:`time_runs`)."""
    return time_runs(fn, repeats, device, warmup=warmup).median


def spread(values: tuple[float, float, float], unit: str = "s", digits: int = 2) -> str:
    """``min–median–max unit``, e.g. ``0.59–0.61–0.66 s``."""
    return "–".join(f"{v:.{digits}f}" for v in values) + (f" {unit}" if unit else "")


def official_hardware(device: torch.device) -> str:
    """One line: the official figures' machine, and whether ``device`` is that kind of hardware (where it is
    not, every speed-up against an official figure compares hardware as well as code)."""
    head = f"official figures: {OFFICIAL_CPU}"
    if device.type != "cpu":
        return f"{head}; on {device.type} the speed-up compares hardware as well as code"
    extra = sorted(cpu_flags() & {"avx512f", "avx512_bf16", "amx_bf16", "amx_int8"})
    cores = os.cpu_count() or 0
    if not extra and cores == 2:
        return f"{head} (this CPU: the same kind)"
    has = ", ".join([*([f"{cores} cores"] if cores != 2 else []), *extra])
    return f"{head}; this CPU has {has}, so the speed-up compares hardware as well as code"


def load_average() -> str:
    """``load average 1/5/15-min`` of the machine now (what every benchmark prints beside its figures)."""
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
