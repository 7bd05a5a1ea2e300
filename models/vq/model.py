"""RVQ-VAE motion tokenizer (docs/networks.md#residual-quantization): encoder -> residual VQ -> decoder, plus build/load helpers."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from models.vq.encdec import ConvStack, Decoder, Encoder
from models.vq.residual_vq import ResidualVQ
from models.vq.resnet import make_activation, make_norm

# Gumbel temperature the reference's RVQVAE.forward hands to every quantizer layer.
SAMPLE_CODEBOOK_TEMP = 0.5


@dataclass(frozen=True)
class RVQVAEConfig:
    """Architecture of an RVQ-VAE (stored as ``model_args`` in our checkpoints)."""

    input_width: int = 263  # D
    nb_code: int = 512  # K
    code_dim: int = 512  # C
    output_emb_width: int = 512  # must equal code_dim
    down_t: int = 2
    stride_t: int = 2
    width: int = 512
    depth: int = 3
    dilation_growth_rate: int = 3
    activation: str = "relu"
    norm: str | None = None
    num_quantizers: int = 6
    shared_codebook: bool = False
    quantize_dropout_prob: float = 0.2
    quantize_dropout_cutoff_index: int = 0
    mu: float = 0.99

    def __post_init__(self) -> None:
        if self.output_emb_width != self.code_dim:
            raise ValueError(f"output_emb_width ({self.output_emb_width}) must equal code_dim ({self.code_dim})")
        if not 0.0 <= self.quantize_dropout_prob < 1.0:
            raise ValueError(f"quantize_dropout_prob must be in [0, 1), got {self.quantize_dropout_prob}")
        if self.norm == "None":
            object.__setattr__(self, "norm", None)
        make_activation(self.activation)
        make_norm(self.norm, 32)
        for name in ("input_width", "nb_code", "code_dim", "width", "depth", "num_quantizers", "stride_t"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RVQVAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown RVQ-VAE model_args {unknown}")
        return cls(**values)

    @property
    def downsample(self) -> int:
        """Frames per token (4 for the released model)."""
        return self.stride_t**self.down_t


class Reconstruction(NamedTuple):
    """Output of :meth:`RVQVAE.reconstruct`."""

    recon: Tensor  # (B, 4n, D)
    codes: Tensor  # (B, n, Q), -1 where a layer was dropped
    commit_loss: Tensor  # scalar, mean over active layers
    perplexity: Tensor  # scalar, mean over active layers


class RVQVAE(nn.Module):
    """Motion (B, T, D) <-> tokens (B, n, Q), n = T // 4 for the released down-sampling."""

    def __init__(self, config: RVQVAEConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        stack = ConvStack(c.width, c.depth, c.dilation_growth_rate, c.activation, c.norm)
        widths = dict(input_width=c.input_width, output_emb_width=c.output_emb_width, stack=stack, down_t=c.down_t)
        self.encoder = Encoder(**widths, stride_t=c.stride_t)
        self.decoder = Decoder(**widths)
        self.quantizer = ResidualVQ(
            num_quantizers=c.num_quantizers,
            nb_code=c.nb_code,
            code_dim=c.code_dim,
            mu=c.mu,
            shared_codebook=c.shared_codebook,
            quantize_dropout_prob=c.quantize_dropout_prob,
            quantize_dropout_cutoff_index=c.quantize_dropout_cutoff_index,
        )

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[-1] != self.config.input_width:
            raise ValueError(f"expected motion features (B, T, {self.config.input_width}), got {tuple(x.shape)}")

    def encode_latent(self, x: Tensor) -> Tensor:
        """Encoder output before quantization. x: (B, T, D) -> (B, C, n)."""
        self._check_input(x)
        return self.encoder(x.permute(0, 2, 1).float())

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Tokenise. x: (B, T, D) -> (codes (B, n, Q) int64, per-layer quantized vectors (Q, B, C, n)).

        Deterministic (nearest code) whatever the module mode; codebooks are never updated here. The
        encoder's dropout follows the module mode, so call ``eval()`` first for reproducible codes.
        """
        return self.quantizer.quantize(self.encode_latent(x))

    def reconstruct(self, x: Tensor, generator: torch.Generator | None = None) -> Reconstruction:
        """Encode, quantize, decode. x: (B, T, D) -> :class:`Reconstruction`.

        In training mode: Gumbel code selection (tau 0.5), EMA codebook updates and quantizer dropout, with
        random draws from ``generator`` (on ``x.device``) when given, else from torch's global generator.
        """
        latent = self.encode_latent(x)
        quantized, codes, commit_loss, perplexity = self.quantizer(
            latent, temperature=SAMPLE_CODEBOOK_TEMP, generator=generator
        )
        return Reconstruction(self.decoder(quantized).permute(0, 2, 1), codes, commit_loss, perplexity)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The reference's forward. x: (B, T, D) -> (recon (B, 4n, D), commit loss, perplexity)."""
        out = self.reconstruct(x, generator)
        return out.recon, out.commit_loss, out.perplexity

    def forward_decoder(self, codes: Tensor) -> Tensor:
        """Decode codes (B, n, q<=Q), -1 = absent (contributes zero) -> features (B, 4n, D)."""
        summed = self.quantizer.summed_codes(codes)  # (B, n, C)
        return self.decoder(summed.permute(0, 2, 1)).permute(0, 2, 1)

    # ---- EMA state of the codebooks (kept out of the official state dict) ----------------------------------
    def codebook_state(self) -> dict[str, Tensor]:
        """Flat ``{'layers.{q}.code_sum': ..}`` of every quantizer's EMA statistics (CPU tensors)."""
        out: dict[str, Tensor] = {}
        for q, layer in enumerate(self.quantizer.layers):
            for key, value in layer.ema_state().items():
                out[f"layers.{q}.{key}"] = value
        return out

    def load_codebook_state(self, state: dict[str, Tensor] | None) -> None:
        """Restore :meth:`codebook_state`; ``None`` seeds the EMA statistics from the loaded codebooks."""
        for q, layer in enumerate(self.quantizer.layers):
            if state is None:
                layer.load_ema_state(None)
                continue
            keys = {k: f"layers.{q}.{k}" for k in ("code_sum", "code_count", "initialized")}
            missing = [v for v in keys.values() if v not in state]
            if missing:
                raise ValueError(f"codebook state lacks {missing}")
            layer.load_ema_state({k: state[v] for k, v in keys.items()})
