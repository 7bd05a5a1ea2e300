"""Train the text-motion matching evaluator and write it in the official layout (docs/networks.md#evaluator-networks, docs/checkpoints.md#folder-layout).

Writes ``checkpoints/<ds>/text_mot_match/model/finest.tar`` and ``checkpoints/<ds>/Comp_v6_KLD005/{opt.txt,
meta/mean.npy, meta/std.npy}``; the statistics are the dataset Mean/Std with the VQ ``feat_bias`` applied twice,
like the released evaluator's (docs/data.md#normalisation).

Data-parallel: torchrun --nproc_per_node N train_evaluator.py <same flags>  (--batch_size stays the global batch;
rank 0 alone logs and writes).
"""

from __future__ import annotations

import logging

import torch
from torch.utils.data import DataLoader

from data.layout import DatasetPaths, apply_feat_bias
from data.motion_dataset import epoch_permutation
from data.t2m_dataset import Text2MotionDatasetEval, collate_by_sent_len
from models.evaluator.word_vectorizer import WordVectorizer
from models.evaluator.wrapper import EvaluatorPaths, T2MEvaluator, save_evaluator
from options.eval import EvaluatorTrainOptions
from training.evaluator import TrainHistory, train_evaluator
from training.run import Run, run_trainer
from utils import distributed as dist
from utils.checkpoint import FINEST
from utils.cli import run_cli

logger = logging.getLogger("train_evaluator")


def main(argv: list[str] | None = None) -> TrainHistory:
    return run_trainer(EvaluatorTrainOptions.parse(argv), _train, checkpoint=FINEST)


def _train(run: Run) -> TrainHistory:
    opt = run.opt
    paths = EvaluatorPaths.for_dataset(opt.checkpoints_dir, opt.dataset_name)
    dist.make_shard_plan(opt.batch_size, opt.accum_steps)  # fails early on an indivisible batch
    spec = opt.spec
    data = DatasetPaths.for_dataset(opt.data_root, spec)
    mean, std = data.load_mean_std()
    std = apply_feat_bias(std, spec)
    vectorizer = WordVectorizer(opt.glove_path)

    def loader(split: str, train: bool) -> DataLoader:
        ds = Text2MotionDatasetEval(
            data.root, spec, mean, std, vectorizer, split=split, seed=opt.seed, max_text_len=opt.max_text_len
        )
        if not train:
            # A validation split smaller than one batch (tiny datasets) is validated as one smaller batch.
            return DataLoader(
                ds,
                batch_size=max(2, min(opt.batch_size, len(ds))),
                shuffle=False,
                drop_last=True,
                num_workers=opt.num_workers,
                collate_fn=collate_by_sent_len,
            )
        # Every rank loads the same global batches (a per-epoch permutation of (seed, epoch), the dataset's own
        # caption/crop draws in the same order); the trainer splits each into this rank's shards.
        num_items = len(ds)
        sampler = dist.ShardedBatchSampler(
            lambda epoch: epoch_permutation(num_items, opt.seed, epoch),
            num_items,
            dist.ShardPlan(opt.batch_size),
            rank=0,
        )
        return DataLoader(
            ds,
            batch_sampler=sampler,
            num_workers=opt.num_workers,
            collate_fn=collate_by_sent_len,
            generator=torch.Generator().manual_seed(opt.seed),
        )

    evaluator = T2MEvaluator(
        dim_pose=spec.dim_pose,
        mean=mean,
        std=std,
        dim_movement_enc_hidden=opt.dim_movement_enc_hidden,
        dim_movement_latent=opt.dim_movement_latent,
        dim_text_hidden=opt.dim_text_hidden,
        dim_motion_hidden=opt.dim_motion_hidden,
        dim_coemb_hidden=opt.dim_coemb_hidden,
        unit_length=opt.unit_length,
        max_text_len=opt.max_text_len,
    )
    train_loader, val_loader = loader(opt.train_split, True), loader(opt.val_split, False)
    run.start(write_options=False)  # opt.txt is the evaluator's, in Comp_v6_KLD005 (save_evaluator)
    history = train_evaluator(
        evaluator,
        train_loader,
        val_loader,
        device=run.device,
        lr=opt.lr,
        movement_epochs=opt.movement_epochs,
        max_epoch=opt.max_epoch,
        max_steps=opt.max_steps,
        margin=opt.negative_margin,
        lambda_smooth=opt.lambda_smooth,
        dim_movement_dec_hidden=opt.dim_movement_dec_hidden,
        log_every=opt.log_every,
        seed=opt.seed,
        accum_steps=opt.accum_steps,
        on_best=lambda ev, epoch: save_evaluator(ev, paths, opt, epoch=epoch),
        writer=run.writer,
    )
    logger.info("best epoch %d; evaluator written to %s", history.best_epoch, paths.root)
    return history


if __name__ == "__main__":
    run_cli(main)
