"""RVQ-VAE training (docs/training.md#vq-losses, docs/training.md#vq-schedule): losses, warm-up + MultiStepLR, resumable loop, checkpoints.

Resumability: every random draw of step ``it`` (data order aside) comes from seeds derived from
``(seed, it)``: torch's global generator (residual-block dropout) is re-seeded per batch shard and keyed
generators (Gumbel noise, quantizer dropout, codebook reset noise) per step and layer, and the window order
of epoch ``e`` is a pure function of ``(seed, e)``. Data-parallel runs (torchrun) and gradient accumulation
split each global batch into shards (utils/distributed.py); the codebooks' EMA statistics are all-reduced. ``latest.tar`` stores the model, optimizer, scheduler,
step, epoch, position inside the epoch and the codebooks' EMA statistics, so a killed-and-resumed run
continues exactly like an uninterrupted one.

Decoder fine-tuning (``--decoder_from``, docs/training.md#vq-decoder-fine-tuning) starts from another run's
weights and trains the decoder alone on the frozen encoder's codes, some of them replaced by random codes: the
tokens a transformer generates are never quite a real motion's, and a decoder that has only seen real ones turns
a few wrong tokens into a body floating off the floor. The codes do not change, so transformers trained on the
source run fit the fine-tuned one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from models.vq.build import CODEBOOK_STATE_KEY
from models.vq.model import RVQVAE
from models.vq.quantizer import BatchShard
from options.vq import VQOptions
from training.loop import WarmupMultiStepLR, epoch_progress, every, shard_steps
from utils import distributed as dist
from utils.checkpoint import (
    BEST_FID,
    BEST_LOSS,
    BEST_MM,
    LATEST,
    MODEL_ARGS_KEY,
    CheckpointError,
    atomic_write,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)
from utils.distributed import ShardedBatchSampler, ShardPlan
from utils.motion import recover_from_ric
from utils.npy import load_npy
from utils.physical import METRES_PER_UNIT

logger = logging.getLogger(__name__)

TRAIN_STATE_KEY = "train_state"


class ScalarWriter(Protocol):
    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> Any: ...


# Evaluator hook: (model in eval mode, epoch) -> metrics such as {"fid": .., "matching": ..}.
EvaluateFn = Callable[[RVQVAE, int], dict[str, float]]


# ---- losses and schedule --------------------------------------------------------------------------------------
def vq_loss(
    recon: Tensor,
    target: Tensor,
    commit_loss: Tensor,
    *,
    joints_num: int,
    loss_vel: float = 0.5,
    commit: float = 0.02,
    recons_loss: str = "l1_smooth",
) -> tuple[Tensor, dict[str, Tensor]]:
    """docs/training.md#vq-losses training loss. recon, target: (B, T, D) -> (loss, {'loss_rec', 'loss_vel', 'loss_commit'}).

    QUIRK(reference): the term weighted by ``loss_vel`` is on the joint positions (RIC dims 4 : 4+3(J-1)),
    not on velocities. Kept for retraining.
    """
    criterion = F.smooth_l1_loss if recons_loss == "l1_smooth" else F.l1_loss
    loss_rec = criterion(recon, target)
    ric = slice(4, 4 + 3 * (joints_num - 1))
    loss_explicit = criterion(recon[..., ric], target[..., ric])
    loss = loss_rec + loss_vel * loss_explicit + commit * commit_loss
    return loss, {"loss_rec": loss_rec, "loss_vel": loss_explicit, "loss_commit": commit_loss}


NEAR_FLOOR_M = 0.1  # ground_loss: heights within about this much of the floor weigh most (metres)


def ground_loss(
    recon: Tensor, target: Tensor, mean: Tensor, std: Tensor, joints_num: int, near: float = NEAR_FLOOR_M
) -> Tensor:
    """Height error of the joints near the floor, between normalised features recon and target (B, T, D); mean,
    std (D,) undo the normalisation. Per frame and joint (the root and the RIC joints), ``|y(recon) - y(target)|``
    weighted by ``exp(-y(target) / near)`` (``y`` clamped at 0; ``near`` in the dataset's length unit: 0.1 = 10 cm
    on HumanML3D), divided by the sum of the weights: whatever touches the floor in the data (feet, hands,
    knees) must touch it in the reconstruction, and a body lifted or sunk by ``d`` costs exactly ``d``."""

    def heights(x: Tensor) -> Tensor:
        return recover_from_ric(x * std + mean, joints_num)[..., 1]

    truth = heights(target)
    weight = torch.exp(-truth.clamp(min=0) / near)
    return (weight * (heights(recon) - truth).abs()).sum() / weight.sum()


@dataclass(frozen=True)
class VQObjective:
    """A run's training loss: :func:`vq_loss` with its weights, plus ``loss_ground`` x :func:`ground_loss` when
    that weight is > 0 (``--loss_ground``; it needs the features' normalisation ``mean`` and ``std``, (D,), and
    measures nearness to the floor in 10 cm of the dataset's unit)."""

    joints_num: int
    loss_vel: float
    commit: float
    recons_loss: str
    loss_ground: float = 0.0
    mean: Tensor | None = None
    std: Tensor | None = None
    near: float = NEAR_FLOOR_M  # ground_loss's near-floor scale in the dataset's length unit

    @classmethod
    def from_options(
        cls, opt: VQOptions, stats: tuple[np.ndarray, np.ndarray] | None, device: torch.device
    ) -> VQObjective:
        """``stats``: the (mean, std) the training windows were normalised with (needed for ``--loss_ground``)."""
        if opt.loss_ground and stats is None:
            raise ValueError("--loss_ground needs the dataset's mean and std (train_vq(..., stats=(mean, std)))")
        mean, std = (None, None) if stats is None else (torch.as_tensor(v, device=device).float() for v in stats)
        near = NEAR_FLOOR_M / METRES_PER_UNIT.get(opt.spec.name, 1.0)
        return cls(opt.spec.joints_num, opt.loss_vel, opt.commit, opt.recons_loss, opt.loss_ground, mean, std, near)

    def __call__(
        self, recon: Tensor, target: Tensor, commit_loss: Tensor, *, commit: float | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """recon, target (B, T, D) -> (loss, its terms); ``commit`` overrides the commitment weight."""
        loss, parts = vq_loss(
            recon,
            target,
            commit_loss,
            joints_num=self.joints_num,
            loss_vel=self.loss_vel,
            commit=self.commit if commit is None else commit,
            recons_loss=self.recons_loss,
        )
        if self.loss_ground:
            parts["loss_ground"] = ground_loss(recon, target, self.mean, self.std, self.joints_num, self.near)
            loss = loss + self.loss_ground * parts["loss_ground"]
        return loss, parts


def corrupt_codes(
    codes: Tensor,
    nb_code: int,
    *,
    base: float,
    residual: float,
    noisy_windows: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Codes (B, n, Q) as decoder fine-tuning sees them. In a ``noisy_windows`` fraction of the windows each
    base-layer code is replaced with probability ``base`` and each residual-layer code with probability
    ``residual``: half the replacements by a uniformly random code, half by the same layer's code at another
    position of the window (a transformer's typical error: the motion's own tokens in the wrong order). Then
    every window keeps its first 1..Q layers (uniform; the others -1, absent), the partial sums that the base
    layer alone and the residual transformer's layers produce."""
    b, n, q = codes.shape
    device = codes.device

    def rand(*shape: int) -> Tensor:
        return torch.rand(shape, device=device, generator=generator)

    def randint(high: int, *shape: int) -> Tensor:
        return torch.randint(high, shape, device=device, generator=generator)

    noisy = rand(b, 1, 1) < noisy_windows
    chance = torch.full((1, 1, q), residual, device=device)
    chance[..., 0] = base
    replace = noisy & (rand(b, n, q) < chance)
    uniform = randint(nb_code, b, n, q)
    moved = codes.gather(1, randint(n, b, n, q))
    replacement = torch.where(rand(b, n, q) < 0.5, uniform, moved)
    kept_layers = randint(q, b, 1, 1) + 1
    codes = torch.where(replace, replacement, codes)
    return codes.masked_fill(torch.arange(q, device=device) >= kept_layers, -1)


def finetune_decoder_loss(
    decode: Callable[[Tensor], Tensor],
    model: RVQVAE,
    x: Tensor,
    opt: VQOptions,
    objective: VQObjective,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Decoder fine-tuning loss of windows x (B, T, D): the frozen encoder's nearest codes, corrupted by
    :func:`corrupt_codes`, decoded by ``decode`` (the decoder or its DDP wrapper: (B, C, n) -> (B, D, T)) and
    scored by ``objective`` without the commitment term."""
    with torch.no_grad():
        codes, _ = model.encode(x)
        codes = corrupt_codes(
            codes,
            model.config.nb_code,
            base=opt.code_noise,
            residual=opt.res_code_noise,
            noisy_windows=opt.noisy_windows,
            generator=generator,
        )
        latent = model.quantizer.summed_codes(codes).permute(0, 2, 1)
    recon = decode(latent).permute(0, 2, 1).float()
    return objective(recon, x, recon.new_zeros(()), commit=0.0)


def trained_part(model: RVQVAE, opt: VQOptions) -> torch.nn.Module:
    """What the optimizer updates: the decoder when fine-tuning it (``--decoder_from``), else the whole model."""
    return model.decoder if opt.decoder_from else model


def set_train_mode(model: RVQVAE, opt: VQOptions) -> None:
    """Training mode for what trains; a fine-tuned decoder's frozen encoder and codebooks stay in eval mode
    (no dropout, no EMA updates) and out of autograd."""
    if opt.decoder_from:
        model.eval().requires_grad_(False)
        model.decoder.train().requires_grad_(True)
    else:
        model.train()


def copy_source_weights(model: RVQVAE, source: RVQVAE, source_dir: Path) -> None:
    """Start decoder fine-tuning from ``source`` (every weight and the codebooks' EMA state); its architecture
    must be the one the flags describe, so the run's ``opt.txt`` tells the truth."""
    if source.config != model.config:
        ours, theirs = model.config.to_dict(), source.config.to_dict()
        diff = ", ".join(f"{k} {theirs[k]}" for k in ours if ours[k] != theirs[k])
        raise ValueError(f"--decoder_from {source_dir}: its VQ has {diff}; give train_vq.py the same flags")
    model.load_state_dict(source.state_dict())
    model.load_codebook_state(source.codebook_state())


def make_optimizer(model: RVQVAE, opt: VQOptions) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        trained_part(model, opt).parameters(), lr=opt.lr, betas=(0.9, 0.99), weight_decay=opt.weight_decay
    )


def make_scheduler(optimizer: torch.optim.Optimizer, opt: VQOptions) -> WarmupMultiStepLR:
    """Warm-up, then MultiStepLR stepped from ``it >= warm_up_iter`` on (milestone m takes effect after it m+wu-1)."""
    return WarmupMultiStepLR(
        optimizer,
        lr=opt.lr,
        warm_up_iter=opt.warm_up_iter,
        milestones=opt.milestones,
        gamma=opt.gamma,
        step_during_warmup=False,
    )


def step_seed(seed: int, it: int) -> int:
    """Seed of all random draws of iteration ``it`` (a pure function, so resumed runs draw the same)."""
    return (seed * 1_000_003 + it * 7_919 + 17) % (2**63)


# ---- state ---------------------------------------------------------------------------------------------------
@dataclass
class Best:
    """Best value of one validation metric and the file it is saved to."""

    metric: str
    filename: str
    lower_is_better: bool = True
    value: float = math.inf

    def improves(self, value: float) -> bool:
        if not math.isfinite(self.value):
            return math.isfinite(value)
        return value < self.value if self.lower_is_better else value > self.value


@dataclass
class TrainState:
    """Where training is: ``ep`` (0-based epoch, the official key), ``epoch_it`` batches done in it, ``total_it``."""

    ep: int = 0
    epoch_it: int = 0
    total_it: int = 0
    best: dict[str, Best] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch_it": self.epoch_it, "best": {k: asdict(v) for k, v in self.best.items()}}


def make_best_trackers(evaluate: EvaluateFn | None, opt: VQOptions) -> dict[str, Best]:
    """Best-FID/matching files when an evaluator is configured, else best validation reconstruction loss (when
    fine-tuning the decoder: of the fine-tuning objective, on the same corrupted codes at every validation)."""
    if evaluate is not None:
        return {"fid": Best("fid", BEST_FID), "matching": Best("matching", BEST_MM)}
    metric = "finetune_loss_rec" if opt.decoder_from else "loss_rec"
    return {metric: Best(metric, BEST_LOSS)}


def save_training_checkpoint(
    path: Path, model: RVQVAE, optimizer: torch.optim.Optimizer, scheduler: WarmupMultiStepLR, state: TrainState
) -> None:
    """``latest.tar``: the official keys plus ``model_args``, codebook EMA statistics and the loop position."""
    save_checkpoint(
        path,
        {
            "vq_model": model.state_dict(),
            "opt_vq_model": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "ep": state.ep,
            "total_it": state.total_it,
            MODEL_ARGS_KEY: model.config.to_dict(),
            CODEBOOK_STATE_KEY: model.codebook_state(),
            TRAIN_STATE_KEY: state.to_dict(),
        },
    )


def save_model_checkpoint(path: Path, model: RVQVAE, ep: int) -> None:
    """``net_best_*.tar``: ``{'vq_model', 'ep'}`` like the reference, plus ``model_args`` and codebook state."""
    save_checkpoint(
        path,
        {
            "vq_model": model.state_dict(),
            "ep": ep,
            MODEL_ARGS_KEY: model.config.to_dict(),
            CODEBOOK_STATE_KEY: model.codebook_state(),
        },
    )


def resume_training(
    path: Path, model: RVQVAE, optimizer: torch.optim.Optimizer, scheduler: WarmupMultiStepLR, best: dict[str, Best]
) -> TrainState:
    """Restore model, codebook EMA state, optimizer, scheduler and loop position from ``latest.tar``.

    An official ``latest.tar`` (no EMA statistics or loop position) resumes at the start of epoch ``ep + 1``
    with EMA statistics seeded from its codebooks (the reference would re-initialise them from a batch).
    """
    ckpt = load_checkpoint(path, required_keys=("vq_model", "opt_vq_model", "scheduler", "total_it"))
    load_state_dict_strict(model, ckpt["vq_model"], source=path)
    model.load_codebook_state(ckpt.get(CODEBOOK_STATE_KEY))
    try:
        optimizer.load_state_dict(ckpt["opt_vq_model"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not fit this model: {exc}") from None
    scheduler.load_state_dict(ckpt["scheduler"])
    extra = ckpt.get(TRAIN_STATE_KEY)
    state = TrainState(ep=int(ckpt.get("ep", 0)), total_it=int(ckpt["total_it"]), best=best)
    if extra is None:
        state.ep, state.epoch_it = state.ep + 1, 0
        logger.warning("%s has no loop position (official checkpoint?): resuming at epoch %d", path, state.ep)
    else:
        state.epoch_it = int(extra["epoch_it"])
        for key, saved in extra.get("best", {}).items():
            if key in best:
                best[key].value = float(saved["value"])
    logger.info("resumed from %s at epoch %d, batch %d, iteration %d", path, state.ep, state.epoch_it, state.total_it)
    return state


# ---- loop ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def validate(
    model: RVQVAE, loader: DataLoader, device: torch.device, opt: VQOptions, objective: VQObjective
) -> dict[str, float]:
    """Mean validation losses (eval mode: nearest codes, no dropout) and per-layer codebook usage."""
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    count = 0
    used = torch.zeros(model.config.num_quantizers, model.config.nb_code, dtype=torch.bool, device=device)
    for batch in loader:
        x = batch.to(device).float()
        out = model.reconstruct(x)
        loss, parts = objective(out.recon, x, out.commit_loss)
        for key, value in {"loss": loss, **parts, "perplexity": out.perplexity}.items():
            sums[key] = sums.get(key, 0.0) + float(value) * x.shape[0]
        count += x.shape[0]
        for q in range(model.config.num_quantizers):
            used[q, out.codes[..., q].reshape(-1)] = True
    metrics = {k: v / max(count, 1) for k, v in sums.items()}
    usage = used.float().mean(dim=1)
    metrics.update({f"code_usage_q{q}": float(u) for q, u in enumerate(usage)})
    metrics["code_usage"] = float(usage.mean())
    if opt.decoder_from:
        metrics.update(_validate_finetuning(model, loader, device, opt, objective))
    model.train(was_training)
    return metrics


def _validate_finetuning(
    model: RVQVAE, loader: DataLoader, device: torch.device, opt: VQOptions, objective: VQObjective
) -> dict[str, float]:
    """The decoder fine-tuning losses (``finetune_*``) with the same corrupted codes at every validation."""
    generator = torch.Generator(device=device).manual_seed(opt.seed)
    sums: dict[str, float] = {}
    count = 0
    for batch in loader:
        x = batch.to(device).float()
        loss, parts = finetune_decoder_loss(model.decoder, model, x, opt, objective, generator)
        for key, value in {"loss": loss, **parts}.items():
            sums[f"finetune_{key}"] = sums.get(f"finetune_{key}", 0.0) + float(value) * x.shape[0]
        count += x.shape[0]
    return {k: v / max(count, 1) for k, v in sums.items() if k != "finetune_loss_commit"}


def _log_scalars(writer: ScalarWriter | None, prefix: str, values: dict[str, float], step: int) -> None:
    if writer is not None:
        for key, value in values.items():
            writer.add_scalar(f"{prefix}/{key}", value, step)


def _shard(seed: int, micro_step: int, plan: ShardPlan) -> BatchShard:
    return BatchShard(
        seed=seed,
        rank=dist.get_rank(),
        world_size=plan.world_size,
        micro_step=micro_step,
        accum_steps=plan.accum_steps,
        all_reduce_sum=dist.all_reduce_sum,
        all_gather_cat=dist.all_gather_cat,
    )


def vq_step_gradients(
    net: torch.nn.Module,
    model: RVQVAE,
    micro_batches: list[Tensor],
    plan: ShardPlan,
    opt: VQOptions,
    objective: VQObjective,
    it: int,
    amp: dist.MixedPrecision,
    device: torch.device,
) -> dict[str, float]:
    """Gradients of optimisation step ``it`` accumulated into ``model`` (this rank's shards of the global batch:
    ``micro_batches`` of (b, T, D) windows, one per micro-step), each shard through the sharded quantizer
    (keyed Gumbel / dropout / reset draws, all-reduced EMA statistics); ``net`` is ``model`` or its DDP wrapper.
    When fine-tuning the decoder, ``net`` is the decoder (or its wrapper) and each shard's loss is
    :func:`finetune_decoder_loss`. Returns the step's loss terms averaged over micro-steps. The caller zeroes and
    applies the gradients."""
    seed = step_seed(opt.seed, it)
    values: dict[str, float] = {}
    for (m, _, _), batch in zip(shard_steps(net, plan, seed, it, always_reseed=True), micro_batches, strict=True):
        x = batch.to(device, non_blocking=True).float()  # the sampler already sliced this shard
        if opt.decoder_from:  # corruption draws: torch's generator, seeded per shard by shard_steps
            with amp.autocast():
                loss, parts = finetune_decoder_loss(net, model, x, opt, objective)
            amp.backward(loss / plan.accum_steps)
            for key, value in {"loss": loss, **parts}.items():
                values[key] = values.get(key, 0.0) + float(value.detach()) / plan.accum_steps
            continue
        with model.quantizer.sharded(_shard(seed, m, plan)):
            with amp.autocast():
                recon, commit_loss, perplexity = net(x)
            loss, parts = objective(recon.float(), x, commit_loss)
            amp.backward(loss / plan.accum_steps)
        for key, value in {"loss": loss, **parts, "perplexity": perplexity}.items():
            values[key] = values.get(key, 0.0) + float(value.detach()) / plan.accum_steps
    return values


def train_vq(
    model: RVQVAE,
    train_loader: DataLoader,
    val_loader: DataLoader,
    opt: VQOptions,
    model_dir: Path,
    device: torch.device,
    *,
    resume: bool = False,
    writer: ScalarWriter | None = None,
    evaluate: EvaluateFn | None = None,
    step_callback: Callable[[TrainState], None] | None = None,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> TrainState:
    """Train until ``max_epoch`` epochs or ``max_steps`` iterations; ``resume``: continue from
    ``model_dir/latest.tar``. ``stats``: the (mean, std) the windows were normalised with, (D,) each (needed for
    ``--loss_ground``). ``train_loader`` comes from :func:`data.motion_dataset.make_train_loader` (its
    ``batch_sampler`` is a :class:`~utils.distributed.ShardedBatchSampler`); under torchrun the model is wrapped
    in DDP and only rank 0 logs, writes TensorBoard (``writer``) and saves checkpoints.
    ``step_callback(state)`` runs after each iteration (tests use it to simulate a crash).

    Randomness of step ``it``: quantizer dropout, Gumbel noise and reset/initialisation noise come from
    generators keyed to ``step_seed(seed, it)`` and are drawn with the global batch's shapes, so they equal a
    single process's draws for any number of processes; residual-block dropout (torch's global generator) is
    seeded per shard (``shard_seed``), so it is equal between runs with the same processes x accum_steps and
    otherwise equal in distribution.
    """
    model.to(device)
    set_train_mode(model, opt)
    objective = VQObjective.from_options(opt, stats, device)
    optimizer = make_optimizer(model, opt)
    scheduler = make_scheduler(optimizer, opt)
    best = make_best_trackers(evaluate, opt)
    state = resume_training(model_dir / LATEST, model, optimizer, scheduler, best) if resume else TrainState(best=best)
    sampler = train_loader.batch_sampler
    if not isinstance(sampler, ShardedBatchSampler):
        raise TypeError("train_loader must come from data.motion_dataset.make_train_loader (ShardedBatchSampler)")
    plan = sampler.plan
    if plan.global_batch != opt.batch_size:
        raise ValueError(f"train_loader global batch {plan.global_batch} != --batch_size {opt.batch_size}")
    iters_per_epoch = sampler.steps_per_epoch
    if opt.compile:
        model.encoder.compile()
        model.decoder.compile()
    net = dist.wrap_ddp(trained_part(model, opt), device)
    amp = dist.MixedPrecision(opt.amp, device)
    main = dist.is_main()
    writer = writer if main else None
    window: dict[str, float] = {}

    def done() -> bool:
        return bool(opt.max_steps) and state.total_it >= opt.max_steps

    while state.ep < opt.max_epoch and not done():
        if state.epoch_it >= iters_per_epoch:
            state.ep, state.epoch_it = state.ep + 1, 0
            continue
        sampler.set_epoch(state.ep, start_step=state.epoch_it)
        bar = epoch_progress(
            dist.group_micro_batches(train_loader, plan.accum_steps),
            total=iters_per_epoch - state.epoch_it,
            desc=f"epoch {state.ep}",
        )
        for micro_batches in bar:
            state.total_it += 1
            state.epoch_it += 1
            scheduler.before_step(state.total_it)
            optimizer.zero_grad(set_to_none=True)
            values = vq_step_gradients(net, model, micro_batches, plan, opt, objective, state.total_it, amp, device)
            for key, value in values.items():
                window[key] = window.get(key, 0.0) + value
            lr = optimizer.param_groups[0]["lr"]
            amp.step(optimizer)
            scheduler.after_step(state.total_it)
            if every(state.total_it, opt.log_every):
                means = dist.mean_over_ranks({k: v / opt.log_every for k, v in window.items()}, device)
                means["lr"] = lr
                _log_scalars(writer, "train", means, state.total_it)
                logger.info(
                    "ep %d it %d: %s", state.ep, state.total_it, " ".join(f"{k} {v:.5g}" for k, v in means.items())
                )
                bar.set_postfix(loss=f"{means['loss']:.4f}")
                window = {}
            if every(state.total_it, opt.save_latest) and main:
                save_training_checkpoint(model_dir / LATEST, model, optimizer, scheduler, state)
            if step_callback is not None:
                step_callback(state)
            if done():
                break
        epoch_complete = state.epoch_it >= iters_per_epoch
        if (epoch_complete and (state.ep + 1) % opt.eval_every_e == 0) or done():
            _validate_and_keep_best(model, val_loader, device, opt, objective, model_dir, state, writer, evaluate)
            set_train_mode(model, opt)
        if main:
            save_training_checkpoint(model_dir / LATEST, model, optimizer, scheduler, state)
    dist.barrier()
    return state


def _validate_and_keep_best(
    model: RVQVAE,
    val_loader: DataLoader,
    device: torch.device,
    opt: VQOptions,
    objective: VQObjective,
    model_dir: Path,
    state: TrainState,
    writer: ScalarWriter | None,
    evaluate: EvaluateFn | None,
) -> None:
    """Every rank computes the (deterministic) validation losses; rank 0 alone runs ``evaluate`` and saves."""
    metrics = validate(model, val_loader, device, opt, objective)
    if not dist.is_main():
        return
    _log_scalars(writer, "val", metrics, state.total_it)
    logger.info(
        "validation ep %d it %d: %s",
        state.ep,
        state.total_it,
        " ".join(f"{k} {v:.5g}" for k, v in metrics.items() if not k.startswith("code_usage_q")),
    )
    if evaluate is not None:
        model.eval()
        eval_metrics = evaluate(model, state.ep)
        model.train()
        _log_scalars(writer, "eval", eval_metrics, state.total_it)
        metrics.update(eval_metrics)
    for tracker in state.best.values():
        value = metrics.get(tracker.metric)
        if value is not None and tracker.improves(value):
            logger.info("best %s %.5g -> %.5g: saving %s", tracker.metric, tracker.value, value, tracker.filename)
            tracker.value = value
            save_model_checkpoint(model_dir / tracker.filename, model, state.ep)


# ---- run folder ----------------------------------------------------------------------------------------------
def write_meta(meta_dir: Path, mean: np.ndarray, std: np.ndarray) -> None:
    """``meta/mean.npy`` and ``meta/std.npy``: the normalisation every later stage reads (a resumed run keeps its
    own, with a warning when the dataset's statistics have changed since)."""
    for name, arr in (("mean.npy", mean), ("std.npy", std)):
        path = meta_dir / name
        if path.is_file() and not np.array_equal(load_npy(path, "run statistics"), arr):
            logger.warning("%s differs from the statistics of the current dataset; keeping the run's file", path)
            continue
        with atomic_write(path) as tmp:
            np.save(tmp, np.asarray(arr, dtype=np.float32))
