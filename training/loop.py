"""The pieces of one optimisation loop every trainer shares: learning-rate schedule, RNG capture/restore, the
sharded step over :class:`utils.distributed.ShardPlan`, the epoch progress bar.

Schedule: linear warm-up ``lr·(it+1)/(warm_up_iter+1)`` for 1-based iterations ``it < warm_up_iter``,
then MultiStepLR(milestones, gamma) stepped once per iteration — from the first iteration on (transformers) or
from ``it >= warm_up_iter`` on (VQ, so its milestones take effect ``warm_up_iter - 1`` iterations later), as the
two official trainers do.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from utils import distributed as dist
from utils.distributed import ShardPlan

T = TypeVar("T")


# ---- learning rate ---------------------------------------------------------------------------------------------
def warmup_lr(it: int, warm_up_iter: int, lr: float) -> float:
    """Warm-up learning rate of 1-based iteration ``it``: ``lr·(it+1)/(warm_up_iter+1)``."""
    return lr * (it + 1) / (warm_up_iter + 1)


class WarmupMultiStepLR:
    """Linear warm-up then MultiStepLR; call :meth:`before_step` and :meth:`after_step` around each optimizer step.

    ``step_during_warmup``: whether MultiStepLR counts the warm-up iterations (transformers) or starts counting
    at ``warm_up_iter`` (VQ). Its state (the checkpoint's ``scheduler`` entry) is MultiStepLR's, as the reference's.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        lr: float,
        warm_up_iter: int,
        milestones: Sequence[int],
        gamma: float,
        step_during_warmup: bool,
    ) -> None:
        self.optimizer, self.lr, self.warm_up_iter = optimizer, lr, warm_up_iter
        self.step_during_warmup = step_during_warmup
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)

    def before_step(self, it: int) -> None:
        """Set the warm-up learning rate of 1-based iteration ``it`` (no-op after warm-up)."""
        if it < self.warm_up_iter:
            for group in self.optimizer.param_groups:
                group["lr"] = warmup_lr(it, self.warm_up_iter, self.lr)

    def after_step(self, it: int) -> None:
        if self.step_during_warmup or it >= self.warm_up_iter:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def every(it: int, period: int) -> bool:
    """Whether iteration ``it`` is a multiple of ``period`` (``period`` 0 = never: logging switched off)."""
    return period > 0 and it % period == 0


# ---- RNG state (JSON strings and tensors only, so weights_only loading works) -----------------------------------
def _generators_of(obj: Any) -> dict[str, Any]:
    """The numpy/python random generators a dataset object holds as attributes (its draw state)."""
    return {k: v for k, v in sorted(vars(obj).items()) if isinstance(v, (np.random.Generator, random.Random))}


def capture_rng(datasets: Sequence[Any] = ()) -> dict[str, Any]:
    """Every global RNG state (torch, CUDA, numpy, python) and the generators ``datasets`` hold."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": json.dumps([np_state[0], np_state[1].tolist(), *np_state[2:]]),
        "python": json.dumps(random.getstate()),
        "datasets": json.dumps(
            [
                {
                    k: (g.bit_generator.state if isinstance(g, np.random.Generator) else g.getstate())
                    for k, g in _generators_of(ds).items()
                }
                for ds in datasets
            ]
        ),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], datasets: Sequence[Any] = ()) -> None:
    """Inverse of :func:`capture_rng`. Entries a state lacks are left alone; our earlier length-estimator
    checkpoints stored ``{"cpu": torch state, "cuda": state of the current device}``, which is accepted too."""
    torch.set_rng_state(state["torch"] if "torch" in state else state["cpu"])
    if "numpy" in state:
        name, keys, *rest = json.loads(state["numpy"])
        np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    if "python" in state:
        version, internal, gauss = json.loads(state["python"])
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, torch.Tensor):
            torch.cuda.set_rng_state(cuda)
        else:
            torch.cuda.set_rng_state_all(cuda)
    for ds, saved in zip(datasets, json.loads(state.get("datasets", "[]"))):
        for key, gen in _generators_of(ds).items():
            if key not in saved:
                continue
            if isinstance(gen, np.random.Generator):
                gen.bit_generator.state = saved[key]
            else:
                version, internal, gauss = saved[key]
                gen.setstate((version, tuple(internal), gauss))


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Run a block with seeded global RNGs and restore the caller's afterwards (validation never perturbs
    training randomness, and sees the same draws every epoch)."""
    saved = capture_rng()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        restore_rng(saved)


# ---- the sharded step ------------------------------------------------------------------------------------------
def shard_steps(
    net: nn.Module, plan: ShardPlan, seed: int, step: int, *, always_reseed: bool = False
) -> Iterator[tuple[int, int, slice]]:
    """This rank's micro-steps of optimisation step ``step``: ``(micro_step m, shard index, rows of the global
    batch)``.

    The loop body runs under DDP's ``no_sync`` for every micro-step but the last (gradients are all-reduced once
    per step), with torch's global generator seeded from ``(seed, step, shard)`` when the step has more than one
    shard (or ``always_reseed``), so any split with the same shards draws the same dropout/masks.
    """
    rank = dist.get_rank()
    for m in range(plan.accum_steps):
        shard = plan.shard_index(m, rank)
        if always_reseed or plan.num_shards > 1:
            torch.manual_seed(dist.shard_seed(seed, step, shard))
        with dist.no_sync(net, m < plan.accum_steps - 1):
            yield m, shard, plan.shard_slice(m, rank)


def epoch_progress(iterable: Iterable[T], *, total: int | None, desc: str) -> tqdm:
    """The one progress bar of an epoch (rank 0 only; hidden when stderr is not a terminal)."""
    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None if dist.is_main() else True)
