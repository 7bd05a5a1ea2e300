"""Benchmark MoMask text-to-motion checkpoints with the T2M evaluator (docs/evaluation.md#protocols, eval_t2m_trans_res protocol).

Every file in ``checkpoints/<ds>/<name>/model`` whose name contains ``--which_epoch`` is evaluated with the
residual transformer ``--res_name``; results go to ``<eval_dir>/<ext>.log`` in the reference format (default
``checkpoints/<ds>/<name>/eval``; ``./eval_logs/<ds>/<name>`` for a read-only run folder) and to the log as a
paper-style table.
"""

from __future__ import annotations

import logging

import numpy as np

from evaluation.benchmark import (
    EvalLog,
    Metrics,
    evaluate_t2m,
    format_table,
    load_benchmark,
    matching_checkpoints,
    pipeline_generator,
)
from models.pipeline import MoMaskPipeline, Sampling
from models.text.base import TextEncoder
from options.eval import EvalT2MOptions
from utils.checkpoint import MASK
from utils.cli import run_cli
from utils.device import resolve_device, seed_everything
from utils.log import git_sha, setup_logging

logger = logging.getLogger("eval_t2m")


def main(argv: list[str] | None = None) -> dict[str, Metrics]:
    opt = EvalT2MOptions.parse(argv)
    files = matching_checkpoints(opt.model_dir, opt.which_epoch, MASK)
    setup_logging(opt.eval_root / f"{opt.ext}.txt")
    logger.info("git %s; options: %s", git_sha(), opt.to_dict())
    seed_everything(opt.seed)
    device = resolve_device(opt.device)

    evaluator, loader = load_benchmark(opt, device)
    sampling = Sampling.from_options(opt)
    log = EvalLog(opt.eval_root / f"{opt.ext}.log")
    logger.info("evaluation logs: %s", log.path)
    encoder: str | TextEncoder = opt.text_encoder  # loaded once, shared by every checkpoint's pipeline
    for file in files:
        pipe = MoMaskPipeline.from_checkpoints(
            opt.checkpoints_dir,
            opt.dataset_name,
            opt.name,
            opt.res_name if opt.use_res_model else "",
            device=device,
            which_epoch=file.removesuffix(".tar"),
            use_length_estimator=opt.use_estimated_length,
            text_encoder=encoder,
            text_encoder_path=opt.text_encoder_path,
        )
        encoder = pipe.text_encoder
        if not np.allclose(pipe.mean.cpu().numpy(), evaluator.mean.cpu().numpy()):
            logger.info("model and evaluator statistics differ; generated features are re-normalised")
        generate = pipeline_generator(pipe, sampling, use_estimated_length=opt.use_estimated_length)
        mm_batches = 0 if opt.force_mask else opt.mm_batches
        metrics = evaluate_t2m(
            loader,
            generate,
            evaluator,
            repeats=opt.repeat_times,
            mm_batches=mm_batches,
            mm_repeats=opt.mm_repeats,
            rng=np.random.default_rng(opt.seed),
            diversity_times=opt.diversity_times or None,
            label=opt.length_label,
            physical=opt.spec,
        )
        log.add(file, metrics, header=f"{file} [{opt.length_label}]" if opt.use_estimated_length else file)
    logger.info("\n%s", format_table({f"{opt.name} {f.removesuffix('.tar')}": m for f, m in log.results.items()}))
    return log.results


if __name__ == "__main__":
    run_cli(main)
