"""EMA codebook with dead-code reset, one layer of the residual quantizer (spec §2.2)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gumbel_noise(shape: torch.Size, *, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard Gumbel samples ``-log(-log(u))`` with ``u ~ U[0, 1)`` (logs clamped at 1e-20)."""
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return -torch.log((-torch.log(u.clamp(min=1e-20))).clamp(min=1e-20))


def perplexity_of(counts: Tensor) -> Tensor:
    """``exp(-sum p log(p + 1e-7))`` of code usage counts (K,) -> scalar."""
    prob = counts / counts.sum()
    return torch.exp(-torch.sum(prob * torch.log(prob + 1e-7)))


class QuantizeEMAReset(nn.Module):
    """Nearest-code quantizer whose codebook follows an EMA of its assigned vectors; unused codes are reset.

    State: ``codebook`` (K, C) is a persistent buffer (official key ``codebook``). The EMA statistics
    ``code_sum`` (K, C), ``code_count`` (K,) and the ``initialized`` flag are *non-persistent* buffers so that
    official state dicts (which lack them) load strictly; training checkpoints save them separately through
    :meth:`ema_state` / :meth:`load_ema_state`.
    """

    def __init__(self, nb_code: int, code_dim: int, mu: float = 0.99) -> None:
        super().__init__()
        self.nb_code, self.code_dim, self.mu = nb_code, code_dim, mu
        self.register_buffer("codebook", torch.zeros(nb_code, code_dim))
        self.register_buffer("code_sum", torch.zeros(nb_code, code_dim), persistent=False)
        self.register_buffer("code_count", torch.zeros(nb_code), persistent=False)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool), persistent=False)

    # ---- EMA state (kept out of the official state dict) ----------------------------------------------------
    def ema_state(self) -> dict[str, Tensor]:
        return {"code_sum": self.code_sum.detach().cpu().clone(), "code_count": self.code_count.detach().cpu().clone(),
                "initialized": self.initialized.detach().cpu().clone()}

    def load_ema_state(self, state: dict[str, Tensor] | None) -> None:
        """Restore EMA statistics; ``None`` (an official checkpoint) starts them from the loaded codebook.

        Fix of the reference's resume bug (spec §2.2): there the codebook is re-initialised from the first batch.
        """
        with torch.no_grad():
            if state is None:
                self.code_sum.copy_(self.codebook)
                self.code_count.fill_(1.0)
                self.initialized.fill_(bool(self.codebook.abs().sum() > 0))
            else:
                self.code_sum.copy_(state["code_sum"])
                self.code_count.copy_(state["code_count"])
                self.initialized.copy_(state["initialized"])

    # ---- pieces -------------------------------------------------------------------------------------------
    def _tile(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """At least K rows from ``x`` (N, C): repeated with N(0, (0.01/sqrt C)^2) noise when N < K."""
        n = x.shape[0]
        if n >= self.nb_code:
            return x
        repeats = (self.nb_code + n - 1) // n
        out = x.repeat(repeats, 1)
        noise = torch.randn(out.shape, generator=generator, device=x.device, dtype=x.dtype)
        return out + noise * (0.01 / math.sqrt(self.code_dim))

    def distances(self, x: Tensor) -> Tensor:
        """Squared distances (N, K) as ``|x|^2 - 2 x.E^T + |E|^2`` (the reference's order, for identical ties)."""
        k_w = self.codebook.t()
        return x.pow(2).sum(-1, keepdim=True) - 2 * (x @ k_w) + k_w.pow(2).sum(0, keepdim=True)

    def select(self, x: Tensor, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        """Code index per row of ``x`` (N, C) -> (N,): argmin distance, or Gumbel-max of ``-d/tau`` in training."""
        with torch.no_grad():
            logits = -self.distances(x)
            if self.training and temperature > 0:
                # QUIRK(reference): stochastic code assignment while training (tau 0.5), kept for retraining.
                logits = logits / temperature + gumbel_noise(logits.shape, like=logits, generator=generator)
            return logits.argmax(dim=-1)

    def lookup(self, idx: Tensor) -> Tensor:
        """Codebook rows for indices (...,) -> (..., C)."""
        return F.embedding(idx, self.codebook)

    @torch.no_grad()
    def _init_codebook(self, x: Tensor, generator: torch.Generator | None) -> None:
        rows = self._tile(x, generator)[: self.nb_code]
        self.codebook.copy_(rows)
        self.code_sum.copy_(rows)
        self.code_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update_codebook(self, x: Tensor, idx: Tensor, generator: torch.Generator | None) -> Tensor:
        """EMA update + reset of codes whose EMA count fell below 1 (to the first K batch rows); -> perplexity."""
        onehot = torch.zeros(self.nb_code, x.shape[0], device=x.device, dtype=x.dtype)
        onehot.scatter_(0, idx.view(1, -1), 1.0)
        batch_sum = onehot @ x
        batch_count = onehot.sum(-1)
        reset_rows = self._tile(x, generator)[: self.nb_code]
        self.code_sum.mul_(self.mu).add_(batch_sum, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(batch_count, alpha=1 - self.mu)
        usage = (self.code_count.view(-1, 1) >= 1.0).to(x.dtype)
        updated = self.code_sum / self.code_count.view(-1, 1)
        self.codebook.copy_(usage * updated + (1 - usage) * reset_rows)
        return perplexity_of(batch_count)

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, temperature: float = 0.0, generator: torch.Generator | None = None,
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x: (B, C, n) -> (straight-through quantized (B, C, n), indices (B, n), commit loss, perplexity).

        In training mode the codebook is initialised from the first batch and updated by EMA.
        """
        b, c, n = x.shape
        flat = x.permute(0, 2, 1).reshape(-1, c)          # rows in (batch, time) order
        if self.training and not bool(self.initialized):
            self._init_codebook(flat.detach(), generator)
        idx = self.select(flat, temperature, generator)
        x_d = self.lookup(idx)
        if self.training:
            perplexity = self._update_codebook(flat.detach(), idx, generator)
        else:
            perplexity = perplexity_of(torch.bincount(idx, minlength=self.nb_code).to(flat.dtype))
        commit_loss = F.mse_loss(flat, x_d.detach())
        x_d = flat + (x_d - flat).detach()
        return x_d.view(b, n, c).permute(0, 2, 1).contiguous(), idx.view(b, n), commit_loss, perplexity
