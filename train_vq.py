"""Train the residual VQ-VAE motion tokenizer (MoMask stage 1).

Example: python train_vq.py --name rvq_nq6_dc512_nc512_noshare_qdp0.2 --dataset_name t2m --batch_size 256 \
    --num_quantizers 6 --max_epoch 50 --quantize_dropout_prob 0.2 --gamma 0.05
"""
from __future__ import annotations

import logging

import torch
from torch.utils.tensorboard import SummaryWriter

from data.checks import ensure_dataset_ok
from data.layout import DatasetPaths
from data.motion_dataset import load_vq_datasets, make_train_loader, make_val_loader
from models.vq.build import build_rvqvae
from options.vq import VQOptions
from utils.cli import run_cli
from utils.device import resolve_device, seed_everything
from utils.log import git_sha, setup_logging
from utils.recon_eval import make_fid_evaluate
from utils.vq_training import check_run_dir, train_vq, write_run_files

logger = logging.getLogger("train_vq")


def main(argv: list[str] | None = None) -> None:
    opt = VQOptions.parse(argv)
    seed_everything(opt.seed)
    run_dir = check_run_dir(opt)
    device = resolve_device(opt.device)
    if opt.deterministic:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    setup_logging()
    ensure_dataset_ok(DatasetPaths.for_dataset(opt.data_root, opt.spec).root, opt.spec,
                      splits=(opt.train_split, opt.val_split), need_texts=False)
    train_set, val_set, mean, std = load_vq_datasets(opt.data_root, opt.spec, window_size=opt.window_size,
                                                     feat_bias=opt.feat_bias, splits=(opt.train_split, opt.val_split))
    pin = device.type == "cuda"
    train_loader = make_train_loader(train_set, batch_size=opt.batch_size, seed=opt.seed,
                                     num_workers=opt.num_workers, pin_memory=pin)
    val_loader = make_val_loader(val_set, batch_size=opt.batch_size, num_workers=opt.num_workers, pin_memory=pin)
    evaluate = None
    if opt.eval_fid:
        evaluate = make_fid_evaluate(opt.data_root, opt.spec, mean, std,
                                     evaluator_dir=opt.evaluator_dir or opt.checkpoints_dir, glove_dir=opt.glove_dir,
                                     device=device, batch_size=opt.eval_batch_size, seed=opt.seed)
    write_run_files(opt, mean, std)
    setup_logging(run_dir / "log.txt")
    logger.info("git %s, device %s, options: %s", git_sha(), device, opt.to_dict())
    logger.info("%d training windows (%d iterations/epoch), %d validation windows", len(train_set),
                len(train_set) // opt.batch_size, len(val_set))
    model = build_rvqvae(opt)
    logger.info("RVQ-VAE: %.2fM parameters", sum(p.numel() for p in model.parameters()) / 1e6)
    writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    try:
        train_vq(model, train_loader, val_loader, opt, opt.model_dir, device, writer=writer, evaluate=evaluate)
    finally:
        writer.close()


if __name__ == "__main__":
    run_cli(main)
