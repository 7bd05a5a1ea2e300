"""benchmarks/timing.py: the one timing helper every benchmark uses."""

from __future__ import annotations

import importlib

import pytest
import torch

import benchmarks.timing as timing
from benchmarks.timing import Timing, load_average, official_hardware, spread, time_runs


def test_time_runs_warms_up_then_times_the_repeats() -> None:
    calls: list[int] = []
    t = time_runs(lambda i: calls.append(i), pass_index=True)
    assert calls == [0, 1, 2, 3, 4, 5] and t.runs == 5
    assert t.wall[0] <= t.wall[1] <= t.wall[2] and t.cpu[0] <= t.cpu[1] <= t.cpu[2]
    assert time_runs(lambda: calls.append(9), 2, warmup=False).runs == 2 and calls[-3:] == [5, 9, 9]
    with pytest.raises(ValueError, match="repeats"):
        time_runs(lambda: None, 0)


def test_formatting() -> None:
    t = Timing((0.5, 0.61, 0.7), (0.4, 0.5, 0.6), 5)
    assert spread(t.wall) == "0.50–0.61–0.70 s" and spread(t.scaled(1000).wall, "ms", 0) == "500–610–700 ms"
    assert load_average().startswith("load average ") and len(load_average().split()) == 5


def test_official_hardware_says_when_the_cpu_is_not_the_official_kind(monkeypatch) -> None:
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(timing, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    assert official_hardware(torch.device("cpu")).endswith("(this CPU: the same kind)")
    monkeypatch.setattr(timing, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "amx_bf16"}))
    assert "this CPU has amx_bf16, avx512f, so the speed-up compares hardware" in official_hardware(torch.device("cpu"))
    monkeypatch.setattr(timing.os, "cpu_count", lambda: 16)
    assert "this CPU has 16 cores, amx_bf16" in official_hardware(torch.device("cpu"))
    assert "on cuda the speed-up compares hardware" in official_hardware(torch.device("cuda"))


@pytest.mark.parametrize(
    "name",
    [
        "bench_cold_start",
        "bench_control",
        "bench_decoding_margin",
        "bench_generate",
        "bench_physical",
        "bench_precision",
        "bench_token_context",
        "bench_train",
        "bench_transformers",
        "bench_visualization",
        "bench_vq",
    ],
)
def test_benchmarks_import(name: str) -> None:
    importlib.import_module(f"benchmarks.{name}")
