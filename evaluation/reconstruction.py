"""VQ reconstruction error in joint space: root-aligned MPJPE in millimetres (docs/evaluation.md#metrics), on any device."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from models.vq.model import RVQVAE
from utils.motion import recover_from_ric
from utils.skeleton import DatasetSpec

# Dataset units -> millimetres: HumanML3D joints are in metres, KIT-ML joints already in millimetres.
_MM_PER_UNIT = {"t2m": 1000.0, "kit": 1.0}


def mm_per_unit(spec: DatasetSpec) -> float:
    if spec.name not in _MM_PER_UNIT:
        raise ValueError(f"no length unit known for dataset {spec.name!r} (known: {sorted(_MM_PER_UNIT)})")
    return _MM_PER_UNIT[spec.name]


def mpjpe_per_pose(gt_joints: Tensor, pred_joints: Tensor) -> Tensor:
    """(..., J, 3) x2 -> (...,) mean joint L2 distance after subtracting each pose's root joint."""
    if gt_joints.shape != pred_joints.shape:
        raise ValueError(f"MPJPE needs equal shapes, got {tuple(gt_joints.shape)} and {tuple(pred_joints.shape)}")
    gt = gt_joints - gt_joints[..., :1, :]
    pred = pred_joints - pred_joints[..., :1, :]
    return torch.linalg.vector_norm(gt - pred, dim=-1).mean(dim=-1)


def features_mpjpe_mm(gt_features: Tensor, pred_features: Tensor, spec: DatasetSpec) -> Tensor:
    """Per-pose MPJPE (mm) between de-normalised feature sequences (..., T, D) -> (..., T)."""
    gt = recover_from_ric(gt_features.float(), spec.joints_num)
    pred = recover_from_ric(pred_features.float(), spec.joints_num)
    return mpjpe_per_pose(gt, pred) * mm_per_unit(spec)


@torch.no_grad()
def reconstruction_mpjpe(
    model: RVQVAE,
    batches: Iterable[Tensor],
    mean: np.ndarray | Tensor,
    std: np.ndarray | Tensor,
    spec: DatasetSpec,
    device: torch.device | str = "cpu",
) -> float:
    """Mean per-pose MPJPE (mm) of eval-mode reconstructions over normalised batches (B, T, D), T % 4 == 0."""
    device = torch.device(device)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    was_training = model.training
    model.eval()
    total, poses = 0.0, 0
    try:
        for batch in batches:
            x = batch.to(device).float()
            recon, _, _ = model(x)
            errors = features_mpjpe_mm(x * std_t + mean_t, recon * std_t + mean_t, spec)
            total += float(errors.sum())
            poses += errors.numel()
    finally:
        model.train(was_training)
    if poses == 0:
        raise ValueError("reconstruction_mpjpe got no poses (empty loader)")
    return total / poses


def make_fid_evaluate(
    data_root: str | Path,
    spec: DatasetSpec,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    evaluator_dir: str | Path,
    glove_dir: str | Path,
    device: torch.device,
    split: str = "val",
    batch_size: int = 32,
    seed: int = 0,
    diversity_times: int | None = None,
) -> Callable[[RVQVAE, int], dict[str, float]]:
    """The per-epoch evaluation of VQ training (docs/training.md#vq-schedule): one pass over the evaluator's ``split`` with
    deterministic reconstructions -> ``{'fid', 'matching', 'diversity', 'top1', ..., 'mpjpe'}``.

    ``mean``/``std``: the VQ normalisation (meta files). Loads the evaluator and word vectors once.
    """
    from evaluation.benchmark import evaluate_t2m, make_eval_loader, reconstruction_generator
    from models.evaluator.word_vectorizer import WordVectorizer
    from models.evaluator.wrapper import T2MEvaluator

    evaluator = T2MEvaluator.from_checkpoints(evaluator_dir, spec.name, device)
    loader = make_eval_loader(
        data_root,
        spec,
        evaluator,
        WordVectorizer(Path(glove_dir).expanduser().resolve()),
        split=split,
        batch_size=batch_size,
        seed=seed,
    )
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=device)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=device)
    if diversity_times is None:
        # protocol pair count, capped below the sample count so small validation splits still work
        from utils.metrics import diversity_times as protocol_times

        samples = len(loader) * batch_size
        diversity_times = min(protocol_times(samples), samples - 1)

    def evaluate(model: RVQVAE, epoch: int) -> dict[str, float]:
        generate = reconstruction_generator(lambda x: model.reconstruct(x).recon, evaluator, mean_t, std_t)
        metrics = evaluate_t2m(
            loader,
            generate,
            evaluator,
            repeats=1,
            mm_batches=0,
            rng=np.random.default_rng(seed + epoch),
            diversity_times=diversity_times,
            joints_fn=lambda raw: recover_from_ric(raw, spec.joints_num),
            progress=False,
        )
        return {name.lower(): metrics.mean(name) for name in metrics.per_repeat}

    return evaluate
