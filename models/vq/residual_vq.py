"""Residual vector quantizer: Q EMA-reset layers, each quantizing what the previous ones left (docs/networks.md#residual-quantization)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.vq.quantizer import BatchShard, QuantizeEMAReset


class ResidualVQ(nn.Module):
    """Q quantizer layers (``layers.{q}.codebook`` in state dicts) with quantizer dropout while training."""

    def __init__(
        self,
        *,
        num_quantizers: int,
        nb_code: int,
        code_dim: int,
        mu: float = 0.99,
        shared_codebook: bool = False,
        quantize_dropout_prob: float = 0.2,
        quantize_dropout_cutoff_index: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= quantize_dropout_cutoff_index < num_quantizers:
            raise ValueError(
                f"quantize_dropout_cutoff_index must be in [0, {num_quantizers}), got {quantize_dropout_cutoff_index}"
            )
        self.num_quantizers = num_quantizers
        self.quantize_dropout_prob = quantize_dropout_prob
        self.quantize_dropout_cutoff_index = quantize_dropout_cutoff_index
        if shared_codebook:
            # Same module object in every slot (the reference's layout: Q identical state-dict entries).
            shared = QuantizeEMAReset(nb_code, code_dim, mu)
            self.layers = nn.ModuleList([shared] * num_quantizers)
        else:
            self.layers = nn.ModuleList([QuantizeEMAReset(nb_code, code_dim, mu) for _ in range(num_quantizers)])
        self.shard: BatchShard | None = None

    @contextlib.contextmanager
    def sharded(self, shard: BatchShard) -> Iterator[None]:
        """Training forwards inside the block treat their batch as ``shard`` of a data-parallel global batch
        (keyed draws, all-reduced EMA statistics: see :mod:`models.vq.quantizer`)."""
        self.shard = shard
        try:
            yield
        finally:
            self.shard = None

    @property
    def codebooks(self) -> Tensor:
        """(Q, K, C) stacked codebooks."""
        return torch.stack([layer.codebook for layer in self.layers])

    def last_active_layer(self, generator: torch.Generator | None = None) -> int:
        """Index of the last layer used in this training step (Q-1 = all); drawn only in training mode.

        With probability ``quantize_dropout_prob`` a uniform index in [cutoff, Q) is drawn (docs/networks.md#residual-quantization). The draws
        come from ``generator`` (any device) or torch's global generator, never from python ``random``.
        """
        if not self.training or self.quantize_dropout_prob <= 0:
            return self.num_quantizers - 1
        device = generator.device if generator is not None else torch.device("cpu")
        u, v = torch.rand(2, generator=generator, device=device).tolist()
        if u >= self.quantize_dropout_prob:
            return self.num_quantizers - 1
        lo, hi = self.quantize_dropout_cutoff_index, self.num_quantizers
        return min(lo + int(v * (hi - lo)), hi - 1)

    def forward(
        self,
        x: Tensor,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Training/eval forward. x: (B, C, n) -> (quantized sum (B, C, n), indices (B, n, Q) with -1 for dropped
        layers, mean commit loss over active layers, mean perplexity over active layers).

        Gradient: every active layer's straight-through term passes the identity to ``x``, so the encoder gets
        ``n_active`` times the reconstruction gradient, as in the reference (docs/networks.md#residual-quantization).
        """
        shard = self.shard if self.training else None
        if shard is not None:
            generator = shard.generator(0, 4, x.device)  # the same dropout draw on every shard of the step
        last = self.last_active_layer(generator)
        # Codebook distances and EMA statistics stay in fp32 under autocast (bf16 would change code choices).
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(x.float(), last, temperature, generator, shard)

    def _forward(
        self, x: Tensor, last: int, temperature: float, generator: torch.Generator | None, shard: BatchShard | None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        residual = x
        out = torch.zeros_like(x)
        indices, losses, perplexities = [], [], []
        for q, layer in enumerate(self.layers):
            if q > last:
                indices.append(torch.full((x.shape[0], x.shape[-1]), -1, device=x.device, dtype=torch.long))
                continue
            quantized, idx, loss, perplexity = layer(
                residual, temperature=temperature, generator=generator, shard=shard, key=q
            )
            residual = residual - quantized.detach()
            out = out + quantized
            indices.append(idx)
            losses.append(loss)
            perplexities.append(perplexity)
        return out, torch.stack(indices, dim=-1), torch.stack(losses).mean(), torch.stack(perplexities).mean()

    def quantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Deterministic tokenisation with all Q layers, never updating codebooks.

        x: (B, C, n) -> (indices (B, n, Q), per-layer quantized vectors (Q, B, C, n)).
        """
        b, c, n = x.shape
        residual = x
        indices, codes = [], []
        for layer in self.layers:
            flat = residual.permute(0, 2, 1).reshape(-1, c)
            idx = layer.select(flat, temperature=0.0)
            x_d = layer.lookup(idx)
            x_d = flat + (x_d - flat).detach()  # same rounding as the straight-through output
            quantized = x_d.view(b, n, c).permute(0, 2, 1)
            residual = residual - quantized.detach()
            indices.append(idx.view(b, n))
            codes.append(quantized)
        return torch.stack(indices, dim=-1), torch.stack(codes, dim=0)

    def summed_codes(self, indices: Tensor) -> Tensor:
        """Sum over layers of the code vectors of indices (B, n, q<=Q), -1 = absent -> (B, n, C).

        Equals ``get_codes_from_indices(indices).sum(0)`` without materialising the (Q, B, n, C) stack.
        """
        if indices.shape[-1] > self.num_quantizers:
            raise ValueError(f"indices have {indices.shape[-1]} layers, this quantizer has {self.num_quantizers}")
        out = None
        for q in range(indices.shape[-1]):
            idx = indices[..., q]
            present = (idx >= 0).unsqueeze(-1)
            codes = self.layers[q].lookup(idx.clamp(min=0)).masked_fill(~present, 0.0)
            out = codes if out is None else out + codes
        if out is None:
            raise ValueError("indices have no quantizer layer (last dim is 0)")
        return out

    def get_codes_from_indices(self, indices: Tensor) -> Tensor:
        """Code vectors of indices (B, n, q<=Q), -1 = absent layer (zero vector) -> (Q, B, n, C)."""
        if indices.shape[-1] > self.num_quantizers:
            raise ValueError(f"indices have {indices.shape[-1]} layers, this quantizer has {self.num_quantizers}")
        indices = F.pad(indices, (0, self.num_quantizers - indices.shape[-1]), value=-1)
        gather = indices.permute(2, 0, 1)  # (Q, B, n)
        absent = gather < 0
        books = self.codebooks  # (Q, K, C)
        q_index = torch.arange(self.num_quantizers, device=indices.device).view(-1, 1, 1)
        codes = books[q_index, gather.masked_fill(absent, 0)]
        return codes.masked_fill(absent.unsqueeze(-1), 0.0)
