"""Tiny untrained MoMask runs in the official checkpoint layout, for end-to-end CLI tests (t2m or kit).

Weights are random; the runs are structurally complete: opt.txt + model/*.tar for the VQ, masked and residual
transformers, meta/mean.npy + std.npy, and length_estimator/model/finest.tar; text encoder MiniLM (384-d).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.length_estimator import LengthEstimator
from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from models.vq.model import RVQVAE, RVQVAEConfig
from options.transformer import MaskTransformerOptions, ResidualTransformerOptions
from options.vq import VQOptions
from utils.checkpoint import save_checkpoint
from utils.skeleton import get_dataset_spec

VQ_NAME, MASK_NAME, RES_NAME = "rvq_tiny", "mtrans_tiny", "rtrans_tiny"
TEXT_DIM = 384  # MiniLM


def make_tiny_runs(checkpoints_dir: Path, dataset_name: str = "t2m", seed: int = 0) -> Path:
    """Write the four runs under ``checkpoints_dir/<dataset_name>/``; returns ``checkpoints_dir``."""
    torch.manual_seed(seed)
    spec = get_dataset_spec(dataset_name)
    root = Path(checkpoints_dir) / spec.name
    common = dict(dataset_name=spec.name, checkpoints_dir=str(checkpoints_dir))
    vq_cfg = RVQVAEConfig(
        input_width=spec.dim_pose, nb_code=16, code_dim=16, output_emb_width=16, width=16, depth=1, num_quantizers=3
    )
    vq = RVQVAE(vq_cfg)
    for layer in vq.quantizer.layers:  # distinct codes, as a trained codebook would have
        layer.codebook.copy_(torch.randn_like(layer.codebook))
    VQOptions(
        name=VQ_NAME, nb_code=16, code_dim=16, output_emb_width=16, width=16, depth=1, num_quantizers=3, **common
    ).save(root / VQ_NAME / "opt.txt", is_train=True)
    save_checkpoint(
        root / VQ_NAME / "model" / "net_best_fid.tar",
        {"vq_model": vq.state_dict(), "ep": 0, "model_args": vq_cfg.__dict__},
    )
    (root / VQ_NAME / "meta").mkdir(parents=True)
    np.save(root / VQ_NAME / "meta" / "mean.npy", np.zeros(spec.dim_pose, np.float32))
    np.save(root / VQ_NAME / "meta" / "std.npy", np.full(spec.dim_pose, 0.1, np.float32))

    arch = dict(latent_dim=32, ff_size=64, n_layers=1, n_heads=2, text_encoder="minilm", vq_name=VQ_NAME, **common)
    mask_cfg = MaskTransformerConfig(
        num_tokens=16, code_dim=16, latent_dim=32, ff_size=64, num_layers=1, num_heads=2, clip_dim=TEXT_DIM
    )
    MaskTransformerOptions(name=MASK_NAME, **arch).save(root / MASK_NAME / "opt.txt", is_train=True)
    save_checkpoint(
        root / MASK_NAME / "model" / "latest.tar",
        {
            "t2m_transformer": MaskTransformer(mask_cfg).state_dict(),
            "ep": 0,
            "total_it": 0,
            "model_args": mask_cfg.as_dict(),
        },
    )
    res_cfg = ResidualTransformerConfig(
        num_tokens=16,
        code_dim=16,
        num_quantizers=3,
        latent_dim=32,
        ff_size=64,
        num_layers=1,
        num_heads=2,
        clip_dim=TEXT_DIM,
        share_weight=True,
    )
    ResidualTransformerOptions(name=RES_NAME, share_weight=True, **arch).save(
        root / RES_NAME / "opt.txt", is_train=True
    )
    save_checkpoint(
        root / RES_NAME / "model" / "net_best_fid.tar",
        {"res_transformer": ResidualTransformer(res_cfg).state_dict(), "ep": 0, "model_args": res_cfg.as_dict()},
    )
    estimator = LengthEstimator(input_size=TEXT_DIM, output_size=50)
    save_checkpoint(
        root / "length_estimator" / "model" / "finest.tar",
        {
            "estimator": estimator.state_dict(),
            "epoch": 0,
            "niter": 0,
            "model_args": {"input_size": TEXT_DIM, "output_size": 50},
        },
    )
    return Path(checkpoints_dir)
