"""Editing that keeps the source: blend a regenerated motion into the source's own features.

The VQ works on 4-frame tokens and its decoder never reproduces a motion exactly, so decoding an edited token
sequence moves every frame. Instead, the edit regenerates the tokens covering each frame span, decodes them,
and writes the result back into the source's features only inside the span:

* outside every span the features are the source's, bit for bit;
* inside, a linear crossfade of ``width`` frames at each inner boundary (none at the motion's ends) goes from
  the source to the regenerated features; the width doubles (up to half the span) while the joints jump more
  at a boundary than the source's largest frame-to-frame step;
* the root features are integrated quantities (yaw and XZ velocities, docs/data.md), so the frames after a span
  only keep their world positions if the span turns and travels as much as the source did over it: the yaw-rate
  and velocity residuals are spread over the span (weighted by the crossfade) to close that gap. The edited
  span therefore ends where the source continues; a suffix span is free.

All functions are pure; frames ``(T, D)`` de-normalised features, spans ``[(start, end), ...]`` end exclusive.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from utils.motion import recover_from_ric, recover_root_rot_pos
from utils.quaternion import qinv, qrot

logger = logging.getLogger(__name__)

CROSSFADE_FRAMES = 8  # 0.4 s at 20 fps: the default crossfade at each inner span boundary


@dataclass(frozen=True)
class EditSpans:
    """Frame spans asked for, and the token spans that cover them (``frames // unit`` .. ``ceil(end / unit)``)."""

    frames: list[tuple[int, int]]
    tokens: list[tuple[int, int]]
    unit: int

    @classmethod
    def cover(cls, frames: Sequence[tuple[int, int]], total: int, unit: int) -> EditSpans:
        """Validate frame spans inside ``total`` frames (sorted, non-overlapping) and cover them with tokens."""
        spans = sorted((int(s), int(e)) for s, e in frames)
        if not spans:
            raise ValueError("give at least one edit span (start, end) in frames")
        for (s, e), nxt in zip(spans, spans[1:] + [(total, total)]):
            if not 0 <= s < e <= total:
                raise ValueError(
                    f"edit span frames {s}..{e} is not a non-empty span inside the source's {total} frames"
                )
            if nxt[0] < e:
                raise ValueError(f"edit spans {s}..{e} and {nxt[0]}..{nxt[1]} overlap: merge them into one span")
        tokens = [(s // unit, math.ceil(e / unit)) for s, e in spans]
        return cls(spans, tokens, unit)

    @property
    def widened(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """(frame span, frames its tokens regenerate) for spans not on token boundaries."""
        return [
            ((s, e), (a * self.unit, b * self.unit))
            for (s, e), (a, b) in zip(self.frames, self.tokens)
            if s % self.unit or e % self.unit
        ]

    def describe(self, fps: float) -> str:
        """One line for the user: the spans in seconds and, where tokens are wider, what that means."""
        text = ", ".join(f"frames {s}-{e} ({s / fps:.2f}-{e / fps:.2f} s)" for s, e in self.frames)
        if self.widened:
            wide = "; ".join(f"{s}-{e} regenerated as frames {a}-{b}" for (s, e), (a, b) in self.widened)
            text += (
                f" [token boundaries are {self.unit} frames: {wide}, then cut back to the exact frames; every "
                "frame outside the spans is the source's]"
            )
        return text


def crossfade(total: int, spans: Sequence[tuple[int, int]], width: int | Sequence[int]) -> Tensor:
    """Weight of the regenerated motion per frame: (T,) float64 in [0, 1], 0 outside the spans.

    Inside a span ``[s, e)`` it ramps linearly over ``width`` frames after ``s`` (unless ``s == 0``) and before
    ``e`` (unless ``e == total``): frame ``s + k`` gets ``(k + 1) / (w + 1)``. ``width`` may be one per span.
    """
    widths = [width] * len(spans) if isinstance(width, int) else list(width)
    alpha = torch.zeros(total, dtype=torch.float64)
    for (s, e), w in zip(spans, widths):
        inner = (s > 0) + (e < total)
        w = max(0, min(w, (e - s) // max(inner, 1) - 1)) if inner else 0
        k = torch.arange(e - s, dtype=torch.float64)
        up = (k + 1) / (w + 1) if s > 0 else torch.ones_like(k)
        down = (e - s - k) / (w + 1) if e < total else torch.ones_like(k)
        alpha[s:e] = torch.minimum(torch.minimum(up, down), torch.ones_like(k))
    return alpha


def match_root(features: Tensor, source: Tensor, spans: Sequence[tuple[int, int]], alpha: Tensor) -> Tensor:
    """Spread the root yaw-rate and XZ-velocity residuals over each span (weights ``alpha``) so that the
    frames after it have the source's root yaw and position. features, source: (T, D) float64 -> (T, D)."""
    out = features.clone()
    total = out.shape[0]
    for s, e in spans:
        if e >= total:  # a suffix: nothing after it to keep in place
            continue
        w = alpha[s:e] / alpha[s:e].sum()
        out[s:e, 0] += (source[s:e, 0] - out[s:e, 0]).sum() * w
        # Row i's velocity moves the root between frames i and i+1, in the facing frame of frame i+1.
        rot_new, _ = recover_root_rot_pos(out[: e + 1])
        rot_src, _ = recover_root_rot_pos(source[: e + 1])
        zero = torch.zeros_like(out[s:e, :1])
        local = torch.cat((out[s:e, 1:2], zero, out[s:e, 2:3]), dim=-1)
        world_new = qrot(qinv(rot_new[s + 1 : e + 1]), local)
        world_src = qrot(qinv(rot_src[s + 1 : e + 1]), torch.cat((source[s:e, 1:2], zero, source[s:e, 2:3]), -1))
        world_new = world_new + (world_src - world_new).sum(0) * w[:, None]
        fixed = qrot(rot_new[s + 1 : e + 1], world_new)
        out[s:e, 1], out[s:e, 2] = fixed[:, 0], fixed[:, 2]
    return out


def blend(source: Tensor, generated: Tensor, spans: Sequence[tuple[int, int]], width: int | Sequence[int]) -> Tensor:
    """Regenerated features written into the source inside ``spans`` (crossfaded, root matched): (T, D)."""
    src, gen = source.double(), generated.double()
    alpha = crossfade(src.shape[0], spans, width)[:, None]
    mixed = match_root(src + alpha * (gen - src), src, spans, alpha[:, 0])
    inside = alpha[:, 0] > 0
    return torch.where(inside[:, None], mixed.to(source.dtype), source)


def largest_step(joints: Tensor) -> Tensor:
    """Per-frame largest joint displacement: joints (T, J, 3) -> (T-1,)."""
    return (joints[1:] - joints[:-1]).norm(dim=-1).amax(dim=-1)


def blend_keeping_steps(
    source: Tensor,
    generated: Tensor,
    spans: Sequence[tuple[int, int]],
    joints_num: int,
    width: int | Sequence[int] = CROSSFADE_FRAMES,
) -> tuple[Tensor, list[int]]:
    """:func:`blend`, widening each span's crossfade (doubling, up to half the span; ``width``: the first try, one
    or one per span) until no frame-to-frame joint jump at its boundaries exceeds the source's largest one.
    -> (features (T, D), widths used)."""
    limit = largest_step(recover_from_ric(source.float(), joints_num)).max()
    widths = [width] * len(spans) if isinstance(width, int) else list(width)
    for i, (s, e) in enumerate(spans):
        while True:
            out = blend(source, generated, spans, widths)
            steps = largest_step(recover_from_ric(out.float(), joints_num))
            w = widths[i]
            edges = [steps[max(s - 1, 0) : s + w + 1].max()] if s > 0 else []
            edges += [steps[max(e - w - 2, 0) : e].max()] if e < source.shape[0] else []
            if not edges or max(edges) <= limit or w >= (e - s) // 2:
                break
            widths[i] = min(2 * w, (e - s) // 2)
        if edges and max(edges) > limit:
            logger.warning(
                "edit span %d-%d: the boundary still jumps %.3f m in one frame (the source's largest step "
                "is %.3f m) with a %d-frame crossfade; a longer span gives a smoother transition",
                s,
                e,
                float(max(edges)),
                float(limit),
                widths[i],
            )
    return blend(source, generated, spans, widths), widths
