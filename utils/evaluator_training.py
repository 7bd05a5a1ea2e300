"""Training the text/motion evaluator (Guo et al. 2022, "Generating diverse and natural 3D human motions").

Two phases, both on evaluation-layout batches ``(word_embs, pos_onehot, caption, sent_len, motion, length,
tokens)``:

1. **Movement pre-training**: the movement encoder and a transposed-conv decoder reconstruct the normalised
   features (L1 inside each clip's length) with a smoothness penalty on consecutive movement latents.
2. **Contrastive co-embedding**: with the movement encoder frozen, the text and motion encoders are trained so that
   matched pairs are close and mismatched pairs (motions rolled by a random non-zero shift within the batch) are
   at least ``margin`` apart: ``mean(d_pos²) + mean(max(0, margin − d_neg)²)``.

The best model by validation contrastive loss is what ``finest.tar`` holds (official file name).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from models.evaluator.modules import MovementConvDecoder
from models.evaluator.wrapper import T2MEvaluator
from utils.evaluation import EvalBatch

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


def movement_loss(evaluator: T2MEvaluator, decoder: MovementConvDecoder, batch: EvalBatch,
                  lambda_smooth: float, device: torch.device) -> Tensor:
    """Masked L1 reconstruction of (B, T, D) normalised features + smoothness of the movement latents."""
    motions = batch.motions.to(device, torch.float32)
    latents = evaluator.movement_encoder(motions[..., :-4])
    recon = decoder(latents)
    frames = min(recon.shape[1], motions.shape[1])
    mask = _length_mask(batch.m_lens, frames, device)
    rec = ((recon[:, :frames] - motions[:, :frames]).abs() * mask).sum() / (mask.sum() * motions.shape[-1])
    smooth = (latents[:, 1:] - latents[:, :-1]).abs().mean()
    return rec + lambda_smooth * smooth


def matching_losses(evaluator: T2MEvaluator, batch: EvalBatch, margin: float, rng: np.random.Generator,
                    device: torch.device) -> tuple[Tensor, Tensor]:
    """Contrastive (positive, negative) losses of one batch; the movement encoder is used without gradients."""
    with torch.no_grad():
        movements = evaluator.movement_encoder(batch.motions.to(device, torch.float32)[..., :-4])
    motion_emb = evaluator.motion_encoder(movements, batch.m_lens // evaluator.unit_length)
    text_emb = evaluator.text_encoder(batch.word_embs.to(device, torch.float32),
                                      batch.pos_onehot.to(device, torch.float32), batch.sent_lens)
    shift = int(rng.integers(1, len(batch)))
    return contrastive_loss(text_emb, motion_emb, margin, shift)


@dataclass
class TrainHistory:
    """Per-epoch mean losses of both phases (for logs and tests)."""

    movement: list[float] = field(default_factory=list)
    matching: list[float] = field(default_factory=list)
    val_matching: list[float] = field(default_factory=list)
    best_epoch: int = -1


def _run_epochs(epochs: int, loader: Iterable, step: Callable[[EvalBatch], Tensor],
                optimizer: torch.optim.Optimizer, max_steps: int, log_every: int, phase: str,
                on_epoch_end: Callable[[int, float], None]) -> None:
    it = 0
    for epoch in range(epochs):
        losses = []
        for raw in loader:
            loss = step(EvalBatch.from_loader(raw))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            it += 1
            if log_every and it % log_every == 0:
                logger.info("%s it %d: loss %.4f", phase, it, losses[-1])
            if max_steps and it >= max_steps:
                break
        if not losses:
            raise ValueError(f"{phase}: the training loader yielded no batches (dataset smaller than one batch?)")
        on_epoch_end(epoch, float(np.mean(losses)))
        if max_steps and it >= max_steps:
            return


@torch.no_grad()
def validation_loss(evaluator: T2MEvaluator, loader: Iterable, margin: float, device: torch.device,
                    seed: int = 0) -> float:
    """Mean contrastive loss on a loader (fixed negative shifts so epochs compare fairly)."""
    evaluator.eval()
    rng = np.random.default_rng(seed)
    values = [sum(matching_losses(evaluator, EvalBatch.from_loader(raw), margin, rng, device)).item()
              for raw in loader]
    if not values:
        raise ValueError("validation loader yielded no batches")
    return float(np.mean(values))


def train_evaluator(evaluator: T2MEvaluator, train_loader: Iterable, val_loader: Iterable | None, *,
                    device: torch.device, lr: float = 1e-4, movement_epochs: int = 10, max_epoch: int = 50,
                    max_steps: int = 0, margin: float = 10.0, lambda_smooth: float = 0.001,
                    dim_movement_dec_hidden: int = 512, log_every: int = 50, seed: int = 0,
                    on_best: Callable[[T2MEvaluator, int], None] | None = None) -> TrainHistory:
    """Both phases; ``on_best(evaluator, epoch)`` is called whenever the validation (or, without a validation
    loader, the training) contrastive loss improves — the caller saves ``finest.tar`` there."""
    history = TrainHistory()
    evaluator.to(device)
    rng = np.random.default_rng(seed)

    if movement_epochs > 0:
        decoder = MovementConvDecoder(input_size=evaluator.model_args["dim_movement_latent"],
                                      hidden_size=dim_movement_dec_hidden, output_size=evaluator.dim_pose).to(device)
        evaluator.movement_encoder.train()
        decoder.train()
        params = list(evaluator.movement_encoder.parameters()) + list(decoder.parameters())

        def end_movement_epoch(epoch: int, loss: float) -> None:
            history.movement.append(loss)
            logger.info("movement epoch %d: %.4f", epoch, loss)

        _run_epochs(movement_epochs, train_loader,
                    lambda b: movement_loss(evaluator, decoder, b, lambda_smooth, device),
                    torch.optim.Adam(params, lr=lr), max_steps, log_every, "movement", end_movement_epoch)

    evaluator.movement_encoder.eval()
    params = list(evaluator.text_encoder.parameters()) + list(evaluator.motion_encoder.parameters())
    best = float("inf")

    def step(batch: EvalBatch) -> Tensor:
        evaluator.text_encoder.train()
        evaluator.motion_encoder.train()
        pos, neg = matching_losses(evaluator, batch, margin, rng, device)
        return pos + neg

    def end_epoch(epoch: int, loss: float) -> None:
        nonlocal best
        history.matching.append(loss)
        score = loss
        if val_loader is not None:
            score = validation_loss(evaluator, val_loader, margin, device, seed)
            history.val_matching.append(score)
        logger.info("matching epoch %d: train %.4f, val %s", epoch, loss,
                    f"{score:.4f}" if val_loader is not None else "-")
        if score < best:
            best, history.best_epoch = score, epoch
            if on_best is not None:
                on_best(evaluator, epoch)

    _run_epochs(max_epoch, train_loader, step, torch.optim.Adam(params, lr=lr), max_steps, log_every, "matching",
                end_epoch)
    evaluator.eval()
    return history
