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
   Gaussian of ``polish_sigma`` frames) of the decoded features' position channels: the root's world position
   and yaw at every frame (differenced into the yaw rate and velocity the features hold), its height and the
   local joint positions. Without the decoder, a joint-space touch-up that closes the last centimetres (a
   whole-body pose the decoder does not reach exactly, the blend of an edit) at a fifth of the cost of a
   decoder pass, with a penalty that keeps planted feet from sliding. Rotation, velocity and contact channels
   stay the decoder's.

Every stage stops as soon as every sample's objective is within ``tolerance``, so an easy target costs little.
The target distance descended is a pseudo-Huber one (``smooth``), the one stopped on and reported the plain one.
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
    PlantedFeet,
    TargetObjective,
    target_distances,
    total_loss,
)
from models.control.spec import ControlSpec
from utils.motion import recover_from_ric, recover_root_rot_pos
from utils.physical import METRES_PER_UNIT, SKATE_HEIGHT, foot_joints
from utils.quaternion import qrot
from utils.skeleton import DatasetSpec

if TYPE_CHECKING:
    from models.pipeline import MoMaskPipeline, Sampling

Progress = Callable[[float, str], None]
# parameter -> per-sample (loss the optimiser descends, objective it stops on), each (B,)
LossOf = Callable[[Tensor], tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class ControlSettings:
    """Optimiser settings; the defaults are sized for CPU (few passes, early stop)."""

    guide_iters: int = 1  # Adam steps on the masked layer's logits per unmasking step
    residual_iters: int = 1  # Adam steps on each residual layer's logits
    refine_iters: int = 10  # at most this many decoder passes of L-BFGS on the latent
    polish_iters: int = 100  # at most this many (decoder-free) L-BFGS passes per sample on the position channels
    logits_lr: float = 2.0
    latent_weight: float = 0.01  # penalty on the mean squared latent offset
    polish_weight: float = 0.001  # penalty on the mean squared polish parameter (before smoothing)
    plant_weight: float = 10.0  # weight of PlantedFeet in the polish, in its loss and stopping test (0 = off)
    polish_sigma: float = 3.0  # frames: width of the Gaussian that smooths the feature offset over time
    tau: float = 1.0  # softmax temperature of the differentiable expectation
    tolerance: float = 0.01  # metres: a sample is done when its objective is at most this
    smooth: float = 0.01  # metres: the optimiser descends the pseudo-Huber target distance of this width

    def __post_init__(self) -> None:
        if min(self.guide_iters, self.residual_iters, self.refine_iters, self.polish_iters) < 0:
            raise ValueError("control iteration counts must be >= 0")
        if self.tau <= 0 or self.logits_lr <= 0 or self.polish_sigma <= 0:
            raise ValueError("control tau, learning rate and polish_sigma must be > 0")
        if self.smooth < 0:
            raise ValueError("control smooth must be >= 0")


def gaussian_smoother(frames: int, sigma: float, like: Tensor) -> Tensor:
    """(T, T) matrix whose rows are Gaussian weights (``sigma`` frames, each row summing to 1): ``S @ x`` smooths
    x (..., T, C) along time. A dense matmul, far cheaper than a convolution for T <= 196."""
    t = torch.arange(frames, device=like.device, dtype=like.dtype)
    weights = torch.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2)
    return weights / weights.sum(-1, keepdim=True)


YAW_UNIT = 0.1  # radians of half-yaw per unit of the polish's yaw parameter
PLANT_SLACK = 0.002  # metres per frame a planted foot may slide beyond its pre-polish slide before it costs


