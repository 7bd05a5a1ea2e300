"""Does a masked transformer read its token context? (docs/sampling.md#token-context)

Masked generation commits tokens a few at a time and predicts the rest from the ones already committed. A model
that predicts each position from the text and the position alone, ignoring the tokens around it, still scores on
its training clips with everything masked, but it cannot keep a sequence's structure: where a clip alternates
(a run's stride is ``11 150 20 150 …``), it commits the most likely token everywhere (``150 150 150 …``), and the
decoder turns that averaged pose into a glide. Two measures show it:

- :func:`context_accuracy`: top-1 accuracy on a clip's own codes at the hidden positions, with a given share of
  positions hidden. A model that reads context is much better with 5 % hidden than with all hidden; one that does
  not scores about the same (its *context gain*, the difference, is near 0).
- :func:`repeat_rate`: the share of tokens equal to the one before. Generated sequences that repeat far more
  than the clips of their caption are the symptom.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

# ids (n,) with ``mask_id`` at hidden positions -> logits (K, n)
Logits = Callable[[Tensor], Tensor]


def repeat_rate(tokens: np.ndarray) -> float:
    """(n,) token ids, n >= 2 -> share of positions 1..n-1 whose token equals the previous one."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or tokens.shape[0] < 2:
        raise ValueError(f"repeat_rate needs a 1-d sequence of at least 2 tokens, got shape {tokens.shape}")
    return float(np.mean(tokens[1:] == tokens[:-1]))


def hidden_count(n: int, ratio: float) -> int:
    """Positions hidden out of ``n`` for a share ``ratio`` in (0, 1]: ``round(ratio·n)``, at least 1."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"hidden share must be in (0, 1], got {ratio}")
    return max(1, round(ratio * n))


@torch.no_grad()
def context_accuracy(logits: Logits, tokens: Tensor, mask_id: int, ratio: float, draws: int, seed: int = 0) -> float:
    """Mean top-1 accuracy at the hidden positions of ``tokens`` (n,), over ``draws`` masks that each hide
    :func:`hidden_count` positions chosen at random (a ``torch.Generator`` seeded with ``seed``; the draws are the
    same for every model). Every other position shows its true token."""
    n = int(tokens.shape[0])
    k = hidden_count(n, ratio)
    g = torch.Generator().manual_seed(seed)
    correct = 0
    for _ in range(draws):
        hide = torch.zeros(n, dtype=torch.bool)
        hide[torch.randperm(n, generator=g)[:k]] = True
        hide = hide.to(tokens.device)
        pred = logits(torch.where(hide, mask_id, tokens)).argmax(0)
        correct += int((pred == tokens)[hide].sum())
    return correct / (draws * k)
