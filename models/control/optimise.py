"""Zero-shot spatial control of a trained MoMask by inference-time optimisation (README: Controlling where the
body goes).

Three stages, all through the frozen VQ decoder and the differentiable features -> joints recovery:

1. masked layer: at every unmasking step the transformer's logits are nudged by a few Adam steps on the
   objectives of the *expected* motion, soft tokens ``softmax(logits/τ) · codebook`` decoded to joints
   (MaskControl's differentiable expectation); the sampler then draws from the nudged logits, so tokens fixed
   early steer what the text-conditioned transformer predicts for the rest;
2. residual layers: the same on each residual layer's logits, lower layers fixed;
3. refinement: a few Adam steps on an offset of the summed code latent (regularised towards zero), stopping
   as soon as every sample's objective is within ``tolerance``. The motion is decoded from that latent, so its
   features may differ slightly from decoding its tokens.

Every stage stops early once the objectives are met, so an easy target costs little.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from models.control.objectives import (
    Objective,
    TargetObjective,
    target_distances,
    total_loss,
)
from models.control.spec import ControlSpec
from utils.motion import recover_from_ric

if TYPE_CHECKING:
    from models.pipeline import MoMaskPipeline, Sampling

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class ControlSettings:
    """Optimiser settings; the defaults are sized for CPU (few steps, early stop)."""

    guide_iters: int = 1  # Adam steps on the masked layer's logits per unmasking step
    residual_iters: int = 4  # Adam steps on each residual layer's logits
    refine_iters: int = 100  # at most this many Adam steps on the decoder latent
    logits_lr: float = 2.0
    latent_lr: float = 0.1
    latent_weight: float = 0.01  # penalty on the mean squared latent offset
    tau: float = 1.0  # softmax temperature of the differentiable expectation
    tolerance: float = 0.01  # metres: a sample is done when its objective is at most this

    def __post_init__(self) -> None:
        if min(self.guide_iters, self.residual_iters, self.refine_iters) < 0:
            raise ValueError("control iteration counts must be >= 0")
        if self.tau <= 0 or self.logits_lr <= 0 or self.latent_lr <= 0:
            raise ValueError("control tau and learning rates must be > 0")


@dataclass
class Control:
    """What to control for one caption: targets and/or extra objectives (callables on joints)."""

    targets: ControlSpec | None = None
    objectives: Sequence[Objective] = ()
    settings: ControlSettings = field(default_factory=ControlSettings)
    progress: Progress | None = None  # called with (fraction done, stage) while optimising

    def __post_init__(self) -> None:
        if self.targets is None and not self.objectives:
            raise ValueError("a Control needs targets or at least one objective")

    def inside(self, spans: Sequence[tuple[int, int]]) -> Control:
        """This control, after checking that its targets lie in the edited frame ``spans`` ``[(start, end), ...]``
        (end exclusive): an edit keeps every other frame of the source, so a target there could not be met."""
        if self.targets is not None:
            frames = np.nonzero(self.targets.mask.any(-1))[0]
            bad = [int(f) for f in frames if not any(s <= f < e for s, e in spans)]
            if bad:
                where = ", ".join(f"{s}..{e - 1}" for s, e in spans)
                raise ValueError(
                    f"{self.targets.source}: frame(s) {bad[:5]} are controlled but outside the edited spans "
                    f"(frames {where}); an edit keeps the source there, so control only the frames it regenerates"
                )
        return self


def per_sample(control: Control | Sequence[Control | None], batch: int) -> list[Control | None]:
    """One control for every caption, or a list with one entry (None = free) per caption."""
    controls = [control] * batch if isinstance(control, Control) else list(control)
    if len(controls) != batch:
        raise ValueError(f"{batch} captions but {len(controls)} controls")
    if all(c is None for c in controls):
        raise ValueError("every control is None: pass control=None for unconstrained generation")
    return controls


def fit_lengths(
    controls: list[Control | None], m_lens: Tensor, estimated: list[bool], unit: int, max_tokens: int
) -> Tensor:
    """Token lengths covering every controlled frame: estimated lengths grow, given ones must already fit."""
    out = m_lens.clone()
    for b, c in enumerate(controls):
        if c is None or c.targets is None:
            continue
        need = c.targets.last_frame // unit + 1
        if need > max_tokens:
            raise ValueError(
                f"{c.targets.source}: frame {c.targets.last_frame} is beyond the longest motion "
                f"({max_tokens * unit} frames)"
            )
        if estimated[b]:
            out[b] = max(int(out[b]), need)
        elif need > int(out[b]):
            raise ValueError(
                f"{c.targets.source}: frame {c.targets.last_frame} is controlled but the motion has "
                f"{int(out[b]) * unit} frames; lengthen it (--motion_length) or move the target"
            )
    return out


class Controller:
    """The objectives of one batch and the three optimisation stages (hooks for models/transformer/sampling)."""

    def __init__(
        self,
        pipe: MoMaskPipeline,
        controls: list[Control | None],
        m_lens: Tensor,
        editable: Tensor | None = None,
        time_steps: int = 18,
        post: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        first = next(c for c in controls if c is not None)
        self.settings = first.settings
        self.progress = first.progress
        self.pipe = pipe
        self.books = pipe.vq.quantizer.codebooks.detach()  # (Q, K, C)
        unit, spec = pipe.spec.unit_length, pipe.spec
        n = int(m_lens.max())
        frames = torch.arange(n * unit, device=pipe.device)
        self.valid = frames[None] < (m_lens[:, None] * unit)  # (B, T)
        self.editable = editable  # (B, n) bool or None
        # De-normalised features (B, 4n, D) -> the motion the user gets (an edit's blend into its source); the
        # objectives are measured after it, so what is optimised is what comes out.
        self.post = post
        targets = torch.full((len(controls), n * unit, spec.joints_num, 3), float("nan"), device=pipe.device)
        for b, c in enumerate(controls):
            if c is not None and c.targets is not None:
                t = torch.as_tensor(c.targets.check(spec).padded(n * unit), device=pipe.device)
                targets[b] = t
        self.targets = targets
        target = TargetObjective(targets)
        self.objectives = [
            ([target] if c is not None and c.targets is not None else []) + list(c.objectives if c else [])
            for c in controls
        ]
        self._done = 0
        self._total = (
            self.settings.guide_iters * time_steps
            + self.settings.residual_iters * (self.books.shape[0] - 1)
            + self.settings.refine_iters
        ) or 1

    # ---- pieces ----------------------------------------------------------------------------------------------
    def joints(self, latent: Tensor) -> Tensor:
        """Summed code latent (B, n, C) -> joints (B, 4n, J, 3) through the decoder, ``post`` and features -> joints."""
        feats = self.pipe.denormalise(self.pipe.vq.decoder(latent.permute(0, 2, 1)).permute(0, 2, 1))
        return recover_from_ric(feats if self.post is None else self.post(feats), self.pipe.spec.joints_num)

    def loss(self, latent: Tensor) -> Tensor:
        return total_loss(self.objectives, self.joints(latent), self.valid)

    def _tick(self, stage: str) -> None:
        self._done += 1
        if self.progress is not None:
            self.progress(min(self._done / self._total, 1.0), stage)

    def _optimise(
        self,
        param: Tensor,
        make_latent: Callable[[Tensor], Tensor],
        iters: int,
        lr: float,
        stage: str,
        penalty: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Adam on ``param`` for up to ``iters`` steps, stopping when every sample is within tolerance."""
        if iters == 0:
            return param.detach()
        param = param.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=lr)
        with torch.enable_grad(), torch.autocast(self.pipe.device.type, enabled=False):
            for _ in range(iters):
                loss = self.loss(make_latent(param))
                if float(loss.detach().max()) <= self.settings.tolerance:
                    break
                total = loss.sum() + (penalty(param).sum() if penalty is not None else 0.0)
                opt.zero_grad()
                total.backward()
                opt.step()
                self._tick(stage)
        return param.detach()

    def _soft(self, logits: Tensor, book: Tensor) -> Tensor:
        return torch.softmax(logits / self.settings.tau, dim=-1) @ book

    # ---- stage 1: masked layer -------------------------------------------------------------------------------
    def base_hook(self, ids: Tensor, logits: Tensor, is_mask: Tensor) -> Tensor:
        """Masked-transformer logits (B, n, K) -> logits nudged towards the objectives at masked positions."""
        book = self.books[0]
        k = book.shape[0]
        hard = book[ids.clamp(0, k - 1)]
        logits = logits.float()
        delta = self._optimise(
            torch.zeros_like(logits),
            lambda d: torch.where(is_mask[..., None], self._soft(logits + d, book), hard),
            self.settings.guide_iters,
            self.settings.logits_lr,
            "masked layer",
        )
        return logits + delta * is_mask[..., None]

    # ---- stage 2: residual layers ----------------------------------------------------------------------------
    def residual_hook(self, layer: int, ids: Tensor, logits: Tensor) -> Tensor:
        """Residual logits (B, n, K+1) of ``layer`` -> nudged (the last class, padding, is left alone)."""
        k = self.books.shape[1]
        fixed = self.pipe.vq.quantizer.summed_codes(torch.where(ids >= k, -1, ids)).detach()
        codes = logits[..., :k].float()
        delta = self._optimise(
            torch.zeros_like(codes),
            lambda d: fixed + self._soft(codes + d, self.books[layer]),
            self.settings.residual_iters,
            self.settings.logits_lr,
            f"residual layer {layer}",
        )
        return torch.cat([codes + delta, logits[..., k:].float()], dim=-1)

    # ---- stage 3: latent refinement ----------------------------------------------------------------------------
    def refine(self, ids: Tensor) -> Tensor:
        """Final codes (B, n, Q) -> de-normalised features (B, 4n, D) decoded from the refined latent (before
        ``post``)."""
        base = self.pipe.vq.quantizer.summed_codes(ids).detach()
        where = None if self.editable is None else self.editable[..., None].to(base)

        def latent(d: Tensor) -> Tensor:
            return base + (d if where is None else d * where)

        weight = self.settings.latent_weight
        delta = self._optimise(
            torch.zeros_like(base),
            latent,
            self.settings.refine_iters,
            self.settings.latent_lr,
            "refinement",
            penalty=lambda d: weight * (d**2).mean(dim=(1, 2)),
        )
        with torch.no_grad():
            feats = self.pipe.vq.decoder(latent(delta).permute(0, 2, 1)).permute(0, 2, 1)
        if self.progress is not None:
            self.progress(1.0, "done")
        return self.pipe.denormalise(feats)

    def errors(self, joints: Tensor) -> Tensor:
        """Mean target distance (B,) in metres of joints (B, T, J, 3) (NaN where a sample has no targets)."""
        dist, controlled = target_distances(joints[:, : self.targets.shape[1]], self.targets)
        controlled = controlled & self.valid[..., None]
        count = controlled.flatten(1).sum(-1)
        return torch.where(count > 0, (dist * controlled).flatten(1).sum(-1) / count.clamp(min=1), float("nan"))


def generate_controlled(
    pipe: MoMaskPipeline,
    cond: Tensor,
    m_lens: Tensor,
    sampling: Sampling,
    generator: torch.Generator | None,
    controls: list[Control | None],
) -> tuple[Tensor, Tensor, Tensor]:
    """Codes (B, n, Q), de-normalised features (B, 4n, D) and per-sample target error (B,) metres."""
    ctl = Controller(pipe, controls, m_lens, time_steps=sampling.time_steps)
    with pipe.autocast(sampling):
        base = pipe.generate_base(cond, m_lens, sampling, generator, logits_hook=ctl.base_hook)
        ids = pipe.complete_residuals(base, cond, m_lens, sampling, generator, logits_hook=ctl.residual_hook)
    feats = ctl.refine(ids)
    return ids, feats, ctl.errors(recover_from_ric(feats, pipe.spec.joints_num))
