"""Build an RVQ-VAE from options and load one from a run folder or checkpoint (ours or the official code's)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from data.feature_stats import load_feature_stats
from models.vq.model import RVQVAE, RVQVAEConfig
from options.vq import VQOptions
from utils.checkpoint import (
    MODEL_ARGS_KEY,
    VQ,
    CheckpointError,
    build_checked,
    check_model_args,
    check_state_dict,
    find_checkpoint,
    first_key,
    load_checkpoint,
)
from utils.skeleton import spec_from_feature_dim

logger = logging.getLogger(__name__)

# Top-level checkpoint keys: the model (official name, with the official fallback) and our addition (besides
# utils.checkpoint.MODEL_ARGS_KEY). File names and the lookup order live in utils/checkpoint.py.
MODEL_KEYS = ("vq_model", "net")
CODEBOOK_STATE_KEY = "vq_codebook_state"


def config_from_options(opt: VQOptions, input_width: int | None = None) -> RVQVAEConfig:
    """Map option names (official spelling) to the model config; ``input_width`` defaults to the dataset's D."""
    return RVQVAEConfig(
        input_width=input_width if input_width is not None else opt.spec.dim_pose,
        nb_code=opt.nb_code,
        code_dim=opt.code_dim,
        output_emb_width=opt.output_emb_width,
        down_t=opt.down_t,
        stride_t=opt.stride_t,
        width=opt.width,
        depth=opt.depth,
        dilation_growth_rate=opt.dilation_growth_rate,
        activation=opt.vq_act,
        norm=opt.vq_norm,
        num_quantizers=opt.num_quantizers,
        shared_codebook=opt.shared_codebook,
        quantize_dropout_prob=opt.quantize_dropout_prob,
        mu=opt.mu,
    )


def build_rvqvae(source: VQOptions | RVQVAEConfig) -> RVQVAE:
    """A freshly initialised RVQ-VAE (PyTorch default init, zero codebooks) on the CPU."""
    config = source if isinstance(source, RVQVAEConfig) else config_from_options(source)
    return RVQVAE(config)


def load_vq_meta(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``meta/mean.npy``, ``meta/std.npy`` of a VQ run: the normalisation every later stage uses (docs/data.md#normalisation)."""
    meta = Path(run_dir).expanduser().resolve() / "meta"
    paths = [meta / "mean.npy", meta / "std.npy"]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: a VQ run folder has meta/mean.npy and meta/std.npy")
    return load_feature_stats(*paths, what="VQ")


def _config_for(state: dict[str, Any], sd: dict[str, torch.Tensor], run_dir: Path | None, path: Path) -> RVQVAEConfig:
    if MODEL_ARGS_KEY in state:
        return RVQVAEConfig.from_dict(check_model_args(state[MODEL_ARGS_KEY], path))
    opt_file = run_dir / "opt.txt" if run_dir is not None else None
    if opt_file is None or not opt_file.is_file():
        raise CheckpointError(
            f"{path} has no '{MODEL_ARGS_KEY}' and no opt.txt was found next to its model/ "
            "folder: pass the run folder, or keep opt.txt with the checkpoint"
        )
    opt = VQOptions.load(opt_file)
    key = "encoder.model.0.weight"
    input_width = int(sd[key].shape[1]) if key in sd else opt.spec.dim_pose
    if input_width != opt.spec.dim_pose:
        raise CheckpointError(
            f"{path}: encoder input has {input_width} features but {opt_file} says "
            f"dataset_name {opt.dataset_name} ({opt.spec.dim_pose} features)"
        )
    return config_from_options(opt, input_width)


def load_rvqvae(
    source: str | Path,
    *,
    device: torch.device | str = "cpu",
    which: str | None = None,
) -> RVQVAE:
    """An RVQ-VAE in eval mode from a run folder (``opt.txt`` + ``model/*.tar``) or a checkpoint file.

    Architecture: the checkpoint's ``model_args`` (ours) or the run's ``opt.txt`` (official runs). Weights load
    strictly from ``vq_model`` (fallback ``net``); codebook EMA statistics, when saved, are restored too.
    """
    source = Path(source).expanduser().resolve()
    if source.is_dir():
        run_dir: Path | None = source
        path = find_checkpoint(source / "model", VQ, which)
    else:
        path = source
        run_dir = source.parent.parent if (source.parent.parent / "opt.txt").is_file() else None
    state = load_checkpoint(path)
    sd = check_state_dict(first_key(state, *MODEL_KEYS, path=path), path, MODEL_KEYS[0])
    if not any(k.startswith("quantizer.layers.") for k in sd):
        raise CheckpointError(f"{path}: the '{MODEL_KEYS[0]}' entry is not an RVQ-VAE state dict")

    def make() -> RVQVAE:
        config = _config_for(state, sd, run_dir, path)
        spec_from_feature_dim(config.input_width)  # a clear error for an unknown feature dimension
        return RVQVAE(config)

    model = build_checked(make, sd, path)
    model.load_codebook_state(state.get(CODEBOOK_STATE_KEY))
    logger.info("loaded RVQ-VAE from %s (ep %s)", path, state.get("ep"))
    return model.to(device).eval()
