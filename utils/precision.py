"""Which reduced-precision modes a device really has, and a one-line description of the device.

Ground floor: no project imports. Used by the generation pipeline (to refuse bf16 where it is emulated), the
options' help text and the benchmarks (which print the description beside their figures).
"""

from __future__ import annotations

import platform
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("fp32", "bf16", "int8")
PRECISION_HELP = (
    "transformer arithmetic: fp32 (default; reproduces the official seeded samples), bf16 autocast "
    "(only where the hardware has bf16: CUDA compute capability >= 8.0, CPUs with AVX512-BF16 or "
    "AMX; refused elsewhere, where it is emulated and several times slower), or int8 (CPU only: "
    "dynamic int8 quantisation of every linear layer; faster on CPUs, samples differ slightly)"
)
# CPU flags (/proc/cpuinfo) that matter for these modes; printed by the benchmarks.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where unavailable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    return frozenset(line.partition(":")[2].split())


def _cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    line = next((ln for ln in text.splitlines() if ln.startswith("model name")), "")
    return line.partition(":")[2].strip() or platform.machine()


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """(native bf16 arithmetic on ``device``, the reason in words)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        ok = major >= 8
        return ok, f"CUDA compute capability {major}.{minor} ({'has' if ok else 'no'} bf16 tensor cores; needs >= 8.0)"
    if device.type == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        found = sorted(cpu_flags() & {"avx512_bf16", "amx_bf16"})
        ok = bool(found) or capability in ("AVX512_BF16", "AMX")
        what = ", ".join(found) if found else "neither avx512_bf16 nor amx_bf16"
        return ok, f"CPU ({capability}, {what})"
    return False, f"{device.type}: bf16 speed not established for this device"


def check_precision(precision: str, device: torch.device) -> None:
    """Raise ValueError (one line, naming the flag) for a mode this device does not offer."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "bf16":
        ok, why = bf16_support(device)
        if not ok:
            raise ValueError(
                f"--precision bf16 is not offered here: {why}; bf16 would be emulated and slower than "
                "fp32 (use fp32, or int8 on a CPU)"
            )
    if precision == "int8" and device.type != "cpu":
        raise ValueError(
            f"--precision int8 runs on the CPU only (dynamic quantisation), not on {device.type}: "
            "use fp32 or bf16 there"
        )


def describe_device(device: torch.device) -> str:
    """One line: the device's name and the capabilities relevant to the precision modes."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (CUDA capability {major}.{minor})"
    if device.type == "cpu":
        flags = [f for f in CPU_FLAGS if f in cpu_flags()]
        return (
            f"{_cpu_name()}, torch capability {torch.backends.cpu.get_cpu_capability()}, flags: "
            f"{' '.join(flags) or 'unknown'}, {torch.get_num_threads()} threads"
        )
    return device.type
