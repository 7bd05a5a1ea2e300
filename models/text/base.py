"""Frozen text encoders as plain objects (not ``nn.Module`` attributes, so they never enter a checkpoint).

A :class:`TextEncoder` is loaded once and shared by every model that needs caption features (the official code
loads CLIP twice, docs/quirks.md#modern-dependencies row 16). :class:`TextFeatureCache` memoises caption -> vector for trainers, which see
the same captions every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def check_captions(captions: Sequence[str]) -> list[str]:
    """The captions as a list; an empty, whitespace-only or non-string caption raises ``ValueError``."""
    if isinstance(captions, str):
        raise ValueError(f"expected a list of captions, got the single string {captions!r} (wrap it in a list)")
    out = list(captions)
    for i, caption in enumerate(out):
        if not isinstance(caption, str):
            raise ValueError(f"caption {i} is a {type(caption).__name__}, expected a string")
        if not caption.strip():
            raise ValueError(f"empty caption at index {i} ({caption!r}): every prompt needs some text")
    return out


class TextEncoder:
    """A frozen sentence encoder: ``encode(captions) -> (B, dim)`` float32 on ``device``, without gradient.

    Subclasses set ``name``, ``dim``, ``max_tokens`` and implement :meth:`_encode_batch`.
    """

    name: str = "text"
    dim: int = 0
    max_tokens: int = 0
    batch_size: int = 256

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def _encode_batch(self, captions: list[str]) -> Tensor:
        """Features of one batch of validated captions: (b, dim) on ``self.device``."""
        raise NotImplementedError

    def encode(self, captions: Sequence[str]) -> Tensor:
        """Captions (B,) -> features (B, dim) float32 on ``self.device`` (no grad, eval mode)."""
        captions = check_captions(captions)
        if not captions:
            return torch.zeros(0, self.dim, device=self.device)
        self.model.eval()
        with torch.no_grad():
            parts = [
                self._encode_batch(captions[i : i + self.batch_size]) for i in range(0, len(captions), self.batch_size)
            ]
        return torch.cat(parts).float()

    def to(self, device: torch.device | str) -> TextEncoder:
        """Move the encoder (in place) and return it."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def describe(self) -> str:
        """One line for logs and opt.txt."""
        return f"{self.name} dim={self.dim} max_tokens={self.max_tokens}"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.describe()}, device={self.device})"


class TextFeatureCache:
    """Caption -> feature memo around a :class:`TextEncoder`; only unseen captions are encoded (in one batch).

    Vectors are kept on the encoder's device. ``encode`` has the encoder's signature, so a cache can stand in
    for the encoder wherever captions are turned into features.
    """

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self._memo: dict[str, Tensor] = {}

    @property
    def name(self) -> str:
        return self.encoder.name

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def max_tokens(self) -> int:
        return self.encoder.max_tokens

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def describe(self) -> str:
        return self.encoder.describe()

    def __len__(self) -> int:
        return len(self._memo)

    def __contains__(self, caption: object) -> bool:
        return caption in self._memo

    def clear(self) -> None:
        self._memo.clear()

    def encode(self, captions: Sequence[str]) -> Tensor:
        """Captions (B,) -> (B, dim), encoding each distinct unseen caption once."""
        captions = check_captions(captions)
        unseen = list(dict.fromkeys(c for c in captions if c not in self._memo))
        if unseen:
            for caption, vector in zip(unseen, self.encoder.encode(unseen)):
                self._memo[caption] = vector
        if not captions:
            return torch.zeros(0, self.dim, device=self.device)
        return torch.stack([self._memo[c] for c in captions]).to(self.device)

    __call__ = encode
