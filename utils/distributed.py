"""Data-parallel plumbing shared by every trainer: torchrun start-up, rank queries, collectives, batch sharding.

Under ``torchrun --nproc_per_node N`` (or multi-node rendezvous) the environment carries ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK``; :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU) and returns the
device of this process. Without those variables everything here degrades to single-process no-ops, so trainers
call the same functions either way.

Batch layout. ``--batch_size`` is the *global* optimisation batch ``B`` (the recipe's number, whatever the
number of processes). One optimisation step is split into ``S = world_size * accum_steps`` equal *shards*; shard
``s = m * world_size + rank`` (micro-step ``m``) holds samples ``[s * B/S, (s + 1) * B/S)`` of the global batch.
:class:`ShardedBatchSampler` yields exactly those samples from the same per-epoch permutation a single process
uses, so the global batches are identical for any ``world_size`` / ``accum_steps``. Randomness that trainers key
to the shard index (:func:`shard_seed`) is identical between runs with the same ``S``.
"""

from __future__ import annotations

import contextlib
import datetime
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

from utils.device import resolve_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job (``world_size == 1``: a plain single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_from_torchrun(environ: dict[str, str] | None = None) -> DistEnv:
    """Rank facts from torchrun's variables (absent -> single process); inconsistent values raise."""
    environ = dict(os.environ if environ is None else environ)
    world = int(environ.get("WORLD_SIZE", "1"))
    rank, local = int(environ.get("RANK", "0")), int(environ.get("LOCAL_RANK", "0"))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"bad torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return DistEnv(rank=rank, world_size=world, local_rank=local)


def init_distributed(device: str = "auto", timeout_min: float = 60.0) -> tuple[DistEnv, torch.device]:
    """Join the torchrun process group (if any) and resolve this process's device.

    ``--device cuda``/``auto`` with CUDA -> ``cuda:LOCAL_RANK`` (NCCL); otherwise the device as given (gloo).
    Calling it twice is harmless (the existing group is kept).
    """
    env = env_from_torchrun()
    resolved = resolve_device(device)
    if env.is_distributed and resolved.type == "cuda" and resolved.index is None:
        if env.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {env.local_rank} but only {torch.cuda.device_count()} CUDA devices: lower --nproc_per_node"
            )
        resolved = torch.device("cuda", env.local_rank)
    if resolved.type == "cuda" and resolved.index is not None:
        torch.cuda.set_device(resolved)  # set_device needs an index ("cuda" alone stays the current device)
    if env.is_distributed and not dist.is_initialized():
        backend = "nccl" if resolved.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            timeout=datetime.timedelta(minutes=timeout_min),
            device_id=resolved if resolved.type == "cuda" else None,
        )
        logger.info(
            "process group: rank %d of %d (local %d), backend %s, device %s",
            env.rank,
            env.world_size,
            env.local_rank,
            backend,
            resolved,
        )
    return env, resolved


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that logs, writes TensorBoard and checkpoints."""
    return get_rank() == 0


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (end of a script; safe without one)."""
    if is_initialized():
        dist.destroy_process_group()


