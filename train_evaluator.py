"""Train the text-motion matching evaluator and write it in the official layout (spec §5.1, §6.1).

Writes ``checkpoints/<ds>/text_mot_match/model/finest.tar`` and ``checkpoints/<ds>/Comp_v6_KLD005/{opt.txt,
meta/mean.npy, meta/std.npy}``; the statistics are the dataset Mean/Std with the VQ ``feat_bias`` applied twice,
like the released evaluator's (spec §1.9).

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
from utils import distributed as dist
from utils.cli import run_cli
from utils.device import seed_everything
from training.evaluator import train_evaluator
from utils.log import git_sha, setup_logging

logger = logging.getLogger("train_evaluator")


def main(argv: list[str] | None = None) -> None:
    opt = EvaluatorTrainOptions.parse(argv)
    seed_everything(opt.seed)
    env, device = dist.init_distributed(opt.device)
    try:
        _train(opt, env, device)
    finally:
        dist.cleanup()


def _train(opt: EvaluatorTrainOptions, env: dist.DistEnv, device: torch.device) -> None:
    paths = EvaluatorPaths.for_dataset(opt.checkpoints_dir, opt.dataset_name)
    if paths.weights.exists() and not opt.overwrite:
        raise ValueError(f"{paths.weights} exists; pass --overwrite to replace it or choose another "
                         "--checkpoints_dir")
    dist.make_shard_plan(opt.batch_size, opt.accum_steps)      # fails early on an indivisible batch
    dist.barrier()              # every rank has checked the output folder before rank 0 writes into it
    setup_logging(opt.save_root / "log.txt" if env.is_main else None)
    dist.configure_rank_logging(env)
    logger.info("git %s, device %s, %d process(es); options: %s", git_sha(), device, env.world_size, opt.to_dict())

    spec = opt.spec
    data = DatasetPaths.for_dataset(opt.data_root, spec)
    mean, std = data.load_mean_std()
    std = apply_feat_bias(std, spec)
    vectorizer = WordVectorizer(opt.glove_path)

    def loader(split: str, train: bool) -> DataLoader:
        ds = Text2MotionDatasetEval(data.root, spec, mean, std, vectorizer, split=split, seed=opt.seed,
                                    max_text_len=opt.max_text_len)
        if not train:
            # A validation split smaller than one batch (tiny datasets) is validated as one smaller batch.
            return DataLoader(ds, batch_size=max(2, min(opt.batch_size, len(ds))), shuffle=False, drop_last=True,
                              num_workers=opt.num_workers, collate_fn=collate_by_sent_len)
        # Every rank loads the same global batches (a per-epoch permutation of (seed, epoch), the dataset's own
        # caption/crop draws in the same order); the trainer splits each into this rank's shards.
        num_items = len(ds)
        sampler = dist.ShardedBatchSampler(lambda epoch: epoch_permutation(num_items, opt.seed, epoch), num_items,
                                           dist.ShardPlan(opt.batch_size), rank=0)
        return DataLoader(ds, batch_sampler=sampler, num_workers=opt.num_workers, collate_fn=collate_by_sent_len,
                          generator=torch.Generator().manual_seed(opt.seed))

    evaluator = T2MEvaluator(
        dim_pose=spec.dim_pose, mean=mean, std=std, dim_movement_enc_hidden=opt.dim_movement_enc_hidden,
        dim_movement_latent=opt.dim_movement_latent, dim_text_hidden=opt.dim_text_hidden,
        dim_motion_hidden=opt.dim_motion_hidden, dim_coemb_hidden=opt.dim_coemb_hidden,
        unit_length=opt.unit_length, max_text_len=opt.max_text_len)
    history = train_evaluator(
        evaluator, loader(opt.train_split, True), loader(opt.val_split, False), device=device, lr=opt.lr,
        movement_epochs=opt.movement_epochs, max_epoch=opt.max_epoch, max_steps=opt.max_steps,
        margin=opt.negative_margin, lambda_smooth=opt.lambda_smooth,
        dim_movement_dec_hidden=opt.dim_movement_dec_hidden, log_every=opt.log_every, seed=opt.seed,
        accum_steps=opt.accum_steps, on_best=lambda ev, epoch: save_evaluator(ev, paths, opt, epoch=epoch))
    logger.info("best epoch %d; evaluator written to %s", history.best_epoch, paths.root)


if __name__ == "__main__":
    run_cli(main)