def moved_root(root: Tensor, offset: Tensor, length_unit: float) -> Tensor:
    """Root rate channels (B, T, 3) of a motion (half-yaw rate, facing-frame XZ velocity) and the polish's root
    parameters (B, T, 3) -> the rate channels of the moved root.

    The parameters are a half-yaw angle (``YAW_UNIT`` rad per unit) and a world XZ position (``length_unit`` per
    unit) added at every frame: the root turns by the one and its path moves by the other, independently, and
    each frame by its own parameter, where an offset of the rates would move every later frame (the optimiser
    need not integrate, and a dense path converges in a few passes). Frame 0 stays at the origin facing +Z, as
    every recovered motion does, so its parameters are ignored (anchored at zero): were they not, moving them
    would shift or turn the whole motion from frame 1 on."""
    anchored = torch.cat([torch.zeros_like(offset[..., :1, :]), offset[..., 1:, :]], dim=-2)
    # (B, T, 3): the change from frame t to t+1 at row t (0 in the last row, which recovery never integrates)
    step = torch.diff(anchored, dim=-2, append=anchored[..., -1:, :])
    height = torch.zeros_like(root[..., :1])  # recover_root_rot_pos reads it; the XZ path does not depend on it
    path = recover_root_rot_pos(torch.cat([root, height], dim=-1))[1]
    yaw_rate = root[..., :1] + step[..., :1] * YAW_UNIT
    turned = recover_root_rot_pos(torch.cat([yaw_rate, root[..., 1:], height], dim=-1))[0]
    shift = torch.stack([step[..., 1], torch.zeros_like(step[..., 1]), step[..., 2]], dim=-1) * length_unit
    world = torch.diff(path, dim=-2, append=path[..., -1:, :]) + shift  # world step from frame t to t+1, row t
    local = qrot(turned[..., 1:, :], world[..., :-1, :])  # recovery rotates row t's step by frame t+1's facing
    velocity = torch.cat([local[..., [0, 2]], root[..., -1:, 1:3]], dim=-2)
    return torch.cat([yaw_rate, velocity], dim=-1)


