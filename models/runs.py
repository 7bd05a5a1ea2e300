"""The pipeline a generation/editing script's options name: ``--name``/``--res_name`` runs or the demo model.

Shared by gen_t2m.py and edit_t2m.py (and any later script that samples from trained runs), so scripts never
import each other.
"""

from __future__ import annotations

import logging

import torch

from models.pipeline import MoMaskPipeline

logger = logging.getLogger(__name__)


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
