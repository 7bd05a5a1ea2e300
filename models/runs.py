"""The pipeline a generation/editing script's options name: ``--name``/``--res_name`` runs or the demo model.

Shared by gen_t2m.py and edit_t2m.py (and any later script that samples from trained runs), so scripts never
import each other.
"""

from __future__ import annotations

import logging
import os

import torch

from models.pipeline import MoMaskPipeline

logger = logging.getLogger(__name__)


def demo_cpu_threads(opt: object, device: torch.device | str) -> None:
    """For a script's ``main``: one intra-op thread (``torch.set_num_threads``) when it will run the embedded demo
    model (``opt.name`` empty) on a CPU and ``OMP_NUM_THREADS`` is not set. The demo's layers (width 128, ~50
    tokens; MiniLM over ~10 tokens) are too small to split across threads: on a busy 2-core machine the default
    thread pool spends 2-3x the CPU time waiting at its barriers (benchmarks/bench_cold_start.py); the text
    vectors are identical, joints within float rounding. A process-wide setting, so the script decides."""
    if not opt.name and torch.device(device).type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
        logger.info("demo model on CPU: one intra-op thread (set OMP_NUM_THREADS to choose)")


def load_pipeline(opt: object, device: torch.device | str) -> MoMaskPipeline:
    """The run named by ``opt.name``/``opt.res_name``, or the embedded demo model when ``opt.name`` is empty.

    ``opt``: any options object with the sampling group's fields (options/sampling.py)."""
    if not opt.name:
        logger.info(
            "no --name given: using the embedded demo model (%s); it knows ~20 actions only",
            MoMaskPipeline.DEMO_CHECKPOINTS,
        )
        return MoMaskPipeline.demo(device=device, text_encoder=opt.text_encoder)
    if not opt.res_name:
        logger.warning(
            "no --res_name: decoding the base code layer only (pass the residual transformer's run "
            "folder for full quality)"
        )
    return MoMaskPipeline.from_checkpoints(
        opt.checkpoints_dir,
        opt.dataset_name,
        opt.name,
        opt.res_name,
        device=device,
        which_epoch=opt.which_epoch,
        text_encoder=opt.text_encoder,
        text_encoder_path=opt.text_encoder_path,
    )
