"""Checkpoint I/O: atomic saves, ``weights_only`` loads, strict state-dict loading with named exceptions."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or holds a different model than expected."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash mid-write never destroys the previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, required_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU with ``weights_only=True``.

    ``required_keys``: top-level keys that must be present; a file without them is reported as a checkpoint of
    another kind (e.g. a VQ checkpoint handed to the transformer loader).
    """
    path = Path(path)
    if not path.is_file():
        have = sorted(p.name for p in path.parent.glob("*.tar")) if path.parent.is_dir() else []
        raise CheckpointError(f"checkpoint {path} not found; that folder has: {have or 'no checkpoints'}")
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
        raise CheckpointError(f"{source}: the '{key}' entry is a {type(value).__name__}"
                              f"{' (empty)' if isinstance(value, dict) else ''}, expected a state dict of tensors")
    bad = [k for k, v in value.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: the '{key}' entry has {len(bad)} item(s) that are not named tensors, "
                              f"e.g. {str(bad[0])[:60]!r}: {type(value[bad[0]]).__name__}")
    broken = [k for k, v in value.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise CheckpointError(f"{source}: the '{key}' weights contain NaN or inf in {len(broken)} tensor(s), "
                              f"e.g. {broken[:3]} (a diverged or corrupted run)")
    return value


def check_model_args(value: Any, source: str | Path) -> dict[str, Any]:
    """A checkpoint's ``model_args``: a dict of names to plain values (numbers finite, lists of plain values)."""
    if not isinstance(value, dict):
        raise CheckpointError(f"{source}: 'model_args' is a {type(value).__name__}, expected a dict of settings")
    for k, v in value.items():
        items = v if isinstance(v, (list, tuple)) else [v]
        if not isinstance(k, str) or not all(isinstance(x, PLAIN_ARG_TYPES) for x in items) or any(
                isinstance(x, float) and not torch.isfinite(torch.tensor(x)) for x in items):
            raise CheckpointError(f"{source}: 'model_args' entry {str(k)[:60]!r} = {str(v)[:60]!r} is not a plain "
                                  "finite setting")
    return dict(value)


def build_checked(factory: Callable[[], nn.Module], state_dict: Any, source: str | Path,
                  allowed_missing_prefixes: tuple[str, ...] = ()) -> nn.Module:
    """``factory()`` with ``state_dict`` loaded strictly, checked before any real memory is allocated.

    The module is first built on the ``meta`` device: settings (``model_args`` / opt.txt) its constructor refuses,
    or whose tensor shapes differ from the checkpoint's, raise :class:`CheckpointError` without allocating."""
    state_dict = check_state_dict(state_dict, source)
    try:
        with torch.device("meta"):
            skeleton = factory()
    except (CheckpointError, FileNotFoundError):
        raise
    except Exception as exc:  # a constructor refusing its arguments raises TypeError, ValueError, RuntimeError, ...
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise CheckpointError(f"{source}: its settings (model_args / opt.txt) do not describe a model: "
                              f"{exc.__class__.__name__}: {first}") from None
    _check_fit(skeleton, state_dict, allowed_missing_prefixes, source)
    module = factory()
    load_state_dict_strict(module, state_dict, allowed_missing_prefixes, source)
    return module


def load_state_dict_strict(
    module: nn.Module, state_dict: dict[str, torch.Tensor], allowed_missing_prefixes: tuple[str, ...] = (),
    source: str | Path = "checkpoint",
) -> None:
    """``load_state_dict`` that tolerates only missing keys under ``allowed_missing_prefixes``.

    Any unexpected key, any other missing key, a shape mismatch, or a value that is not a finite tensor raises
    :class:`CheckpointError` naming them.
    """
    _check_fit(module, check_state_dict(state_dict, source), allowed_missing_prefixes, source)
    module.load_state_dict(state_dict, strict=False)


def _check_fit(module: nn.Module, state_dict: dict[str, torch.Tensor], allowed_missing_prefixes: tuple[str, ...],
               source: str | Path) -> None:
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict and not k.startswith(allowed_missing_prefixes)]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)
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
            f"{source} does not fit {module.__class__.__name__}: " + "; ".join(parts)
            + " (wrong checkpoint, or options/opt.txt that disagree with it)"
        )
