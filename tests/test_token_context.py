"""evaluation/token_context.py: closed forms on hand-made predictors whose accuracy is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.token_context import context_accuracy, hidden_count, repeat_rate

K, MASK = 8, 8
STRIDE = torch.tensor([1, 5, 2, 5] * 6)  # a run-like alternation: no token ever follows itself


def one_hot(pred: torch.Tensor) -> torch.Tensor:
    """(n,) ids -> (K, n) logits with the maximum at ``pred``."""
    return torch.nn.functional.one_hot(pred, K).T.float()


def by_position(ids: torch.Tensor) -> torch.Tensor:
    """Knows each position's token without reading any: text and position alone."""
    return one_hot(STRIDE[: ids.shape[0]])


def copy_left(ids: torch.Tensor) -> torch.Tensor:
    """Repeats the token on the left (the first position: the token on the right)."""
    left = torch.cat([ids[1:2], ids[:-1]])
    return one_hot(torch.where(left == MASK, 0, left))


def one_period_back(ids: torch.Tensor) -> torch.Tensor:
    """Reads the token 4 positions away (behind, else ahead): right whenever that one is shown."""
    back = torch.cat([ids[4:8], ids[:-4]])
    ahead = torch.cat([ids[4:], ids[-8:-4]])
    return one_hot(torch.where(back == MASK, torch.where(ahead == MASK, 0, ahead), back))


def test_repeat_rate() -> None:
    assert repeat_rate(np.array([3, 3, 4, 4, 4])) == 0.75
    assert repeat_rate(STRIDE.numpy()) == 0.0
    assert repeat_rate(np.full(10, 7)) == 1.0
    with pytest.raises(ValueError, match="at least 2 tokens"):
        repeat_rate(np.array([1]))


def test_hidden_count() -> None:
    assert hidden_count(49, 0.05) == 2
    assert hidden_count(49, 1.0) == 49
    assert hidden_count(3, 0.01) == 1
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            hidden_count(10, bad)


@pytest.mark.parametrize("ratio", [0.05, 0.5, 1.0])
def test_a_model_that_ignores_context_scores_the_same_at_every_share(ratio: float) -> None:
    assert context_accuracy(by_position, STRIDE, MASK, ratio, draws=5) == 1.0


def test_copying_a_neighbour_fails_on_an_alternation() -> None:
    # Every neighbour differs from its token, so a copier is never right, whatever is shown.
    for ratio in (0.05, 0.5, 1.0):
        assert context_accuracy(copy_left, STRIDE, MASK, ratio, draws=5) == 0.0


def test_reading_the_context_is_right_when_the_context_is_shown() -> None:
    # One position hidden: the token a period away is always shown, so every prediction is right; with all
    # hidden there is nothing to read and it predicts 0, a token the sequence never has.
    assert context_accuracy(one_period_back, STRIDE, MASK, 1 / len(STRIDE), draws=20) == 1.0
    assert context_accuracy(one_period_back, STRIDE, MASK, 1.0, draws=1) == 0.0


def test_the_masks_are_seeded_and_hide_the_stated_count() -> None:
    seen: list[torch.Tensor] = []

    def spy(ids: torch.Tensor) -> torch.Tensor:
        seen.append(ids == MASK)
        return by_position(ids)

    context_accuracy(spy, STRIDE, MASK, 0.5, draws=3, seed=7)
    first = [s.clone() for s in seen]
    seen.clear()
    context_accuracy(spy, STRIDE, MASK, 0.5, draws=3, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(first, seen))
    assert [int(s.sum()) for s in seen] == [12, 12, 12]
    assert not all(torch.equal(first[0], s) for s in first[1:])
