"""Shared test fixtures: where the team's ../shared reference folder is, skipping cleanly without it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
FIXTURE = REFERENCE / "official_fixture"


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """../shared/reference (real HumanML3D files, the official BVH template); skip when absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} not present (CI has it; see README)")
    return REFERENCE


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    """../shared/reference/official_fixture (official-format checkpoints + outputs); skip when absent."""
    if not FIXTURE.is_dir():
        pytest.skip(f"{FIXTURE} not present (CI has it; see README)")
    return FIXTURE


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread: tiny models are several times faster single-threaded on a shared
    2-core machine (no OpenMP contention). Modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