# ---- collectives (identity in a single process) ---------------------------------------------------------------
def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over ranks (a new tensor; ``t`` is not modified)."""
    out = t.clone()
    if is_initialized():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_mean(t: Tensor) -> Tensor:
    return all_reduce_sum(t) / get_world_size()


def all_gather_cat(t: Tensor) -> Tensor:
    """Concatenate equally shaped ``t`` (N, ...) of every rank in rank order -> (world * N, ...)."""
    if not is_initialized():
        return t
    parts = [torch.empty_like(t) for _ in range(get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def broadcast_(t: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``t`` in place with rank ``src``'s values."""
    if is_initialized():
        dist.broadcast(t, src)
    return t


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of python floats over ranks (logged training losses); one collective for all keys."""
    if not is_initialized() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    t = all_reduce_mean(t)
    return dict(zip(keys, t.tolist()))


# ---- batch shards ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardPlan:
    """How one optimisation step of ``global_batch`` samples splits into ``world_size * accum_steps`` shards.

    ``equal=False`` admits a batch that does not divide (an epoch's last, smaller batch): shard sizes then differ
    by one sample at most (shard ``s`` holds ``[s*B//S, (s+1)*B//S)``, the equal split when ``S`` divides ``B``).
    """

    global_batch: int
    world_size: int = 1
    accum_steps: int = 1
    equal: bool = True

    def __post_init__(self) -> None:
        if self.accum_steps < 1:
            raise ValueError(f"--accum_steps must be >= 1, got {self.accum_steps}")
        if self.equal and self.global_batch % (self.world_size * self.accum_steps):
            raise ValueError(
                f"--batch_size {self.global_batch} (the global batch) must be divisible by "
                f"processes x --accum_steps = {self.world_size} x {self.accum_steps}"
            )

    @property
    def num_shards(self) -> int:
        return self.world_size * self.accum_steps

    @property
    def micro_batch(self) -> int:
        """Samples per shard (the batch one process pushes through the model at once)."""
        return self.global_batch // self.num_shards

    def shard_index(self, micro_step: int, rank: int) -> int:
        return micro_step * self.world_size + rank

    def shard_slice(self, micro_step: int, rank: int) -> slice:
        """Positions of this shard inside the global batch."""
        shard = self.shard_index(micro_step, rank)
        return slice(shard * self.global_batch // self.num_shards, (shard + 1) * self.global_batch // self.num_shards)


def make_shard_plan(global_batch: int, accum_steps: int = 1, *, equal: bool = True) -> ShardPlan:
    return ShardPlan(global_batch, get_world_size(), accum_steps, equal)


class ShardedBatchSampler(Sampler[list[int]]):
    """This rank's micro-batches of the global batches drawn from a per-epoch ``order(epoch)`` permutation.

    ``order(epoch)`` must be the single-process sampler's permutation (e.g. ``epoch_permutation``), so every
    global batch is the one a single process with batch ``plan.global_batch`` sees; full global batches only
    (``drop_last``). ``set_epoch(epoch, start_step)`` resumes mid-epoch at optimisation step ``start_step``.
    """

    def __init__(
        self, order: Callable[[int], Sequence[int] | Tensor], num_items: int, plan: ShardPlan, rank: int | None = None
    ) -> None:
        self.order, self.num_items, self.plan = order, num_items, plan
        self.rank = get_rank() if rank is None else rank
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // self.plan.global_batch

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order(self.epoch)
        order = order.tolist() if isinstance(order, Tensor) else list(order)
        b = self.plan.global_batch
        for step in range(self.start_step, self.steps_per_epoch):
            batch = order[step * b : (step + 1) * b]
            for m in range(self.plan.accum_steps):
                yield batch[self.plan.shard_slice(m, self.rank)]

    def __len__(self) -> int:
        return max(self.steps_per_epoch - self.start_step, 0) * self.plan.accum_steps


def take_shard(batch: Any, part: slice) -> Any:
    """The ``part`` rows of a collated batch: a tensor, or a tuple/list of fields (tensors, lists of strings)."""
    if isinstance(batch, (tuple, list)):
        return type(batch)(field[part] for field in batch)
    return batch[part]


def shard_seed(seed: int, step: int, shard: int) -> int:
    """Seed of shard ``shard`` of optimisation step ``step`` (a pure function: resume and any split agree)."""
    return (seed * 1_000_003 + step * 7_919 + shard * 104_729 + 17) % (2**63)


# ---- model wrapping -------------------------------------------------------------------------------------------
class MethodAsForward(nn.Module):
    """Exposes ``fn(module, *args)`` as ``forward`` so DDP's hooks run for a loss that is not ``forward``."""

    def __init__(self, module: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.module, self.fn = module, fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(self.module, *args, **kwargs)


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around ``module`` in a process group, else ``module`` itself.

    Buffers are not broadcast each step: trainers keep them identical (the VQ's codebooks by all-reduce).
    """
    if not is_initialized():
        return module
    ddp = nn.parallel.DistributedDataParallel
    # Newer torch renames the flag (its replacement still syncs once at construction, which is harmless here).
    flag = (
        "forward_sync_buffers"
        if "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
        else "broadcast_buffers"
    )
    ids = [device] if device.type == "cuda" else None
    return ddp(module, device_ids=ids, **{flag: False})


def no_sync(model: nn.Module, skip: bool) -> contextlib.AbstractContextManager:
    """``model.no_sync()`` when ``skip`` (accumulation micro-steps before the last) under DDP."""
    if skip and isinstance(model, nn.parallel.DistributedDataParallel):
        return model.no_sync()
    return contextlib.nullcontext()


def configure_rank_logging(env: DistEnv) -> None:
    """Non-main ranks only log warnings (rank 0 logs to stdout, ``log.txt`` and TensorBoard)."""
    if not env.is_main:
        logging.getLogger().setLevel(logging.WARNING)


# ---- step helpers shared by the trainers -----------------------------------------------------------------------
def group_micro_batches(loader: Any, accum_steps: int) -> Iterator[list[Any]]:
    """Consecutive groups of ``accum_steps`` micro-batches (one optimisation step each); a trailing partial
    group is dropped (the sampler yields whole steps only)."""
    group: list[Any] = []
    for batch in loader:
        group.append(batch)
        if len(group) == accum_steps:
            yield group
            group = []


class MixedPrecision:
    """``--amp off|bf16|fp16`` on CUDA (a logged no-op elsewhere): autocast context and, for fp16, a GradScaler."""

    def __init__(self, mode: str, device: torch.device) -> None:
        self.device = device
        self.dtype: torch.dtype | None = None
        if mode != "off":
            if device.type != "cuda":
                logger.info("--amp %s ignored: mixed precision is only used on CUDA (device %s)", mode, device)
            else:
                self.dtype = torch.bfloat16 if mode == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()
