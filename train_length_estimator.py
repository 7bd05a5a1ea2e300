"""Train the length estimator: text feature -> motion length in tokens (docs/networks.md#length-estimator).

Example: python train_length_estimator.py --dataset_name t2m --name length_estimator --text_encoder clip \
    --text_encoder_path ~/models/ViT-B-32.pt --max_epoch 300
Data-parallel: torchrun --nproc_per_node N train_length_estimator.py <same flags>  (--batch_size stays global)
"""

from __future__ import annotations

import logging

from data.checks import ensure_dataset_ok
from data.layout import DatasetPaths
from models.length_estimator import LengthEstimator
from models.text import TextFeatureCache, build_text_encoder
from options.length_estimator import LengthEstimatorOptions
from training.length_estimator import LengthTrainConfig, read_length_items, train_length_estimator
from training.run import Run, run_trainer
from utils.cli import run_cli

logger = logging.getLogger("train_length_estimator")


def main(argv: list[str] | None = None) -> dict[str, float]:
    return run_trainer(LengthEstimatorOptions.parse(argv), _train)


def _train(run: Run) -> dict[str, float]:
    opt = run.opt
    ensure_dataset_ok(
        DatasetPaths.for_dataset(opt.data_root, opt.spec).root, opt.spec, splits=(opt.train_split, opt.val_split)
    )
    train_items = read_length_items(opt.data_root, opt.spec, opt.train_split)
    val_items = read_length_items(opt.data_root, opt.spec, opt.val_split)
    encoder = build_text_encoder(opt.text_encoder, run.device, path=opt.text_encoder_path or None)
    run.start(text_encoder_desc=encoder.describe())
    logger.info(
        "%d training items (%d captions), %d validation items (%d captions)",
        len(train_items),
        len(train_items.captions),
        len(val_items),
        len(val_items.captions),
    )
    model = LengthEstimator(input_size=encoder.dim, output_size=opt.num_classes)
    cfg = LengthTrainConfig(
        batch_size=opt.batch_size,
        lr=opt.lr,
        max_epoch=opt.max_epoch,
        grad_clip=opt.grad_clip,
        unit_length=opt.unit_length,
        num_classes=opt.num_classes,
        seed=opt.seed,
        log_every=opt.log_every,
        accum_steps=opt.accum_steps,
        max_steps=opt.max_steps,
    )
    summary = train_length_estimator(
        model,
        train_items,
        val_items,
        TextFeatureCache(encoder),
        cfg,
        run.model_dir,
        run.device,
        resume=run.resume,
        writer=run.writer,
    )
    logger.info("done: %s", summary)
    return summary


if __name__ == "__main__":
    run_cli(main)
