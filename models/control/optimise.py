"""Zero-shot spatial control of a trained MoMask by inference-time optimisation (README: Controlling where the
body goes).

Four stages, all through the frozen VQ decoder and the differentiable features -> joints recovery:

1. masked layer: at every unmasking step the transformer's logits are nudged by a few Adam steps on the
   objectives of the *expected* motion, soft tokens ``softmax(logits/τ) · codebook`` decoded to joints
   (MaskControl's differentiable expectation); the sampler then draws from the nudged logits, so tokens fixed
   early steer what the text-conditioned transformer predicts for the rest;
2. residual layers: the same on each residual layer's logits, lower layers fixed;
3. refinement: L-BFGS on an offset of the summed code latent (regularised towards zero);
4. polish: L-BFGS on a temporally smooth offset (an offset regularised towards zero, then smoothed by a
   Gaussian of ``polish_sigma`` frames) of the decoded features' position channels (root yaw rate, root
   velocity and height, local joint positions; in units of the dataset's feature std), without the decoder: a joint-space touch-up that closes
   the last centimetres (a whole-body pose the decoder does not reach exactly, the blend of an edit) at a
   fifth of the cost of a decoder pass. Rotation, velocity and contact channels stay the decoder's.

Every stage stops as soon as every sample's objective is within ``tolerance``, so an easy target costs little.
"""

from __future__ import annotations

import math
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
    """Optimiser settings; the defaults are sized for CPU (few passes, early stop)."""

    guide_iters: int = 1  # Adam steps on the masked layer's logits per unmasking step
    residual_iters: int = 1  # Adam steps on each residual layer's logits
    refine_iters: int = 10  # at most this many decoder passes of L-BFGS on the latent
    polish_iters: int = 100  # at most this many (decoder-free) L-BFGS passes per sample on the position channels
    logits_lr: float = 2.0
    latent_weight: float = 0.01  # penalty on the mean squared latent offset
    polish_weight: float = 0.001  # penalty on the mean squared offset before smoothing (in feature stds)
    polish_sigma: float = 3.0  # frames: width of the Gaussian that smooths the feature offset over time
    tau: float = 1.0  # softmax temperature of the differentiable expectation
    tolerance: float = 0.01  # metres: a sample is done when its objective is at most this

    def __post_init__(self) -> None:
        if min(self.guide_iters, self.residual_iters, self.refine_iters, self.polish_iters) < 0:
            raise ValueError("control iteration counts must be >= 0")
        if self.tau <= 0 or self.logits_lr <= 0 or self.polish_sigma <= 0:
            raise ValueError("control tau, learning rate and polish_sigma must be > 0")


