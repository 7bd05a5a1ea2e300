"""Residual transformer, docs/networks.md#residual-transformer: predicts the codes of RVQ layer j from the sum of the layers below it.

Per-layer tensors (docs/networks.md#residual-transformer): ``E[l]`` (K+1, C) embeds layer-l ids (l = 0..Q−2) and ``W[j−1]`` (K+1, C)
projects the output onto the K+1 classes of target layer j (j = 1..Q−1); the pad id K is also a class.
With ``share_weight`` (the released variant) ``W[j−1] = E[j]`` for j = 1..Q−2, stored as three tensors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.transformer.common import (
    InputProcess,
    OutputProcess,
    PositionalEncoding,
    TransformerEncoder,
    drop_condition,
    init_official,
    lengths_to_mask,
)
from models.transformer.mask_transformer import MaskedLoss, token_loss
from models.transformer.sampling import cosine_schedule


@dataclass(frozen=True)
class ResidualTransformerConfig:
    """Architecture of a :class:`ResidualTransformer` (stored as ``model_args`` in our checkpoints)."""

    num_tokens: int = 512
    code_dim: int = 512
    num_quantizers: int = 6
    latent_dim: int = 384
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    dropout: float = 0.2
    clip_dim: int = 512
    cond_drop_prob: float = 0.2
    share_weight: bool = True

    def __post_init__(self) -> None:
        if self.num_quantizers < 2:
            raise ValueError(f"a residual transformer needs num_quantizers >= 2, got {self.num_quantizers}")
        if self.share_weight and self.num_quantizers < 3:
            raise ValueError("share_weight needs num_quantizers >= 3 (it ties Q−2 tables)")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResidualTransformer(nn.Module):
    """Bidirectional transformer over ``[cond, quant_emb(q), x_1..x_n]`` with per-layer input/output tables."""

    def __init__(self, config: ResidualTransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        q, k1 = c.num_quantizers, c.num_tokens + 1
        # Own parameters come first in state_dict()/parameters(); their order is the reference's.
        if c.share_weight:
            self.embed_proj_shared_weight = nn.Parameter(torch.randn(q - 2, k1, c.code_dim) * 0.02)
            self.token_embed_weight_ = nn.Parameter(torch.randn(1, k1, c.code_dim) * 0.02)
            self.output_proj_weight_ = nn.Parameter(torch.randn(1, k1, c.code_dim) * 0.02)
        else:
            self.output_proj_weight = nn.Parameter(torch.randn(q - 1, k1, c.code_dim) * 0.02)
            # QUIRK(reference): Q rows although only Q−1 target layers exist (row q−1 serves layer q).
            self.output_proj_bias = nn.Parameter(torch.zeros(q, k1))
            self.token_embed_weight = nn.Parameter(torch.randn(q - 1, k1, c.code_dim) * 0.02)
        self.input_process = InputProcess(c.code_dim, c.latent_dim)
        self.position_enc = PositionalEncoding(c.latent_dim, c.dropout)
        self.seqTransEncoder = TransformerEncoder(c.latent_dim, c.num_heads, c.ff_size, c.dropout, c.num_layers)
        self.quant_emb = nn.Linear(q, c.latent_dim)
        self.cond_emb = nn.Linear(c.clip_dim, c.latent_dim)
        self.output_process = OutputProcess(c.code_dim, c.latent_dim)
        init_official(self)

    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def pad_id(self) -> int:
        return self.config.num_tokens

    @property
    def num_quantizers(self) -> int:
        return self.config.num_quantizers

    def token_embeddings(self) -> Tensor:
        """E: (Q−1, K+1, C); row l embeds the ids of RVQ layer l."""
        if self.config.share_weight:
            return torch.cat([self.token_embed_weight_, self.embed_proj_shared_weight], dim=0)
        return self.token_embed_weight

    def output_projections(self) -> Tensor:
        """W: (Q−1, K+1, C); row j−1 projects onto the classes of RVQ layer j."""
        if self.config.share_weight:
            return torch.cat([self.embed_proj_shared_weight, self.output_proj_weight_], dim=0)
        return self.output_proj_weight

    def embed_layer(self, ids: Tensor, layer: int) -> Tensor:
        """Code-space embedding of layer-``layer`` ids: (B, n) -> (B, n, C)."""
        return F.embedding(ids, self.token_embeddings()[layer])

    def forward(
        self, history: Tensor, q: Tensor, cond: Tensor, padding_mask: Tensor, force_mask: bool = False
    ) -> Tensor:
        """Logits for target layers ``q``.

        history: (B, n, C) summed embeddings of layers < q; q: (B,) long in [1, Q); cond: (B, clip_dim);
        padding_mask: (B, n) bool, True = padding -> logits (B, K+1, n).
        """
        cond = drop_condition(cond, self.config.cond_drop_prob, training=self.training, force_mask=force_mask)
        x = self.position_enc(self.input_process(history))
        q_emb = self.quant_emb(F.one_hot(q, self.num_quantizers).to(x.dtype))
        seq = torch.cat([self.cond_emb(cond)[:, None, :], q_emb[:, None, :], x], dim=1)
        key_pad = torch.cat([padding_mask.new_zeros(padding_mask.shape[0], 2), padding_mask], dim=1)
        h = self.output_process(self.seqTransEncoder(seq, key_pad)[:, 2:])  # (B, n, C)
        return self.project(h, q)

    def project(self, h: Tensor, q: Tensor) -> Tensor:
        """Output projection with ``W[q−1]``: h (B, n, C), q (B,) -> logits (B, K+1, n)."""
        weight = self.output_projections()[q - 1]  # (B, K+1, C)
        logits = torch.einsum("bkc,bnc->bkn", weight, h)
        if not self.config.share_weight:
            # QUIRK(reference) fixed: the reference adds output + bias onto output in place (doubling the
            # logits); the spec marks it safe to fix because the released model has no bias.
            logits = logits + self.output_proj_bias[q - 1][:, :, None]
        return logits

    def forward_with_cond_scale(
        self,
        history: Tensor,
        q: int | Tensor,
        cond: Tensor,
        padding_mask: Tensor,
        cond_scale: float,
        force_mask: bool = False,
        batched: bool = True,
    ) -> Tensor:
        """Guided logits ``uncond + s·(cond − uncond)`` for target layer ``q`` -> (B, K+1, n) (docs/sampling.md#residual-generation)."""
        b = history.shape[0]
        q = torch.full((b,), int(q), device=history.device, dtype=torch.long) if not torch.is_tensor(q) else q
        if force_mask:
            return self(history, q, cond, padding_mask, force_mask=True).float()
        if cond_scale == 1:
            return self(history, q, cond, padding_mask).float()
        if batched:
            both = self(
                torch.cat([history, history]),
                torch.cat([q, q]),
                torch.cat([cond, torch.zeros_like(cond)]),
                torch.cat([padding_mask, padding_mask]),
            )
            logits, aux = both.chunk(2)
        else:
            logits = self(history, q, cond, padding_mask)
            aux = self(history, q, cond, padding_mask, force_mask=True)
        # Guidance and everything after it in float32, also when the passes ran under a bf16 autocast.
        logits, aux = logits.float(), aux.float()
        return aux + (logits - aux) * cond_scale

    def residual_loss(self, codes: Tensor, cond: Tensor, m_lens: Tensor) -> MaskedLoss:
        """Teacher-forced objective (docs/training.md#residual-transformer-objective); uses the global torch RNG.

        codes: (B, n, Q) all RVQ layers of the padded batch; cond: (B, clip_dim); m_lens: (B,) in tokens.
        """
        b, n, nq = codes.shape
        if nq != self.num_quantizers:
            raise ValueError(f"codes have {nq} quantizer layers, the model expects {self.num_quantizers}")
        non_pad = lengths_to_mask(m_lens, n)
        codes = torch.where(non_pad[:, :, None], codes, self.pad_id)
        # Target layer j in 1..Q−1, biased to low layers: round((1 − cos(πu/2))·(Q − 2)) + 1.
        u = torch.rand(b, device=codes.device)
        layer = torch.round((1 - cosine_schedule(u)) * (nq - 2)).long() + 1
        table = self.token_embeddings()  # (Q−1, K+1, C)
        per_layer = torch.stack([F.embedding(codes[..., i], table[i]) for i in range(nq - 1)], dim=-1)
        history = per_layer.cumsum(dim=-1)[torch.arange(b), :, :, layer - 1]  # (B, n, C)
        target = codes[torch.arange(b), :, layer]  # (B, n)
        logits = self(history, layer, cond, ~non_pad)
        return token_loss(logits, target, ignore_index=self.pad_id)
