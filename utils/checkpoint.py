"""Checkpoint I/O: file names, which file a run folder is loaded from, atomic saves, ``weights_only`` loads,
strict state-dict loading with named exceptions.

:func:`atomic_write` is the project's one way to write any output file (checkpoints, opt.txt, .npy, BVH, video,
logs, JSON): a temporary file in the same folder, renamed over the target only once it is complete.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

logger = logging.getLogger(__name__)

# ---- names (official layout: <run>/model/<file>) ---------------------------------------------------------------
LATEST = "latest.tar"  # last training state (every trainer; what --is_continue resumes from)
FINEST = "finest.tar"  # length estimator and T2M evaluator: best validation loss
BEST_FID = "net_best_fid.tar"  # VQ with --eval_fid; the official residual/VQ release file
BEST_MM = "net_best_mm.tar"  # VQ with --eval_fid: best matching score
BEST_LOSS = "net_best_loss.tar"  # VQ without an evaluator, residual transformer: best validation loss
BEST_ACC = "net_best_acc.tar"  # masked transformer: best validation token accuracy
MODEL_ARGS_KEY = "model_args"  # our addition to every model checkpoint: the constructor arguments

# Which file a run folder is loaded from when none is named, first found wins. The official generation and
# evaluation read net_best_fid.tar (VQ, residual) and latest.tar (masked transformer); our trainers write
# net_best_loss.tar where no evaluator scores FID.
VQ, MASK, RESIDUAL, LENGTH, EVALUATOR = "vq", "mask", "residual", "length", "evaluator"
LOOKUP_ORDER: dict[str, tuple[str, ...]] = {
    VQ: (BEST_FID, BEST_LOSS, LATEST),
    MASK: (LATEST,),
    RESIDUAL: (BEST_FID, BEST_LOSS, LATEST),
    LENGTH: (FINEST,),
    EVALUATOR: (FINEST,),
}


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or holds a different model than expected."""