def gaussian_smoother(frames: int, sigma: float, like: Tensor) -> Tensor:
    """(T, T) matrix whose rows are Gaussian weights (``sigma`` frames, each row summing to 1): ``S @ x`` smooths
    x (..., T, C) along time. A dense matmul, far cheaper than a convolution for T <= 196."""
    t = torch.arange(frames, device=like.device, dtype=like.dtype)
    weights = torch.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    return weights / weights.sum(-1, keepdim=True)


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
        # The same for each sample alone (the polish runs sample by sample).
        self.own_objectives = [
            ([TargetObjective(targets[b : b + 1])] if c is not None and c.targets is not None else [])
            + list(c.objectives if c else [])
            for b, c in enumerate(controls)
        ]
        self._done = 0
        self._total = (
            self.settings.guide_iters * time_steps
            + self.settings.residual_iters * (self.books.shape[0] - 1)
            + self.settings.refine_iters
            + self.settings.polish_iters * len(controls)
        ) or 1

    # ---- pieces ----------------------------------------------------------------------------------------------
    def decode(self, latent: Tensor) -> Tensor:
        """Summed code latent (B, n, C) -> de-normalised features (B, 4n, D)."""
        return self.pipe.denormalise(self.pipe.vq.decoder(latent.permute(0, 2, 1)).permute(0, 2, 1))

    def features_loss(self, feats: Tensor, sample: int | None = None) -> Tensor:
        """De-normalised features (B, 4n, D) -> per-sample objective (B,) of the motion after ``post``; with
        ``sample``, feats (1, 4n, D) are that sample's alone."""
        joints = recover_from_ric(feats if self.post is None else self.post(feats), self.pipe.spec.joints_num)
        if sample is None:
            return total_loss(self.objectives, joints, self.valid)
        return total_loss([self.own_objectives[sample]], joints, self.valid[sample : sample + 1])

    def loss(self, latent: Tensor) -> Tensor:
        return self.features_loss(self.decode(latent))

    def _tick(self, stage: str, steps: int = 1) -> None:
        self._done += steps
        if self.progress is not None:
            self.progress(min(self._done / self._total, 1.0), stage)

    def _adam(self, param: Tensor, loss_of: Callable[[Tensor], Tensor], iters: int, stage: str) -> Tensor:
        """Adam (``logits_lr``) on ``param`` for up to ``iters`` steps, stopping when every sample is within
        tolerance. ``loss_of``: param -> per-sample loss (B,)."""
        if iters == 0:
            return param.detach()
        param = param.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=self.settings.logits_lr)
        with torch.enable_grad(), torch.autocast(self.pipe.device.type, enabled=False):
            for _ in range(iters):
                loss = loss_of(param)
                if float(loss.detach().max()) <= self.settings.tolerance:
                    break
                opt.zero_grad()
                loss.sum().backward()
                opt.step()
                self._tick(stage)
        return param.detach()

    def _lbfgs(
        self,
        param: Tensor,
        loss_of: Callable[[Tensor], Tensor],
        penalty: Callable[[Tensor], Tensor],
        evals: int,
        stage: str,
    ) -> Tensor:
        """L-BFGS (strong Wolfe line search) on ``param`` with at most ``evals`` loss evaluations, stopping when
        every sample's loss (without ``penalty``) is within tolerance; returns the best parameter evaluated."""
        if evals == 0:
            return param.detach()
        param = param.detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS(
            [param], lr=1.0, max_iter=evals, history_size=10, tolerance_grad=0.0, tolerance_change=0.0,
            line_search_fn="strong_wolfe",
        )  # fmt: skip
        best = {"worst": math.inf, "param": param.detach().clone(), "evals": 0}

        def closure() -> Tensor:
            opt.zero_grad()
            loss = loss_of(param)
            worst = float(loss.detach().max())
            if worst < best["worst"]:
                best.update(worst=worst, param=param.detach().clone())
            best["evals"] += 1
            self._tick(stage)
            if worst <= self.settings.tolerance or best["evals"] >= evals:
                # Done: a zero gradient ends L-BFGS at once (its first-order optimality test).
                return loss.detach().sum()
            total = loss.sum() + penalty(param).sum()
            total.backward()
            return total.detach()

        with torch.enable_grad(), torch.autocast(self.pipe.device.type, enabled=False):
            param.grad = None
            opt.step(closure)
        return best["param"]

    def _soft(self, logits: Tensor, book: Tensor) -> Tensor:
        return torch.softmax(logits / self.settings.tau, dim=-1) @ book

    # ---- stage 1: masked layer -------------------------------------------------------------------------------
    def base_hook(self, ids: Tensor, logits: Tensor, is_mask: Tensor) -> Tensor:
        """Masked-transformer logits (B, n, K) -> logits nudged towards the objectives at masked positions."""
        book = self.books[0]
        k = book.shape[0]
        hard = book[ids.clamp(0, k - 1)]
        logits = logits.float()
        delta = self._adam(
            torch.zeros_like(logits),
            lambda d: self.loss(torch.where(is_mask[..., None], self._soft(logits + d, book), hard)),
            self.settings.guide_iters,
            "masked layer",
        )
        return logits + delta * is_mask[..., None]

    # ---- stage 2: residual layers ----------------------------------------------------------------------------
    def residual_hook(self, layer: int, ids: Tensor, logits: Tensor) -> Tensor:
        """Residual logits (B, n, K+1) of ``layer`` -> nudged (the last class, padding, is left alone)."""
        k = self.books.shape[1]
        fixed = self.pipe.vq.quantizer.summed_codes(torch.where(ids >= k, -1, ids)).detach()
        codes = logits[..., :k].float()
        delta = self._adam(
            torch.zeros_like(codes),
            lambda d: self.loss(fixed + self._soft(codes + d, self.books[layer])),
            self.settings.residual_iters,
            f"residual layer {layer}",
        )
        return torch.cat([codes + delta, logits[..., k:].float()], dim=-1)

    # ---- stages 3 and 4: latent refinement, polish of the position channels ----------------------------------
    def refine(self, ids: Tensor) -> Tensor:
        """Final codes (B, n, Q) -> de-normalised features (B, 4n, D) decoded from the refined latent, then
        polished (before ``post``)."""
        base = self.pipe.vq.quantizer.summed_codes(ids).detach()
        where = None if self.editable is None else self.editable[..., None].to(base)

        def latent(d: Tensor) -> Tensor:
            return base + (d if where is None else d * where)

        weight = self.settings.latent_weight
        delta = self._lbfgs(
            torch.zeros_like(base),
            lambda d: self.loss(latent(d)),
            lambda d: weight * (d**2).mean(dim=(1, 2)),
            self.settings.refine_iters,
            "refinement",
        )
        with torch.no_grad():
            feats = self.polish(self.decode(latent(delta)))
        if self.progress is not None:
            self.progress(1.0, "done")
        return feats

    def polish(self, feats: Tensor) -> Tensor:
        """De-normalised features (B, 4n, D) -> the same with a smooth offset of the position channels (root and
        local joint positions) that meets the objectives (stage 4 in the module docstring). Sample by sample:
        each stops on its own, and the problems are small enough that batching gains nothing."""
        width = self.pipe.spec.feature_slices["ric"].stop  # root channels and ric come first
        scale = self.pipe.std[:width].to(feats)
        smoother = gaussian_smoother(feats.shape[1], self.settings.polish_sigma, feats)
        weight = self.settings.polish_weight
        out = []
        for b in range(feats.shape[0]):
            own = feats[b : b + 1]

            def moved(z: Tensor, own: Tensor = own) -> Tensor:
                return torch.cat([own[..., :width] + (smoother @ z) * scale, own[..., width:]], dim=-1)

            z = self._lbfgs(
                own.new_zeros(1, own.shape[1], width),
                lambda z, b=b, moved=moved: self.features_loss(moved(z), sample=b),
                lambda z: weight * (z**2).mean(dim=(1, 2)),
                self.settings.polish_iters if self.own_objectives[b] else 0,
                "polish",
            )
            out.append(moved(z))
        return torch.cat(out)

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
