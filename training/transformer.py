"""One training loop for both transformers (docs/training.md#transformer-schedule, docs/training.md#residual-transformer-objective).

Per iteration: the frozen VQ (eval mode) tokenises the zero-padded batch on the fly, cached text features give
the condition, the stage's loss runs, AdamW steps and MultiStepLR steps (every iteration, warm-up included;
warm-up sets ``lr·(it+1)/(warm_up_iter+1)`` for 1-based iteration ``it < warm_up_iter``).

Resume is exact: ``latest.tar`` holds the official keys (model, optimizer, ``scheduler``, ``ep``, ``total_it``)
plus the position inside the epoch, the best validation value and every RNG state (torch, CUDA, numpy, python,
and the numpy/python generators the datasets hold). Batches come from a per-epoch seeded permutation, so a
resumed run skips exactly the batches already seen. With ``num_workers > 0`` the datasets draw their crops in
worker processes whose state is not saved; resume is then exact at epoch boundaries only.

Data parallel (torchrun) and gradient accumulation: ``--batch_size`` is the global batch. Every rank loads the
whole global batch (so the datasets' crop/caption draws are those of a single process) and trains on its shards
of it (utils/distributed.py: shard ``m * world + rank`` at micro-step ``m``); the frozen VQ and text encoder run
on the shard only. With more than one shard per step, torch's global generator (masks, condition dropout,
dropout) is re-seeded per shard from ``(seed, step, shard)``: runs with the same ``processes x accum_steps`` are
then identical, others equal in distribution. The loss is the mean of the shards' losses.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from data.checks import ensure_dataset_ok
from data.layout import DatasetPaths
from data.t2m_dataset import Text2MotionDataset
from models.text_encoder import TextFeatureCache, build_text_encoder
from models.transformer.build import (
    VQFacts,
    load_mask_transformer,
    load_residual_transformer,
    mask_config,
    residual_config,
)
from models.transformer.mask_transformer import MaskedLoss, MaskTransformer
from models.transformer.residual_transformer import ResidualTransformer
from models.vq.build import load_rvqvae, load_vq_meta
from options.transformer import TransformerOptions
from training.loop import WarmupMultiStepLR, capture_rng, epoch_progress, every, isolated_rng, restore_rng, shard_steps
from training.run import Run
from utils import distributed as dist
from utils.checkpoint import (
    BEST_ACC,
    BEST_LOSS,
    LATEST,
    MODEL_ARGS_KEY,
    load_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)

logger = logging.getLogger(__name__)

Tokenizer = Callable[[Tensor], Tensor]  # motion (B, T, D) -> codes (B, n, Q)
TextFeatures = Callable[[Sequence[str]], Tensor]  # captions (B,) -> (B, clip_dim)
StageLoss = Callable[[nn.Module, Tensor, Tensor, Tensor], MaskedLoss]


@dataclass(frozen=True)
class Stage:
    """What differs between the two trainers: checkpoint key names, loss, and which validation value is best."""

    model_key: str
    optimizer_key: str
    loss: StageLoss
    best_file: str
    best_metric: str  # "acc" (higher is better) or "loss" (lower is better)

    def is_better(self, new: float, old: float | None) -> bool:
        if old is None:
            return True
        return new > old if self.best_metric == "acc" else new < old


def _mask_loss(model: nn.Module, codes: Tensor, cond: Tensor, m_lens: Tensor) -> MaskedLoss:
    return model.masked_loss(codes[..., 0], cond, m_lens)


def _residual_loss(model: nn.Module, codes: Tensor, cond: Tensor, m_lens: Tensor) -> MaskedLoss:
    return model.residual_loss(codes, cond, m_lens)


MASK_STAGE = Stage("t2m_transformer", "opt_t2m_transformer", _mask_loss, BEST_ACC, "acc")
RESIDUAL_STAGE = Stage("res_transformer", "opt_res_transformer", _residual_loss, BEST_LOSS, "loss")


def build_optimizer(model: nn.Module, opt: TransformerOptions) -> tuple[torch.optim.AdamW, WarmupMultiStepLR]:
    """AdamW(lr, betas (0.9, 0.99), weight_decay 1e-5) over all parameters + warm-up and MultiStepLR(milestones,
    gamma) stepped every iteration, warm-up included."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=opt.lr, betas=(0.9, 0.99), weight_decay=1e-5)
    schedule = WarmupMultiStepLR(
        optimizer,
        lr=opt.lr,
        warm_up_iter=opt.warm_up_iter,
        milestones=opt.milestones,
        gamma=opt.gamma,
        step_during_warmup=True,
    )
    return optimizer, schedule


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Shuffled full batches of one epoch (last partial batch dropped, as the reference's loader does)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_items, generator=g).tolist()
    return [order[i : i + batch_size] for i in range(0, num_items - batch_size + 1, batch_size)]


@dataclass
class TrainerState:
    epoch: int = 0  # epoch in progress (0-based)
    it_in_epoch: int = 0  # batches of that epoch already done
    total_it: int = 0  # 1-based count of optimisation steps done
    best: float | None = None  # best validation value of the stage's metric
    history: list[float] = field(default_factory=list)  # training loss of each step run in this process


class TransformerTrainer:
    """Trains a masked or residual transformer; checkpoints go to ``model_dir``."""

    def __init__(
        self,
        stage: Stage,
        model: nn.Module,
        tokenizer: Tokenizer,
        text_features: TextFeatures,
        opt: TransformerOptions,
        model_dir: str | Path,
        device: torch.device,
        writer: Any | None = None,
        model_args: dict[str, Any] | None = None,
    ) -> None:
        self.stage, self.model, self.tokenizer, self.text_features = stage, model.to(device), tokenizer, text_features
        self.opt, self.model_dir, self.device, self.writer = opt, Path(model_dir), device, writer
        self.model_args = dict(model_args or {})
        self.optimizer, self.schedule = build_optimizer(self.model, opt)
        self.state = TrainerState()
        self.plan = dist.make_shard_plan(opt.batch_size, opt.accum_steps)
        self.rank = dist.get_rank()
        if opt.compile:
            self.model.compile()
        self.net = dist.wrap_ddp(dist.MethodAsForward(self.model, stage.loss), device)
        self.amp = dist.MixedPrecision(opt.amp, device)
        self.autocast_dtype, self.scaler = self.amp.dtype, self.amp.scaler

    # ---- one batch ---------------------------------------------------------------------------------------------
    def batch_loss(self, batch: tuple[Sequence[str], Tensor, Tensor], net: nn.Module | None = None) -> MaskedLoss:
        """(captions, motion (B, T, D) normalised + zero-padded, lengths (B,) frames) -> stage loss.

        ``net`` is the (DDP-wrapped) loss module used in training; ``None`` = the bare model (validation).
        """
        captions, motion, lengths = batch
        motion = motion.to(self.device, dtype=torch.float32, non_blocking=True)
        with torch.no_grad():
            codes = self.tokenizer(motion)  # (B, n, Q), fp32 VQ
            cond = self.text_features(list(captions)).to(self.device)
        m_lens = torch.as_tensor(lengths, device=self.device).long() // self.opt.unit_length
        with self.amp.autocast():
            if net is None:
                return self.stage.loss(self.model, codes, cond, m_lens)
            return net(codes, cond, m_lens)

    def train_step(self, batch: tuple[Sequence[str], Tensor, Tensor]) -> MaskedLoss:
        """One optimisation step on a global batch: this rank's shards, accumulated; -> the mean loss/acc over
        all shards of the step (identical on every rank)."""
        self.model.train()
        self.state.total_it += 1
        it = self.state.total_it
        self.schedule.before_step(it)
        if len(batch[1]) != self.plan.global_batch:
            raise ValueError(
                f"train_step got a batch of {len(batch[1])}, expected --batch_size {self.plan.global_batch}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        steps = self.plan.accum_steps
        sums = torch.zeros(2, device=self.device)
        out = None
        for _, _, rows in shard_steps(self.net, self.plan, self.opt.seed, it):
            out = self.batch_loss(dist.take_shard(batch, rows), self.net)
            self.amp.backward(out.loss / steps)
            sums += torch.stack([out.loss.detach().float(), out.acc.detach().float()]) / steps
        self.amp.step(self.optimizer)
        self.schedule.after_step(it)
        self.state.it_in_epoch += 1
        loss, acc = dist.all_reduce_mean(sums)
        return MaskedLoss(loss=loss, acc=acc, pred_ids=out.pred_ids)

    @torch.no_grad()
    def validate(self, dataset: Dataset, batch_size: int) -> dict[str, float]:
        """Mean loss/acc over the validation set in order, with a fixed seed (same masks every epoch)."""
        self.model.eval()
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=self.opt.num_workers)
        losses, accs = [], []
        with isolated_rng(self.opt.seed + 1):
            for batch in loader:
                out = self.batch_loss(batch)
                losses.append(out.loss.item())
                accs.append(out.acc.item())
        if not losses:
            raise ValueError("the validation set yields no batch")
        return {"loss": float(np.mean(losses)), "acc": float(np.mean(accs))}

    # ---- checkpoints -------------------------------------------------------------------------------------------
    def checkpoint(self, datasets: Sequence[Any] = ()) -> dict[str, Any]:
        s = self.state
        state = {
            self.stage.model_key: self.model.state_dict(),
            self.stage.optimizer_key: self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "ep": s.epoch,
            "total_it": s.total_it,
            "it_in_epoch": s.it_in_epoch,
            "best": s.best,
            MODEL_ARGS_KEY: self.model_args,
            "rng": capture_rng(datasets),
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def save(self, name: str, datasets: Sequence[Any] = ()) -> None:
        """Rank 0 writes (other ranks hold identical weights and state)."""
        if dist.is_main():
            save_checkpoint(self.model_dir / name, self.checkpoint(datasets))

    def resume(self, path: str | Path, datasets: Sequence[Any] = ()) -> None:
        """Restore model, optimizer, scheduler, counters and RNG from a ``latest.tar`` (ours or official)."""
        state = load_checkpoint(path, required_keys=(self.stage.model_key, self.stage.optimizer_key, "scheduler"))
        sd = {k: v for k, v in state[self.stage.model_key].items() if not k.startswith("clip_model.")}
        load_state_dict_strict(self.model, sd, source=path)
        self.optimizer.load_state_dict(state[self.stage.optimizer_key])
        self.schedule.load_state_dict(state["scheduler"])
        self.state.epoch = int(state.get("ep", 0))
        self.state.total_it = int(state.get("total_it", 0))
        self.state.it_in_epoch = int(state.get("it_in_epoch", 0))
        self.state.best = state.get("best")
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if "rng" in state:
            restore_rng(state["rng"], datasets)
        else:
            logger.warning("%s has no RNG state (official checkpoint?): resumed run is not bit-exact", path)
        logger.info(
            "resumed from %s: epoch %d, batch %d of it, iteration %d",
            path,
            self.state.epoch,
            self.state.it_in_epoch,
            self.state.total_it,
        )

    # ---- the loop ----------------------------------------------------------------------------------------------
    def _log(self, tag: str, value: float) -> None:
        if self.writer is not None and dist.is_main():
            self.writer.add_scalar(tag, value, self.state.total_it)

    def fit(self, train_set: Dataset, val_set: Dataset | None = None) -> TrainerState:
        """Train until ``max_epoch`` epochs or ``max_steps`` iterations; returns the final state."""
        opt, s = self.opt, self.state
        datasets = [d for d in (train_set, val_set) if d is not None]
        if len(train_set) < opt.batch_size:
            raise ValueError(f"the training set has {len(train_set)} items, fewer than --batch_size {opt.batch_size}")
        running: dict[str, list[float]] = {"loss": [], "acc": []}
        while s.epoch < opt.max_epoch:
            batches = epoch_batches(len(train_set), opt.batch_size, opt.seed, s.epoch)[s.it_in_epoch :]
            loader = DataLoader(
                train_set,
                batch_sampler=batches,
                num_workers=opt.num_workers,
                pin_memory=self.device.type == "cuda",
                generator=torch.Generator().manual_seed(opt.seed + s.epoch),
            )
            for batch in epoch_progress(loader, total=len(batches), desc=f"epoch {s.epoch}"):
                out = self.train_step(batch)
                loss = out.loss.item()
                s.history.append(loss)
                running["loss"].append(loss)
                running["acc"].append(out.acc.item())
                if every(s.total_it, opt.log_every):
                    self._log("train/loss", float(np.mean(running["loss"])))
                    self._log("train/acc", float(np.mean(running["acc"])))
                    self._log("train/lr", self.optimizer.param_groups[0]["lr"])
                    logger.info(
                        "it %d: loss %.4f acc %.4f lr %.3g",
                        s.total_it,
                        np.mean(running["loss"]),
                        np.mean(running["acc"]),
                        self.optimizer.param_groups[0]["lr"],
                    )
                    running = {"loss": [], "acc": []}
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss} at iteration {s.total_it}")
                if every(s.total_it, opt.save_latest):
                    self.save(LATEST, datasets)
                if opt.max_steps and s.total_it >= opt.max_steps:
                    self.save(LATEST, datasets)
                    logger.info("stopped at --max_steps %d", opt.max_steps)
                    return s
            s.epoch += 1
            s.it_in_epoch = 0
            if s.epoch % opt.val_every_e and s.epoch < opt.max_epoch:
                continue  # small datasets: epochs of a few iterations need not each validate and save
            if val_set is not None:
                metrics = self.validate(val_set, opt.batch_size)
                self._log("val/loss", metrics["loss"])
                self._log("val/acc", metrics["acc"])
                logger.info("epoch %d: val loss %.4f acc %.4f", s.epoch, metrics["loss"], metrics["acc"])
                value = metrics[self.stage.best_metric]
                if self.stage.is_better(value, s.best):
                    s.best = value
                    self.save(self.stage.best_file, datasets)
                    logger.info("new best val %s %.4f -> %s", self.stage.best_metric, value, self.stage.best_file)
            self.save(LATEST, datasets)
        return s


# ---- script glue (train_t2m_transformer.py / train_res_transformer.py) -----------------------------------------
def start_from_run(model: nn.Module, source_dir: Path, vq_name: str, stage: Stage) -> None:
    """``--init_from``: copy the weights of ``source_dir``, a run of the same stage with the same architecture,
    trained on the same VQ (else its tokens mean something else). Only the weights: optimizer and schedule
    start afresh, so the new run's opt.txt states its own optimisation."""
    if not (source_dir / "opt.txt").is_file():
        raise ValueError(f"--init_from {source_dir}: no run there (no opt.txt); give the name of a trained run")
    load = load_mask_transformer if stage is MASK_STAGE else load_residual_transformer
    source, source_opt = load(source_dir)
    if source_opt.vq_name != vq_name:
        raise ValueError(
            f"--init_from {source_dir}: it was trained on VQ {source_opt.vq_name}, this run on {vq_name} "
            "(different tokens); start from a run on the same VQ"
        )
    if source.config != model.config:
        theirs, ours = source.config.as_dict(), model.config.as_dict()
        diff = ", ".join(f"{k} {theirs[k]}" for k in theirs if theirs[k] != ours[k])
        raise ValueError(f"--init_from {source_dir}: it has {diff}; give the same architecture flags")
    model.load_state_dict(source.state_dict())
    logger.info("starting from the weights of %s", source_dir)


def train_stage(run: Run, stage: Stage) -> TrainerState:
    """Everything a transformer training script does inside :func:`training.run.run_trainer`: VQ, text encoder,
    data, model, run files, loop."""
    opt, device = run.opt, run.device
    ensure_dataset_ok(
        DatasetPaths.for_dataset(opt.data_root, opt.spec).root, opt.spec, splits=(opt.train_split, opt.val_split)
    )
    dist.make_shard_plan(opt.batch_size, opt.accum_steps)  # fails early on an indivisible batch
    vq = load_rvqvae(opt.vq_dir, device=device).eval()
    for p in vq.parameters():
        p.requires_grad_(False)
    facts = VQFacts.from_vq(vq, source=str(opt.vq_dir))
    encoder = build_text_encoder(opt.text_encoder, device, path=opt.text_encoder_path or None)
    if opt.clip_dim not in (0, encoder.dim):
        raise ValueError(
            f"--clip_dim {opt.clip_dim} but text encoder {opt.text_encoder!r} gives {encoder.dim}-d "
            "vectors (leave --clip_dim 0 to take the encoder's width)"
        )
    opt = dataclasses.replace(opt, clip_dim=encoder.dim)  # resolved once: recorded in opt.txt and model_args
    if stage is MASK_STAGE:
        config = mask_config(opt, facts, opt.clip_dim)
        model: nn.Module = MaskTransformer(config)
    else:
        config = residual_config(opt, facts, opt.clip_dim)
        model = ResidualTransformer(config)
    if opt.init_source_dir is not None and not run.resume:  # a resumed run has its own weights
        start_from_run(model, opt.init_source_dir, opt.vq_name, stage)
    mean, std = load_vq_meta(opt.vq_dir)
    kw = dict(seed=opt.seed, max_motion_length=opt.max_motion_length, unit_length=opt.unit_length)
    train_set = Text2MotionDataset(opt.data_root, opt.spec, mean, std, split=opt.train_split, **kw)
    val_set = Text2MotionDataset(opt.data_root, opt.spec, mean, std, split=opt.val_split, **kw)
    run.opt = opt
    run.start()
    logger.info(
        "%s: %d parameters; train items %d, val items %d",
        type(model).__name__,
        sum(p.numel() for p in model.parameters()),
        len(train_set),
        len(val_set),
    )

    def tokenize(motion: Tensor) -> Tensor:
        return vq.encode(motion)[0]

    trainer = TransformerTrainer(
        stage,
        model,
        tokenize,
        TextFeatureCache(encoder).encode,
        opt,
        run.model_dir,
        device,
        run.writer,
        model_args=config.as_dict(),
    )
    if run.resume:
        trainer.resume(run.folder.latest, [train_set, val_set])
    state = trainer.fit(train_set, val_set)
    dist.barrier()
    return state
