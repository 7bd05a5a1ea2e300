"""Build the transformers from options and load them from run folders (ours or the official code's).

Architecture comes from the checkpoint's ``model_args`` (ours) or from the run's ``opt.txt`` plus the VQ run's
``opt.txt`` (``nb_code`` -> num_tokens, ``code_dim``, ``num_quantizers``), exactly as the official loaders do.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.transformer.common import strip_text_encoder_keys
from models.transformer.mask_transformer import MaskTransformer, MaskTransformerConfig
from models.transformer.residual_transformer import ResidualTransformer, ResidualTransformerConfig
from options.base import coerce, read_opt_file
from options.sampling import MAX_MARGIN, OFFICIAL_COND_SCALE
from options.transformer import MaskTransformerOptions, ResidualTransformerOptions, TransformerOptions
from utils.checkpoint import (
    MASK,
    MODEL_ARGS_KEY,
    RESIDUAL,
    CheckpointError,
    build_checked,
    check_model_args,
    check_state_dict,
    find_checkpoint,
    first_key,
    load_checkpoint,
)

logger = logging.getLogger(__name__)

MASK_KEYS = ("t2m_transformer", "trans")  # official key, official fallback
RES_KEYS = ("res_transformer",)
DEFAULT_CLIP_DIM = 512  # official runs: CLIP ViT-B/32 features


@dataclass(frozen=True)
class VQFacts:
    """What the transformers need to know about their tokenizer."""

    nb_code: int
    code_dim: int
    num_quantizers: int
    source: str = "VQ"

    @classmethod
    def from_opt_file(cls, path: str | Path) -> VQFacts:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"VQ options {path} not found: the transformer's vq_name must name a VQ run "
                "folder next to it (or pass the VQ run folder explicitly)"
            )
        raw = read_opt_file(path)
        values = []
        for key in ("nb_code", "code_dim", "num_quantizers"):
            if key not in raw:
                raise ValueError(f"{path} has no {key!r}: is it a VQ run's opt.txt?")
            try:
                values.append(coerce(raw[key], int))
            except ValueError as exc:
                raise ValueError(f"{path}: option {key!r}: {exc}") from None
            if values[-1] <= 0:
                raise ValueError(f"{path}: option {key!r} must be positive, got {values[-1]}")
        return cls(*values, str(path))

    @classmethod
    def from_vq(cls, vq: Any, source: str = "VQ model") -> VQFacts:
        """From an RVQVAE (``.config`` with nb_code, code_dim, num_quantizers)."""
        c = vq.config
        return cls(int(c.nb_code), int(c.code_dim), int(c.num_quantizers), source)


def resolved_clip_dim(opt: TransformerOptions) -> int:
    return opt.clip_dim if opt.clip_dim > 0 else DEFAULT_CLIP_DIM


def mask_config(opt: TransformerOptions, vq: VQFacts, clip_dim: int | None = None) -> MaskTransformerConfig:
    """Option names (official spelling) -> :class:`MaskTransformerConfig`."""
    return MaskTransformerConfig(
        num_tokens=vq.nb_code,
        code_dim=vq.code_dim,
        latent_dim=opt.latent_dim,
        ff_size=opt.ff_size,
        num_layers=opt.n_layers,
        num_heads=opt.n_heads,
        dropout=opt.dropout,
        clip_dim=clip_dim or resolved_clip_dim(opt),
        cond_drop_prob=opt.cond_drop_prob,
    )


def residual_config(opt: TransformerOptions, vq: VQFacts, clip_dim: int | None = None) -> ResidualTransformerConfig:
    """Option names (official spelling) -> :class:`ResidualTransformerConfig`."""
    return ResidualTransformerConfig(
        num_tokens=vq.nb_code,
        code_dim=vq.code_dim,
        num_quantizers=vq.num_quantizers,
        latent_dim=opt.latent_dim,
        ff_size=opt.ff_size,
        num_layers=opt.n_layers,
        num_heads=opt.n_heads,
        dropout=opt.dropout,
        clip_dim=clip_dim or resolved_clip_dim(opt),
        cond_drop_prob=opt.cond_drop_prob,
        share_weight=opt.share_weight,
    )


def _check_vocab(sd: dict[str, torch.Tensor], key: str, expected_rows: int, vq: VQFacts, path: Path) -> None:
    """A clear message when the checkpoint was trained with a different codebook size than the VQ has."""
    if key in sd and sd[key].shape[-2] != expected_rows:
        raise CheckpointError(
            f"{path}: {key} has {sd[key].shape[-2]} rows but the VQ ({vq.source}) has nb_code {vq.nb_code} "
            f"(expected {expected_rows} rows): this transformer was trained with a different VQ; check vq_name"
        )


def load_mask_transformer(
    run_dir: str | Path,
    *,
    vq_dir: str | Path | None = None,
    which: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[MaskTransformer, MaskTransformerOptions]:
    """Masked transformer in eval mode from a run folder: ``model/<which>.tar``, by default the stage's lookup
    order (utils/checkpoint.py; official generation reads ``latest.tar``)."""
    run_dir = Path(run_dir).expanduser().resolve()
    opt = MaskTransformerOptions.load(run_dir / "opt.txt")
    path = find_checkpoint(run_dir / "model", MASK, which)
    state = load_checkpoint(path)
    sd = strip_text_encoder_keys(check_state_dict(first_key(state, *MASK_KEYS, path=path), path, MASK_KEYS[0]))
    if MODEL_ARGS_KEY in state:
        args = check_model_args(state[MODEL_ARGS_KEY], path)
        model = build_checked(lambda: MaskTransformer(MaskTransformerConfig(**args)), sd, path)
    else:
        vq = VQFacts.from_opt_file(Path(vq_dir or run_dir.parent / opt.vq_name) / "opt.txt")
        _check_vocab(sd, "token_emb.weight", vq.nb_code + 2, vq, path)
        config = mask_config(opt, vq, clip_dim=int(sd["cond_emb.weight"].shape[1]) if "cond_emb.weight" in sd else None)
        model = build_checked(lambda: MaskTransformer(config), sd, path)
    logger.info("loaded masked transformer from %s (ep %s, it %s)", path, state.get("ep"), state.get("total_it"))
    return model.to(device).eval(), opt


def load_residual_transformer(
    run_dir: str | Path,
    *,
    vq_dir: str | Path | None = None,
    which: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[ResidualTransformer, ResidualTransformerOptions]:
    """Residual transformer in eval mode from a run folder: ``model/<which>.tar``, by default the stage's lookup
    order (official generation reads ``net_best_fid.tar``; a run without a best file falls back to ``latest.tar``
    with a warning in the log)."""
    run_dir = Path(run_dir).expanduser().resolve()
    opt = ResidualTransformerOptions.load(run_dir / "opt.txt")
    path = find_checkpoint(run_dir / "model", RESIDUAL, which)
    state = load_checkpoint(path)
    sd = strip_text_encoder_keys(check_state_dict(first_key(state, *RES_KEYS, path=path), path, RES_KEYS[0]))
    if MODEL_ARGS_KEY in state:
        args = check_model_args(state[MODEL_ARGS_KEY], path)
        model = build_checked(lambda: ResidualTransformer(ResidualTransformerConfig(**args)), sd, path)
    else:
        vq = VQFacts.from_opt_file(Path(vq_dir or run_dir.parent / opt.vq_name) / "opt.txt")
        # The tensors present decide the variant (an opt.txt written by hand could disagree with them).
        opt = dataclasses.replace(opt, share_weight="embed_proj_shared_weight" in sd)
        table = "embed_proj_shared_weight" if opt.share_weight else "token_embed_weight"
        _check_vocab(sd, table, vq.nb_code + 1, vq, path)
        config = residual_config(
            opt, vq, clip_dim=int(sd["cond_emb.weight"].shape[1]) if "cond_emb.weight" in sd else None
        )
        model = build_checked(lambda: ResidualTransformer(config), sd, path)
    logger.info("loaded residual transformer from %s (ep %s, it %s)", path, state.get("ep"), state.get("total_it"))
    return model.to(device).eval(), opt


SAMPLING_FILE = "sampling.json"  # in a masked-transformer run folder: sampling settings the run was tuned with
MAX_COND_SCALE = 100.0  # a run's recorded guidance at most (far past any useful value)


@dataclass(frozen=True)
class RunSampling:
    """The sampling settings a masked-transformer run was tuned with, from its ``sampling.json``
    (docs/sampling.md#run-sampling-settings); a run without the file samples as the official code does.

    ``margin``: decoding-margin tokens past each end of a free motion; ``cond_scale``: the masked transformer's
    classifier-free guidance. Both apply where the user leaves the setting at −1."""

    margin: int = 0
    cond_scale: float = OFFICIAL_COND_SCALE


RUN_SAMPLING_CHECKS = {
    "margin": (lambda v: type(v) is int and 0 <= v <= MAX_MARGIN, f"an integer 0..{MAX_MARGIN}"),
    # NaN fails the range test (comparisons with NaN are false), and so does infinity
    "cond_scale": (lambda v: type(v) in (int, float) and 0 <= v <= MAX_COND_SCALE, f"a number 0..{MAX_COND_SCALE:g}"),
}


def load_run_sampling(run_dir: str | Path) -> RunSampling:
    """The run's ``sampling.json``: a JSON object with any of ``margin`` (tokens) and ``cond_scale``; settings it
    leaves out are the official ones. Anything else is a :class:`CheckpointError` naming the file."""
    path = Path(run_dir) / SAMPLING_FILE
    if not path.is_file():
        return RunSampling()
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not readable JSON ({e}); fix or delete it (no file = official sampling)") from e
    expected = ", ".join(f'"{k}": <{what}>' for k, (_, what) in RUN_SAMPLING_CHECKS.items())
    if not isinstance(values, dict) or not values.keys() <= RUN_SAMPLING_CHECKS.keys():
        raise CheckpointError(f"{path}: expected an object with any of {{{expected}}}, got {str(values)[:200]}")
    for key, value in values.items():
        ok, what = RUN_SAMPLING_CHECKS[key]
        if not ok(value):
            raise CheckpointError(f"{path}: {key!r} must be {what}, got {repr(value)[:200]}")
    return RunSampling(**{k: float(v) if k == "cond_scale" else v for k, v in values.items()})
