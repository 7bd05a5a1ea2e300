"""Train the length estimator: text feature -> motion length in tokens (spec §3.7).

Example: python train_length_estimator.py --dataset_name t2m --name length_estimator --text_encoder clip \
    --text_encoder_path ~/models/ViT-B-32.pt --max_epoch 300
Data-parallel: torchrun --nproc_per_node N train_length_estimator.py <same flags>  (--batch_size stays global)
"""
from __future__ import annotations

import logging

import torch
from torch.utils.tensorboard import SummaryWriter

from data.checks import ensure_dataset_ok
from data.layout import DatasetPaths
from models.length_estimator import LengthEstimator
from models.text import TextFeatureCache, build_text_encoder
from options.length_estimator import LengthEstimatorOptions
from utils import distributed as dist
from utils.cli import run_cli
from utils.device import seed_everything
from training.length_estimator import (
    LengthTrainConfig,
    read_length_items,
    train_length_estimator,
)
from utils.log import git_sha, setup_logging
from training.vq import check_run_dir

logger = logging.getLogger("train_length_estimator")


def main(argv: list[str] | None = None) -> dict[str, float]:
    opt = LengthEstimatorOptions.parse(argv)
    seed_everything(opt.seed)
    env, device = dist.init_distributed(opt.device)
    try:
        return _train(opt, env, device)
    finally:
        dist.cleanup()


def _train(opt: LengthEstimatorOptions, env: dist.DistEnv, device: torch.device) -> dict[str, float]:
    run_dir = check_run_dir(opt)
    dist.barrier()              # every rank has checked the run folder before rank 0 writes into it
    setup_logging()
    dist.configure_rank_logging(env)
    ensure_dataset_ok(DatasetPaths.for_dataset(opt.data_root, opt.spec).root, opt.spec,
                      splits=(opt.train_split, opt.val_split))
    train_items = read_length_items(opt.data_root, opt.spec, opt.train_split)
    val_items = read_length_items(opt.data_root, opt.spec, opt.val_split)
    encoder = build_text_encoder(opt.text_encoder, device, path=opt.text_encoder_path or None)
    if env.is_main:
        opt.model_dir.mkdir(parents=True, exist_ok=True)
        opt.save(run_dir / "opt.txt", is_train=True, text_encoder_desc=encoder.describe())
        setup_logging(run_dir / "log.txt")
    logger.info("git %s, device %s, %d process(es), options: %s", git_sha(), device, env.world_size, opt.to_dict())
    logger.info("%d training items (%d captions), %d validation items (%d captions)", len(train_items),
                len(train_items.captions), len(val_items), len(val_items.captions))
    model = LengthEstimator(input_size=encoder.dim, output_size=opt.num_classes)
    cfg = LengthTrainConfig(batch_size=opt.batch_size, lr=opt.lr, max_epoch=opt.max_epoch, grad_clip=opt.grad_clip,
                            unit_length=opt.unit_length, num_classes=opt.num_classes, seed=opt.seed,
                            log_every=opt.log_every, accum_steps=opt.accum_steps)
    dist.barrier()              # the run folder exists before any rank resumes from it
    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard")) if env.is_main else None
    try:
        summary = train_length_estimator(model, train_items, val_items, TextFeatureCache(encoder), cfg,
                                         opt.model_dir, device, resume=opt.is_continue, writer=writer)
    finally:
        if writer is not None:
            writer.close()
    logger.info("done: %s", summary)
    return summary


if __name__ == "__main__":
    run_cli(main)