def list_checkpoints(model_dir: str | Path) -> list[str]:
    """Names of the checkpoint files (``*.tar``, not temporary dot-files) in ``model_dir``, sorted."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(p.name for p in model_dir.glob("*.tar") if not p.name.startswith(".") and p.is_file())


def checkpoint_file(model_dir: str | Path, which: str) -> Path:
    """``model_dir/<which>`` (``.tar`` optional); a missing file names what the folder has."""
    path = Path(model_dir) / (which if which.endswith(".tar") else f"{which}.tar")
    if not path.is_file():
        raise CheckpointError(
            f"{path} not found; {path.parent} has {list_checkpoints(path.parent) or 'no checkpoints'}"
        )
    return path


def find_checkpoint(model_dir: str | Path, stage: str, which: str | None = None) -> Path:
    """The file a ``stage`` run is loaded from: ``which`` if given, else the first of :data:`LOOKUP_ORDER`.

    Falling back to ``latest.tar`` where a stage prefers a best-validation file is logged as a warning: the run
    never validated (or was stopped before), so its weights are the last training state.
    """
    if which:
        return checkpoint_file(model_dir, which)
    model_dir = Path(model_dir)
    order = LOOKUP_ORDER[stage]
    for name in order:
        if (model_dir / name).is_file():
            if name == LATEST and order[0] != LATEST:
                logger.warning(
                    "%s has no best checkpoint (%s): the run never validated; using %s, the last training state",
                    model_dir,
                    ", ".join(order[:-1]),
                    LATEST,
                )
            return model_dir / name
    raise CheckpointError(
        f"no {stage} checkpoint in {model_dir} (looked for {list(order)}; it has "
        f"{list_checkpoints(model_dir) or 'nothing'})"
    )


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it replaces ``path`` (``os.replace``).

    The temporary name keeps the target's suffix (``.<stem>.<pid>.tmp<suffix>``) so writers that look at it
    (``np.save``, ffmpeg) behave as for the target. If the block raises, or leaves no file, the temporary file is
    removed and ``path`` is untouched: a reader never sees a half-written file, and a crash never destroys the
    previous one. The parent folder is created. Usage::

        with atomic_write(out) as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"writing {path}: the writer produced no file")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write never destroys the previous file."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, required_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU with ``weights_only=True``.

    ``required_keys``: top-level keys that must be present; a file without them is reported as a checkpoint of
    another kind (e.g. a VQ checkpoint handed to the transformer loader).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found; that folder has: {list_checkpoints(path.parent) or 'no checkpoints'}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load of a foreign file raises anything (IndexError, KeyError, EOFError, ...)
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(
            f"cannot read checkpoint {path}: {exc.__class__.__name__}: {first}"
            " (the file is corrupt, truncated, or not a PyTorch checkpoint)"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict of tensors")
    missing = [k for k in required_keys if k not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} has no {missing} entry (it has {sorted(state)[:8]}): "
            "is it a checkpoint of another model or stage?"
        )
    return state


def first_key(state: dict[str, Any], *keys: str, path: str | Path = "checkpoint") -> Any:
    """The value of the first of ``keys`` present in ``state`` (official fallbacks, e.g. vq_model/net)."""
    for key in keys:
        if key in state:
            return state[key]
    raise CheckpointError(f"{path} has none of the keys {list(keys)} (it has {sorted(state)[:8]})")


PLAIN_ARG_TYPES = (bool, int, float, str, type(None))


def check_state_dict(value: Any, source: str | Path, key: str = "model") -> dict[str, torch.Tensor]:
    """A checkpoint's model entry as a state dict: str keys, tensor values, no NaN/inf in float tensors."""
    if not isinstance(value, dict) or not value:
        raise CheckpointError(
            f"{source}: the '{key}' entry is a {type(value).__name__}"
            f"{' (empty)' if isinstance(value, dict) else ''}, expected a state dict of tensors"
        )
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{source}: the '{key}' entry has {len(bad)} item(s) that are not named tensors, "
            f"e.g. {str(bad[0])[:60]!r}: {type(value[bad[0]]).__name__}"
        )
    broken = [k for k, v in value.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(
            f"{source}: the '{key}' weights contain NaN or inf in {len(broken)} tensor(s), "
            f"e.g. {broken[:3]} (a diverged or corrupted run)"
        )
    return value


def check_model_args(value: Any, source: str | Path) -> dict[str, Any]:
    """A checkpoint's ``model_args``: a dict of names to plain values (numbers finite, lists of plain values)."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{source}: 'model_args' is a {type(value).__name__}, expected a dict of settings")
    for k, v in value.items():
        items = v if isinstance(v, (list, tuple)) else [v]
        if (
            not isinstance(k, str)
            or not all(isinstance(x, PLAIN_ARG_TYPES) for x in items)
            or any(isinstance(x, float) and not torch.isfinite(torch.tensor(x)) for x in items)
        ):
            raise CheckpointError(
                f"{source}: 'model_args' entry {str(k)[:60]!r} = {str(v)[:60]!r} is not a plain finite setting"
            )
    return dict(value)


# Constructors whose size argument is checked before they allocate (see :class:`_AllocationBudget`).
_SIZED_FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint)
_RANGE_FACTORIES = (torch.arange, torch.linspace, torch.logspace, torch.eye)
BUILD_SLACK_BYTES = 256 * 2**20  # what a constructor may allocate beyond twice its checkpoint's weights
BUILD_SLACK_TENSORS = 4096  # how many tensors it may create beyond 8 per checkpoint entry (init temporaries)


class _AllocationBudget(TorchFunctionMode):
    """Refuse tensor allocations past ``limit`` bytes, or past ``max_tensors`` new tensors, while a module is
    built (plain CPU, no meta device).

    A factory call (:data:`_SIZED_FACTORIES`, :data:`_RANGE_FACTORIES`) is checked from its arguments *before*
    it allocates, at 8 bytes an element; every other op's new storages are added after it returns (a clone or
    deepcopy is the size of tensors already counted, so growth is caught one step late at most). The tensor
    count stops settings that ask for a great many small layers (``n_layers: 100000``) as early as big ones."""

    def __init__(self, limit: int, max_tensors: int) -> None:
        super().__init__()
        self.limit, self.max_tensors, self.used, self.seen = limit, max_tensors, 0, set()

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        wanted = _requested_elements(func, args, kwargs)
        if wanted is not None and self.used + 8 * wanted > self.limit:
            raise MemoryError(
                f"{func.__name__} of {wanted:.3g} elements is past the {self.limit / 2**20:.0f} MiB budget"
            )
        out = func(*args, **kwargs)
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.layout == torch.strided:
                storage = t.untyped_storage()
                if storage.data_ptr() not in self.seen:
                    self.seen.add(storage.data_ptr())
                    self.used += storage.nbytes()
        if self.used > self.limit:
            raise MemoryError(f"{self.used / 2**20:.0f} MiB allocated, past the {self.limit / 2**20:.0f} MiB budget")
        if len(self.seen) > self.max_tensors:
            raise MemoryError(f"more than {self.max_tensors} tensors created")
        return out


def _requested_elements(func: Callable, args: tuple, kwargs: dict) -> float | None:
    """Elements a factory call will allocate, from its arguments; None for other ops or unreadable arguments."""
    numbers = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if func in _SIZED_FACTORIES:
        size = kwargs.get("size", next((a for a in args if isinstance(a, (tuple, list, torch.Size))), numbers))
        if not all(isinstance(n, int) for n in size):
            return None
        return float(math.prod(max(n, 0) for n in size))
    if func in _RANGE_FACTORIES and numbers:
        if func is torch.eye:  # eye(n, m=n)
            return float(numbers[0]) * float(numbers[-1])
        if func is not torch.arange:  # linspace / logspace(start, end, steps)
            return float(numbers[2]) if len(numbers) > 2 else float(kwargs.get("steps", 0))
        bounds = [0, *numbers] if len(numbers) == 1 else numbers  # arange(end) / (start, end[, step])
        step = bounds[2] if len(bounds) > 2 else kwargs.get("step", 1)
        count = (bounds[1] - bounds[0]) / step if step else math.inf
        return abs(count) if math.isfinite(count) else None
    return None


def build_checked(
    factory: Callable[[], nn.Module],
    state_dict: Any,
    source: str | Path,
    allowed_missing_prefixes: tuple[str, ...] = (),
) -> nn.Module:
    """``factory()`` with ``state_dict`` loaded strictly; settings that do not describe the model raise
    :class:`CheckpointError` naming ``source``.

    The module is built on the CPU under an allocation budget of twice the checkpoint's weights plus
    :data:`BUILD_SLACK_BYTES`, and of 8 tensors per checkpoint entry plus :data:`BUILD_SLACK_TENSORS`: absurd settings (``model_args`` / opt.txt saying ``nb_code: 1e9``) are refused
    before their tensors are allocated, without the meta device (whose ops import sympy and torch._dynamo)."""
    state_dict = check_state_dict(state_dict, source)
    weights = sum(t.numel() * t.element_size() for t in state_dict.values())
    limit = 2 * weights + BUILD_SLACK_BYTES
    try:
        with _AllocationBudget(limit, 8 * len(state_dict) + BUILD_SLACK_TENSORS):
            module = factory()
    except (CheckpointError, FileNotFoundError):
        raise
    except MemoryError as exc:
        raise CheckpointError(
            f"{source}: its settings (model_args / opt.txt) describe a model far larger than the checkpoint's "
            f"{weights / 2**20:.1f} MiB of weights ({exc}); they disagree with the checkpoint"
        ) from None
    except Exception as exc:  # a constructor refusing its arguments raises TypeError, ValueError, RuntimeError
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(
            f"{source}: its settings (model_args / opt.txt) do not describe a model: {exc.__class__.__name__}: {first}"
        ) from None
    load_state_dict_strict(module, state_dict, allowed_missing_prefixes, source)
    return module


def load_state_dict_strict(
    module: nn.Module,
    state_dict: dict[str, torch.Tensor],
    allowed_missing_prefixes: tuple[str, ...] = (),
    source: str | Path = "checkpoint",
) -> None:
    """``load_state_dict`` that tolerates only missing keys under ``allowed_missing_prefixes``.

    Any unexpected key, any other missing key, a shape mismatch, or a value that is not a finite tensor raises
    :class:`CheckpointError` naming them.
    """
    _check_fit(module, check_state_dict(state_dict, source), allowed_missing_prefixes, source)
    module.load_state_dict(state_dict, strict=False)


def _check_fit(
    module: nn.Module,
    state_dict: dict[str, torch.Tensor],
    allowed_missing_prefixes: tuple[str, ...],
    source: str | Path,
) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.startswith(allowed_missing_prefixes)]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s), e.g. {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s), e.g. {unexpected[:5]}")
        if mismatched:
            parts.append(f"shape mismatch: {mismatched[:5]}")
        raise CheckpointError(
            f"{source} does not fit {module.__class__.__name__}: "
            + "; ".join(parts)
            + " (wrong checkpoint, or options/opt.txt that disagree with it)"
        )
