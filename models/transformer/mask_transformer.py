"""Masked (base-layer) transformer, docs/networks.md#masked-transformer: predicts layer-0 RVQ codes from text and partial codes.

The model does not own a text encoder: it takes the condition vector ``cond (B, clip_dim)``; the frozen encoder
is built once by the caller and shared (the official code loads CLIP inside each model).
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
from models.transformer.sampling import cosine_schedule


@dataclass(frozen=True)
class MaskTransformerConfig:
    """Architecture of a :class:`MaskTransformer` (stored as ``model_args`` in our checkpoints)."""

    num_tokens: int = 512  # K, the VQ codebook size (nb_code)
    code_dim: int = 512  # C, token embedding width
    latent_dim: int = 384  # d
    ff_size: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    dropout: float = 0.2
    clip_dim: int = 512  # width of the text condition vector
    cond_drop_prob: float = 0.1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MaskedLoss:
    """Training-objective outputs: mean CE over masked positions, top-1 accuracy, predictions (B, n)."""

    loss: Tensor
    acc: Tensor
    pred_ids: Tensor


class MaskTransformer(nn.Module):
    """Bidirectional transformer over ``[cond] ++ tokens``; vocabulary K codes + mask id K + pad id K+1."""

    def __init__(self, config: MaskTransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        # Registration order = official order (state-dict and optimizer-state parameter order).
        self.input_process = InputProcess(c.code_dim, c.latent_dim)
        self.position_enc = PositionalEncoding(c.latent_dim, c.dropout)
        self.seqTransEncoder = TransformerEncoder(c.latent_dim, c.num_heads, c.ff_size, c.dropout, c.num_layers)
        self.cond_emb = nn.Linear(c.clip_dim, c.latent_dim)
        self.output_process = OutputProcess(c.num_tokens, c.latent_dim)
        self.token_emb = nn.Embedding(c.num_tokens + 2, c.code_dim)
        init_official(self)

    @property
    def num_tokens(self) -> int:
        return self.config.num_tokens

    @property
    def mask_id(self) -> int:
        return self.config.num_tokens

    @property
    def pad_id(self) -> int:
        return self.config.num_tokens + 1

    def forward(self, ids: Tensor, cond: Tensor, padding_mask: Tensor, force_mask: bool = False) -> Tensor:
        """Logits for every position (docs/networks.md#masked-transformer ``trans_forward``).

        ids: (B, n) long in [0, K+2); cond: (B, clip_dim); padding_mask: (B, n) bool, True = padding
        -> logits (B, K, n) (class dim second, as the reference and ``F.cross_entropy`` expect).
        Condition dropout applies in training mode only; ``force_mask`` zeroes the condition.
        """
        cond = drop_condition(cond, self.config.cond_drop_prob, training=self.training, force_mask=force_mask)
        x = self.position_enc(self.input_process(self.token_emb(ids)))
        seq = torch.cat([self.cond_emb(cond)[:, None, :], x], dim=1)
        key_pad = torch.cat([padding_mask.new_zeros(padding_mask.shape[0], 1), padding_mask], dim=1)
        h = self.seqTransEncoder(seq, key_pad)[:, 1:]
        return self.output_process(h).transpose(1, 2)

    def forward_with_cond_scale(
        self,
        ids: Tensor,
        cond: Tensor,
        padding_mask: Tensor,
        cond_scale: float,
        force_mask: bool = False,
        batched: bool = True,
    ) -> Tensor:
        """Classifier-free guidance (docs/sampling.md#classifier-free-guidance): ``uncond + s·(cond − uncond)`` -> (B, K, n).

        ``s == 1`` runs one pass; otherwise the conditional and unconditional branches run as one forward of
        batch 2B when ``batched`` (same numbers as two passes up to float rounding), else as two passes.
        """
        if force_mask:
            return self(ids, cond, padding_mask, force_mask=True).float()
        if cond_scale == 1:
            return self(ids, cond, padding_mask).float()
        if batched:
            both = self(
                torch.cat([ids, ids]),
                torch.cat([cond, torch.zeros_like(cond)]),
                torch.cat([padding_mask, padding_mask]),
            )
            logits, aux = both.chunk(2)
        else:
            logits = self(ids, cond, padding_mask)
            aux = self(ids, cond, padding_mask, force_mask=True)
        # Guidance and everything after it in float32, also when the passes ran under a bf16 autocast.
        logits, aux = logits.float(), aux.float()
        return aux + (logits - aux) * cond_scale

    def masked_loss(self, ids: Tensor, cond: Tensor, m_lens: Tensor) -> MaskedLoss:
        """BERT-style masked-token objective (docs/training.md#masked-transformer-objective); uses the global torch RNG.

        ids: (B, n) layer-0 codes of the zero-padded batch; cond: (B, clip_dim); m_lens: (B,) lengths in tokens.
        """
        b, n = ids.shape
        device = ids.device
        non_pad = lengths_to_mask(m_lens, n)
        ids = torch.where(non_pad, ids, self.pad_id)
        t = torch.rand(b, device=device)
        # QUIRK(reference): the mask count uses the padded length n, not each sample's length; kept for training
        # parity (short samples get relatively more masked tokens after the non-pad intersection).
        num_masked = (n * cosine_schedule(t)).round().clamp(min=1)
        perm = torch.rand(b, n, device=device).argsort(dim=-1)
        mask = (perm < num_masked[:, None]) & non_pad
        labels = torch.where(mask, ids, self.mask_id)
        # BERT corruption: 10 % random id, 0.9·0.88 = 79.2 % [MASK], 10.8 % unchanged.
        replace_random = mask & (torch.rand(b, n, device=device) < 0.1)
        x_ids = torch.where(replace_random, torch.randint_like(ids, self.num_tokens), ids)
        replace_mask = mask & ~replace_random & (torch.rand(b, n, device=device) < 0.88)
        x_ids = torch.where(replace_mask, self.mask_id, x_ids)
        logits = self(x_ids, cond, ~non_pad)
        return token_loss(logits, labels, ignore_index=self.mask_id)


def token_loss(logits: Tensor, labels: Tensor, ignore_index: int) -> MaskedLoss:
    """Cross-entropy (no label smoothing) and top-1 accuracy over positions whose label is not ignored.

    logits: (B, K, n); labels: (B, n).
    """
    loss = F.cross_entropy(logits.float(), labels, ignore_index=ignore_index)
    pred = logits.argmax(dim=1)
    valid = labels != ignore_index
    acc = (pred == labels)[valid].float().mean() if bool(valid.any()) else logits.new_zeros(())
    return MaskedLoss(loss=loss, acc=acc, pred_ids=pred)
