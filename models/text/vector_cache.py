"""Caption vectors stored in a file, so a first command need not encode a model's ~100 training captions.

The demo pipeline compares each prompt with the captions its model was trained on (to warn about unfamiliar
prompts); encoding those captions is most of a first command's text-encoder time. A cache file
(``.npz``: ``captions`` (N,) str, ``vectors`` (N, d) float32, ``encoder`` name) holds them. It is trusted only
after a spot check: the first cached caption is re-encoded with the user's prompts (one extra row in a batch
that runs anyway) and must match its stored vector; otherwise, and for captions missing from the file, the
vectors are computed fresh. Rebuild the demo's file with ``python -m prepare.demo_caption_vectors``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from models.text.base import TextEncoder

logger = logging.getLogger(__name__)

SPOT_CHECK_ATOL = 1e-5


def read_vectors(path: Path, encoder_name: str) -> dict[str, np.ndarray]:
    """Caption -> vector from a cache file; empty when the file is missing, unreadable or for another encoder."""
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["encoder"]) != encoder_name:
                return {}
            return dict(zip(data["captions"].tolist(), data["vectors"].astype(np.float32)))
    except (OSError, KeyError, ValueError) as err:
        logger.info("caption-vector cache %s not used (%s)", path, err)
        return {}


def write_vectors(path: Path, encoder_name: str, captions: Sequence[str], vectors: Tensor) -> None:
    """Write a cache file atomically (temporary file, then rename). vectors: (N, d)."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(
        tmp,
        captions=np.asarray(list(captions), dtype=str),
        encoder=np.asarray(encoder_name),
        vectors=vectors.detach().cpu().float().numpy(),
    )
    tmp.replace(path)


def encode_with_cache(
    encoder: TextEncoder, prompts: Sequence[str], known: Sequence[str], path: Path | None
) -> tuple[Tensor, Tensor]:
    """(prompt vectors (P, d), known-caption vectors (K, d)) on the encoder's device, in the given orders.

    Known captions come from the cache file at ``path`` when its spot check passes; the rest are encoded in the
    same batch as the prompts.
    """
    prompts, known = list(prompts), list(known)
    cached = read_vectors(path, encoder.name) if path is not None else {}
    probe = next((c for c in known if c in cached), None)
    missing = [c for c in dict.fromkeys(known) if c not in cached]
    extra = ([probe] if probe is not None else []) + missing
    vectors = encoder.encode(prompts + extra)
    fresh = dict(zip(extra, vectors[len(prompts) :]))
    if probe is not None:
        stored = torch.as_tensor(cached[probe], device=vectors.device)
        if not torch.allclose(fresh[probe], stored, atol=SPOT_CHECK_ATOL, rtol=0):
            logger.info(
                "caption-vector cache %s does not match %s: re-encoding %d captions",
                path,
                encoder.describe(),
                len(known),
            )
            return vectors[: len(prompts)], encoder.encode(known) if known else vectors[:0]
    table = {c: torch.as_tensor(v, device=vectors.device) for c, v in cached.items()} | fresh
    known_vectors = torch.stack([table[c] for c in known]) if known else vectors[:0]
    return vectors[: len(prompts)], known_vectors
