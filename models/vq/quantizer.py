"""EMA codebook with dead-code reset, one layer of the residual quantizer (docs/networks.md#quantizer).

Data-parallel training (``BatchShard``): when a step's global batch is split into ``S`` equal shards (processes x
gradient-accumulation micro-steps), every process sums its shards' EMA statistics, all-reduces them and applies
one EMA update per step; the reset rows are the first K rows of the *global* batch (gathered in shard order), and
the Gumbel noise of a shard is its rows of one noise draw of global shape from a generator keyed to
``(step seed, layer)``. So codebooks, code choices and resets are those of one process with the whole batch,
and identical on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

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


def _identity(t: Tensor) -> Tensor:
    return t


@dataclass(frozen=True)
class BatchShard:
    """Where this process's micro-batch sits in the step's global batch (shard ``micro_step * world + rank``).

    ``seed`` keys every random draw of the step; ``all_reduce_sum`` / ``all_gather_cat`` are the process group's
    collectives (identities in one process).
    """

    seed: int
    rank: int = 0
    world_size: int = 1
    micro_step: int = 0
    accum_steps: int = 1
    all_reduce_sum: Callable[[Tensor], Tensor] = _identity
    all_gather_cat: Callable[[Tensor], Tensor] = _identity

    @property
    def index(self) -> int:
        return self.micro_step * self.world_size + self.rank

    @property
    def count(self) -> int:
        return self.world_size * self.accum_steps

    @property
    def is_last_micro_step(self) -> bool:
        return self.micro_step == self.accum_steps - 1

    def generator(self, key: int, purpose: int, device: torch.device) -> torch.Generator:
        """A fresh generator for one purpose of one layer in this step (same on every shard)."""
        seed = (self.seed * 1_000_003 + key * 7_919 + purpose * 104_729) % (2**63)
        return torch.Generator(device=device).manual_seed(seed)

    def gather_shards(self, rows: Tensor) -> Tensor:
        """(A, N, C) rows of this process's micro-steps -> (S*N, C) of all shards in shard order."""
        a, n, c = rows.shape
        everything = self.all_gather_cat(rows.contiguous())  # (W*A, N, C), rank-major
        return everything.view(self.world_size, a, n, c).transpose(0, 1).reshape(-1, c)


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
        self._pending: list[tuple[Tensor, Tensor, Tensor]] = []  # sharded steps: (sum, count, first rows)

    # ---- EMA state (kept out of the official state dict) ----------------------------------------------------
    def ema_state(self) -> dict[str, Tensor]:
        return {
            "code_sum": self.code_sum.detach().cpu().clone(),
            "code_count": self.code_count.detach().cpu().clone(),
            "initialized": self.initialized.detach().cpu().clone(),
        }

    def load_ema_state(self, state: dict[str, Tensor] | None) -> None:
        """Restore EMA statistics; ``None`` (an official checkpoint) starts them from the loaded codebook.

        Fix of the reference's resume bug (docs/networks.md#quantizer): there the codebook is re-initialised from the first batch.
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

    def select(
        self,
        x: Tensor,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        rows: tuple[int, int] | None = None,
    ) -> Tensor:
        """Code index per row of ``x`` (N, C) -> (N,): argmin distance, or Gumbel-max of ``-d/tau`` in training.

        ``rows = (offset, total)``: ``x`` is rows ``offset : offset + N`` of a batch of ``total`` rows, and the noise
        is those rows of one ``(total, K)`` draw (a data-parallel shard sees the noise of the whole batch).
        """
        with torch.no_grad():
            logits = -self.distances(x)
            if self.training and temperature > 0:
                # QUIRK(reference): stochastic code assignment while training (tau 0.5), kept for retraining.
                if rows is None:
                    noise = gumbel_noise(logits.shape, like=logits, generator=generator)
                else:
                    offset, total = rows
                    noise = gumbel_noise(torch.Size((total, self.nb_code)), like=logits, generator=generator)
                    noise = noise[offset : offset + x.shape[0]]
                logits = logits / temperature + noise
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
        return self._apply_ema(batch_sum, batch_count, reset_rows)

    def _apply_ema(self, batch_sum: Tensor, batch_count: Tensor, reset_rows: Tensor) -> Tensor:
        """One EMA step of the code sums/counts (docs/networks.md#quantizer); codes whose count fell below 1 become ``reset_rows``
        (K, C) -> perplexity of ``batch_count``."""
        self.code_sum.mul_(self.mu).add_(batch_sum, alpha=1 - self.mu)
        self.code_count.mul_(self.mu).add_(batch_count, alpha=1 - self.mu)
        usage = (self.code_count.view(-1, 1) >= 1.0).to(batch_sum.dtype)
        updated = self.code_sum / self.code_count.view(-1, 1)
        self.codebook.copy_(usage * updated + (1 - usage) * reset_rows)
        return perplexity_of(batch_count)

    @torch.no_grad()
    def _sharded_update(self, x: Tensor, idx: Tensor, shard: BatchShard, key: int) -> Tensor:
        """Queue this shard's statistics; on the last micro-step all-reduce them and update once -> perplexity
        (of the whole step's batch on the updating micro-step, else of this shard)."""
        onehot = torch.zeros(self.nb_code, x.shape[0], device=x.device, dtype=x.dtype)
        onehot.scatter_(0, idx.view(1, -1), 1.0)
        self._pending.append((onehot @ x, onehot.sum(-1), x[: self.nb_code]))
        if not shard.is_last_micro_step:
            return perplexity_of(self._pending[-1][1])
        pending, self._pending = self._pending, []
        batch_sum = shard.all_reduce_sum(torch.stack([p[0] for p in pending]).sum(0))
        batch_count = shard.all_reduce_sum(torch.stack([p[1] for p in pending]).sum(0))
        # First K rows of the global batch: each shard's first min(N, K) rows, concatenated in shard order.
        rows = shard.gather_shards(torch.stack([p[2] for p in pending]))
        reset_rows = self._tile(rows, shard.generator(key, 2, x.device))[: self.nb_code]
        return self._apply_ema(batch_sum, batch_count, reset_rows)

    # ---- forward ------------------------------------------------------------------------------------------
    def forward(
        self,
        x: Tensor,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        shard: BatchShard | None = None,
        key: int = 0,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x: (B, C, n) -> (straight-through quantized (B, C, n), indices (B, n), commit loss, perplexity).

        In training mode the codebook is initialised from the first batch and updated by EMA. With ``shard``
        (data-parallel training; ``key`` = layer index) draws come from generators keyed to the shard's step
        seed instead of ``generator``, and the update uses the statistics of the whole global batch; the first
        initialisation uses the rows of the first micro-step's shards (the global batch's first rows).
        """
        b, c, n = x.shape
        flat = x.permute(0, 2, 1).reshape(-1, c)  # rows in (batch, time) order
        if shard is not None and self.training:
            if not bool(self.initialized):
                first = shard.gather_shards(flat.detach()[None, : self.nb_code])
                self._init_codebook(first, shard.generator(key, 3, x.device))
            rows = (shard.index * flat.shape[0], shard.count * flat.shape[0])
            idx = self.select(flat, temperature, shard.generator(key, 1, x.device), rows=rows)
            x_d = self.lookup(idx)
            perplexity = self._sharded_update(flat.detach(), idx, shard, key)
            commit_loss = F.mse_loss(flat, x_d.detach())
            x_d = flat + (x_d - flat).detach()
            return x_d.view(b, n, c).permute(0, 2, 1).contiguous(), idx.view(b, n), commit_loss, perplexity
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
