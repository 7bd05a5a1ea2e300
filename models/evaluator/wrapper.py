"""The pretrained T2M evaluator: loading the official files and computing co-embeddings (docs/networks.md#evaluator-networks, docs/checkpoints.md#folder-layout).

Official layout inside ``checkpoints/<t2m|kit>/`` (from ``humanml3d_evaluator.zip`` / ``kit_evaluator.zip``):
``text_mot_match/model/finest.tar`` (keys ``movement_encoder``, ``text_encoder``, ``motion_encoder``,
``epoch``) and ``Comp_v6_KLD005/{opt.txt, meta/mean.npy, meta/std.npy}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from data.feature_stats import load_feature_stats
from models.evaluator.modules import MotionEncoderBiGRUCo, MovementConvEncoder, TextEncoderBiGRUCo
from options.base import Options, coerce, read_opt_file
from utils.checkpoint import (
    FINEST,
    atomic_write,
    build_checked,
    check_model_args,
    check_state_dict,
    load_checkpoint,
    save_checkpoint,
)
from utils.skeleton import get_dataset_spec

logger = logging.getLogger(__name__)

EVALUATOR_KEYS = ("movement_encoder", "text_encoder", "motion_encoder")
# Sizes read from Comp_v6_KLD005/opt.txt; all architecture sizes a checkpoint's ``model_args`` may carry.
OPT_SIZE_KEYS = ("dim_movement_enc_hidden", "dim_movement_latent", "unit_length", "max_text_len")
ARCH_KEYS = (
    "dim_movement_enc_hidden",
    "dim_movement_latent",
    "dim_text_hidden",
    "dim_motion_hidden",
    "dim_coemb_hidden",
    "unit_length",
    "max_text_len",
)
EVALUATOR_HINT = (
    "download humanml3d_evaluator.zip (t2m) or kit_evaluator.zip (kit) from the MoMask README and "
    "unzip it inside checkpoints/<dataset_name>/, or train one with train_evaluator.py"
)


@dataclass(frozen=True)
class EvaluatorPaths:
    """Files of the evaluator of one dataset under ``checkpoints_dir/<dataset_name>``."""

    root: Path

    @classmethod
    def for_dataset(cls, checkpoints_dir: str | Path, dataset_name: str) -> EvaluatorPaths:
        return cls(Path(checkpoints_dir).expanduser().resolve() / get_dataset_spec(dataset_name).name)

    @property
    def weights(self) -> Path:
        return self.root / "text_mot_match" / "model" / FINEST

    @property
    def opt_file(self) -> Path:
        return self.root / "Comp_v6_KLD005" / "opt.txt"

    @property
    def mean_file(self) -> Path:
        return self.root / "Comp_v6_KLD005" / "meta" / "mean.npy"

    @property
    def std_file(self) -> Path:
        return self.root / "Comp_v6_KLD005" / "meta" / "std.npy"

    def check(self) -> None:
        """Raise FileNotFoundError naming every missing file and where to get it."""
        missing = [str(p) for p in (self.weights, self.opt_file, self.mean_file, self.std_file) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"evaluator file(s) missing: {missing}; {EVALUATOR_HINT}")


class T2MEvaluator(nn.Module):
    """Movement + motion + text encoders and the evaluator's feature statistics.

    All embedding methods run in eval mode without gradients and return pairs **in input order** (the reference
    returns them sorted by motion length; every metric is invariant to a joint permutation of the pairs).
    Motions are expected normalised with this evaluator's ``mean``/``std`` (see :meth:`normalize`).
    """

    def __init__(
        self,
        *,
        dim_pose: int,
        mean: np.ndarray,
        std: np.ndarray,
        dim_movement_enc_hidden: int = 512,
        dim_movement_latent: int = 512,
        dim_word: int = 300,
        dim_pos_ohot: int = 15,
        dim_text_hidden: int = 512,
        dim_motion_hidden: int = 1024,
        dim_coemb_hidden: int = 512,
        unit_length: int = 4,
        max_text_len: int = 20,
    ) -> None:
        super().__init__()
        if mean.shape != (dim_pose,) or std.shape != (dim_pose,):
            raise ValueError(f"evaluator mean/std must have shape ({dim_pose},), got {mean.shape} and {std.shape}")
        self.dim_pose = dim_pose
        self.model_args = {
            "dim_movement_enc_hidden": dim_movement_enc_hidden,
            "dim_movement_latent": dim_movement_latent,
            "dim_text_hidden": dim_text_hidden,
            "dim_motion_hidden": dim_motion_hidden,
            "dim_coemb_hidden": dim_coemb_hidden,
            "unit_length": unit_length,
            "max_text_len": max_text_len,
        }
        self.unit_length = unit_length
        self.max_text_len = max_text_len
        self.movement_encoder = MovementConvEncoder(
            input_size=dim_pose - 4, hidden_size=dim_movement_enc_hidden, output_size=dim_movement_latent
        )
        self.text_encoder = TextEncoderBiGRUCo(
            word_size=dim_word, pos_size=dim_pos_ohot, hidden_size=dim_text_hidden, output_size=dim_coemb_hidden
        )
        self.motion_encoder = MotionEncoderBiGRUCo(
            input_size=dim_movement_latent, hidden_size=dim_motion_hidden, output_size=dim_coemb_hidden
        )
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32), persistent=False)
        self.eval()

    # ---- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_checkpoints(
        cls, checkpoints_dir: str | Path, dataset_name: str, device: torch.device | str = "cpu"
    ) -> T2MEvaluator:
        """Load ``checkpoints_dir/<dataset_name>/{text_mot_match,Comp_v6_KLD005}`` strictly onto ``device``."""
        paths = EvaluatorPaths.for_dataset(checkpoints_dir, dataset_name)
        paths.check()
        spec = get_dataset_spec(dataset_name)
        raw = read_opt_file(paths.opt_file)
        state = load_checkpoint(paths.weights, required_keys=EVALUATOR_KEYS)
        # Official files: movement sizes from opt.txt, GRU sizes fixed (docs/networks.md#evaluator-networks). Ours also store model_args.
        sizes: dict[str, Any] = {}
        for key in OPT_SIZE_KEYS:
            if key in raw:
                try:
                    sizes[key] = coerce(raw[key], int)
                except ValueError as exc:
                    raise ValueError(f"{paths.opt_file}: option {key!r}: {exc}") from None
        args = check_model_args(state.get("model_args", {}), paths.weights)
        sizes.update({k: v for k, v in args.items() if k in ARCH_KEYS})
        mean, std = load_feature_stats(paths.mean_file, paths.std_file, "evaluator", spec.dim_pose)
        weights = {
            f"{key}.{name}": tensor
            for key in EVALUATOR_KEYS
            for name, tensor in check_state_dict(state[key], paths.weights, key).items()
        }
        model = build_checked(lambda: cls(dim_pose=spec.dim_pose, mean=mean, std=std, **sizes), weights, paths.weights)
        logger.info("loaded evaluator %s (epoch %s)", paths.weights, state.get("epoch"))
        return model.to(device).eval()

    def state_for_checkpoint(self, epoch: int, **extra: Any) -> dict[str, Any]:
        """The official ``finest.tar`` dict (one state dict per network, ``epoch``) plus ``model_args``."""
        nets = {
            key: {n: t.detach().cpu() for n, t in getattr(self, key).state_dict().items()} for key in EVALUATOR_KEYS
        }
        return nets | {"epoch": epoch, "model_args": dict(self.model_args), **extra}

    # ---- feature space ------------------------------------------------------------------------------------
    def normalize(self, raw: Tensor) -> Tensor:
        """Raw features (..., D) -> evaluator-normalised features."""
        return (raw - self.mean.to(raw)) / self.std.to(raw)

    def denormalize(self, x: Tensor) -> Tensor:
        """Evaluator-normalised features (..., D) -> raw features."""
        return x * self.std.to(x) + self.mean.to(x)

    # ---- embeddings ---------------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return self.mean.device

    @torch.no_grad()
    def get_motion_embeddings(self, motions: Tensor, m_lens: Tensor) -> Tensor:
        """motions: (B, T, D) normalised, m_lens: (B,) frames -> (B, 512)."""
        self.eval()
        motions = motions.to(self._device(), torch.float32)
        if motions.shape[-1] != self.dim_pose:
            raise ValueError(f"motions have {motions.shape[-1]} features, the evaluator expects {self.dim_pose}")
        movements = self.movement_encoder(motions[..., :-4])
        steps = torch.as_tensor(m_lens).to("cpu", torch.int64) // self.unit_length
        return self.motion_encoder(movements, steps)

    @torch.no_grad()
    def get_text_embeddings(self, word_embs: Tensor, pos_onehot: Tensor, sent_lens: Tensor) -> Tensor:
        """word_embs: (B, L, 300), pos_onehot: (B, L, 15), sent_lens: (B,) -> (B, 512)."""
        self.eval()
        dev = self._device()
        return self.text_encoder(word_embs.to(dev, torch.float32), pos_onehot.to(dev, torch.float32), sent_lens)

    def get_co_embeddings(
        self, word_embs: Tensor, pos_onehot: Tensor, sent_lens: Tensor, motions: Tensor, m_lens: Tensor
    ) -> tuple[Tensor, Tensor]:
        """-> (text_emb (B, 512), motion_emb (B, 512)), row i of both = pair i of the input."""
        return (self.get_text_embeddings(word_embs, pos_onehot, sent_lens), self.get_motion_embeddings(motions, m_lens))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as tmp:
        np.save(tmp, array)


def save_evaluator(evaluator: T2MEvaluator, paths: EvaluatorPaths, options: Options, *, epoch: int) -> None:
    """Write the official layout: ``text_mot_match/model/finest.tar``, ``Comp_v6_KLD005/opt.txt`` and
    ``Comp_v6_KLD005/meta/{mean,std}.npy``. ``options`` must carry the movement-encoder sizes."""
    _save_npy(paths.mean_file, evaluator.mean.cpu().numpy())
    _save_npy(paths.std_file, evaluator.std.cpu().numpy())
    options.save(paths.opt_file, is_train=True)
    save_checkpoint(paths.weights, evaluator.state_for_checkpoint(epoch))


# Name used by the reference code base.
EvaluatorWrapper = T2MEvaluator
