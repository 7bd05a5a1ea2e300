"""Benchmark RVQ-VAE reconstruction with the T2M evaluator (+ MPJPE), docs/evaluation.md#protocols (eval_t2m_vq protocol).

Every file in ``checkpoints/<ds>/<name>/model`` whose name contains ``--which_epoch`` is evaluated: the
ground-truth clip is reconstructed deterministically (eval mode) and compared with the evaluator; MPJPE is on
joints recovered from the features (logged as "MAE" like the reference). Results: ``<eval_dir>/<ext>.log``
(default ``<name>/eval``; ``./eval_logs/<ds>/<name>`` for a read-only run folder).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from evaluation.benchmark import (
    EvalLog,
    Metrics,
    evaluate_t2m,
    format_table,
    load_benchmark,
    matching_checkpoints,
    reconstruction_generator,
)
from models.vq.build import load_rvqvae, load_vq_meta
from options.eval import EvalVQOptions
from utils.checkpoint import VQ
from utils.cli import run_cli
from utils.device import resolve_device, seed_everything
from utils.log import git_sha, setup_logging
from utils.motion import recover_from_ric

logger = logging.getLogger("eval_t2m_vq")


def main(argv: list[str] | None = None) -> dict[str, Metrics]:
    opt = EvalVQOptions.parse(argv)
    files = matching_checkpoints(opt.model_dir, opt.which_epoch, VQ)
    setup_logging(opt.eval_root / f"{opt.ext}.txt")
    logger.info("git %s; options: %s", git_sha(), opt.to_dict())
    seed_everything(opt.seed)
    device = resolve_device(opt.device)

    evaluator, loader = load_benchmark(opt, device)
    mean, std = (torch.as_tensor(a, device=device) for a in load_vq_meta(opt.save_root))
    joints_num = opt.spec.joints_num
    log = EvalLog(opt.eval_root / f"{opt.ext}.log")
    logger.info("evaluation logs: %s", log.path)
    for file in files:
        vq = load_rvqvae(opt.save_root, device=device, which=file).eval()
        generate = reconstruction_generator(lambda x: vq.reconstruct(x).recon, evaluator, mean, std)
        metrics = evaluate_t2m(
            loader,
            generate,
            evaluator,
            repeats=opt.repeat_times,
            mm_batches=0,
            rng=np.random.default_rng(opt.seed),
            diversity_times=opt.diversity_times or None,
            joints_fn=lambda raw: recover_from_ric(raw, joints_num),
            physical=opt.spec,
        )
        log.add(file, metrics)
    logger.info("\n%s", format_table({f"{opt.name} {f.removesuffix('.tar')}": m for f, m in log.results.items()}))
    return log.results


if __name__ == "__main__":
    run_cli(main)
