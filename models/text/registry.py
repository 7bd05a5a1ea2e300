"""``build_text_encoder(name, device, **kw)``: the one place that maps encoder names to classes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.text.base import TextEncoder

logger = logging.getLogger(__name__)


def _minilm(device: torch.device | str, path: str | Path | None = None) -> TextEncoder:
    from models.text.minilm import MiniLMEncoder

    return MiniLMEncoder(path=path, device=device)


def _clip(
    device: torch.device | str,
    path: str | Path | None = None,
    bpe_path: str | Path | None = None,
    dtype: torch.dtype = torch.float32,
) -> TextEncoder:
    from models.text.clip import CLIPTextEncoder

    return CLIPTextEncoder(path=path, device=device, bpe_path=bpe_path, dtype=dtype)


TEXT_ENCODERS: dict[str, Callable[..., TextEncoder]] = {"minilm": _minilm, "clip": _clip}
TEXT_ENCODER_DIMS: dict[str, int] = {"minilm": 384, "clip": 512}


def build_text_encoder(name: str, device: torch.device | str = "cpu", **kw: Any) -> TextEncoder:
    """Load a frozen text encoder by name: ``minilm`` (offline default, 384-d) or ``clip`` (ViT-B/32, 512-d).

    ``kw``: ``path`` (weights location; ``""``/``None`` = the default location), and for ``clip`` also
    ``bpe_path`` and ``dtype``. Weights are only read from local files.
    """
    key = name.strip().lower()
    if key not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder {name!r}: choose one of {sorted(TEXT_ENCODERS)}")
    if not kw.get("path"):
        kw["path"] = None
    encoder = TEXT_ENCODERS[key](device, **kw)
    logger.info("text encoder: %s", encoder.describe())
    return encoder
