"""The fuzz test can fail: with one validator of a family taken away, the same seeded inputs of that family
produce crashes, hangs, silent NaN or executed payloads (tests/test_fuzz_inputs.py stays at zero only because
the validators are there).

Each case replaces one validator by a permissive stand-in (``monkeypatch``) and runs that family's first
inputs through the harness; the failure class it must produce is asserted, and the table printed
(``python -m pytest tests/test_fuzz_validators.py -q -s -m slow``).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from test_fuzz_inputs import World, run_fuzz, world  # noqa: F401 - world is the shared fixture

pytestmark = pytest.mark.slow


def _no_header_check(header: object, size: int, where: str) -> None:
    """utils.npy._check_header without its dtype / 0-d / file-size checks."""


def _no_value_check(arr: np.ndarray, where: str, *, finite: bool = True, max_abs: float | None = None) -> None:
    """utils.npy.check_values without its NaN/inf and magnitude checks."""


def _shape_only(arr: object) -> tuple[tuple[int, ...], bool]:
    """utils.motion._shape_and_finite that calls everything finite."""
    return np.shape(arr), True


def _write_anything(arr: object, path: object, what: str = "output") -> np.ndarray:
    """utils.npy.check_output without its checks."""
    return np.asarray(arr)


def _plain_float(value: object) -> float:
    """options.base._as_float without its type and finiteness checks."""
    return float(value)


def _any_number(value: object, name: str, lo: float, hi: float, integer: bool = False) -> object:
    """visualization.webapp._number without its checks: the form value as given."""
    return value


def _any_state_dict(value: object, source: object, key: str = "model") -> object:
    """utils.checkpoint.check_state_dict without its checks."""
    return value


def _raw_stats(mean_file: Path, std_file: Path, what: str, dim: int | None = None) -> tuple:
    """data.feature_stats.load_feature_stats as a plain np.load of both files."""
    return np.load(mean_file), np.load(std_file)


OUTPUT_CHECKS = [
    ("visualization.convert.check_output", _write_anything),
    ("visualization.bvh.check_output", _write_anything),
]
STATE_CHECKS = [
    (f"{module}.check_state_dict", _any_state_dict)
    for module in ("utils.checkpoint", "models.vq.build", "models.transformer.build", "models.length_estimator")
]

# name -> (family, inputs, [(module attribute, permissive stand-in)], failure classes of which one must appear)
REMOVALS = {
    "npy header check (dtype, 0-d, size vs file)": (
        "motion .npy",
        220,
        [("utils.npy._check_header", _no_header_check)],
        ("crashes", "silent"),
    ),
    "NaN/inf input checks and the output finiteness check": (
        "motion .npy",
        220,
        [("utils.npy.check_values", _no_value_check), ("utils.motion._shape_and_finite", _shape_only), *OUTPUT_CHECKS],
        ("silent",),
    ),
    "collapsed-skeleton check and the output finiteness check": (
        "motion .npy",
        220,
        [("visualization.convert.check_bones", lambda joints, spec, name="joints": None), *OUTPUT_CHECKS],
        ("silent",),
    ),
    "BVH CHANNELS bound": ("motion .bvh", 160, [("visualization.bvh._COUNT", re.compile(r"-?\d{1,9}"))], ("hangs",)),
    "prompt length check": (
        "prompts/spans",
        160,
        [("data.prompts.check_length", lambda frames, max_frames, unit_length, where: frames)],
        ("silent",),
    ),
    "opt.txt float check": ("opt.txt", 120, [("options.base._as_float", _plain_float)], ("crashes",)),
    "checkpoint state-dict check": ("checkpoint", 130, STATE_CHECKS, ("crashes", "silent")),
    "VQ meta statistics check": (
        "VQ meta",
        80,
        [("models.vq.build.load_feature_stats", _raw_stats)],
        ("crashes", "silent"),
    ),
    "npy header check (dataset folder)": (
        "dataset folder",
        80,
        [("utils.npy._check_header", _no_header_check)],
        ("crashes", "silent"),
    ),
    "restricted GloVe unpickler": (
        "GloVe",
        100,
        [("models.evaluator.word_vectorizer._PlainUnpickler", pickle.Unpickler)],
        ("executed",),
    ),
    "web form number check": ("web form", 150, [("visualization.webapp._number", _any_number)], ("crashes",)),
}


@pytest.mark.parametrize("removed", list(REMOVALS))
def test_fuzz_fails_without_a_validator(world: World, monkeypatch: pytest.MonkeyPatch, removed: str) -> None:  # noqa: F811
    family, n, patches, expected = REMOVALS[removed]
    for target, stand_in in patches:
        monkeypatch.setattr(target, stand_in)
    fuzz = run_fuzz(world, {family: n}, time_limit_s=1.0)
    print(f"\nwithout the {removed}:\n{fuzz.table()}\n" + "\n".join(fuzz.examples[:3]))
    counts = fuzz.counts[family]
    assert any(counts[c] > 0 for c in expected), fuzz.table()
