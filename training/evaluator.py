"""Training the text/motion evaluator (Guo et al. 2022, "Generating diverse and natural 3D human motions").

Two phases, both on evaluation-layout batches ``(word_embs, pos_onehot, caption, sent_len, motion, length,
tokens)``:

1. **Movement pre-training**: the movement encoder and a transposed-conv decoder reconstruct the normalised
   features (L1 inside each clip's length) with a smoothness penalty on consecutive movement latents.
2. **Contrastive co-embedding**: with the movement encoder frozen, the text and motion encoders are trained so that
   matched pairs are close and mismatched pairs (motions rolled by a random non-zero shift within the batch) are
   at least ``margin`` apart: ``mean(d_pos²) + mean(max(0, margin − d_neg)²)``.

The best model by validation contrastive loss is what ``finest.tar`` holds (official file name).

Data parallel (torchrun, gloo on CPU / NCCL on CUDA) and ``--accum_steps``: every rank loads the same global
batches and trains on its shards of each (utils/distributed.py); rank 0 alone logs and saves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from evaluation.benchmark import EvalBatch
from models.evaluator.modules import MovementConvDecoder
from models.evaluator.wrapper import T2MEvaluator
from training.loop import epoch_progress, every, shard_steps
from utils import distributed as dist

logger = logging.getLogger(__name__)


def contrastive_loss(text_emb: Tensor, motion_emb: Tensor, margin: float, shift: int) -> tuple[Tensor, Tensor]:
    """(B, d), (B, d) -> (positive loss, negative loss); negatives pair text i with motion (i + shift) mod B.

    ``shift`` must be in [1, B-1] (shift 0 would make every "negative" a positive pair).
    """
    batch = text_emb.shape[0]
    if not 1 <= shift < batch:
        raise ValueError(f"shift must be in [1, {batch - 1}] for a batch of {batch}, got {shift}")
    d_pos = F.pairwise_distance(text_emb, motion_emb)
    d_neg = F.pairwise_distance(text_emb, motion_emb.roll(-shift, dims=0))
    return d_pos.pow(2).mean(), (margin - d_neg).clamp(min=0).pow(2).mean()


def _length_mask(m_lens: Tensor, frames: int, device: torch.device) -> Tensor:
    """(B,) -> (B, frames, 1) float mask, 1 inside each clip."""
    return (torch.arange(frames, device=device)[None] < m_lens.to(device)[:, None]).float()[..., None]


def movement_loss(
    evaluator: T2MEvaluator, decoder: MovementConvDecoder, batch: EvalBatch, lambda_smooth: float, device: torch.device
) -> Tensor:
    """Masked L1 reconstruction of (B, T, D) normalised features + smoothness of the movement latents."""
    motions = batch.motions.to(device, torch.float32)
    latents = evaluator.movement_encoder(motions[..., :-4])
    recon = decoder(latents)
    frames = min(recon.shape[1], motions.shape[1])
    mask = _length_mask(batch.m_lens, frames, device)
    rec = ((recon[:, :frames] - motions[:, :frames]).abs() * mask).sum() / (mask.sum() * motions.shape[-1])
    smooth = (latents[:, 1:] - latents[:, :-1]).abs().mean()
    return rec + lambda_smooth * smooth


def matching_losses(
    evaluator: T2MEvaluator, batch: EvalBatch, margin: float, rng: np.random.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Contrastive (positive, negative) losses of one batch; the movement encoder is used without gradients."""
    with torch.no_grad():
        movements = evaluator.movement_encoder(batch.motions.to(device, torch.float32)[..., :-4])
    motion_emb = evaluator.motion_encoder(movements, batch.m_lens // evaluator.unit_length)
    text_emb = evaluator.text_encoder(
        batch.word_embs.to(device, torch.float32), batch.pos_onehot.to(device, torch.float32), batch.sent_lens
    )
    shift = int(rng.integers(1, len(batch)))
    return contrastive_loss(text_emb, motion_emb, margin, shift)


@dataclass
class TrainHistory:
    """Per-epoch mean losses of both phases (for logs and tests)."""

    movement: list[float] = field(default_factory=list)
    matching: list[float] = field(default_factory=list)
    val_matching: list[float] = field(default_factory=list)
    best_epoch: int = -1


def _set_epoch(loader: Iterable, epoch: int) -> None:
    """Per-epoch order of a loader whose batch sampler is epoch-keyed (``set_epoch``); others are left alone."""
    sampler = getattr(loader, "batch_sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def _run_epochs(
    epochs: int,
    loader: Iterable,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    accum_steps: int,
    seed: int,
    first_epoch: int,
    max_steps: int,
    log_every: int,
    phase: str,
    on_epoch_end: Callable[[int, float], None],
) -> None:
    """Optimisation steps on global batches: this rank's shards (``net(shard, shard_index)`` -> loss), accumulated
    over ``accum_steps`` micro-steps; the logged loss of a step is the mean over all shards (every rank agrees)."""
    it = 0
    for epoch in range(epochs):
        _set_epoch(loader, first_epoch + epoch)
        losses = []
        for raw in epoch_progress(loader, total=_length(loader), desc=f"{phase} epoch {epoch}"):
            it += 1
            plan = dist.make_shard_plan(len(EvalBatch.from_loader(raw)), accum_steps)
            if plan.micro_batch < 2:
                raise ValueError(
                    f"{phase}: a global batch of {plan.global_batch} split into {plan.num_shards} "
                    "shards (processes x --accum_steps) leaves fewer than 2 samples per shard: "
                    "raise --batch_size or use fewer processes/accumulation steps"
                )
            optimizer.zero_grad(set_to_none=True)
            total = torch.zeros((), dtype=torch.float64)
            for _, shard, rows in shard_steps(net, plan, seed, it):
                loss = net(EvalBatch.from_loader(dist.take_shard(raw, rows)), shard)
                (loss / accum_steps).backward()
                total += loss.detach().double().cpu() / accum_steps
            optimizer.step()
            losses.append(float(dist.all_reduce_mean(total.to(_param_device(net)))))
            if every(it, log_every):
                logger.info("%s it %d: loss %.6g", phase, it, losses[-1])
            if max_steps and it >= max_steps:
                break
        if not losses:
            raise ValueError(f"{phase}: the training loader yielded no batches (dataset smaller than one batch?)")
        on_epoch_end(epoch, float(np.mean(losses)))
        if max_steps and it >= max_steps:
            return


def _length(loader: Iterable) -> int | None:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None


def _param_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def validation_loss(
    evaluator: T2MEvaluator, loader: Iterable, margin: float, device: torch.device, seed: int = 0
) -> float:
    """Mean contrastive loss on a loader (fixed negative shifts so epochs compare fairly)."""
    evaluator.eval()
    rng = np.random.default_rng(seed)
    values = [sum(matching_losses(evaluator, EvalBatch.from_loader(raw), margin, rng, device)).item() for raw in loader]
    if not values:
        raise ValueError("validation loader yielded no batches")
    return float(np.mean(values))


def train_evaluator(
    evaluator: T2MEvaluator,
    train_loader: Iterable,
    val_loader: Iterable | None,
    *,
    device: torch.device,
    lr: float = 1e-4,
    movement_epochs: int = 10,
    max_epoch: int = 50,
    max_steps: int = 0,
    margin: float = 10.0,
    lambda_smooth: float = 0.001,
    dim_movement_dec_hidden: int = 512,
    log_every: int = 50,
    seed: int = 0,
    accum_steps: int = 1,
    on_best: Callable[[T2MEvaluator, int], None] | None = None,
    writer: Any = None,
) -> TrainHistory:
    """Both phases; ``on_best(evaluator, epoch)`` is called (on rank 0 only) whenever the validation (or, without
    a validation loader, the training) contrastive loss improves — the caller saves ``finest.tar`` there.
    ``writer`` (rank 0's TensorBoard, optional) gets the per-epoch losses of both phases.

    ``train_loader`` yields *global* batches (every rank the same ones; a batch sampler with ``set_epoch(e)`` is
    told the epoch, counted across both phases). Each step splits the global batch into ``world_size *
    accum_steps`` shards (utils/distributed.py); this rank trains on its shards under DDP and the step's loss is
    the mean of the shards' losses. Contrastive negatives are drawn inside a shard (shift from a stream per shard
    index; shard 0's is the single-process ``default_rng(seed)``), so a run is reproduced exactly by any run with the same ``processes x accum_steps``.
    """
    history = TrainHistory()
    evaluator.to(device)

    if movement_epochs > 0:
        decoder = MovementConvDecoder(
            input_size=evaluator.model_args["dim_movement_latent"],
            hidden_size=dim_movement_dec_hidden,
            output_size=evaluator.dim_pose,
        ).to(device)
        evaluator.movement_encoder.train()
        decoder.train()
        trained = nn.ModuleDict({"movement_encoder": evaluator.movement_encoder, "decoder": decoder})
        net = dist.wrap_ddp(
            dist.MethodAsForward(
                trained, lambda mods, b, shard: movement_loss(evaluator, mods["decoder"], b, lambda_smooth, device)
            ),
            device,
        )

        def end_movement_epoch(epoch: int, loss: float) -> None:
            history.movement.append(loss)
            logger.info("movement epoch %d: %.6g", epoch, loss)
            if writer is not None:
                writer.add_scalar("movement/loss", loss, epoch)

        _run_epochs(
            movement_epochs,
            train_loader,
            net,
            torch.optim.Adam(trained.parameters(), lr=lr),
            accum_steps=accum_steps,
            seed=seed,
            first_epoch=0,
            max_steps=max_steps,
            log_every=log_every,
            phase="movement",
            on_epoch_end=end_movement_epoch,
        )

    evaluator.movement_encoder.eval()
    trained = nn.ModuleDict({"text_encoder": evaluator.text_encoder, "motion_encoder": evaluator.motion_encoder})
    best = float("inf")
    shift_rngs: dict[int, np.random.Generator] = {}  # one negative-shift stream per shard index

    def matching_step(mods: nn.Module, batch: EvalBatch, shard: int) -> Tensor:
        mods.train()
        if shard not in shift_rngs:
            shift_rngs[shard] = np.random.default_rng(seed if shard == 0 else [seed, shard])
        pos, neg = matching_losses(evaluator, batch, margin, shift_rngs[shard], device)
        return pos + neg

    def end_epoch(epoch: int, loss: float) -> None:
        nonlocal best
        history.matching.append(loss)
        score = loss
        if val_loader is not None:  # every rank validates (same weights, same result); rank 0 saves
            score = validation_loss(evaluator, val_loader, margin, device, seed)
            history.val_matching.append(score)
        logger.info(
            "matching epoch %d: train %.6g, val %s", epoch, loss, f"{score:.6g}" if val_loader is not None else "-"
        )
        if writer is not None:
            writer.add_scalar("matching/train_loss", loss, epoch)
            if val_loader is not None:
                writer.add_scalar("matching/val_loss", score, epoch)
        if score < best:
            best, history.best_epoch = score, epoch
            if on_best is not None and dist.is_main():
                on_best(evaluator, epoch)

    net = dist.wrap_ddp(dist.MethodAsForward(trained, matching_step), device)
    _run_epochs(
        max_epoch,
        train_loader,
        net,
        torch.optim.Adam(trained.parameters(), lr=lr),
        accum_steps=accum_steps,
        seed=seed + 1,
        first_epoch=max(movement_epochs, 0),
        max_steps=max_steps,
        log_every=log_every,
        phase="matching",
        on_epoch_end=end_epoch,
    )
    evaluator.eval()
    dist.barrier()
    return history