def placed_feet(targets: Tensor, spec: DatasetSpec, reach: int) -> Tensor:
    """Targets (B, T, J, 3), NaN = free -> (B, T, F) bool over :func:`utils.physical.foot_joints`: True where a
    foot (ankle or toe of that side) has a target within ``reach`` frames, so the polish may move it there."""
    feet = torch.as_tensor(foot_joints(spec), device=targets.device)
    on = torch.isfinite(targets[..., feet, :]).any(-1).float()  # (B, T, F): left ankle, left toe, right ...
    side = on.unflatten(-1, (2, 2)).amax(-1)  # (B, T, 2)
    near = torch.nn.functional.max_pool1d(side.transpose(1, 2), 2 * reach + 1, stride=1, padding=reach)
    return near.transpose(1, 2).repeat_interleave(2, dim=-1) > 0


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

    @property
    def positions(self) -> np.ndarray | None:
        """The target positions (T, J, 3), NaN = free, or None for a control by objectives only."""
        return None if self.targets is None else self.targets.targets

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
        self.targets = targets  # (B, T, J, 3), NaN = free (all NaN for a sample with objectives only)
        self.extras = [list(c.objectives) if c is not None else [] for c in controls]
        self.controlled = [c is not None for c in controls]
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

    def joints_loss(self, joints: Tensor, sample: int | None = None) -> tuple[Tensor, Tensor]:
        """Joints (B, T, J, 3) of the motion after ``post`` -> per-sample (descended, objective), each (B,): the
        extra objectives plus the targets' mean pseudo-Huber distance (what the optimiser descends) and their
        mean distance (what it stops on and reports). With ``sample``, joints (1, T, J, 3) are that sample's."""
        rows = slice(None) if sample is None else slice(sample, sample + 1)
        targets, valid = self.targets[rows], self.valid[rows]
        extra = total_loss(self.extras[rows], joints, valid)
        descended = extra + TargetObjective(targets, self.settings.smooth)(joints, valid)
        return descended, extra + TargetObjective(targets)(joints, valid)

    def features_joints(self, feats: Tensor) -> Tensor:
        """De-normalised features (B, 4n, D) -> joints (B, 4n, J, 3) of the motion after ``post``."""
        return recover_from_ric(feats if self.post is None else self.post(feats), self.pipe.spec.joints_num)

    def loss(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """Summed code latent (B, n, C) -> (descended, objective) (B,) of the decoded motion."""
        return self.joints_loss(self.features_joints(self.decode(latent)))

    def _tick(self, stage: str, steps: int = 1) -> None:
        self._done += steps
        if self.progress is not None:
            self.progress(min(self._done / self._total, 1.0), stage)

    def _adam(self, param: Tensor, loss_of: LossOf, iters: int, stage: str) -> Tensor:
        """Adam (``logits_lr``) on ``param`` for up to ``iters`` steps, stopping when every sample's objective is
        within tolerance. ``loss_of``: param -> per-sample (descended, objective), each (B,)."""
        if iters == 0:
            return param.detach()
        param = param.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([param], lr=self.settings.logits_lr)
        with torch.enable_grad(), torch.autocast(self.pipe.device.type, enabled=False):
            for _ in range(iters):
                descended, objective = loss_of(param)
                if float(objective.detach().max()) <= self.settings.tolerance:
                    break
                opt.zero_grad()
                descended.sum().backward()
                opt.step()
                self._tick(stage)
        return param.detach()

    def _lbfgs(self, param: Tensor, loss_of: LossOf, evals: int, stage: str) -> Tensor:
        """L-BFGS (strong Wolfe line search) on ``param`` with at most ``evals`` loss evaluations, stopping when
        every sample's objective is within tolerance; returns the parameter with the best objective evaluated.
        ``loss_of``: param -> per-sample (descended, objective), each (B,); descended includes any penalty."""
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
            descended, objective = loss_of(param)
            worst = float(objective.detach().max())
            if worst < best["worst"]:
                best.update(worst=worst, param=param.detach().clone())
            best["evals"] += 1
            self._tick(stage)
            if worst <= self.settings.tolerance or best["evals"] >= evals:
                # Done: a zero gradient ends L-BFGS at once (its first-order optimality test).
                return descended.detach().sum()
            total = descended.sum()
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

        def loss_of(d: Tensor) -> tuple[Tensor, Tensor]:
            descended, objective = self.loss(latent(d))
            return descended + weight * (d**2).mean(dim=(1, 2)), objective

        delta = self._lbfgs(torch.zeros_like(base), loss_of, self.settings.refine_iters, "refinement")
        with torch.no_grad():
            feats = self.polish(self.decode(latent(delta)))
        if self.progress is not None:
            self.progress(1.0, "done")
        return feats

    def polish(self, feats: Tensor) -> Tensor:
        """De-normalised features (B, 4n, D) -> the same with a smooth offset of the position channels (root and
        local joint positions) that meets the objectives (stage 4 in the module docstring). The root is moved
        through a world position and yaw per frame (:func:`moved_root`), the height and local joints directly;
        :class:`PlantedFeet` (``plant_weight``, added to the objective it stops on) keeps the feet that stood
        before the polish from sliding. Sample by sample: each stops on its own, and the problems are small
        enough that batching gains nothing."""
        ric = self.pipe.spec.feature_slices["ric"]
        width = ric.stop  # root channels (yaw rate, XZ velocity, height) and ric come first
        scale = self.pipe.std[:width].to(feats)
        length_unit = float(scale[ric].mean())  # the spread of the local joint positions, a length
        smoother = gaussian_smoother(feats.shape[1], self.settings.polish_sigma, feats)
        weight, plant_weight = self.settings.polish_weight, self.settings.plant_weight
        spec = self.pipe.spec
        metre = 1.0 / METRES_PER_UNIT.get(spec.name, 1.0)  # in the dataset's length unit
        out = []
        for b in range(feats.shape[0]):
            own = feats[b : b + 1]
            planted = PlantedFeet(
                self.features_joints(own),
                foot_joints(spec),
                SKATE_HEIGHT * metre,
                PLANT_SLACK * metre,
                placed_feet(self.targets[b : b + 1], spec, math.ceil(3 * self.settings.polish_sigma)),
            )

            def moved(z: Tensor, own: Tensor = own) -> Tensor:
                offset = smoother @ z
                root = moved_root(own[..., :3], offset[..., :3], length_unit)
                height = own[..., 3:4] + offset[..., 3:4] * length_unit
                local = own[..., 4:width] + offset[..., 4:] * scale[4:]
                return torch.cat([root, height, local, own[..., width:]], dim=-1)

            def loss_of(
                z: Tensor, b: int = b, moved: Callable[[Tensor], Tensor] = moved, planted: PlantedFeet = planted
            ) -> tuple[Tensor, Tensor]:
                joints = self.features_joints(moved(z))
                descended, objective = self.joints_loss(joints, sample=b)
                feet = plant_weight * planted(joints, self.valid[b : b + 1]) if plant_weight else 0.0
                return descended + weight * (z**2).mean(dim=(1, 2)) + feet, objective + feet

            evals = self.settings.polish_iters if self.controlled[b] else 0
            z = self._lbfgs(own.new_zeros(1, own.shape[1], width), loss_of, evals, "polish")
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
