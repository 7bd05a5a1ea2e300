"""Training loop of the length estimator (docs/networks.md#length-estimator): cross-entropy over ``L // unit_length`` classes.

Data: (caption, clip length) items built like the text-motion datasets (docs/data.md#datasets: clips in
``[min_motion_length, 200)`` frames, whole-clip captions grouped, captioned sub-ranges as their own items), read
from file headers only, since the estimator never sees the motion itself. Each epoch draws, per item, one caption
and the dataset "coin" (1/3: one unit shorter) from a generator seeded by ``(seed, epoch)``, so an interrupted run
resumed from ``latest.tar`` repeats exactly what an uninterrupted one does. Validation uses every caption of every
item with its full length (no coin), so the val loss is deterministic.

Text features are computed once for all captions (the encoder is frozen) and the MLP trains on them.

Data parallel (torchrun) and ``accum_steps``: every rank builds the same global batches and trains on its shards
(shard ``m * world + rank`` of ``world * accum_steps`` near-equal parts; the last batch of an epoch may be
smaller); each shard's loss is its summed cross-entropy over the global batch size, so the accumulated, DDP-
averaged gradient is the one of the global batch mean. Rank 0 alone logs and saves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from data.layout import DatasetPaths
from data.t2m_dataset import CUT_FPS
from data.text import read_text_file
from models.length_estimator import LengthEstimator
from training.loop import capture_rng, epoch_progress, every, restore_rng, shard_steps
from utils import distributed as dist
from utils.checkpoint import FINEST, LATEST, MODEL_ARGS_KEY, load_checkpoint, load_state_dict_strict, save_checkpoint
from utils.npy import read_npy_header
from utils.skeleton import DatasetSpec

logger = logging.getLogger(__name__)


class CaptionEncoder(Protocol):
    name: str

    def encode(self, captions: Sequence[str]) -> Tensor: ...


@dataclass(frozen=True)
class LengthItems:
    """Items of one split: ``captions`` (unique), per item the indices of its captions and its length (frames)."""

    captions: list[str]
    item_captions: list[list[int]]
    lengths: list[int]

    def __len__(self) -> int:
        return len(self.lengths)


def _motion_frames(path: Path) -> int:
    """Number of frames of a ``new_joint_vecs`` file, read from the .npy header only."""
    return int(read_npy_header(path, "motion features").shape[0])


def read_length_items(
    data_root: str | Path, spec: DatasetSpec, split: str, max_length_exclusive: int = 200
) -> LengthItems:
    """(caption, length) items of a split in the official layout (construction of docs/data.md#datasets)."""
    paths = DatasetPaths.for_dataset(data_root, spec)
    ids = paths.read_split(split)
    min_len = spec.min_motion_length
    captions: dict[str, int] = {}
    item_captions: list[list[int]] = []
    lengths: list[int] = []

    def add(texts: list[str], length: int) -> None:
        item_captions.append([captions.setdefault(t, len(captions)) for t in texts])
        lengths.append(length)

    missing = 0
    for clip_id in ids:
        motion_file, text_file = paths.motion_dir / f"{clip_id}.npy", paths.text_dir / f"{clip_id}.txt"
        if not motion_file.is_file() or not text_file.is_file():
            missing += 1
            continue
        frames = _motion_frames(motion_file)
        if not min_len <= frames < max_length_exclusive:
            continue
        whole = []
        for ann in read_text_file(text_file):
            if ann.is_whole_clip:
                whole.append(ann.caption)
                continue
            # Same cut as the dataset: motion[int(start*20):int(end*20)] (QUIRK(reference): 20 fps for all).
            start, end = int(ann.start * CUT_FPS), int(ann.end * CUT_FPS)
            cut = len(range(frames)[start:end])
            if min_len <= cut < max_length_exclusive:
                add([ann.caption], cut)
        if whole:
            add(whole, frames)
    if missing:
        logger.warning("%s split: %d of %d ids have no motion or text file (skipped)", split, missing, len(ids))
    if not lengths:
        raise ValueError(
            f"no usable (caption, length) items in {paths.root} split {split!r}: clips must be "
            f"{min_len}-{max_length_exclusive - 1} frames long and have a caption"
        )
    return LengthItems(list(captions), item_captions, lengths)


def length_classes(lengths: Tensor, unit_length: int, num_classes: int) -> Tensor:
    """Frames (N,) -> class ``L // unit_length`` clamped to ``[0, num_classes - 1]`` (N,) int64."""
    return torch.div(lengths, unit_length, rounding_mode="floor").clamp(0, num_classes - 1).long()


def epoch_batches(
    items: LengthItems, epoch: int, seed: int, batch_size: int, unit_length: int, num_classes: int
) -> list[tuple[Tensor, Tensor]]:
    """One epoch: shuffled ``(caption index (b,), class (b,))`` batches, drawn from a ``(seed, epoch)`` generator.

    Per item: one caption uniformly, and the dataset coin (docs/data.md#datasets: with probability 1/3 the length is one
    unit shorter, ``(L // u - 1) * u``, else ``(L // u) * u``).
    """
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    n = len(items)
    order = torch.randperm(n, generator=g)
    choice = torch.rand(n, generator=g)
    coin = torch.randint(3, (n,), generator=g) == 2
    counts = torch.tensor([len(c) for c in items.item_captions])
    pick = (choice * counts).long().clamp(max=counts - 1)
    caption_idx = torch.tensor([items.item_captions[i][int(k)] for i, k in enumerate(pick)])
    units = torch.div(torch.tensor(items.lengths), unit_length, rounding_mode="floor")
    units = torch.where(coin & (unit_length < 10), units - 1, units)
    labels = length_classes(units * unit_length, unit_length, num_classes)
    return [
        (caption_idx[order[i : i + batch_size]], labels[order[i : i + batch_size]]) for i in range(0, n, batch_size)
    ]


def val_pairs(items: LengthItems, unit_length: int, num_classes: int) -> tuple[Tensor, Tensor]:
    """Every (caption index, class of the full length) pair of a split, in file order."""
    idx = [c for caps in items.item_captions for c in caps]
    frames = [length for caps, length in zip(items.item_captions, items.lengths) for _ in caps]
    return torch.tensor(idx), length_classes(torch.tensor(frames), unit_length, num_classes)


@torch.no_grad()
def evaluate_loss(model: LengthEstimator, feats: Tensor, idx: Tensor, labels: Tensor, batch_size: int = 1024) -> float:
    """Mean cross-entropy over all pairs (eval mode)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for i in range(0, len(idx), batch_size):
        logits = model(feats[idx[i : i + batch_size]])
        total += F.cross_entropy(logits, labels[i : i + batch_size].to(logits.device), reduction="sum").item()
    model.train(was_training)
    return total / max(len(idx), 1)


@dataclass
class LengthTrainConfig:
    batch_size: int = 64
    lr: float = 1e-4
    max_epoch: int = 300
    grad_clip: float = 0.5
    unit_length: int = 4
    num_classes: int = 50
    seed: int = 3407
    log_every: int = 50
    accum_steps: int = 1
    max_steps: int = 0  # stop after this many optimisation steps in total (0 = max_epoch epochs)


def train_length_estimator(
    model: LengthEstimator,
    train: LengthItems,
    val: LengthItems,
    encoder: CaptionEncoder,
    cfg: LengthTrainConfig,
    model_dir: Path,
    device: torch.device,
    *,
    resume: bool = False,
    writer: Any = None,
) -> dict[str, float]:
    """Adam + CE + grad-norm clipping; ``finest.tar`` on best val loss, ``latest.tar`` after every epoch (and at
    ``max_steps``).

    Checkpoints: ``finest.tar`` {estimator, epoch, niter, model_args, val_loss, text_encoder}; ``latest.tar``
    adds ``opt_estimator``, ``best_val_loss``, ``epoch_it`` (batches done of epoch ``epoch``, after a
    ``max_steps`` stop) and ``rng`` (``epoch`` = epochs completed) for exact resume.
    Returns ``{"best_val_loss", "val_loss", "train_loss", "epoch", "niter"}``.
    """
    model_dir = Path(model_dir)
    model.to(device)
    train_feats = encoder.encode(train.captions).to(device)  # (Nc, dim)
    val_feats = encoder.encode(val.captions).to(device)
    val_idx, val_labels = val_pairs(val, cfg.unit_length, cfg.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, start_it, niter, best = 0, 0, 0, math.inf
    if resume:
        state = load_checkpoint(model_dir / LATEST, required_keys=("estimator", "opt_estimator", "epoch", "niter"))
        load_state_dict_strict(model, state["estimator"], source=model_dir / LATEST)
        optimizer.load_state_dict(state["opt_estimator"])
        start_epoch, start_it, niter = int(state["epoch"]), int(state.get("epoch_it", 0)), int(state["niter"])
        best = float(state.get("best_val_loss", math.inf))
        rng = state.get("rng", state.get("rng_state"))  # rng_state: our earlier checkpoints
        if rng is not None:
            restore_rng(rng)
        logger.info(
            "resumed %s at epoch %d (batch %d), iteration %d (best val loss %.4f)",
            model_dir / LATEST,
            start_epoch,
            start_it,
            niter,
            best,
        )
    summary = {
        "best_val_loss": best,
        "val_loss": math.nan,
        "train_loss": math.nan,
        "epoch": start_epoch,
        "niter": niter,
    }
    encoder_name = getattr(encoder, "name", "unknown")
    net = dist.wrap_ddp(model, device)
    main = dist.is_main()
    for epoch in range(start_epoch, cfg.max_epoch):
        if cfg.max_steps and niter >= cfg.max_steps:
            break
        model.train()
        running, count = 0.0, 0
        batches = epoch_batches(train, epoch, cfg.seed, cfg.batch_size, cfg.unit_length, cfg.num_classes)
        first = start_it if epoch == start_epoch else 0
        epoch_it = first
        for idx, labels in epoch_progress(batches[first:], total=len(batches) - first, desc=f"epoch {epoch}"):
            niter += 1
            epoch_it += 1
            optimizer.zero_grad(set_to_none=True)
            # The last batch of an epoch may be smaller: near-equal shards; each shard's loss is its summed CE
            # over the global batch size, so the accumulated, DDP-averaged gradient is the global batch mean's.
            plan = dist.make_shard_plan(len(idx), cfg.accum_steps, equal=False)
            total = torch.zeros((), device=device)  # summed CE of this rank's shards
            for _, _, rows in shard_steps(net, plan, cfg.seed, niter):
                part_idx, part_labels = dist.take_shard((idx, labels), rows)
                logits = net(train_feats[part_idx.to(device)])
                loss_sum = F.cross_entropy(logits, part_labels.to(device), reduction="sum")
                (loss_sum * (plan.world_size / len(idx))).backward()  # DDP averages over ranks
                total += loss_sum.detach()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            loss = float(dist.all_reduce_sum(total)) / len(idx)
            running += loss * len(idx)
            count += len(idx)
            if every(niter, cfg.log_every):
                logger.info("epoch %d it %d loss %.6g", epoch, niter, loss)
                if writer is not None and main:
                    writer.add_scalar("train/loss", loss, niter)
            if cfg.max_steps and niter >= cfg.max_steps:
                break
        stopped = epoch_it < len(batches)
        val_loss = evaluate_loss(model, val_feats, val_idx, val_labels)
        train_loss = running / max(count, 1)
        logger.info("epoch %d: train loss %.6g, val loss %.6g", epoch, train_loss, val_loss)
        if writer is not None and main:
            writer.add_scalar("val/loss", val_loss, epoch)
        if val_loss < best:
            best = val_loss
            if main:
                save_checkpoint(
                    model_dir / FINEST,
                    {
                        "estimator": model.state_dict(),
                        "epoch": epoch,
                        "niter": niter,
                        MODEL_ARGS_KEY: model.model_args,
                        "val_loss": val_loss,
                        "text_encoder": encoder_name,
                    },
                )
            logger.info("best val loss %.6g: saved %s", val_loss, model_dir / FINEST)
        done = epoch if stopped else epoch + 1  # epochs completed
        if main:
            save_checkpoint(
                model_dir / LATEST,
                {
                    "estimator": model.state_dict(),
                    "opt_estimator": optimizer.state_dict(),
                    "epoch": done,
                    "epoch_it": epoch_it if stopped else 0,
                    "niter": niter,
                    "best_val_loss": best,
                    "rng": capture_rng(),
                    MODEL_ARGS_KEY: model.model_args,
                    "text_encoder": encoder_name,
                },
            )
        summary = {"best_val_loss": best, "val_loss": val_loss, "train_loss": train_loss, "epoch": done, "niter": niter}
        if stopped:
            logger.info("stopped at --max_steps %d", cfg.max_steps)
            break
    dist.barrier()
    return summary
