"""Train the residual VQ-VAE motion tokenizer (MoMask stage 1).

Example: python train_vq.py --name rvq_nq6_dc512_nc512_noshare_qdp0.2 --dataset_name t2m --batch_size 256 \
    --num_quantizers 6 --max_epoch 50 --quantize_dropout_prob 0.2 --gamma 0.05
Data-parallel: torchrun --nproc_per_node 4 train_vq.py <same flags>  (--batch_size stays the global batch)
Decoder fine-tuning on corrupted codes: <same flags> --name <new run> --decoder_from <run> --code_noise 0.4 \
    --res_code_noise 0.3  (docs/training.md#vq-decoder-fine-tuning)
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from data.checks import ensure_dataset_ok
from data.layout import DatasetPaths
from data.motion_dataset import load_vq_datasets, make_train_loader, make_val_loader
from evaluation.reconstruction import make_fid_evaluate
from models.vq.build import build_rvqvae, load_rvqvae, load_vq_meta
from models.vq.model import RVQVAE
from options.vq import VQOptions
from training.run import Run, run_trainer
from training.vq import TrainState, copy_source_weights, train_vq, write_meta
from utils.cli import run_cli

logger = logging.getLogger("train_vq")


def main(argv: list[str] | None = None) -> TrainState:
    return run_trainer(VQOptions.parse(argv), _train)


def _train(run: Run) -> TrainState:
    opt, device = run.opt, run.device
    if opt.deterministic:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    ensure_dataset_ok(
        DatasetPaths.for_dataset(opt.data_root, opt.spec).root,
        opt.spec,
        splits=(opt.train_split, opt.val_split),
        need_texts=False,
    )
    train_set, val_set, mean, std = load_vq_datasets(
        opt.data_root,
        opt.spec,
        window_size=opt.window_size,
        feat_bias=opt.feat_bias,
        splits=(opt.train_split, opt.val_split),
    )
    pin = device.type == "cuda"
    train_loader = make_train_loader(
        train_set,
        batch_size=opt.batch_size,
        seed=opt.seed,
        num_workers=opt.num_workers,
        pin_memory=pin,
        accum_steps=opt.accum_steps,
    )
    val_loader = make_val_loader(val_set, batch_size=opt.batch_size, num_workers=opt.num_workers, pin_memory=pin)
    evaluate = None
    if opt.eval_fid and run.env.is_main:  # rank 0 alone evaluates FID (and saves the best checkpoints)
        evaluate = make_fid_evaluate(
            opt.data_root,
            opt.spec,
            mean,
            std,
            evaluator_dir=opt.evaluator_root,
            glove_dir=opt.glove_dir,
            device=device,
            batch_size=opt.eval_batch_size,
            seed=opt.seed,
        )
    model = build_rvqvae(opt)
    if opt.decoder_source_dir is not None:
        _start_from_source(model, opt.decoder_source_dir, mean, std)
    run.start()
    if run.env.is_main:
        write_meta(opt.meta_dir, mean, std)
    logger.info(
        "%d training windows (%d iterations/epoch of %d = %d processes x %d accumulation x %d), %d validation windows",
        len(train_set),
        len(train_set) // opt.batch_size,
        opt.batch_size,
        run.env.world_size,
        opt.accum_steps,
        train_loader.batch_sampler.plan.micro_batch,
        len(val_set),
    )
    logger.info("RVQ-VAE: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    return train_vq(
        model,
        train_loader,
        val_loader,
        opt,
        run.model_dir,
        device,
        resume=run.resume,
        writer=run.writer,
        evaluate=evaluate,
        stats=(mean, std),
    )


def _start_from_source(model: RVQVAE, source_dir: Path, mean: np.ndarray, std: np.ndarray) -> None:
    """Decoder fine-tuning starts from ``source_dir``'s weights; its codes are only the same if it normalised
    the motions as this dataset does."""
    source_mean, source_std = load_vq_meta(source_dir)
    if not (np.allclose(source_mean, mean, atol=1e-6) and np.allclose(source_std, std, atol=1e-6)):
        raise ValueError(
            f"--decoder_from {source_dir}: its meta/mean.npy, std.npy are not this dataset's statistics "
            "(fine-tune on the data the run was trained on)"
        )
    copy_source_weights(model, load_rvqvae(source_dir), source_dir)
    logger.info("fine-tuning the decoder of %s (encoder and codebooks frozen)", source_dir)


if __name__ == "__main__":
    run_cli(main)
