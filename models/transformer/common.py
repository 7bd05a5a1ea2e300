"""Building blocks shared by the masked and the residual transformer (docs/networks.md#masked-transformer, docs/networks.md#residual-transformer).

Parameter names follow the official checkpoints (docs/checkpoints.md#state-dict-keys: ``input_process.poseEmbedding``,
``position_enc.pe``, ``seqTransEncoder.layers.i.self_attn.in_proj_weight``, ``output_process.dense`` ...),
so official state dicts load strictly. The layout is batch-first and attention runs through
``F.scaled_dot_product_attention``; weights are layout-independent, so this changes nothing numerically.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B,) lengths -> (B, max_len) bool, True at valid positions ``i < length``."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    """(max_len, dim) table: even columns sin(p·10000^(-2i/d)), odd columns cos (docs/networks.md#masked-transformer)."""
    position = torch.arange(max_len, dtype=torch.float32)[:, None]
    div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(position * div_term)
    table[:, 1::2] = torch.cos(position * div_term)
    return table


class PositionalEncoding(nn.Module):
    """Adds the sinusoidal table to token features, then dropout. Buffer ``pe (max_len, 1, d)`` as official."""

    def __init__(self, dim: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        # QUIRK(reference): stored sequence-first (max_len, 1, d) and saved in checkpoints; kept so they load.
        self.register_buffer("pe", sinusoidal_table(max_len, dim)[:, None, :])

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, n, d) -> (B, n, d)."""
        return self.dropout(x + self.pe[: x.shape[1], 0].to(x.dtype))


class InputProcess(nn.Module):
    """Code-space vectors (B, n, C) -> model width (B, n, d)."""

    def __init__(self, in_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.poseEmbedding = nn.Linear(in_dim, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.poseEmbedding(x)


class OutputProcess(nn.Module):
    """dense -> GELU -> LayerNorm(eps 1e-12) -> poseFinal; (B, n, d) -> (B, n, out_dim)."""

    def __init__(self, out_dim: int, latent_dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(latent_dim, latent_dim)
        self.LayerNorm = nn.LayerNorm(latent_dim, eps=1e-12)
        self.poseFinal = nn.Linear(latent_dim, out_dim)

    def forward(self, h: Tensor) -> Tensor:
        return self.poseFinal(self.LayerNorm(F.gelu(self.dense(h))))


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names (packed ``in_proj``)."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"latent_dim {dim} is not divisible by n_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.in_proj: nn.Module | None = None  # set by split_in_proj (int8 copies)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def split_in_proj(self) -> None:
        """Move the packed in-projection into an ``nn.Linear`` child ``in_proj`` (same numbers), so that module
        swaps such as dynamic quantisation reach it; for inference copies only (the state-dict keys change)."""
        linear = nn.Linear(
            self.in_proj_weight.shape[1],
            self.in_proj_weight.shape[0],
            device=self.in_proj_weight.device,
            dtype=self.in_proj_weight.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(self.in_proj_weight)
            linear.bias.copy_(self.in_proj_bias)
        del self.in_proj_weight, self.in_proj_bias
        self.in_proj = linear

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        """x: (B, S, d); attn_mask: (B, 1, 1, S) bool, True = may attend, or None -> (B, S, d)."""
        b, s, d = x.shape
        if self.in_proj is None:
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        else:
            qkv = self.in_proj(x)
        q, k, v = qkv.view(b, s, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, s, d))


class EncoderLayer(nn.Module):
    """Post-norm transformer encoder layer (``nn.TransformerEncoderLayer``, GELU, eps 1e-5, same names)."""

    def __init__(self, dim: int, num_heads: int, ff_size: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads, dropout)
        self.linear1 = nn.Linear(dim, ff_size)
        self.linear2 = nn.Linear(ff_size, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x, attn_mask)))
        return self.norm2(x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(x))))))


class TransformerEncoder(nn.Module):
    """Stack of :class:`EncoderLayer` (no final norm), keys ``layers.{i}.*``."""

    def __init__(self, dim: int, num_heads: int, ff_size: int, dropout: float, num_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(dim, num_heads, ff_size, dropout) for _ in range(num_layers))

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x: (B, S, d); key_padding_mask: (B, S) bool, True = padding (ignored as a key) -> (B, S, d)."""
        attn_mask = None
        if key_padding_mask is not None and bool(key_padding_mask.any()):
            attn_mask = ~key_padding_mask[:, None, None, :]
        for layer in self.layers:
            x = layer(x, attn_mask)
        return x


def init_official(module: nn.Module) -> None:
    """Official init (docs/networks.md#masked-transformer): Linear/Embedding weights N(0, 0.02), biases 0, LayerNorm (1, 0).

    The packed attention ``in_proj_weight`` keeps its xavier-uniform init, as in the reference.
    """
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def drop_condition(cond: Tensor, drop_prob: float, *, training: bool, force_mask: bool) -> Tensor:
    """Classifier-free-guidance condition masking (docs/networks.md#masked-transformer step 1): (B, c) -> (B, c).

    ``force_mask`` -> zeros (the unconditional branch); in training each sample's vector is zeroed with
    probability ``drop_prob``; otherwise unchanged.
    """
    if force_mask:
        return torch.zeros_like(cond)
    if training and drop_prob > 0.0:
        keep = 1.0 - torch.bernoulli(torch.full((cond.shape[0], 1), drop_prob, device=cond.device, dtype=cond.dtype))
        return cond * keep
    return cond


def strip_text_encoder_keys(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop ``clip_model.*`` entries (the frozen text encoder is never part of our models)."""
    return {k: v for k, v in state_dict.items() if not k.startswith("clip_model.")}
