"""Motion-length estimator (docs/networks.md#length-estimator): text feature -> logits over token-length classes ``L // unit_length``.

The module keeps the official ``output.<i>`` indices (Linear 0/4/8/11, LayerNorm 1/5/9) so released
``length_estimator/model/finest.tar`` files (key ``estimator``) load strictly.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from utils.checkpoint import (
    CheckpointError,
    build_checked,
    check_model_args,
    check_state_dict,
)

# The released estimator: hidden widths 512 -> 256 -> 128, 50 classes (200 frames // 4).
HIDDEN = (512, 256, 128)


class LengthEstimator(nn.Module):
    """MLP ``(B, input_size) -> (B, output_size)`` logits; class ``c`` means ``c * unit_length`` frames."""

    def __init__(self, input_size: int = 512, output_size: int = 50) -> None:
        super().__init__()
        if input_size < 1 or output_size < 2:
            raise ValueError(
                f"LengthEstimator needs input_size >= 1 and output_size >= 2, got {input_size}, {output_size}"
            )
        self.input_size, self.output_size = input_size, output_size
        h1, h2, h3 = HIDDEN
        self.output = nn.Sequential(
            nn.Linear(input_size, h1),
            nn.LayerNorm(h1),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.2),
            nn.Linear(h1, h2),
            nn.LayerNorm(h2),
            nn.LeakyReLU(0.2),
            nn.Dropout(0.2),
            nn.Linear(h2, h3),
            nn.LayerNorm(h3),
            nn.LeakyReLU(0.2),
            nn.Linear(h3, output_size),
        )
        self.apply(_init_weights)

    @property
    def model_args(self) -> dict[str, Any]:
        """Constructor arguments, stored in checkpoints so :func:`build_length_estimator` needs nothing else."""
        return {"input_size": self.input_size, "output_size": self.output_size}

    def forward(self, text_emb: Tensor) -> Tensor:
        """text_emb (B, input_size) -> logits (B, output_size)."""
        if text_emb.shape[-1] != self.input_size:
            raise ValueError(
                f"length estimator expects {self.input_size}-d text features, got "
                f"{tuple(text_emb.shape)} (was it trained with another text encoder?)"
            )
        return self.output(text_emb)


def _init_weights(module: nn.Module) -> None:
    # docs/networks.md#length-estimator: Linear N(0, 0.02) / zero bias, LayerNorm (1, 0).
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def build_length_estimator(state: dict[str, Any], source: str = "checkpoint") -> LengthEstimator:
    """Estimator from a checkpoint dict (``estimator`` + optional ``model_args``), loaded strictly.

    Official checkpoints have no ``model_args``: sizes are read from the first and last Linear weights.
    """
    if "estimator" not in state:
        raise CheckpointError(
            f"{source} has no 'estimator' entry (it has {sorted(state)[:8]}): is it a length-estimator checkpoint?"
        )
    weights = check_state_dict(state["estimator"], source, "estimator")
    args = state.get("model_args")
    if args is None:
        try:
            args = {
                "input_size": int(weights["output.0.weight"].shape[1]),
                "output_size": int(weights["output.11.weight"].shape[0]),
            }
        except (KeyError, IndexError) as exc:
            raise CheckpointError(f"{source}: estimator weights lack {exc.args[0]}") from None
    args = check_model_args(args, source)
    return build_checked(lambda: LengthEstimator(**args), weights, source)


def estimate_lengths(
    model: LengthEstimator,
    cond: Tensor,
    generator: torch.Generator | None = None,
    unit_length: int = 4,
    min_tokens: int = 1,
    max_tokens: int = 49,
) -> Tensor:
    """Sample a token length per prompt from the estimator, like the official code, within a valid range.

    cond (B, input_size) text features -> token lengths (B,) int64 in ``[min_tokens, max_tokens]``; frames are
    ``tokens * unit_length``. The official code samples ``Categorical(softmax(logits))`` over all classes, so
    class 0 (an empty motion) is possible; here classes outside the range get zero probability and the rest are
    renormalised (same relative odds). ``unit_length`` is only used to check that the range stays below 200
    frames, the longest clip the classes describe.
    """
    if not 0 <= min_tokens <= max_tokens:
        raise ValueError(f"need 0 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
    if max_tokens >= model.output_size:
        raise ValueError(f"max_tokens {max_tokens} is not a class of this estimator (0..{model.output_size - 1})")
    if max_tokens * unit_length >= 200:
        raise ValueError(
            f"max_tokens {max_tokens} x unit_length {unit_length} frames reaches 200 frames, "
            "beyond the clips the estimator was trained on"
        )
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(cond.float())  # (B, C)
    model.train(was_training)
    classes = torch.arange(logits.shape[-1], device=logits.device)
    allowed = (classes >= min_tokens) & (classes <= max_tokens)
    probs = torch.softmax(logits.masked_fill(~allowed, float("-inf")), dim=-1)
    if generator is not None and generator.device != probs.device:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1).to(cond.device)
